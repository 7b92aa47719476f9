"""The Langevin samplers (ncsn_edu.sampling) against closed-form answers: plain Langevin
dynamics reaches the target Gaussian, and annealed Langevin dynamics (Algorithm 1).

With the exact score of a Gaussian N(m, v I) the Langevin update is a linear (AR(1))
recursion, x' = m + r (x - m) + sqrt(a) z with r = 1 - a / (2 v), whose stationary law is
known exactly: mean m and variance a / (1 - r^2) (slightly above v: the discretisation
bias that vanishes as a -> 0). The tests check the sampler against that formula.
"""

import math

import pytest
import torch

from ncsn_edu.sampling import annealed_langevin_dynamics, langevin_dynamics
from ncsn_edu.toy.distributions import GaussianMixture
from ncsn_edu.toy.domain import uniform_starts


def gaussian_level_score(mean, variances):
    """``score(x, labels)`` of N(mean, variances[label] I), elementwise for any shape."""
    variances = torch.as_tensor(variances, dtype=torch.float32)

    def score(x, labels):
        v = variances[labels].view(-1, *([1] * (x.ndim - 1)))
        return -(x - mean) / v

    return score


def stationary_variance(a, v):
    r = 1 - a / (2 * v)
    return a / (1 - r**2)


@pytest.mark.parametrize("convention", ["paper", "code"])
def test_stationary_mean_and_variance_match_the_discrete_chain(convention):
    sigmas = [2.0, 1.0]
    variances = [1 + s**2 for s in sigmas]  # data N(3, 1) perturbed by each sigma
    eps = 0.5
    a = eps if convention == "paper" else 2 * eps  # the step of the last level
    g = torch.Generator().manual_seed(0)
    x0 = uniform_starts(8000, generator=g)
    x = annealed_langevin_dynamics(gaussian_level_score(3.0, variances), x0, sigmas, eps, 60, g, convention=convention)
    want = stationary_variance(a, variances[-1])
    # The discretised chain's variance, not the continuous one, is what Langevin reaches.
    assert abs(want - variances[-1]) > 0.05 * variances[-1]
    assert x.mean().item() == pytest.approx(3.0, abs=0.03)
    assert x.var().item() == pytest.approx(want, rel=0.035)


def test_step_rule_alpha_scales_with_sigma_squared():
    """One step from x = 0 with score 0 adds sqrt(alpha_i) z: alpha_i = eps sigma_i^2 / sigma_L^2."""
    sigmas = [4.0, 2.0, 1.0]
    eps = 0.01

    def zero(x, labels):
        return torch.zeros_like(x)

    g = torch.Generator().manual_seed(1)
    _, states = annealed_langevin_dynamics(zero, torch.zeros(40000, 1), sigmas, eps, 1, g, keep_every=1)
    incr = [(states[i + 1] - states[i]).var().item() for i in range(3)]
    for got, s in zip(incr, sigmas):
        assert got == pytest.approx(eps * s**2 / sigmas[-1] ** 2, rel=0.03)


def test_labels_are_level_indices_largest_sigma_first():
    seen = []

    def record(x, labels):
        assert labels.dtype == torch.long and labels.shape == (x.shape[0],)
        assert (labels == labels[0]).all()
        seen.append(int(labels[0]))
        return torch.zeros_like(x)

    annealed_langevin_dynamics(record, torch.zeros(5, 2), [3.0, 2.0, 1.0], 0.1, 4, torch.Generator().manual_seed(0))
    assert seen == [0] * 4 + [1] * 4 + [2] * 4


def test_paper_and_code_conventions_give_identical_samples_when_converted():
    """The code's eps (2e-5 in the official repository) is the paper's eps / 2."""
    score = gaussian_level_score(1.0, [5.0, 2.0, 1.2])
    sigmas = [2.0, 1.0, 0.5]
    x0 = torch.randn(300, 2, generator=torch.Generator().manual_seed(3))
    def gen():
        return torch.Generator().manual_seed(7)

    paper = annealed_langevin_dynamics(score, x0, sigmas, 4e-2, 20, gen(), convention="paper")
    code = annealed_langevin_dynamics(score, x0, sigmas, 2e-2, 20, gen(), convention="code")
    same_eps = annealed_langevin_dynamics(score, x0, sigmas, 4e-2, 20, gen(), convention="code")
    assert torch.equal(paper, code)
    assert not torch.allclose(paper, same_eps)


