"""The authors' checkpoints (ncsn_edu.images.official): the name mapping, the network's function
pinned by outputs of the official code (tests/fixtures/README.md says how they were
made), clear errors, and sampling/inpainting from an official-layout checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from image_train_helpers import write_fake_mnist

from ncsn_edu import sample_images as si
from ncsn_edu.images import official
from ncsn_edu.images.refinenet import CondRefineNetDilated
from ncsn_edu.images.samples import generate, read_shards, to_uint8
from ncsn_edu.schedules import geometric_sigmas

FIXTURES = Path(__file__).parents[1] / "fixtures"
DATASET_OF = {"c1": "mnist", "c3": "cifar10"}

# Tolerance of a float computation of the network: its longest path runs through 113
# layers in sequence, rounded to D = 120 (57 convolutions: the first, 16 in the encoder,
# 8 + 9 + 9 + 13 in the refine blocks' adapt units, fusion, pooling and output units, the
# last; and 56 CIN++ layers along the same path);
# each adds a relative error of about one unit eps of the format to what it carries, so
# an output of size |out| is exact to about D * eps * max|out| (worst case, errors all
# adding up; as random walks they grow as sqrt(D), which is what was measured: about 1e-6
# relative in float32 and 3e-15 in float64, see tests/fixtures/README.md).
DEPTH = 120


def tolerance(dtype, out: torch.Tensor) -> float:
    return DEPTH * torch.finfo(dtype).eps * out.abs().max().item()


@pytest.fixture(scope="module")
def reference():
    return torch.load(FIXTURES / "official_ncsn_outputs.pt", weights_only=True)


def _model(channels, ngf, image_size, num_classes=10):
    # (On the meta device the first construction costs seconds of imports; on the CPU the
    # paper's 30M-parameter CIFAR-10 network takes about one second.)
    return CondRefineNetDilated(channels, ngf, num_classes, image_size)


# ----------------------------------------------------------------------------- the mapping

@pytest.mark.parametrize("case", ["c1", "c3", "mnist", "cifar10"])
def test_mapping_covers_every_key_both_ways_with_matching_shapes(case, reference):
    """Every key of our network maps to a key of the official one of the same shape, and
    back, one to one (the small fixture networks and the paper's widths, whose official
    names and shapes the fixture recorded from the official code)."""
    if case in ("c1", "c3"):
        ref = reference[case]
        theirs = torch.load(FIXTURES / f"official_ncsn_ngf4_{case}.pth", weights_only=True)[0]
        theirs = {k: list(v.shape) for k, v in theirs.items()}
        ours = _model(ref["channels"], ref["ngf"], ref["image_size"])
    else:
        theirs = reference["official_shapes"][case]
        s = official.OFFICIAL_SETTINGS[case]
        ours = _model(s["channels"], s["ngf"], s["image_size"])
    ours = {k: list(v.shape) for k, v in ours.state_dict().items()}
    assert all(k.startswith("module.") for k in theirs)
    mapped = official.to_official_state_dict(ours)
    assert len(mapped) == len(ours) == len(theirs)  # one to one
    assert mapped == theirs  # same names, same shapes
    back = official.from_official_state_dict(theirs)
    assert back == ours
    for k in ours:
        assert official.our_name("module." + official.official_name(k)) == k


def test_mapping_rejects_unknown_names():
    with pytest.raises(KeyError, match="official"):
        official.our_name("module.res5.0.conv1.weight")
    with pytest.raises(KeyError, match="ncsn_edu"):
        official.official_name("stage1.0.bogus.weight")


# ----------------------------------------------------------------------------- the function

@pytest.mark.parametrize("case", ["c1", "c3"])
def test_network_reproduces_the_official_output(case, reference):
    """Our network under the official weights computes the official function: the
    fixture's outputs were computed by the official code (float32, and float64 as a
    reference exact to ~1e-14). Catches any change of wiring, dilation, pooling size,
    interpolation or CIN++ formula (e.g. dilation 4 -> 2 in stage 4, 5x5 -> 3x3 pooling,
    a biased variance over channels; see tests/fixtures/README.md for what was checked)."""
    ref = reference[case]
    model, sigmas, cfg = official.load_official_checkpoint(
        FIXTURES / f"official_ncsn_ngf4_{case}.pth", DATASET_OF[case], ngf=ref["ngf"])
    assert cfg["source"] == "official" and model.ngf == 4 and model.in_channels == ref["channels"]
    assert torch.allclose(sigmas, geometric_sigmas(1, 0.01, 10))
    x, labels, out32, out64 = ref["x"], ref["labels"], ref["out32"], ref["out64"]
    assert len(labels.unique()) == len(labels) >= 2  # several noise levels
    with torch.no_grad():
        ours32 = model(x, labels)
        ours64 = model.double()(x.double(), labels)
    tol32, tol64 = tolerance(torch.float32, out64), tolerance(torch.float64, out64)
    assert (ours64 - out64).abs().max().item() <= tol64
    assert (ours32.double() - out64).abs().max().item() <= tol32
    # Both float32 results are within tol32 of the exact function, so of each other within 2 tol32.
    assert (ours32 - out32).abs().max().item() <= 2 * tol32


# ----------------------------------------------------------------------------- clear errors

def test_wrong_width_or_channels_say_what_was_found(tmp_path):
    c1 = FIXTURES / "official_ncsn_ngf4_c1.pth"
    with pytest.raises(ValueError, match=r"ngf=4 for 1-channel.*mnist network has ngf=64.*--official-ngf 4"):
        official.load_official_checkpoint(c1, "mnist")
    with pytest.raises(ValueError, match=r"ngf=4 for 1-channel.*cifar10 network has ngf=4 and 3.*--official mnist"):
        official.load_official_checkpoint(c1, "cifar10", ngf=4)
    with pytest.raises(ValueError, match="unknown data set"):
        official.load_official_checkpoint(c1, "svhn")


def test_files_that_are_not_official_checkpoints(tmp_path):
    ours = tmp_path / "ours.pt"
    torch.save({"model": {}, "config": {}}, ours)
    with pytest.raises(RuntimeError, match="not an official NCSN checkpoint.*dict with keys.*drop --official"):
        official.load_official_checkpoint(ours, "mnist")
    with pytest.raises(FileNotFoundError):
        official.load_official_checkpoint(tmp_path / "missing.pth", "mnist")
    # One tensor missing: the error names it with its official name.
    state, optim = torch.load(FIXTURES / "official_ncsn_ngf4_c1.pth", weights_only=True)
    del state["module.refine2.crp.convs.1.weight"]
    cut = tmp_path / "cut.pth"
    torch.save([state, optim], cut)
    with pytest.raises(ValueError, match=r"missing \['refine2.crp.convs.1.weight'\]"):
        official.load_official_checkpoint(cut, "mnist", ngf=4)


def adam_state_with_moments(model) -> dict:
    """The layout of ``torch.optim.Adam(...).state_dict()`` after training (moments for
    every parameter), written by hand: constructing an optimizer first imports
    torch._dynamo, seconds on a small machine."""
    params = list(model.parameters())
    group = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False,
                 foreach=None, capturable=False, differentiable=False, fused=None, params=list(range(len(params))))
    state = {i: {"step": torch.tensor(100.0), "exp_avg": torch.randn_like(p), "exp_avg_sq": torch.rand_like(p)}
             for i, p in enumerate(params)}
    return {"state": state, "param_groups": [group]}


def test_no_dataparallel_prefix_and_adam_state_are_fine(tmp_path):
    """A state without ``module.`` (saved from an unwrapped model) loads; an Adam state
    with moments is ignored."""
    torch.manual_seed(0)
    model = CondRefineNetDilated(3, 4, 10, 32)
    state = official.to_official_state_dict(model.state_dict(), prefix="")
    torch.save([state, adam_state_with_moments(model)], tmp_path / "plain.pth")
    loaded, _, _ = official.load_official_checkpoint(tmp_path / "plain.pth", "celeba", ngf=4)
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)


def test_legacy_file_format_with_an_old_adam_state(tmp_path):
    """The checkpoints were saved in 2019, before torch 1.6's zip format: the legacy format
    with an Adam state of that time (integer steps, parameters keyed by id) loads."""
    state, _ = torch.load(FIXTURES / "official_ncsn_ngf4_c1.pth", weights_only=True)
    old_adam = {"state": {140001: {"step": 5000, "exp_avg": torch.zeros(3), "exp_avg_sq": torch.zeros(3)}},
                "param_groups": [{"lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-08, "weight_decay": 0.0,
                                  "amsgrad": False, "params": [140001]}]}
    torch.save([state, old_adam], tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    model, _, _ = official.load_official_checkpoint(tmp_path / "legacy.pth", "mnist", ngf=4)
    assert torch.equal(model.begin_conv.weight, state["module.begin_conv.weight"])


# ----------------------------------------------------------------------------- the commands

@pytest.fixture(scope="module")
def tiny_official(tmp_path_factory):
    """An ngf-8 MNIST-shaped network in the official layout, with an Adam state with moments."""
    path = tmp_path_factory.mktemp("official") / "checkpoint.pth"
    g = torch.Generator().manual_seed(5)
    model = CondRefineNetDilated(1, 8, 10, 28)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    torch.save(official.official_checkpoint(model, adam_state_with_moments(model)), path)
    root = tmp_path_factory.mktemp("data")
    write_fake_mnist(root, n_train=16, n_test=8)
    return path, root


def test_sample_command_samples_the_official_checkpoint(tiny_official, tmp_path):
    """`sample --official` gives exactly the samples of the loaded network at the paper's sigmas."""
    path, _ = tiny_official
    argv = ["sample", str(path), "--official", "mnist", "--official-ngf", "8", "--n", "2", "--batch", "2",
            "--steps-each", "1", "--seed", "4", "--shards", str(tmp_path / "sh"), "--grid", str(tmp_path / "s.png"),
            "--no-progress", "--device", "cpu"]
    assert si.main(argv) == 0
    assert (tmp_path / "s.png").is_file()
    got = read_shards(tmp_path / "sh")
    model, sigmas, _ = official.load_official_checkpoint(path, "mnist", ngf=8)
    from ncsn_edu.images.seeding import mix_seeds

    want = to_uint8(generate(model, geometric_sigmas(1, 0.01, 10), 2, (1, 28, 28), n_steps_each=1,
                                   seed=mix_seeds(4, 7, 0)))
    assert got.shape == (2, 1, 28, 28) and torch.equal(got, want)


