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
        checkpoints.check_resume(cfg, asdict(preset.resolved()), path)


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
