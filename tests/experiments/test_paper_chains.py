"""The paper's image chain and the shortened one (ncsn_edu.experiments.paper_chains): the
shortened chain (T = 25, four times the step) is *not* the paper's chain: at equilibrium on a
Gaussian level it is wider by a factor that :func:`stationary_spread_factor` predicts (1.29
against 1.05), checked on exact Gaussian scores (chapters 10, 11 and the capstone)."""

from __future__ import annotations

import math

import pytest
import torch

from ncsn_edu.experiments.paper_chains import stationary_spread_factor
from ncsn_edu.sampling import annealed_langevin_dynamics
from ncsn_edu.schedules import geometric_sigmas


def test_spread_factor_values():
    # a_i / sigma_i^2 = eps_code / sigma_L^2 = 0.2 for the paper's chain, 0.8 for the shortened one
    assert stationary_spread_factor(2e-5, 0.01) == pytest.approx(math.sqrt(1 / 0.9))
    assert stationary_spread_factor(8e-5, 0.01) == pytest.approx(math.sqrt(1 / 0.6))
    with pytest.raises(ValueError):
        stationary_spread_factor(2e-4, 0.01)  # a_i / sigma_i^2 = 2: unstable


@pytest.mark.parametrize("eps_code,steps", [(2e-5, 100), (8e-5, 25)])
def test_annealed_chain_spread_matches_the_gaussian_prediction(eps_code, steps):
    """Annealed Langevin in the official convention on the exact scores of N(m, sigma_i^2 I)
    (the perturbed distribution of a single point m): at the end of every level the spread
    around m is sigma_i times the predicted factor, for the paper's chain and the shortened
    one. Standard error of a std estimated from N draws: std / sqrt(2N)."""
    sigmas = geometric_sigmas(1.0, 0.01, 10)
    m = 0.3
    n, d = 64, 784
    score = lambda x, labels: -(x - m) / sigmas[labels].view(-1, 1) ** 2  # noqa: E731
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(n, d, generator=g, dtype=torch.float64)
    _, states = annealed_langevin_dynamics(score, x0, sigmas, eps_code, steps, g, keep_every=steps,
                                           convention="code")
    factor = stationary_spread_factor(eps_code, 0.01)
    for i, s in enumerate(sigmas.tolist()):
        spread = (states[i + 1] - m).std().item()
        se = s * factor / math.sqrt(2 * n * d)
        assert abs(spread - s * factor) < 5 * se, (i, spread, s * factor)


def test_shortened_chain_is_wider_than_the_paper_chain():
    ratio = stationary_spread_factor(8e-5, 0.01) / stationary_spread_factor(2e-5, 0.01)
    assert ratio == pytest.approx(1.2247, abs=1e-4)


def test_fig78_runs_both_networks_from_one_start_with_the_same_noise_at_their_levels():
    """record_fig78 on exact scores of N(m, 0.01^2 I): each network is called at its own level,
    both chains start from torch.rand seeded 1 and share the noise (equal networks give equal
    chains), and after the chain has mixed its spread around m is 0.01 times the spread factor
    of the code's step 2e-5 (a / sigma^2 = 0.2, factor 1.054). s.e. of a std from N draws: std / sqrt(2N)."""
    from ncsn_edu.experiments.paper_chains import record_fig78

    m, s = 0.4, 0.01
    seen = []

    def net(level):
        def score(x, labels):
            seen.append((level, labels.unique().tolist()))
            return -(x - m) / s**2
        return score

    out = record_fig78(net(9), 9, net(0), n_chains=64, n_steps=200, keep_every=50)
    assert {lev: labs for lev, labs in seen} == {0: [0], 9: [9]}
    assert torch.equal(out["start"], torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(1)))
    a, b = (out["states"][k] for k in ("baseline (sigma = 0.01 only)", "NCSN, last level only"))
    assert a.shape == (5, 64, 1, 28, 28) and torch.equal(a, b) and torch.equal(a[0], out["start"])
    spread = (a[-1] - m).std().item()  # (1 - 0.2)^200: the start is forgotten
    expected = s * stationary_spread_factor(2e-5, s)
    assert abs(spread - expected) < 5 * expected / math.sqrt(2 * a[-1].numel())


def test_the_committed_fig78_chains_start_from_the_recorded_uniform_noise():
    from ncsn_edu.experiments.paper_chains import load_chains
    from ncsn_edu.resources import resource_path

    d = load_chains(resource_path("mnist_single_level_chains.pt"))
    start = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(d["start_seed"]))
    assert torch.equal(d["start"], start) and d["n_steps"] == 1000
    for states in d["states"].values():  # the start, then every 250 steps
        assert states.shape == (5, 2, 1, 28, 28) and torch.equal(states[0], start)
        assert (states[-1] - start).abs().mean() > 0.1  # 1,000 steps moved the chains far from their start
