"""Sampling and inpainting commands (ncsn_edu.sample_images): Algorithm 2 against an
exact Gaussian score, resumable sample shards, and the command line on a checkpoint of
a tiny run."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from image_train_helpers import tiny_factory, write_fake_mnist  # noqa: E402

from ncsn_edu import sample_images as si  # noqa: E402
from ncsn_edu.images import trainer  # noqa: E402
from ncsn_edu.images.inpainting import left_half_mask  # noqa: E402
from ncsn_edu.images.presets import TrainConfig  # noqa: E402
from ncsn_edu.images.samples import generate, inpaint, read_shards, write_shards  # noqa: E402
from ncsn_edu.schedules import geometric_sigmas  # noqa: E402


class GaussianScore(torch.nn.Module):
    """The exact noise-conditional score of pixels i.i.d. N(mu, s^2): the data convolved
    with N(0, sigma_i^2) is N(mu, s^2 + sigma_i^2), whose score is -(x - mu)/(s^2 + sigma_i^2)."""

    def __init__(self, mu, s, sigmas):
        super().__init__()
        self.mu, self.s = mu, s
        self.register_buffer("sigmas", torch.as_tensor(sigmas, dtype=torch.float32))
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, labels):
        var = self.s**2 + self.sigmas[labels].view(-1, 1, 1, 1) ** 2
        return -(x - self.mu) / var


def test_inpainting_keeps_known_pixels_and_samples_the_conditional():
    sigmas = geometric_sigmas(1, 0.01, 10)
    mu, s = 0.5, 0.1
    model = GaussianScore(mu, s, sigmas)
    images = torch.full((2, 1, 8, 8), 0.9)  # known pixels far from the mean
    mask = left_half_mask((1, 8, 8))
    out = inpaint(model, sigmas, images, mask, completions=50, seed=3)
    assert out.shape == (2, 50, 1, 8, 8)
    assert torch.equal(out[..., :4], images.unsqueeze(1).expand(2, 50, 1, 8, 8)[..., :4])  # kept exactly
    # Independent pixels: the unknown half follows N(mu, s^2) whatever the known half is.
    gen = out[..., 4:]
    assert gen.mean().item() == pytest.approx(mu, abs=0.01)
    assert gen.std().item() == pytest.approx(s, rel=0.15)


def test_generate_samples_the_gaussian_and_shards_resume(tmp_path):
    sigmas = geometric_sigmas(1, 0.01, 10)
    model = GaussianScore(0.3, 0.05, sigmas)
    x = generate(model, sigmas, 64, (1, 4, 4), n_steps_each=50, seed=1)
    assert x.mean().item() == pytest.approx(0.3, abs=0.01)
    assert x.std().item() == pytest.approx(0.05, rel=0.2)
    kw = dict(n_steps_each=5, progress=False)
    write_shards(model, sigmas, 10, (1, 4, 4), tmp_path / "a", batch=4, **kw)
    write_shards(model, sigmas, 10, (1, 4, 4), tmp_path / "b", batch=4, **kw)
    (tmp_path / "b" / "shard_00001.npz").unlink()  # as if stopped before the second shard
    write_shards(model, sigmas, 10, (1, 4, 4), tmp_path / "b", batch=4, **kw)
    a, b = read_shards(tmp_path / "a"), read_shards(tmp_path / "b")
    assert a.shape == (10, 1, 4, 4) and a.dtype == torch.uint8 and torch.equal(a, b)


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
