"""NCSNv2's division-conditioned toy network (ncsn_edu.toy.nets.DividedScoreMLP, chapter 11b): its
output is one unconditional MLP's divided by sigma, at the levels and between them."""

import pytest
import torch

from ncsn_edu.schedules import geometric_sigmas
from ncsn_edu.toy.nets import ConditionalScoreMLP, DividedScoreMLP, ScoreMLP

SIGMAS = geometric_sigmas(20.0, 1.0, 10)


def test_output_is_the_unconditional_mlp_divided_by_sigma():
    torch.manual_seed(0)
    net = DividedScoreMLP(SIGMAS, hidden=16)
    x = torch.randn(7, 2)
    plain = net.net(x)
    assert isinstance(net.net, ScoreMLP)
    labels = torch.tensor([0, 3, 9, 9, 5, 1, 0])
    assert torch.allclose(net(x, labels), plain / SIGMAS[labels].view(-1, 1))
    for i in (0, 4, 9):
        assert torch.allclose(net(x, torch.full((7,), i)), plain / SIGMAS[i])
        assert torch.allclose(net.level_score(i)(x), plain / SIGMAS[i])
    # sigma * s(x, sigma) does not depend on sigma, at the levels or anywhere between them
    for sigma in (20.0, 7.3, 1.0, 0.5, 33.0):
        assert torch.allclose(sigma * net.score_at(x, sigma), plain, atol=1e-6)
    per_sample = torch.linspace(1.0, 20.0, 7)
    assert torch.allclose(net.score_at(x, per_sample), plain / per_sample.view(-1, 1))


def test_same_size_as_the_level_conditioned_net():
    # the comparison of chapter 11b is at (nearly) equal parameters: 7,049 against 7,042
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(DividedScoreMLP(SIGMAS, hidden=81)) == 81 * 81 + 6 * 81 + 2 == 7049
    assert count(ConditionalScoreMLP(SIGMAS, hidden=64)) == 7042


def test_bad_inputs_raise():
    net = DividedScoreMLP(SIGMAS, hidden=8)
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="0..9"):
        net(x, torch.full((4,), 10))
    with pytest.raises(ValueError, match="one level index per sample"):
        net(x, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="positive"):
        net.score_at(x, 0.0)
    with pytest.raises(ValueError, match="positive"):
        DividedScoreMLP([1.0, -1.0])
