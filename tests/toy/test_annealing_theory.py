"""Chapter 7's closed-form targets for annealed Langevin on the two-mode mixture
(ncsn_edu.toy.annealing_theory) against sampling: the mass on each side of the bisector,
and the side fraction that annealed chains reach level by level. Tolerances are a few
standard errors."""

import math

import pytest
import torch

from ncsn_edu.schedules import geometric_sigmas
from ncsn_edu.toy.annealing_theory import equilibrium_side_fraction, side_mass
from ncsn_edu.toy.distributions import GaussianMixture, mode_fractions
from ncsn_edu.toy.domain import uniform_starts


def _phi(x):
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def test_side_mass_matches_the_share_of_samples_on_each_side():
    # unequal widths and weights, so that swapping a sign, a width or a weight shows
    mixture = GaussianMixture([[-1.0, 0.0], [2.0, 0.0]], [0.8, 2.0], [0.3, 0.7])
    n = 400_000
    x = mixture.sample(n, torch.Generator().manual_seed(0))
    measured = mode_fractions(mixture, x).double()
    exact = side_mass(mixture)
    se = (exact * (1 - exact) / n).sqrt()
    assert torch.allclose(exact.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert ((measured - exact).abs() < 4 * se).all(), (measured, exact)


def test_equilibrium_side_fraction_is_the_side_mass_of_each_annealed_density():
    mixture = GaussianMixture.paper_toy()
    sigmas = geometric_sigmas(20.0, 1.0, 10)
    code = equilibrium_side_fraction(mixture, sigmas, "code")
    pert = equilibrium_side_fraction(mixture, sigmas, "perturbed")
    d = 5 * math.sqrt(2)  # distance from each mean to the anti-diagonal
    for s, c, p in zip(sigmas.tolist(), code.tolist(), pert.tolist()):
        assert c == pytest.approx(0.2 * _phi(-d / s) + 0.8 * _phi(d / s), abs=1e-6)
        t = math.sqrt(1 + s**2)
        assert p == pytest.approx(0.2 * _phi(-d / t) + 0.8 * _phi(d / t), abs=1e-6)
    # and on samples of one perturbed level
    q = mixture.perturbed(5.0)
    x = q.sample(200_000, torch.Generator().manual_seed(1))
    f = mode_fractions(mixture, x)[1].item()
    expected = equilibrium_side_fraction(mixture, [5.0], "perturbed").item()
    assert abs(f - expected) < 4 * math.sqrt(expected * (1 - expected) / 200_000)


def test_annealed_split_follows_each_levels_equilibrium_and_freezes_at_the_middle_levels():
    # Chapter 7's claim: with exact (code-convention) scores the fraction on the (5,5) side tracks
    # 0.2 Phi(-5 sqrt2 / sigma_i) + 0.8 Phi(5 sqrt2 / sigma_i) level by level, and chains stop crossing after level 8.
    from ncsn_edu.sampling import annealed_langevin_dynamics
    from ncsn_edu.toy.distributions import annealed_score_fn, nearest_component

    torch.set_num_threads(1)
    mixture, sigmas, n = GaussianMixture.paper_toy(), geometric_sigmas(20.0, 1.0, 10), 3000
    g = torch.Generator().manual_seed(7)
    start = uniform_starts(n, generator=g)
    _, states = annealed_langevin_dynamics(annealed_score_fn(mixture, sigmas, "code"), start, sigmas, 0.1, 100, g,
                                           keep_every=100)
    sides = torch.stack([nearest_component(mixture, s) for s in states]).double()  # (11, n)
    measured = sides[1:].mean(1)
    eq = equilibrium_side_fraction(mixture, sigmas, "code")
    se = (eq * (1 - eq) / n).sqrt()
    assert ((measured - eq).abs() < 4 * se + 0.005).all(), (measured, eq)
    assert eq[0] < 0.6 and measured[0] < 0.65  # not set early: the top level's split is far from 0.8
    changed = (sides[1:] != sides[:-1]).double().mean(1)
    assert changed[4] > 0.3 and (changed[8:] < 0.01).all(), changed  # crossings at level 5, none after level 8
