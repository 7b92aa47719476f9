"""Slow mixing (section 3.2.2, Figure 3; chapter 7), checked as numbers: plain Langevin keeps
the initial split between the two modes, annealed Langevin recovers the weights. (The annealed
scores and mode fractions it is measured with: tests/toy/test_distributions.py. Figures 1 and 2:
tests/experiments/test_manifold.py and test_low_density.py.)"""

from __future__ import annotations

import pytest
import torch

from ncsn_edu.sampling import annealed_langevin_dynamics, langevin_dynamics
from ncsn_edu.schedules import geometric_sigmas
from ncsn_edu.toy.distributions import GaussianMixture, annealed_score_fn, mode_fractions
from ncsn_edu.toy.domain import uniform_starts

#: Ten seconds or more on one core: parallel runs (dev.py test) start this file first.
pytestmark = pytest.mark.slow


def _figure3(seed, convention="code", plain=True):
    """The paper's Figure 3 settings: 1280 samples from uniform on [-8, 8]^2; Langevin
    T = 1000, eps = 0.1; annealed L = 10, sigma 20 -> 1, T = 100, alpha_i = 0.1 sigma_i^2 / sigma_L^2.
    Without ``plain`` the plain Langevin run is left out (its fraction is NaN)."""
    mix = GaussianMixture.paper_toy()
    sigmas = geometric_sigmas(20.0, 1.0, 10)
    g = torch.Generator().manual_seed(seed)
    start = uniform_starts(1280, generator=g)
    lang = langevin_dynamics(mix.score, start, 0.1, 1000, g) if plain else torch.full_like(start, float("nan"))
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
    fr = torch.tensor([_figure3(s, "perturbed", plain=False)[3] for s in SEEDS[:2]])
    assert abs(fr.mean().item() - 0.8) < 0.03, fr


# ---------------------------------------------------------------- Figure 2: low density


# ---------------------------------------------------------------- Figure 1: manifold hypothesis
