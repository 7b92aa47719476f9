"""Samples of a score network (ncsn_edu.images.samples) on the exact score of Gaussian
pixels: inpainting keeps the known pixels and samples the conditional, generated samples
follow the Gaussian, and sample shards resume."""

from __future__ import annotations

import pytest
import torch

from ncsn_edu.images.inpainting import left_half_mask
from ncsn_edu.images.samples import generate, inpaint, read_shards, write_shards
from ncsn_edu.schedules import geometric_sigmas


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
