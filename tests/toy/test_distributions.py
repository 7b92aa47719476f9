"""The Gaussian mixture's density, exact score and perturbation against mathematics."""

import math

import pytest
import torch

from ncsn_edu.schedules import geometric_sigmas
from ncsn_edu.toy.distributions import (
    GaussianMixture,
    annealed_score_fn,
    mode_fractions,
    nearest_component,
    perturbed_score_fn,
    spread_around_modes,
)


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


@pytest.mark.parametrize("sigma", [0.0, 0.3, 1.0, 4.5, 20.0])
def test_perturbed_score_fn_is_the_gradient_of_the_perturbed_log_density(sigma):
    mix = random_mixture(3, k=3, d=2)
    score = perturbed_score_fn(mix)
    x = torch.randn(200, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * (3 + sigma)
    assert torch.equal(score(x, sigma), mix.perturbed(sigma).score(x))
    # autograd of the perturbed density, written out: components N(mu_k, (s_k^2 + sigma^2) I)
    var = mix.stds**2 + sigma**2
    xg = x.clone().requires_grad_(True)
    sq = ((xg[:, None] - mix.means[None]) ** 2).sum(-1)
    log_p = torch.logsumexp(mix.weights.log() - sq / (2 * var) - torch.log(2 * math.pi * var), dim=1)
    (auto,) = torch.autograd.grad(log_p.sum(), xg)
    torch.testing.assert_close(score(x, sigma), auto, rtol=1e-10, atol=1e-12)
    x32 = x.float()  # the score comes back in the input's dtype
    assert score(x32, sigma).dtype == torch.float32


def test_perturbed_score_fn_agrees_with_the_annealed_scores_on_their_ladder():
    mix = GaussianMixture.paper_toy()
    sigmas = torch.tensor([20.0, 7.0, 2.5, 1.0])
    ladder = annealed_score_fn(mix, sigmas, "perturbed")
    score = perturbed_score_fn(mix)
    x = torch.randn(100, 2, generator=torch.Generator().manual_seed(0)) * 8
    for i, s in enumerate(sigmas.tolist()):
        assert torch.equal(ladder(x, torch.full((100,), i)), score(x, s))


def test_spread_around_modes_is_the_mean_square_offset_from_the_nearest_mean():
    mix = GaussianMixture.paper_toy(dtype=torch.float64)
    # offsets (0.5, -0.5) and (1.5, 0.5) from (5, 5) and (-5, -5); their coordinates' mean square is 0.75
    x = torch.tensor([[5.5, 4.5], [-3.5, -4.5], [float("nan"), 0.0], [float("inf"), 1.0]], dtype=torch.float64)
    out = spread_around_modes(mix, x)
    assert out["count"] == 4
    assert out["variance"] == pytest.approx(0.75, rel=1e-12)
    assert out["std"] == pytest.approx(math.sqrt(0.75), rel=1e-12)
    # of the squared coordinates 0.25, 0.25, 2.25, 0.25: sqrt((mean of their squares - 0.75^2) / 4)
    assert out["variance_se"] == pytest.approx(math.sqrt(((3 * 0.0625 + 5.0625) / 4 - 0.5625) / 4), rel=1e-12)
    assert out["std_se"] == pytest.approx(out["variance_se"] / (2 * out["std"]), rel=1e-12)
    # a common shift is not removed: the spread is around the modes, not around the points' own mean
    shifted = spread_around_modes(mix, mix.means + 0.5)
    assert shifted["variance"] == pytest.approx(0.25, rel=1e-12)
    empty = spread_around_modes(mix, torch.full((3, 2), float("nan"), dtype=torch.float64))
    assert empty["count"] == 0 and math.isnan(empty["variance"])


def test_spread_around_modes_of_exact_samples_is_the_component_variance():
    v = 1.7
    mix = GaussianMixture([[-6.0, -6.0], [6.0, 6.0]], math.sqrt(v), [0.3, 0.7], dtype=torch.float64)
    x = mix.sample(40_000, generator=torch.Generator().manual_seed(2))
    out = spread_around_modes(mix, x)
    se = v * math.sqrt(2 / out["count"])  # of a mean square of N(0, v) coordinates
    assert out["count"] == 80_000
    assert abs(out["variance"] - v) < 4 * se
    assert out["variance_se"] == pytest.approx(se, rel=0.05)
    assert abs(out["std"] - math.sqrt(v)) < 4 * out["std_se"]
    # the pooled offsets are the samples' offsets from their nearest mean
    assert torch.equal(nearest_component(mix, x), (x.sum(1) > 0).long())


def _mixture_log_density(x, means, std, weights):
    """Closed-form log density of sum_k w_k N(mu_k, std^2 I) in 2D, written out by hand."""
    comps = [math.log(w) - ((x - torch.as_tensor(m, dtype=x.dtype)) ** 2).sum(1) / (2 * std**2)
             - math.log(2 * math.pi * std**2) for m, w in zip(means, weights)]
    return torch.logsumexp(torch.stack(comps, 1), 1)


@pytest.mark.parametrize("convention", ["perturbed", "code"])
def test_annealed_score_fn_is_the_gradient_of_the_right_density(convention):
    mix = GaussianMixture.paper_toy(dtype=torch.float64)
    sigmas = geometric_sigmas(20.0, 1.0, 10).double()
    score_fn = annealed_score_fn(mix, sigmas, convention)
    x = (torch.rand(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) - 0.5) * 16
    for i in (0, 5, 9):
        s = sigmas[i].item()
        std = math.sqrt(1 + s**2) if convention == "perturbed" else s
        xr = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(_mixture_log_density(xr, [[-5, -5], [5, 5]], std, [0.2, 0.8]).sum(), xr)
        labels = torch.full((64,), i, dtype=torch.long)
        torch.testing.assert_close(score_fn(x, labels), grad, rtol=1e-9, atol=1e-9)


def test_annealed_score_fn_rejects_bad_input():
    mix = GaussianMixture.paper_toy()
    with pytest.raises(ValueError):
        annealed_score_fn(mix, [2.0, 1.0], "other")
    with pytest.raises(IndexError):
        annealed_score_fn(mix, [2.0, 1.0])(torch.zeros(3, 2), torch.full((3,), 2))


def test_mode_fractions_of_exact_samples_match_the_weights():
    mix = GaussianMixture.paper_toy()
    x, labels = mix.sample(20_000, torch.Generator().manual_seed(0), return_labels=True)
    assert (nearest_component(mix, x) == labels).float().mean() > 0.999  # modes 14 std apart
    f = mode_fractions(mix, x)
    assert f.sum().item() == pytest.approx(1.0)
    assert abs(f[1].item() - 0.8) < 0.01  # standard error 0.003
