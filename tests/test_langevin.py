"""Plain Langevin dynamics reaches the target distribution."""

import pytest
import torch

from ncsn_edu.sampling import langevin_dynamics
from ncsn_edu.toy.distributions import GaussianMixture


def test_langevin_samples_a_gaussian():
    target = GaussianMixture([[2.0, -1.0]], 0.5, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(4000, 2, generator=g, dtype=torch.float64) * 16 - 8
    x = langevin_dynamics(target.score, x0, step_size=0.01, n_steps=800, generator=g)
    assert torch.allclose(x.mean(0), torch.tensor([2.0, -1.0], dtype=torch.float64), atol=0.04)
    # the discretised chain has a slightly inflated variance: for an OU process with step eps
    # the stationary variance is s^2 / (1 - eps / (4 s^2)) = 0.2506...
    assert torch.allclose(x.var(0), torch.full((2,), 0.2506, dtype=torch.float64), rtol=0.08)


def test_keep_every_and_determinism():
    target = GaussianMixture.paper_toy()
    x0 = torch.zeros(10, 2)
    a, states = langevin_dynamics(target.score, x0, 0.1, 20, torch.Generator().manual_seed(3), keep_every=5)
    b = langevin_dynamics(target.score, x0, 0.1, 20, torch.Generator().manual_seed(3))
    assert len(states) == 5 and torch.equal(states[0], x0) and torch.equal(states[-1], a)
    assert torch.equal(a, b)
    assert torch.equal(x0, torch.zeros(10, 2)), "the start must not be modified in place"


def test_bad_step_size():
    with pytest.raises(ValueError):
        langevin_dynamics(lambda x: x, torch.zeros(2, 2), 0.0, 10)
