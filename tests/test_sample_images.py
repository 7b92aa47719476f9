"""Sampling and inpainting commands (ncsn_edu.sample_images) on a checkpoint of a tiny run:
samples, shards, inpainting (also of a user's image folder, cropped and resized), and a
clear error for a checkpoint it cannot read."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from image_train_helpers import tiny_factory, write_fake_mnist
from PIL import Image

from ncsn_edu import sample_images as si
from ncsn_edu.images import trainer
from ncsn_edu.images.presets import TrainConfig
from ncsn_edu.images.samples import read_shards


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_fake_mnist(root, n_train=64, n_test=16)
    out = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(dataset="mnist", out=str(out), data_root=str(root), ngf=4, batch_size=16, n_iters=4,
                         ckpt_every=4, test_batches=0, sample_every=100, sample_n=4, sample_steps_each=1,
                         progress=False)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    trainer.train(cfg, model_factory=tiny_factory, log=lambda *a: None)
    torch.set_num_threads(before)
    return root, out


def test_sample_and_inpaint_commands(tiny_run, tmp_path):
    from PIL import Image

    root, run = tiny_run
    ck = str(run / "checkpoint.pt")
    rc = si.main(["sample", ck, "--n", "6", "--steps-each", "2", "--grid", str(tmp_path / "s.png"), "--no-progress"],
                 model_factory=tiny_factory)
    assert rc == 0 and Image.open(tmp_path / "s.png").size[0] > 28
    rc = si.main(["sample", ck, "--n", "5", "--batch", "2", "--steps-each", "1", "--shards", str(tmp_path / "sh"),
                  "--no-progress"], model_factory=tiny_factory)
    assert rc == 0 and read_shards(tmp_path / "sh").shape == (5, 1, 28, 28)
    rc = si.main(["inpaint", ck, "--data-root", str(root), "--n-images", "2", "--completions", "3",
                  "--steps-each", "1", "--grid", str(tmp_path / "i.png"), "--no-progress"], model_factory=tiny_factory)
    grid = np.asarray(Image.open(tmp_path / "i.png"))
    assert rc == 0 and grid.shape[:2] == (2 * 28 + 3 * 2, 5 * 28 + 6 * 2)


def test_unreadable_checkpoint_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"\x00" * 10)
    assert si.main(["sample", str(bad), "--no-progress"]) == 1
    assert "cannot read checkpoint" in capsys.readouterr().err
    assert si.main(["sample", str(tmp_path / "missing.pt"), "--no-progress"]) == 1
    assert "no checkpoint" in capsys.readouterr().err


def test_inpaint_command_reads_a_cropped_resized_image_folder(tmp_path, capsys, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.setenv("NCSN_EDU_DATA", str(tmp_path / "data_root"))  # its image cache goes there
    monkeypatch.chdir(tmp_path)  # a default output file must not land in the checkout
    write_fake_mnist(tmp_path / "mnist", n_train=32, n_test=8)
    cfg = TrainConfig(dataset="mnist", out=str(tmp_path / "run"), data_root=str(tmp_path / "mnist"), ngf=4,
                         batch_size=8, n_iters=2, ckpt_every=2, test_batches=0, sample_every=100, sample_n=4,
                         sample_steps_each=1, progress=False)
    trainer.train(cfg, model_factory=tiny_factory, log=lambda *a: None)
    ck = str(tmp_path / "run" / "checkpoint.pt")
    rng = np.random.default_rng(0)
    folder = tmp_path / "mine"
    for k in range(3):  # grey 40x36 images in a flat folder: crop 32, resize 28 for the 28x28 model
        folder.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (36, 40), dtype=np.uint8)).save(folder / f"{k}.png")
    common = ["--n-images", "2", "--completions", "2", "--steps-each", "1", "--no-progress"]
    rc = si.main(["inpaint", ck, "--dataset", "folder", "--data-root", str(folder), "--image-size", "28",
                  "--crop", "32", "--grid", str(tmp_path / "i.png"), *common], model_factory=tiny_factory)
    out = capsys.readouterr().out
    assert rc == 0 and "centre crop 32, resized to 28" in out and str(folder) in out
    grid = np.asarray(Image.open(tmp_path / "i.png"))
    assert grid.shape[:2] == (2 * 28 + 3 * 2, 4 * 28 + 5 * 2)
    # without resizing the 40x36 images do not fit the 28x28 model: a clear error
    rc = si.main(["inpaint", ck, "--dataset", "folder", "--data-root", str(folder), *common],
                 model_factory=tiny_factory)
    assert rc == 1 and "pass --image-size" in capsys.readouterr().err
