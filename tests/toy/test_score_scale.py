"""Chapter 8's rescaling argument: the scores of the perturbed densities at the two ends of
the toy ladder differ in size by about sigma_1 / sigma_L (checked on samples)."""

import math

import pytest
import torch

from ncsn_edu.toy.distributions import GaussianMixture


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
