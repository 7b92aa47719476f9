"""The numbers behind chapters 6-9's corrected claims (issue 10, items 5-8), checked
against sampling and Monte Carlo. Tolerances are a few standard errors."""

import math

import pytest
import torch

from ncsn_edu.experiments.low_density import train_toy_dsm
from ncsn_edu.schedules import geometric_sigmas
from ncsn_edu.toy.annealing_theory import equilibrium_side_fraction, side_mass
from ncsn_edu.toy.closed_forms import langevin_stationary_variance
from ncsn_edu.toy.distributions import GaussianMixture, mode_fractions
from ncsn_edu.toy.metrics import relative_score_error
from ncsn_edu.toy.noise_scales import noise_norm_moments, ratio_for_shell_overlap, shell_overlap


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


def test_noise_norm_moments_match_samples():
    g = torch.Generator().manual_seed(3)
    for dim in (2, 784):
        r = (0.3 * torch.randn(20_000, dim, generator=g, dtype=torch.float64)).norm(dim=1)
        mean, std = noise_norm_moments(0.3, dim)
        assert abs(r.mean().item() - mean) < 4 * std / math.sqrt(20_000)
        assert r.std().item() == pytest.approx(std, rel=0.03)
    m, s = noise_norm_moments(1.0, 3072)
    assert m == pytest.approx(math.sqrt(3072), rel=1e-3) and s == pytest.approx(1 / math.sqrt(2), rel=1e-3)


def test_shell_overlap_is_the_chance_of_landing_in_the_larger_levels_shell():
    # CIFAR-10's dimension; the follow-up paper's ladder (50 -> 0.01 in 232 levels) and the NCSN one (1 -> 0.01 in 10)
    dim, n = 3072, 6000
    z_norm = torch.randn(n, dim, generator=torch.Generator().manual_seed(4)).norm(dim=1).double()
    for gamma in ((50 / 0.01) ** (1 / 231), 1 / 0.5995):
        lo, hi = math.sqrt(dim) * gamma - 3 * gamma / math.sqrt(2), math.sqrt(dim) * gamma + 3 * gamma / math.sqrt(2)
        measured = ((z_norm >= lo) & (z_norm <= hi)).double().mean().item()
        c = shell_overlap(gamma, dim)
        assert abs(measured - c) < 4 * math.sqrt(max(c * (1 - c), 1e-4) / n) + 1e-3, (gamma, measured, c)
    assert shell_overlap((50 / 0.01) ** (1 / 231), dim) == pytest.approx(0.567, abs=0.005)
    assert shell_overlap(1 / 0.5995, dim) < 1e-12


def test_ratio_for_shell_overlap_inverts_the_overlap():
    for dim in (784, 3072):
        gamma = ratio_for_shell_overlap(dim, 0.5)
        assert gamma > 1 and shell_overlap(gamma, dim) == pytest.approx(0.5, abs=1e-6)
    assert ratio_for_shell_overlap(784) > ratio_for_shell_overlap(3072)  # more dimensions, finer ladder
    assert ratio_for_shell_overlap(2) == math.inf  # in 2D the criterion never falls to 0.5


def test_dsm_learns_the_perturbed_score_not_the_data_score():
    torch.set_num_threads(1)
    mixture, sigma = GaussianMixture.paper_toy(), 1.0
    model, losses = train_toy_dsm(mixture, sigma, n_steps=600, seed=0)
    assert len(losses) == 600
    q = mixture.perturbed(sigma)
    g = torch.Generator().manual_seed(6)
    xq, xp = q.sample(4000, g), mixture.sample(4000, g)
    # the exact q_sigma score is 1/2 away from the data score at the data (relative error sigma^2/(1+sigma^2))
    assert relative_score_error(q.score, mixture.score, xp) == pytest.approx(0.5, abs=1e-6)
    assert relative_score_error(model, q.score, xq) < 0.25
    assert relative_score_error(model, mixture.score, xp) > 0.35


def test_annealed_split_follows_each_levels_equilibrium_and_freezes_at_the_middle_levels():
    # Chapter 7's claim: with exact (code-convention) scores the fraction on the (5,5) side tracks
    # 0.2 Phi(-5 sqrt2 / sigma_i) + 0.8 Phi(5 sqrt2 / sigma_i) level by level, and chains stop crossing after level 8.
    from ncsn_edu.sampling import annealed_langevin_dynamics
    from ncsn_edu.toy.distributions import annealed_score_fn, nearest_component

    torch.set_num_threads(1)
    mixture, sigmas, n = GaussianMixture.paper_toy(), geometric_sigmas(20.0, 1.0, 10), 3000
    g = torch.Generator().manual_seed(7)
    start = (torch.rand(n, 2, generator=g) * 2 - 1) * 8
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


def test_score_sizes_across_the_toy_ladder_differ_by_about_sigma_1_over_sigma_L():
    # Chapter 8's rescaling argument: rms |grad log q_sigma| on samples of q_sigma is at most sqrt(D / (1 + sigma^2))
    # (Fisher information of a mixture <= that of its components), close to it at both ends of the toy ladder.
    mixture, g = GaussianMixture.paper_toy(), torch.Generator().manual_seed(8)
    rms = {}
    for s in (20.0, 1.0):
        q = mixture.perturbed(s)
        x = q.sample(50_000, g).double()
        rms[s] = q.to(dtype=torch.float64).score(x).pow(2).sum(1).mean().sqrt().item()
        assert rms[s] <= math.sqrt(2 / (1 + s**2)) * 1.02
    assert rms[1.0] / rms[20.0] == pytest.approx(math.sqrt(401 / 2), rel=0.05)  # about 14, not 400
