"""The runs of chapter 7's steps-per-level table: the closed-form two-mode scores against the
package's annealed scores, what a run records, and the committed file against the closed forms."""

import json
import math

import pytest
import torch

from ncsn_edu.experiments.annealing_time import run, two_mode_score_fn
from ncsn_edu.resources import resource_path
from ncsn_edu.schedules import geometric_sigmas
from ncsn_edu.toy.annealing_theory import equilibrium_side_fraction
from ncsn_edu.toy.distributions import GaussianMixture, annealed_score_fn

SIGMAS = geometric_sigmas(20.0, 1.0, 10)


@pytest.mark.parametrize("convention", ["code", "perturbed"])
def test_two_mode_scores_are_the_packages(convention):
    """At every level, on points from the gap and far out, within float32 rounding (relative 1e-5)."""
    mix = GaussianMixture([[-5.0, -5.0], [5.0, 5.0]], 1.0, [0.3, 0.7])
    x = torch.randn(2000, 2, generator=torch.Generator().manual_seed(0)) * 12
    fast, ref = two_mode_score_fn(mix, SIGMAS, convention), annealed_score_fn(mix, SIGMAS, convention)
    for i in range(len(SIGMAS)):
        labels = torch.full((len(x),), i, dtype=torch.long)
        a, b = fast(x, labels), ref(x, labels)
        assert (a - b).abs().max() <= 1e-5 * b.abs().max() + 1e-6, (convention, i)


def test_two_mode_scores_need_two_equal_components():
    with pytest.raises(ValueError):
        two_mode_score_fn(GaussianMixture([[-5.0, -5.0], [5.0, 5.0]], [1.0, 2.0], [0.2, 0.8]), SIGMAS)
    with pytest.raises(ValueError):
        two_mode_score_fn(GaussianMixture.paper_toy(), SIGMAS, "other")


def test_a_short_run_lags_its_levels():
    """T = 3 steps per level cannot follow the levels: the split ends far below the last level's
    equilibrium (0.8), by more than 10 standard errors sqrt(f (1 - f) / 2000) = 0.011; the record
    holds one fraction per level, their binomial standard errors and the closed-form equilibria."""
    r = run([3], "code", n=2000, seed=0)
    row = r["runs"][0]
    assert len(row["fraction"]) == len(row["se"]) == 10 and row["T"] == 3
    assert row["se"][-1] == pytest.approx(math.sqrt(row["fraction"][-1] * (1 - row["fraction"][-1]) / 2000))
    eq = equilibrium_side_fraction(GaussianMixture.paper_toy(), SIGMAS, "code")
    assert r["equilibrium"] == pytest.approx(eq.tolist())
    assert 0.8 - row["fraction"][-1] > 10 * row["se"][-1]


def test_the_committed_runs():
    """data/annealing_time.json: 40,000 chains per run; its standard errors and equilibria are the closed
    forms; the final split rises with T (each step in T by more than -2 standard errors of the
    difference) and at T = 1000 lies within 4 standard errors of 0.8."""
    data = json.loads(resource_path("annealing_time.json").read_text())
    assert "annealing_time" in data["command"]
    for res in data["results"]:
        eq = equilibrium_side_fraction(GaussianMixture.paper_toy(), SIGMAS, res["convention"])
        assert res["equilibrium"] == pytest.approx(eq.tolist(), abs=1e-6)
        finals = []
        for row in res["runs"]:
            f = torch.tensor(row["fraction"], dtype=torch.float64)
            assert row["se"] == pytest.approx((f * (1 - f) / res["n"]).sqrt().tolist())
            finals.append((row["T"], row["fraction"][-1], row["se"][-1]))
        finals.sort()
        for (_, f0, s0), (_, f1, s1) in zip(finals, finals[1:]):
            assert f1 - f0 > -2 * math.hypot(s0, s1)
        T, f, se = finals[-1]
        assert T == 1000 and abs(f - 0.8) < 4 * se and res["n"] == 40_000
