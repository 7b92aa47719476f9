"""The trainer's presets (ncsn_edu.images.presets): the shipped checkpoints made with them,
the book's preset as the shipped model's settings, and dequantisation on by default in the
paper's presets and the command line."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from ncsn_edu import train_images as ti
from ncsn_edu.images import checkpoints, presets
from ncsn_edu.images.presets import TrainConfig

ROOT = Path(__file__).resolve().parents[2]


def _trainer_checkpoints():
    """Every checkpoint of the image trainer shipped under data/ (a dict with a model and
    the trainer's settings)."""
    data = ROOT / "data"
    data_sets = {"MNIST", "FashionMNIST", "cifar-10-batches-py", "cifar10-jpeg", "cifar10", "celeba", "cache"}
    folders = [data] + [d for d in sorted(data.iterdir())
                        if d.is_dir() and not d.is_symlink() and d.name not in data_sets]
    found = []
    for path in sorted(p for d in folders for p in d.glob("*.pt")):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # not a tensor file the trainer could have written
            continue
        if isinstance(state, dict) and "model" in state and "ngf" in state.get("config", {}):
            found.append((path, state))
    return found


def test_every_shipped_checkpoint_matches_its_preset():
    shipped = _trainer_checkpoints()
    assert "mnist_ncsn_ngf16.pt" in [p.name for p, _ in shipped]
    for path, state in shipped:
        assert path.name in presets.SHIPPED_CHECKPOINTS, f"{path} has no preset in presets.SHIPPED_CHECKPOINTS"
        preset = presets.PRESETS[presets.SHIPPED_CHECKPOINTS[path.name]]
        keys = presets.MODEL_KEYS + ("lr", "beta1", "beta2")
        assert presets.settings_differ(state["config"], preset, keys) == {}, path.name
        assert state["step"] <= preset.n_iters
        # It loads with the package's network, and its recorded settings would resume
        # under the preset (the resume check of the trainer).
        model, sigmas, cfg = checkpoints.load_checkpoint(path)
        assert len(sigmas) == preset.n_sigmas
        data = {k: cfg[k] for k in presets.DATA_KEYS if k in cfg}  # what the data fixed, not the preset
        checkpoints.check_resume(cfg, {**asdict(preset.resolved()), **data}, path)
        if preset.divide_by_sigma:
            assert model.conditioning == "division" and torch.equal(model.sigmas, sigmas)
        if preset.ema is not None:  # the loader gives the average of the weights
            assert all(torch.equal(v, state["ema"][k]) for k, v in model.state_dict().items())


def test_book_preset_is_the_shipped_models_settings():
    state = torch.load(ROOT / "data" / "mnist_ncsn_ngf16.pt", map_location="cpu", weights_only=True)
    model, _, _ = checkpoints.load_checkpoint(ROOT / "data" / "mnist_ncsn_ngf16.pt")
    assert sum(p.numel() for p in model.parameters()) == 518_817  # data/README.md
    assert state["config"]["dequantize"] is False and presets.BOOK_CPU_MNIST.dequantize is False
    # The paper's settings would not resume it: dequantisation differs, and the refusal says how.
    with pytest.raises(ValueError, match="--no-dequantize"):
        checkpoints.check_resume(state["config"], asdict(presets.PAPER_MNIST.replace(ngf=16, batch_size=32)), "x")


def test_paper_presets_and_the_command_line_dequantise_by_default():
    assert presets.PAPER_MNIST.dequantize and presets.PAPER_CIFAR10.dequantize and TrainConfig().dequantize
    assert (presets.PAPER_MNIST.ngf, presets.PAPER_CIFAR10.ngf, presets.PAPER_CIFAR10.flip) == (64, 128, True)
    parse = ti.build_parser().parse_args
    assert ti.config_from_args(parse([])).dequantize is True
    assert ti.config_from_args(parse(["--no-dequantize"])).dequantize is False
    assert "dequanti" in ti.build_parser().format_help()
    for name, preset in presets.PRESETS.items():  # --preset NAME gives the preset, options change it
        assert ti.config_from_args(ti.build_parser(preset=name).parse_args([])) == preset
    assert ti.config_from_args(ti.build_parser(preset="BOOK_CPU_MNIST").parse_args(["--dequantize"])).dequantize


def test_the_v2_mnist_preset_follows_ncsnv2s_rules_and_v1s_budget():
    from ncsn_edu.schedules import (
        geometric_sigmas,
        last_level_variance_ratio,
        levels_for_ratio,
        step_from_variance_criterion,
    )
    from ncsn_edu.toy.noise_scales import ratio_for_shell_overlap, shell_overlap

    v1, v2 = presets.BOOK_CPU_MNIST, presets.BOOK_CPU_MNIST_V2
    # v1's width, batch, optimiser and number of training images seen (7,560 x 32 = 241,920).
    assert (v2.ngf, v2.batch_size, v2.lr, v2.dequantize) == (v1.ngf, v1.batch_size, v1.lr, v1.dequantize)
    assert v2.n_iters * v2.batch_size == v1.n_iters * v1.batch_size == 241_920
    assert (v2.ema, v2.divide_by_sigma, v2.sample_denoise, v2.sigma_end) == (0.999, True, True, 0.01)
    # Technique 2: the ratio that makes neighbouring shells overlap by 0.5 in D = 784 needs L = 96.
    gamma = ratio_for_shell_overlap(784, 0.5)
    assert v2.n_sigmas == levels_for_ratio(v2.sigma_begin, v2.sigma_end, gamma) == 96
    sig = geometric_sigmas(v2.sigma_begin, v2.sigma_end, v2.n_sigmas)
    ladder = float(sig[0] / sig[1])
    assert ladder <= gamma and shell_overlap(ladder, 784) >= 0.5
    # Technique 4 at T = 10: eps = 8.565e-6, rounded to 8.6e-6; the variance ratio it leaves is
    # within 0.01% of the best.
    best = step_from_variance_criterion(ladder, v2.sample_steps_each, v2.sigma_end)
    assert v2.sample_steps_each * v2.n_sigmas == 960 and abs(best - v2.sample_eps) < 0.05e-6
    r = last_level_variance_ratio(v2.sample_eps, ladder, v2.sample_steps_each, v2.sigma_end)
    assert abs(r - last_level_variance_ratio(best, ladder, v2.sample_steps_each, v2.sigma_end)) < 1e-4 * r


@pytest.mark.slow
def test_the_v2_mnist_sigma_1_covers_the_farthest_pair_of_training_digits():
    # Technique 1: sigma_1 = 16.88 is the largest distance between two of the 60,000 training
    # digits (pixels in [0, 1]), 16.8758 between digits 59452 and 26785, rounded up
    # (ncsn_edu.images.presets; found exactly by a search pruned with |a - b|^2 <= |a|^2 + |b|^2).
    from missing_data import skip_missing

    from ncsn_edu.images.data import image_dataset

    try:
        data = torch.as_tensor(image_dataset("mnist", train=True, download=False).data)
    except (FileNotFoundError, RuntimeError) as err:
        skip_missing("mnist", err)
    x = data.reshape(len(data), -1).double() / 255
    d = float((x[59452] - x[26785]).norm())
    assert 16.87 < d <= presets.BOOK_CPU_MNIST_V2.sigma_begin < d + 0.01
    # and no digit is farther than that from these two, nor from the 20 digits of largest norm
    top = torch.argsort((x * x).sum(1), descending=True)[:20]
    for i in [59452, 26785, *top.tolist()]:
        assert float(((x - x[i]) ** 2).sum(1).max().sqrt()) <= d + 1e-12
