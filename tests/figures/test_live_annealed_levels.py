"""Chapters 7 and 9's annealed samplers in the page, level by level: what L = 1 runs in chapter 9's
figure (kind "ncsn_sampler"), and the chart of the fraction of chains in the (5, 5) mode against the
step that both figures draw (core.js's ``fractionChart``), against the package's own runs."""

from __future__ import annotations

import json
import math

import pytest
import torch
from live_pages import show

from ncsn_edu.figures import live
from ncsn_edu.sampling import annealed_langevin_dynamics, langevin_dynamics
from ncsn_edu.schedules import geometric_sigmas
from ncsn_edu.toy.annealing_theory import equilibrium_side_fraction
from ncsn_edu.toy.distributions import GaussianMixture, annealed_score_fn, mode_fractions
from ncsn_edu.toy.domain import uniform_starts
from ncsn_edu.toy.training import train_toy_ncsn

pytestmark = pytest.mark.slow
SIGMAS = geometric_sigmas(20.0, 1.0, 10)
MIX = GaussianMixture.paper_toy()


@pytest.fixture(scope="module")
def net():
    """A small toy NCSN, briefly trained (the comparisons hold for any weights)."""
    return train_toy_ncsn(SIGMAS, n_steps=300, hidden=32, seed=0)[0]


def run_figure(drv, tmp_path, fig, settings: dict, steps: int) -> dict:
    """Set the figure's controls (in the order given), run ``steps`` steps, return its state."""
    uid = show(drv, tmp_path, fig)
    return json.loads(drv.execute_script("""
        var root = document.getElementById(arguments[0]), s = arguments[1];
        s.forEach(function (kv) {
          var el = root.querySelector('[name="' + kv[0] + '"]');
          if (el.ncsnControl) el.ncsnControl.set(kv[1]); else el.value = kv[1];
          el.dispatchEvent(new Event(el.tagName === 'SELECT' ? 'change' : 'input', {bubbles: true}));
        });
        root.figure.advance(arguments[2]); return root.state();""", uid, list(settings.items()), steps))


def mean_log_p(x):
    lp = MIX.log_prob(x)
    return lp.mean().item(), (lp.std() / math.sqrt(len(lp))).item()


@pytest.mark.parametrize("score", ["exact", "network"])
def test_one_level_is_the_last_level_alone(page, net, tmp_path, score):
    """L = 1 runs the last level, sigma_L = 1, for both scores: plain Langevin with step eps = 0.1 on
    q_1 (the network at its level 10). T = 100 steps from uniform starts bring the chains onto the
    modes (mean log p about -4.5); at sigma_1 = 20 the step alpha = eps = 0.1 would leave them spread
    (about -7). The page's mean log p (1280 chains) and the package's (4000 chains) agree within 4
    standard errors of the difference (each the std of log p over the chains / sqrt(chains), about 0.03)."""
    state = run_figure(page, tmp_path, live.ncsn_sampler_figure(net, MIX, seed=4),
                       {"scores": score, "n_levels": 1}, 100)
    assert state["sigmas"] == pytest.approx([1.0]) and state["t"] == state["total"] == 100
    if score == "network":
        assert state["network_levels"] == [9]
    fn = MIX.perturbed(1.0).score if score == "exact" else net.level_score(9)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        x = langevin_dynamics(fn, uniform_starts(4000, 8.0, generator=gen), 0.1, 100, gen)
    ref, se_ref = mean_log_p(x)
    se = math.hypot(se_ref * math.sqrt(4000 / 1280), se_ref)
    assert abs(state["mean_log_p"] - ref) < 4 * se, (state["mean_log_p"], ref, se)
    text = page.execute_script("return document.querySelector('.ncsn-live-stats').textContent;")
    assert "level 1 of 1, \u03c3 = 1.00" in text and "the last level alone" in text


def chart_pixels(drv, index: int, rgb) -> int:
    """How many pixels of the ``index``-th canvas of the page have the colour ``rgb`` (within 30)."""
    return drv.execute_script("""
        var c = document.querySelectorAll('canvas')[arguments[0]], d = c.getContext('2d').getImageData(0, 0, c.width,
          c.height).data, rgb = arguments[1], k = 0;
        for (var i = 0; i < d.length; i += 4)
          if (Math.abs(d[i] - rgb[0]) + Math.abs(d[i + 1] - rgb[1]) + Math.abs(d[i + 2] - rgb[2]) < 30) k += 1;
        return k;""", index, rgb)


def test_sampler_chart_follows_the_fraction_level_by_level(page, net, tmp_path):
    """Chapter 9's chart: the trace holds the fraction at (5, 5) every 2 steps (1000 steps, at most
    500 points) and at the end; at the end of each level it agrees with the package's annealed run on
    the exact scores of q_sigma_i (4000 chains) within 4 standard errors of the difference
    (sqrt(f (1 - f) (1/1280 + 1/4000)), at most 0.016); the green segments are each level's
    equilibrium, equilibrium_side_fraction(..., "perturbed"); the chart draws the trace."""
    state = run_figure(page, tmp_path, live.ncsn_sampler_figure(net, MIX, seed=5), {"scores": "exact"}, 1000)
    trace = state["trace"]
    assert [t for t, _ in trace] == list(range(0, 1001, 2))
    assert trace[-1][1] == pytest.approx(state["fraction"], abs=1e-12)
    eq = equilibrium_side_fraction(MIX, SIGMAS, "perturbed")
    assert torch.allclose(torch.tensor(state["equilibrium"], dtype=torch.float64), eq, atol=1e-6)
    gen = torch.Generator().manual_seed(1)
    _, states = annealed_langevin_dynamics(annealed_score_fn(MIX, SIGMAS, "perturbed"),
                                           uniform_starts(4000, 8.0, generator=gen), SIGMAS, 0.1, 100, gen,
                                           keep_every=100)
    page_at = dict((t, f) for t, f in trace)
    for i in range(1, 11):
        ref = mode_fractions(MIX, states[i])[1].item()
        se = math.sqrt(ref * (1 - ref) * (1 / 1280 + 1 / 4000))
        assert abs(page_at[100 * i] - ref) < 4 * se, (i, page_at[100 * i], ref, se)
    counts = [chart_pixels(page, 1, rgb) for rgb in ((214, 39, 40), (44, 160, 44))]
    assert min(counts) > 100, counts  # the trace in the chains' red, the levels' equilibria in green


def test_mixing_chart_draws_both_samplers(page, tmp_path):
    """Chapter 7's chart (the same fractionChart): the plain (red) and annealed (blue) traces and the
    green equilibria are drawn after a run."""
    fig = live.mixing_figure(MIX, SIGMAS, n=200)
    uid = show(page, tmp_path, fig)
    page.execute_script("document.getElementById(arguments[0]).figure.advance(1000);", uid)
    counts = [chart_pixels(page, 2, rgb) for rgb in ((214, 39, 40), (31, 119, 180), (44, 160, 44))]
    assert min(counts) > 100, counts
