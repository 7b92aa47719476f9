"""Inpainting the images of a user's folder (``--dataset folder``) with a checkpoint."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parents[1]))

from image_train_helpers import tiny_factory, write_fake_mnist  # noqa: E402

from ncsn_edu import sample_images as si  # noqa: E402
from ncsn_edu.images import trainer  # noqa: E402
from ncsn_edu.images.presets import TrainConfig  # noqa: E402


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
