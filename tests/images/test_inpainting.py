"""Algorithm 2 (inpainting) against the exact conditional of a Gaussian."""

import pytest
import torch

from ncsn_edu.images.inpainting import annealed_langevin_inpainting, left_half_mask
from ncsn_edu.schedules import geometric_sigmas

MU = torch.tensor([0.0, 0.0], dtype=torch.float64)
COV = torch.tensor([[1.0, 0.8], [0.8, 1.0]], dtype=torch.float64)


def gaussian_score(sigmas):
    """Exact score of N(MU, COV) convolved with N(0, sigma_i^2 I), for level index i."""
    precisions = torch.stack([torch.linalg.inv(COV + s**2 * torch.eye(2, dtype=torch.float64)) for s in sigmas])

    def score(x, labels):
        return -torch.einsum("nij,nj->ni", precisions[labels], x - MU)

    return score


def test_inpainting_samples_the_gaussian_conditional():
    # Keep x_0 = 1 and generate x_1. At the last level the known entry is y = 1 + s z and
    # Langevin samples p_s(x_1 | y) = N(0.8 y / (1 + s^2), 1 + s^2 - 0.64 / (1 + s^2));
    # over y, x_1 has mean 0.8/(1+s^2) and variance 1+s^2-0.64/(1+s^2) + (0.8/(1+s^2))^2 s^2.
    g = torch.Generator().manual_seed(0)
    sigmas = geometric_sigmas(1.0, 0.1, 5).double()
    images = torch.tensor([[1.0, 123.0]], dtype=torch.float64)  # the unknown entry is ignored
    mask = torch.tensor([1.0, 0.0])
    out = annealed_langevin_inpainting(gaussian_score(sigmas), images, mask, sigmas, eps=0.01, n_steps_each=200,
                                       n_completions=4000, generator=g, convention="paper")
    assert out.shape == (1, 4000, 2)
    s2 = sigmas[-1].item() ** 2
    mean = 0.8 / (1 + s2)
    var = 1 + s2 - 0.64 / (1 + s2) + mean**2 * s2
    x1 = out[0, :, 1]
    assert abs(x1.mean().item() - mean) < 0.04  # standard error ~0.01
    assert abs(x1.var().item() - var) < 0.05
    # Known entries end as y = x + sigma_L z.
    known = out[0, :, 0]
    assert abs(known.mean().item() - 1.0) < 0.01
    assert abs(known.std().item() - sigmas[-1].item()) < 0.01


def test_without_the_known_entry_the_marginal_is_sampled():
    # An all-zero mask is plain annealed Langevin: x_1 then follows the marginal N(0, 1 + s^2).
    # (The long axis of this Gaussian relaxes slowly: 800 steps per level.)
    g = torch.Generator().manual_seed(1)
    sigmas = geometric_sigmas(1.0, 0.1, 5).double()
    images = torch.zeros(1, 2, dtype=torch.float64)
    out = annealed_langevin_inpainting(gaussian_score(sigmas), images, torch.zeros(2), sigmas, eps=0.01,
                                       n_steps_each=800, n_completions=4000, generator=g, convention="paper")
    x1 = out[0, :, 1]
    assert abs(x1.mean().item()) < 0.05
    assert abs(x1.var().item() - (1 + sigmas[-1].item() ** 2)) < 0.08  # standard error ~0.023


def test_code_convention_is_the_paper_update_with_twice_eps():
    sigmas = geometric_sigmas(1.0, 0.1, 3).double()
    images = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    mask = torch.tensor([1.0, 0.0])
    a = annealed_langevin_inpainting(gaussian_score(sigmas), images, mask, sigmas, eps=0.002, n_steps_each=20,
                                     generator=torch.Generator().manual_seed(3), convention="code")
    b = annealed_langevin_inpainting(gaussian_score(sigmas), images, mask, sigmas, eps=0.004, n_steps_each=20,
                                     generator=torch.Generator().manual_seed(3), convention="paper")
    assert torch.allclose(a, b)


def test_images_completions_and_states():
    g = torch.Generator().manual_seed(0)
    sigmas = geometric_sigmas(1.0, 0.01, 3)
    images = torch.rand(2, 1, 6, 6, generator=g)
    mask = left_half_mask((1, 6, 6))
    assert mask[..., :3].eq(1).all() and mask[..., 3:].eq(0).all()
    seen = []

    def zero_score(x, labels):
        seen.append(labels.clone())
        return torch.zeros_like(x)

    out, states = annealed_langevin_inpainting(zero_score, images, mask, sigmas, eps=1e-6, n_steps_each=4,
                                               n_completions=3, generator=g, keep_every=4, convention="code")
    assert out.shape == (2, 3, 1, 6, 6)
    assert len(states) == 1 + 3 and all(s.shape == out.shape for s in states)
    # Levels are visited in order, one label per chain.
    assert [int(lab[0]) for lab in seen] == [0] * 4 + [1] * 4 + [2] * 4 and all(len(lab) == 6 for lab in seen)
    # Completion j of image i keeps image i's left half (up to sigma_L noise).
    for i in range(2):
        for j in range(3):
            assert (out[i, j, ..., :3] - images[i, ..., :3]).abs().max() < 0.06
    # The right half started from uniform noise, independently for every completion.
    assert (states[0][0, 0, ..., 3:] - states[0][0, 1, ..., 3:]).abs().max() > 0.1


def test_bad_inputs_raise():
    sigmas = geometric_sigmas(1.0, 0.01, 3)
    images = torch.rand(2, 1, 6, 6)
    score = lambda x, labels: torch.zeros_like(x)  # noqa: E731
    with pytest.raises(ValueError):
        annealed_langevin_inpainting(score, images, torch.ones(5, 5), sigmas, eps=1e-5)
    with pytest.raises(ValueError):
        annealed_langevin_inpainting(score, images, torch.full((1, 6, 6), 0.5), sigmas, eps=1e-5)
    with pytest.raises(ValueError):
        annealed_langevin_inpainting(score, images, left_half_mask((1, 6, 6)), sigmas, eps=1e-5, convention="x")
    with pytest.raises(ValueError):
        annealed_langevin_inpainting(score, images, left_half_mask((1, 6, 6)), sigmas, eps=0.0)