def test_keep_every_returns_start_and_every_kth_state():
    score = gaussian_level_score(0.0, [4.0, 1.0])
    x0 = torch.randn(7, 2, generator=torch.Generator().manual_seed(0))
    final, states = annealed_langevin_dynamics(score, x0, [2.0, 1.0], 0.1, 10, torch.Generator().manual_seed(1),
                                               keep_every=5)
    assert len(states) == 1 + 2 * 10 // 5
    assert torch.equal(states[0], x0) and torch.equal(states[-1], final)
    plain = annealed_langevin_dynamics(score, x0, [2.0, 1.0], 0.1, 10, torch.Generator().manual_seed(1))
    assert torch.equal(plain, final)  # keeping states does not change the run
    _, per_level = annealed_langevin_dynamics(score, x0, [2.0, 1.0], 0.1, 10, torch.Generator().manual_seed(1),
                                              keep_every=10)
    assert len(per_level) == 3


def test_final_denoise_is_one_tweedie_step_at_the_smallest_sigma():
    sigmas = [1.0, 0.5]
    variances = [1 + s**2 for s in sigmas]
    score = gaussian_level_score(2.0, variances)
    x0 = torch.randn(10000, 1, generator=torch.Generator().manual_seed(0))
    noisy = annealed_langevin_dynamics(score, x0, sigmas, 0.1, 100, torch.Generator().manual_seed(4))
    clean = annealed_langevin_dynamics(score, x0, sigmas, 0.1, 100, torch.Generator().manual_seed(4),
                                       final_denoise=True)
    labels = torch.full((10000,), 1)
    assert torch.allclose(clean, noisy + sigmas[-1] ** 2 * score(noisy, labels))
    # Tweedie: E[x | x + sigma z] for x ~ N(2, 1) is 2 + (x~ - 2) / (1 + sigma^2), whose
    # variance is (chain variance) / (1 + sigma^2)^2: the noise of the last level is gone.
    var_chain = stationary_variance(0.1, variances[-1])
    assert clean.mean().item() == pytest.approx(2.0, abs=0.02)
    assert clean.var().item() == pytest.approx(var_chain / variances[-1] ** 2, rel=0.04)


def test_image_shaped_batches():
    """Any batch shape (N, C, H, W) works; every pixel follows the same exact chain."""
    sigmas = [1.0, 0.5, 0.25]
    variances = [0.01 + s**2 for s in sigmas]
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(100, 3, 8, 8, generator=g)
    x, states = annealed_langevin_dynamics(
        gaussian_level_score(0.5, variances), x0, sigmas, 0.05, 30, g, keep_every=30, final_denoise=False
    )
    assert x.shape == x0.shape and len(states) == 4 and states[1].shape == x0.shape
    assert x.mean().item() == pytest.approx(0.5, abs=0.01)
    assert x.var().item() == pytest.approx(stationary_variance(0.05, variances[-1]), rel=0.03)


def test_bad_arguments_raise():
    score = gaussian_level_score(0.0, [1.0, 1.0])
    x = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="convention"):
        annealed_langevin_dynamics(score, x, [2.0, 1.0], 0.1, convention="official")
    with pytest.raises(ValueError, match="eps"):
        annealed_langevin_dynamics(score, x, [2.0, 1.0], 0.0)
    with pytest.raises(ValueError, match="largest first"):
        annealed_langevin_dynamics(score, x, [1.0, 2.0], 0.1)
    with pytest.raises(ValueError, match="positive"):
        annealed_langevin_dynamics(score, x, [1.0, -1.0], 0.1)
    with pytest.raises(ValueError):
        annealed_langevin_dynamics(score, x, [], 0.1)
    assert not math.isnan(annealed_langevin_dynamics(score, x, [1.0], 0.1, 1).sum().item())


def test_langevin_samples_a_gaussian():
    target = GaussianMixture([[2.0, -1.0]], 0.5, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    x0 = uniform_starts(4000, generator=g, dtype=torch.float64)
    x = langevin_dynamics(target.score, x0, step_size=0.01, n_steps=800, generator=g)
    assert torch.allclose(x.mean(0), torch.tensor([2.0, -1.0], dtype=torch.float64), atol=0.04)
    # the discretised chain has a slightly inflated variance: for an OU process with step eps
    # the stationary variance is s^2 / (1 - eps / (4 s^2)) = 0.2506...
    assert torch.allclose(x.var(0), torch.full((2,), 0.2506, dtype=torch.float64), rtol=0.08)


def test_keep_every_and_determinism():
    target = GaussianMixture.paper_toy()
    x0 = torch.zeros(10, 2)
    a, states = langevin_dynamics(target.score, x0, 0.1, 20, torch.Generator().manual_seed(3), keep_every=5)
    b = langevin_dynamics(target.score, x0, 0.1, 20, torch.Generator().manual_seed(3))
    assert len(states) == 5 and torch.equal(states[0], x0) and torch.equal(states[-1], a)
    assert torch.equal(a, b)
    assert torch.equal(x0, torch.zeros(10, 2)), "the start must not be modified in place"


def test_bad_step_size():
    with pytest.raises(ValueError):
        langevin_dynamics(lambda x: x, torch.zeros(2, 2), 0.0, 10)
