"""Slow mixing (section 3.2.2, Figure 3; chapter 7), checked as numbers: plain Langevin keeps
the initial split between the two modes, annealed Langevin recovers the weights; and the
mixture's annealed scores and mode fractions that the figure is measured with. (Figures 1 and
2: tests/experiments/test_manifold.py and test_low_density.py.)"""

from __future__ import annotations

import math

import pytest
import torch

from ncsn_edu.sampling import annealed_langevin_dynamics, langevin_dynamics
from ncsn_edu.schedules import geometric_sigmas
from ncsn_edu.toy.distributions import GaussianMixture, annealed_score_fn, mode_fractions, nearest_component
from ncsn_edu.toy.domain import uniform_starts

#: Ten seconds or more on one core: parallel runs (dev.py test) start this file first.
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Small tensors: one thread is fastest and avoids oversubscribing a shared CPU.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


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


def _figure3(seed, convention="code"):
    """The paper's Figure 3 settings: 1280 samples from uniform on [-8, 8]^2; Langevin
    T = 1000, eps = 0.1; annealed L = 10, sigma 20 -> 1, T = 100, alpha_i = 0.1 sigma_i^2 / sigma_L^2."""
    mix = GaussianMixture.paper_toy()
    sigmas = geometric_sigmas(20.0, 1.0, 10)
    g = torch.Generator().manual_seed(seed)
    start = uniform_starts(1280, generator=g)
    lang = langevin_dynamics(mix.score, start, 0.1, 1000, g)
    ann = annealed_langevin_dynamics(annealed_score_fn(mix, sigmas, convention), start, sigmas, 0.1, 100, g)
    return [mode_fractions(mix, x)[1].item() for x in (start, mix.sample(1280, g), lang, ann)]


SEEDS = (0, 1, 2, 3)


@pytest.fixture(scope="module")
def figure3_fractions():
    return torch.tensor([_figure3(s) for s in SEEDS])  # columns: start, exact, Langevin, annealed


def test_figure3_annealed_langevin_recovers_the_weights(figure3_fractions):
    start, exact, lang, ann = figure3_fractions.T
    assert abs(exact.mean().item() - 0.8) < 0.03
    assert abs(ann.mean().item() - 0.8) < 0.03, ann
    assert ((ann - 0.8).abs() < 0.05).all(), ann  # every seed, 1280 samples (s.e. 0.011)


def test_figure3_langevin_keeps_the_initial_split(figure3_fractions):
    start, exact, lang, ann = figure3_fractions.T
    assert ((lang - 0.8).abs() > 0.2).all(), lang  # far from the true weight 0.8 ...
    assert ((lang - start).abs() < 0.05).all(), (lang, start)  # ... and close to where it started
    assert ((lang - 0.5).abs() < 0.06).all(), lang


def test_figure3_exact_perturbed_scores_also_recover_the_weights():
    fr = torch.tensor([_figure3(s, "perturbed")[3] for s in SEEDS[:2]])
    assert abs(fr.mean().item() - 0.8) < 0.03, fr


# ---------------------------------------------------------------- Figure 2: low density


# ---------------------------------------------------------------- Figure 1: manifold hypothesis