def test_inpaint_command_on_the_official_checkpoint(tiny_official, tmp_path):
    from PIL import Image

    path, root = tiny_official
    argv = ["inpaint", str(path), "--official", "mnist", "--official-ngf", "8", "--data-root", str(root),
            "--n-images", "2", "--completions", "2", "--steps-each", "1", "--grid", str(tmp_path / "i.png"),
            "--no-progress", "--device", "cpu"]
    assert si.main(argv) == 0
    grid = np.asarray(Image.open(tmp_path / "i.png"))
    assert grid.shape[:2] == (2 * 28 + 3 * 2, 4 * 28 + 5 * 2)  # 2 rows of occluded, 2 completions, original


def test_command_recognises_an_official_checkpoint_without_the_flag(tiny_official, capsys):
    path, _ = tiny_official
    assert si.main(["sample", str(path), "--n", "1", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "official NCSN checkpoint" in err and "ngf=8" in err and "--official" in err
    assert si.main(["sample", str(path), "--official", "mnist", "--n", "1", "--no-progress"]) == 1
    assert "ngf=8" in capsys.readouterr().err  # the MNIST default width is 64
    assert si.main(["inpaint", str(path), "--official", "celeba", "--official-ngf", "8", "--no-progress"]) == 1
    assert "channel" in capsys.readouterr().err  # a 1-channel net is no CelebA net
