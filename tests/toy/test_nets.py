"""The toy noise-conditional score network (ncsn_edu.toy.nets.ConditionalScoreMLP): its level
embedding, the sigma-conditioned variant, and its checks of bad input."""

import pytest
import torch

from ncsn_edu.schedules import geometric_sigmas
from ncsn_edu.toy.nets import ConditionalScoreMLP

SIGMAS = geometric_sigmas(20.0, 1.0, 10)


def test_level_embedding_starts_as_the_unconditional_mlp():
    net = ConditionalScoreMLP(SIGMAS, hidden=16)
    x = torch.randn(6, 2)
    outs = [net(x, torch.full((6,), i)) for i in range(10)]
    assert all(torch.allclose(o, outs[0]) for o in outs)
    scaled = ConditionalScoreMLP(SIGMAS, hidden=16, scale_output=True)
    scaled.load_state_dict(net.state_dict())
    for i in (0, 5, 9):  # the rescaled network returns the plain output divided by sigma_i
        assert torch.allclose(scaled(x, torch.full((6,), i)), outs[0] / SIGMAS[i])


def test_sigma_conditioned_net_is_a_function_of_sigma():
    net = ConditionalScoreMLP(SIGMAS, hidden=16, condition="sigma", scale_output=True)
    x = torch.randn(5, 2)
    for i in (0, 4, 9):
        assert torch.allclose(net.score_at(x, float(SIGMAS[i])), net(x, torch.full((5,), i)), atol=1e-6)
    between = net.score_at(x, 7.0)  # a sigma between two levels is allowed
    assert between.shape == (5, 2) and torch.isfinite(between).all()
    with pytest.raises(ValueError, match="condition='sigma'"):
        ConditionalScoreMLP(SIGMAS, hidden=16).score_at(x, 1.0)


def test_bad_inputs_raise():
    net = ConditionalScoreMLP(SIGMAS, hidden=8)
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="0..9"):
        net(x, torch.full((4,), 10))
    with pytest.raises(ValueError, match="one level index per sample"):
        net(x, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="condition"):
        ConditionalScoreMLP(SIGMAS, condition="time")
    with pytest.raises(ValueError, match="positive"):
        ConditionalScoreMLP([1.0, 0.0])
