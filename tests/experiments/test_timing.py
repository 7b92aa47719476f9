"""The step timer used by the cost-versus-dimension figures."""

import time

import pytest
import torch

from ncsn_edu.experiments.timing import cost_curve, seconds_per_step
from ncsn_edu.toy.losses import score_matching_loss, sliced_score_matching_loss
from ncsn_edu.toy.nets import ScoreMLP


def test_seconds_per_step_trains_and_restores_threads():
    torch.manual_seed(0)
    model = ScoreMLP(dim=3, hidden=8)
    before = [p.detach().clone() for p in model.parameters()]
    threads = torch.get_num_threads()
    t = seconds_per_step(model, lambda m, b: score_matching_loss(m, b), torch.randn(16, 3), repeats=2, num_threads=1)
    assert t > 0
    assert torch.get_num_threads() == threads
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters())), "the step must update the model"


def test_exact_trace_costs_more_than_one_projection_at_high_dimension():
    # D backward passes against one: at D = 96 the exact step is several times slower.
    g = torch.Generator().manual_seed(0)
    costs = cost_curve(
        [96], lambda d: ScoreMLP(dim=d, hidden=32),
        {"exact": lambda m, b: score_matching_loss(m, b),
         "sliced": lambda m, b: sliced_score_matching_loss(m, b, generator=g)},
        batch_size=32, repeats=3, generator=g,
    )
    assert set(costs) == {"exact", "sliced"} and len(costs["exact"]) == 1
    assert costs["exact"][0] > 3 * costs["sliced"][0]


def test_bad_arguments():
    with pytest.raises(ValueError):
        seconds_per_step(ScoreMLP(2), lambda m, b: m(b).sum(), torch.randn(4, 2), repeats=0)
    with pytest.raises(ValueError):
        cost_curve([], lambda d: ScoreMLP(d), {"x": lambda m, b: m(b).sum()})



def held_up_loss(pause=0.04, every=3):
    """A loss whose steps wait ``pause`` seconds without computing on all but one of every ``every``
    calls, as a step does while the scheduler runs another process on its core."""
    calls = [0]

    def loss_fn(m, b):
        calls[0] += 1
        if calls[0] % every:
            time.sleep(pause)
        return m(b).pow(2).sum()
    return loss_fn


def test_cpu_clock_leaves_out_waiting_and_the_wall_clock_does_not():
    # 6 of 9 timed steps wait 40 ms: their median wall time is at least 40 ms, their CPU time a tiny model's cost
    model, batch = ScoreMLP(dim=2, hidden=8), torch.randn(8, 2)
    wall = seconds_per_step(model, held_up_loss(), batch, repeats=9, warmup=0)
    cpu = seconds_per_step(model, held_up_loss(), batch, repeats=9, warmup=0, clock="cpu")
    assert wall >= 0.04
    assert cpu < 0.02
    curve = cost_curve([2], lambda d: ScoreMLP(dim=d, hidden=8), {"held": held_up_loss()}, batch_size=8,
                       repeats=9, warmup=0, clock="cpu")
    assert curve["held"][0] < 0.02, "cost_curve must pass clock on"
    with pytest.raises(ValueError):
        seconds_per_step(model, held_up_loss(), batch, clock="process")
