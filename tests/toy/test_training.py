"""The toy noise-conditional score network: its scores against the exact scores of the
perturbed mixture, and annealed Langevin with it recovering the 1:4 mode weights that
plain Langevin misses (paper section 4.3, appendix B)."""

import pytest
import torch

from ncsn_edu.sampling import annealed_langevin_dynamics, langevin_dynamics
from ncsn_edu.schedules import geometric_sigmas
from ncsn_edu.toy.distributions import GaussianMixture, mode_fractions
from ncsn_edu.toy.domain import uniform_starts
from ncsn_edu.toy.metrics import per_level_score_errors, relative_score_error
from ncsn_edu.toy.training import train_toy_ncsn

#: Ten seconds or more on one core: parallel runs (dev.py test) start this file first.
pytestmark = pytest.mark.slow

MIX = GaussianMixture.paper_toy()
SIGMAS = geometric_sigmas(20.0, 1.0, 10)


@pytest.fixture(scope="module")
def trained():
    """Toy NCSNs trained with the default recipe and three seeds (a few seconds each)."""
    return {seed: train_toy_ncsn(SIGMAS, seed=seed) for seed in (0, 1, 2)}


def test_training_is_reproducible_and_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    _, a = train_toy_ncsn(SIGMAS, n_steps=5, seed=3)
    assert torch.equal(state, torch.get_rng_state())
    _, b = train_toy_ncsn(SIGMAS, n_steps=5, seed=3)
    _, c = train_toy_ncsn(SIGMAS, n_steps=5, seed=4)
    assert a == b and a != c and len(a) == 5


def test_learned_scores_match_the_exact_perturbed_scores_at_every_level(trained):
    for seed, (model, losses) in trained.items():
        assert len(losses) == 1500
        assert sum(losses[-100:]) < 0.5 * sum(losses[:100])
        errors = per_level_score_errors(model, MIX, SIGMAS, n=2000, generator=torch.Generator().manual_seed(seed))
        assert max(errors) < 0.15, (seed, errors)
    # Zero is a bad score (error 1); the exact score is perfect (error 0).
    x = MIX.sample(100, torch.Generator().manual_seed(0))
    assert relative_score_error(torch.zeros_like, MIX.score, x) == pytest.approx(1.0)
    assert relative_score_error(MIX.score, MIX.score, x) == 0.0


def test_annealed_langevin_with_the_learned_scores_recovers_the_mode_weights(trained):
    """Algorithm 1 with the toy appendix's settings: 1280 samples from uniform on
    [-8, 8]^2, L = 10 levels from 20 to 1, T = 100, eps = 0.1. About 80% of the samples
    must land in the (5, 5) mode, whatever the training seed and sampling seed."""
    for seed, (model, _) in trained.items():
        g = torch.Generator().manual_seed(100 + seed)
        x = annealed_langevin_dynamics(model, uniform_starts(1280, generator=g), SIGMAS, 0.1, 100, g)
        frac = mode_fractions(MIX, x)[1].item()
        assert frac == pytest.approx(0.8, abs=0.05), (seed, frac)


def test_single_sigma_baseline_with_plain_langevin_misses_the_weights():
    """The appendix baseline: one network conditioned on the smallest sigma only,
    sampled with plain Langevin (T = 1000, eps = 0.1) from uniform noise, splits the
    samples about evenly between the modes instead of 1:4."""
    model, _ = train_toy_ncsn([1.0], seed=0)
    g = torch.Generator().manual_seed(5)
    x = langevin_dynamics(model.level_score(0), uniform_starts(1280, generator=g), 0.1, 1000, g)
    frac = mode_fractions(MIX, x)[1].item()
    assert frac < 0.65, frac

