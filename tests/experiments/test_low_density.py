"""The low-density experiments (ncsn_edu.experiments.low_density): a denoising score matching
run learns the perturbed score, not the data score (chapter 6); the Figure 2 run and its
committed result show the learned score accurate only near the modes."""

import pytest
import torch

from ncsn_edu.experiments.low_density import train_toy_dsm
from ncsn_edu.toy.distributions import GaussianMixture
from ncsn_edu.toy.metrics import relative_score_error

#: Ten seconds or more on one core: parallel runs (dev.py test) start this file first.
pytestmark = pytest.mark.slow


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


def test_figure2_learned_score_is_accurate_only_near_the_modes():
    """A short run of the paper's training (fewer steps than its 10,000) already shows it."""
    from ncsn_edu.experiments.low_density import train_toy_ssm
    from ncsn_edu.toy.metrics import score_error_stats

    run = train_toy_ssm(n_steps=800, seed=0, progress=False, snapshot_steps=(0, 400))
    assert sorted(run["snapshots"]) == [0, 400, 800] and len(run["losses"]) == 800
    stats = score_error_stats(run["model"])
    assert stats["weighted_error"] < 0.5  # right where the data are ...
    assert stats["low_density_error"] > 4 * stats["weighted_error"]  # ... several times worse elsewhere


def test_committed_figure2_model_loads_and_shows_the_effect():
    from ncsn_edu.experiments.low_density import load_result
    from ncsn_edu.resources import resource_path
    from ncsn_edu.toy.metrics import score_error_stats
    from ncsn_edu.toy.nets import model_at

    result = load_result(resource_path("low_density_ssm.pt"))
    assert result["settings"]["n_steps"] == 10_000 and len(result["losses"]) == 10_000
    stats = score_error_stats(result["model"])
    assert stats["ratio"] > 5
    first = score_error_stats(model_at(result, 0))
    assert first["weighted_error"] > 5 * stats["weighted_error"]  # training did something
