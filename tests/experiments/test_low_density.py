"""The low-density experiments (ncsn_edu.experiments.low_density): a denoising score matching
run learns the perturbed score, not the data score (chapter 6); the Figure 2 run and its
committed result show the learned score accurate only near the modes."""

import pytest
import torch

from ncsn_edu.experiments.low_density import train_toy_dsm
from ncsn_edu.toy.distributions import GaussianMixture
from ncsn_edu.toy.metrics import relative_score_error


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
