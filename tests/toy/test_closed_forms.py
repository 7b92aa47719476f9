"""The closed forms of the Part I chapters (ncsn_edu.toy.closed_forms) against sampling and
Monte Carlo: unadjusted Langevin's stationary variance (chapter 1), and the variance of the
one-projection sliced score matching estimator, plain and variance-reduced (chapter 3).
Tolerances are a few standard errors."""

import math

import pytest
import torch

from ncsn_edu.sampling import langevin_dynamics
from ncsn_edu.toy.closed_forms import langevin_stationary_variance, sliced_estimator_variances, vr_variance_gain
from ncsn_edu.toy.distributions import GaussianMixture
from ncsn_edu.toy.gaussian_models import LinearScore
from ncsn_edu.toy.losses import sliced_score_matching_loss


def _variance_with_se(x: torch.Tensor):
    """Sample variance of the entries of ``x`` (mean known to be the target's) and its standard error."""
    x = x.flatten()
    v = x.var().item()
    return v, ((x - x.mean()) ** 2).std().item() / math.sqrt(x.numel())


@pytest.mark.parametrize("std", [1.0, 0.5])
def test_unadjusted_langevin_settles_at_the_closed_form_variance(std):
    """Chapter 1: with step eps the chain on N(mu, v I) settles at v / (1 - eps / (4 v)), not v."""
    v = std**2
    target = GaussianMixture([[1.0, -2.0]], std, dtype=torch.float64)
    for frac in [0.25, 0.5, 1.0]:  # eps / v; frac = 1 is chapter 1's eps = 1 on a unit mode
        eps = frac * v
        a2 = (1 - eps / (2 * v)) ** 2
        gen = torch.Generator().manual_seed(int(100 * frac))
        x0 = target.sample(20_000, gen)  # exact samples; the chain relaxes from v to its own variance
        n_steps = math.ceil(6 / (1 - a2))  # leaves a fraction a2^n < e^-6 of the initial offset
        x = langevin_dynamics(target.score, x0, eps, n_steps, generator=gen)
        measured, se = _variance_with_se(x - target.means[0])
        theory = langevin_stationary_variance(eps, v).item()
        assert abs(measured - theory) < 4 * se, (eps, v, measured, theory, se)
        assert theory - v > 6 * se  # the bias itself is resolved by this many chains
    assert langevin_stationary_variance(1.0).item() == pytest.approx(4 / 3)


def test_langevin_stationary_variance_rejects_divergent_steps():
    with pytest.raises(ValueError):
        langevin_stationary_variance(4.0, 1.0)


def test_sliced_estimator_variances_match_monte_carlo():
    """Chapter 3: per-point variance of the one-projection SSM estimator, plain and VR, and
    their difference 1/2 |s|^4 + 2 s^T J s, against the loss's own per-sample values."""
    gen = torch.Generator().manual_seed(0)
    D = 3
    A = 0.6 * torch.randn(D, D, generator=gen, dtype=torch.float64) - torch.eye(D, dtype=torch.float64)  # non-symmetric
    model = LinearScore(A, 0.3 * torch.randn(D, generator=gen, dtype=torch.float64))
    points = torch.tensor([[0.1, -0.2, 0.0], [0.8, 0.3, -0.5], [2.0, -1.5, 1.0]], dtype=torch.float64)
    reps = 40_000
    with torch.no_grad():
        s = model(points)
    plain_cf, vr_cf = sliced_estimator_variances(s, A)
    gains = vr_variance_gain(s, A)
    signs = set()
    for k, x in enumerate(points):
        xs = x.expand(reps, D).clone()
        g = torch.Generator().manual_seed(10 + k)
        # the same projections for both forms, so that the difference is measured tightly
        plain = sliced_score_matching_loss(model, xs, generator=g, reduction="none").detach()
        g = torch.Generator().manual_seed(10 + k)
        vr = sliced_score_matching_loss(model, xs, variance_reduced=True, generator=g, reduction="none").detach()
        for values, cf in [(plain, plain_cf[k]), (vr, vr_cf[k])]:
            var, se = _variance_with_se(values)
            assert abs(var - cf.item()) < 4 * se, (k, var, cf.item(), se)
        # Var(plain) - Var(VR) = Var(q) + 2 Cov(t, q) with q = 1/2 (v^T s)^2 - 1/2 |s|^2 and t the VR estimator
        q = plain - vr
        per = (q - q.mean()) ** 2 + 2 * (vr - vr.mean()) * (q - q.mean())
        gain, se = per.mean().item(), per.std().item() / math.sqrt(reps)
        assert abs(gain - gains[k].item()) < 4 * se + 1e-12, (k, gain, gains[k].item(), se)
        signs.add(gains[k].item() > 0)
    assert signs == {True, False}, "the points were chosen so that VR helps at some and hurts at others"


def test_vr_gain_on_a_standard_normal_averages_to_d_times_d_minus_2_over_2():
    """Chapter 3: for N(0, I) and its exact score (s = -x, J = -I) the gain is 1/2 |x|^4 - 2 |x|^2,
    whose mean over the data is D (D - 2) / 2: zero in D = 2."""
    for D in [2, 5]:
        x = torch.randn(200_000, D, generator=torch.Generator().manual_seed(D), dtype=torch.float64)
        gain = vr_variance_gain(-x, -torch.eye(D, dtype=torch.float64))
        assert torch.allclose(gain, 0.5 * (x**2).sum(1) ** 2 - 2 * (x**2).sum(1))
        se = gain.std().item() / math.sqrt(len(gain))
        assert abs(gain.mean().item() - D * (D - 2) / 2) < 4 * se


def test_langevin_stationary_variance_matches_long_chains():
    g = torch.Generator().manual_seed(2)
    variance, step, n = 2.0, 1.6, 40_000
    x = torch.zeros(n, dtype=torch.float64)
    for _ in range(300):  # contraction 1 - step/(2 variance) = 0.6 per step: long equilibrated
        x = x - 0.5 * step * x / variance + math.sqrt(step) * torch.randn(n, generator=g, dtype=torch.float64)
    predicted = float(langevin_stationary_variance(step, variance))
    se = predicted * math.sqrt(2 / n)
    assert predicted == pytest.approx(2.5)
    assert abs(x.var().item() - predicted) < 4 * se
    with pytest.raises(ValueError):  # the chain diverges for step >= 4 variance
        langevin_stationary_variance(8.0, 2.0)
