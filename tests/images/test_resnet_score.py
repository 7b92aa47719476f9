"""The authors' ResScore architecture of Figure 1 (ncsn_edu.images.resnet_score): its layout
and parameter count, the mapping of the authors' parameter names, and the image shapes it
takes."""

import pytest
import torch

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


def test_resnet_score_keeps_the_image_shape_and_has_the_paper_structure():
    from ncsn_edu.images.resnet_score import PAPER_WIDTHS, ResNetScore

    torch.manual_seed(0)
    net = ResNetScore(3, PAPER_WIDTHS)
    x = torch.rand(2, 3, 32, 32)
    assert net(x).shape == x.shape
    assert len(net.encoder) == 5 and len(net.decoder) == 5
    assert [b.conv1.out_channels for b in net.encoder] == list(PAPER_WIDTHS)
    assert [b.resample for b in net.encoder] == [None, "down", None, "down", None]
    assert [b.resample for b in net.decoder] == [None, "up", None, "up", None]
    assert all(isinstance(m, torch.nn.GroupNorm) for m in (net.encoder[0].norm1, net.decoder[4].norm2))
    small = ResNetScore(1, (4, 8, 8, 8, 8))
    assert small(torch.rand(3, 1, 28, 28)).shape == (3, 1, 28, 28)
    with pytest.raises(ValueError):
        small(torch.rand(3, 1, 30, 30))
    with pytest.raises(ValueError):
        ResNetScore(1, (4, 8, 8))
