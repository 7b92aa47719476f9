"""Claims of the MNIST chapters (10, 11) and the capstone that issue 10 corrected.

* the shortened chain (T = 25, four times the step) is *not* the paper's chain: at
  equilibrium on a Gaussian level it is wider by a factor that
  :func:`ncsn_edu.experiments.paper_chains.stationary_spread_factor` predicts (1.29 against 1.05);
* a Frechet distance between two samples of the *same* distribution is not 0 but a
  small-sample bias that falls like 1/n (:func:`ncsn_edu.images.metrics.frechet_between_disjoint_subsets`).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ncsn_edu.experiments.paper_chains import stationary_spread_factor
from ncsn_edu.images.metrics import frechet_between_disjoint_subsets
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


def test_frechet_between_same_distribution_subsets_is_the_small_sample_bias():
    """For N(0, I_d) features and n >> d, E[FD] between two independent n-samples is
    about (2d + d(d+1)/2) / n: 2d/n from the means, d(d+1)/(2n) from the covariances
    (tr((C1^1/2 - C2^1/2)^2) ~ ||C1 - C2||_F^2 / 4). Mean of 40 splits, 4 standard errors."""
    d = 16
    g = torch.Generator().manual_seed(0)
    f = torch.randn(40000, d, generator=g)
    predicted = 2 * d + d * (d + 1) / 2
    scaled = {}
    for n in (1024, 4096):
        v = frechet_between_disjoint_subsets(f, n, repeats=40, generator=g)
        se = v.std(ddof=1) / np.sqrt(len(v))
        assert abs(v.mean() - predicted / n) < 4 * se + 0.03 * predicted / n, (n, v.mean(), predicted / n)
        scaled[n] = v.mean() * n
    # bias falls like 1/n
    assert scaled[4096] == pytest.approx(scaled[1024], rel=0.1)


def test_frechet_subsets_are_disjoint():
    f = torch.arange(20.0).view(10, 2)
    with pytest.raises(ValueError):
        frechet_between_disjoint_subsets(f, 6)  # 2 x 6 > 10 rows
    # two far-apart halves: with a split into disjoint halves the distance is not 0
    g = torch.Generator().manual_seed(1)
    v = frechet_between_disjoint_subsets(torch.randn(200, 3, generator=g), 100, repeats=5, generator=g)
    assert (v > 0).all()
