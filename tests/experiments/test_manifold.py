"""The authors' ResScore architecture and the Figure 1 runner (lockstep runs, exact resume)."""

import pytest
import torch

from ncsn_edu.experiments.manifold import bar_images, run_experiment, train_ssm
from ncsn_edu.images.resnet_score import (
    PAPER_N_PARAMS,
    PAPER_WIDTHS,
    ResNetScore,
    load_official_state_dict,
    official_key,
)

# Parameter names of the authors' ResScore (models/scorenet.py) with the shapes they have
# at CIFAR-10 size (nef = ndf = 32), and where they land in ours. ConvTranspose2d weights
# are (in, out, k, k); the resolution-changing blocks' residual paths are 3x3 convolutions.
OFFICIAL = {
    "convs.0.weight": ("stem.weight", (32, 3, 3, 3)),
    "convs.1.main.0.weight": ("encoder.0.conv1.weight", (32, 32, 3, 3)),
    "convs.2.main.0.weight": ("encoder.1.conv1.weight", (64, 32, 3, 3)),
    "convs.2.main.1.weight": ("encoder.1.norm1.weight", (64,)),
    "convs.2.residual.weight": ("encoder.1.skip.weight", (64, 32, 3, 3)),
    "convs.4.main.4.bias": ("encoder.3.norm2.bias", (128,)),
    "convs.5.main.3.weight": ("encoder.4.conv2.weight", (128, 128, 3, 3)),
    "deconvs.0.main.0.weight": ("decoder.0.conv1.weight", (128, 128, 3, 3)),
    "deconvs.1.main.0.weight": ("decoder.1.conv1.weight", (128, 64, 3, 3)),
    "deconvs.1.main.3.weight": ("decoder.1.conv2.weight", (64, 64, 3, 3)),
    "deconvs.1.residual.weight": ("decoder.1.skip.weight", (128, 64, 3, 3)),
    "deconvs.3.residual.bias": ("decoder.3.skip.bias", (32,)),
    "deconvs.4.main.4.weight": ("decoder.4.norm2.weight", (32,)),
    "deconvs.5.weight": ("head.weight", (3, 32, 3, 3)),
    "module.deconvs.5.bias": ("head.bias", (3,)),  # saved from DataParallel
}


def test_resscore_has_the_authors_parameter_count_and_layout():
    net = ResNetScore(3, PAPER_WIDTHS)
    assert sum(p.numel() for p in net.parameters()) == PAPER_N_PARAMS == 1_379_651
    params = dict(net.named_parameters())
    for off, (ours, shape) in OFFICIAL.items():
        assert official_key(off) == ours
        assert tuple(params[ours].shape) == shape, off
    assert isinstance(net.decoder[0].conv1, torch.nn.ConvTranspose2d)
    with pytest.raises(KeyError):
        official_key("convs.6.main.0.weight")


def test_official_state_dict_round_trip_keeps_the_function():
    torch.manual_seed(0)
    a, b = ResNetScore(3, PAPER_WIDTHS), ResNetScore(3, PAPER_WIDTHS)
    inverse = {}
    for name in a.state_dict():  # write a's weights under the authors' names
        kind, rest = name.split(".", 1)
        if kind == "stem":
            inverse[f"convs.0.{rest}"] = name
        elif kind == "head":
            inverse[f"deconvs.5.{rest}"] = name
        else:
            i, part, leaf = rest.split(".")
            part = {"conv1": "main.0", "norm1": "main.1", "conv2": "main.3", "norm2": "main.4",
                    "skip": "residual"}[part]
            block = f"{'convs' if kind == 'encoder' else 'deconvs'}.{int(i) + (kind == 'encoder')}"
            inverse[f"{block}.{part}.{leaf}"] = name
    sd = a.state_dict()
    load_official_state_dict(b, {"module." + k: sd[v] for k, v in inverse.items()})
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(a(x), b(x))


def test_every_residual_block_ends_with_elu():
    """Blocks add before the activation, so each block's output is ELU(.) >= -1."""
    torch.manual_seed(1)
    net = ResNetScore(3, PAPER_WIDTHS)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(3)  # large weights: without the final ELU values far below -1 appear
    h = net.stem(2 * torch.rand(4, 3, 32, 32) - 1)
    for block in list(net.encoder) + list(net.decoder):
        h = block(h)
        assert h.min() >= -1 - 1e-6
    assert net(torch.rand(4, 3, 32, 32)).min() < -1  # the last conv is linear


def test_widths_must_allow_identity_skips():
    assert ResNetScore(1, (4, 8, 8, 8, 8))(torch.rand(2, 1, 28, 28)).shape == (2, 1, 28, 28)
    with pytest.raises(ValueError, match="w1 == w2"):
        ResNetScore(1, (4, 8, 16, 16, 16))


def test_lockstep_runs_equal_separate_runs_and_resume_exactly(tmp_path):
    data = bar_images(64, 8, torch.Generator().manual_seed(0))
    kw = dict(widths=(2, 4, 4, 4, 4), batch_size=2, lr=1e-3, seed=3, progress=False)
    full = run_experiment(data, noise_std=0.01, n_iters=3, **kw)
    assert full["clean"] == train_ssm(data, 0.0, n_iters=3, **kw)
    assert full["noisy"] == train_ssm(data, 0.01, n_iters=3, **kw)
    assert full["clean"] != full["noisy"]
    ck, saved = tmp_path / "ck.pt", []
    part = run_experiment(data, noise_std=0.01, n_iters=2, checkpoint=ck, save_every=1, on_save=saved.append, **kw)
    assert part["n_iters_done"] == 2 and [s["n_iters_done"] for s in saved] == [1, 2, 2]
    stops = [s["stopped_by"] for s in saved]
    assert stops == ["running", "running", "n_iters"] == ["running"] * 2 + [part["stopped_by"]]
    resumed = run_experiment(data, noise_std=0.01, n_iters=3, checkpoint=ck, **kw)
    assert resumed["clean"] == full["clean"] and resumed["noisy"] == full["noisy"]


def test_time_limit_stops_both_runs_together():
    data = bar_images(32, 8, torch.Generator().manual_seed(0))
    r = run_experiment(data, n_iters=50, widths=(2, 4, 4, 4, 4), batch_size=2, progress=False, max_seconds=0)
    assert r["stopped_by"] == "max_seconds" and r["n_iters_done"] == 1
    assert len(r["clean"]) == len(r["noisy"]) == 1 and r["fluctuation"] is None
