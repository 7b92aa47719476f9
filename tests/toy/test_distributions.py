"""The Gaussian mixture's density, exact score and perturbation against mathematics."""

import math

import pytest
import torch

from ncsn_edu.toy.distributions import GaussianMixture


def random_mixture(seed, k=3, d=2, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(k, d, generator=g, dtype=dtype) * 3
    stds = torch.rand(k, generator=g, dtype=dtype) + 0.5
    weights = torch.rand(k, generator=g, dtype=dtype) + 0.1
    return GaussianMixture(means, stds, weights, dtype=dtype)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_score_equals_autograd_of_log_prob(seed):
    mix = random_mixture(seed, k=3, d=3)
    x = torch.randn(50, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)) * 4
    x.requires_grad_(True)
    (auto,) = torch.autograd.grad(mix.log_prob(x).sum(), x)
    torch.testing.assert_close(mix.score(x.detach()), auto, rtol=1e-10, atol=1e-10)


def test_log_prob_integrates_to_one_and_matches_single_gaussian():
    mix = GaussianMixture.paper_toy(dtype=torch.float64)
    t = torch.linspace(-12, 12, 481, dtype=torch.float64)
    X, Y = torch.meshgrid(t, t, indexing="ij")
    p = mix.log_prob(torch.stack([X.flatten(), Y.flatten()], 1)).exp()
    assert abs(p.sum().item() * (t[1] - t[0]).item() ** 2 - 1.0) < 1e-6
    one = GaussianMixture([[1.0, -2.0]], 2.0, dtype=torch.float64)
    x = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    expected = -0.5 * ((0.5**2 + 2.5**2) / 4) - math.log(2 * math.pi * 4)
    assert abs(one.log_prob(x).item() - expected) < 1e-12


def test_paper_toy_samples_have_the_mixing_weights():
    mix = GaussianMixture.paper_toy()
    x, labels = mix.sample(20000, generator=torch.Generator().manual_seed(0), return_labels=True)
    frac = (labels == 1).double().mean().item()
    # binomial standard error sqrt(.16/20000) = 0.0028; allow 4 of them
    assert abs(frac - 0.8) < 0.012
    assert torch.allclose(x[labels == 1].mean(0), torch.tensor([5.0, 5.0]), atol=0.05)
    assert torch.allclose(x[labels == 1].std(0), torch.tensor([1.0, 1.0]), atol=0.03)


def test_perturbed_mixture_is_the_convolution():
    """Samples of x + sigma z have the perturbed mixture's moments, and its density
    equals a Monte-Carlo estimate of E_x N(y; x, sigma^2 I)."""
    mix = GaussianMixture.paper_toy(dtype=torch.float64)
    sigma = 2.0
    pert = mix.perturbed(sigma)
    assert torch.allclose(pert.stds, torch.full((2,), math.sqrt(1 + sigma**2), dtype=torch.float64))
    g = torch.Generator().manual_seed(1)
    x = mix.sample(200000, generator=g)
    y = torch.tensor([[0.0, 0.0], [4.0, 6.0], [-5.0, -3.0]], dtype=torch.float64)
    kernel = torch.exp(-((y[:, None] - x[None]) ** 2).sum(-1) / (2 * sigma**2)) / (2 * math.pi * sigma**2)
    mc = kernel.mean(1)
    exact = pert.log_prob(y).exp()
    assert torch.allclose(mc, exact, rtol=0.03)


def test_score_points_to_the_near_mode_and_ignores_weights_far_from_the_other():
    mix = GaussianMixture.paper_toy(dtype=torch.float64)
    s = mix.score(torch.tensor([[4.0, 4.0], [-6.0, -6.0]], dtype=torch.float64))
    torch.testing.assert_close(s, torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=torch.float64), atol=1e-8, rtol=0)


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        GaussianMixture([1.0, 2.0])
    with pytest.raises(ValueError):
        GaussianMixture([[0.0], [1.0]], stds=[1.0, -1.0])
    with pytest.raises(ValueError):
        GaussianMixture.paper_toy().perturbed(-1.0)
