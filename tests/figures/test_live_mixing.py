"""Chapter 7's live Figure 3 (kind "mixing") against the package: each level's equilibrium side
fraction, and the fractions that the figure's plain and annealed samplers reach at a weight set
with its slider, against the package's own runs at that weight, and the plain chains' spread
within each mode against the package's and the closed-form stationary variance."""

from __future__ import annotations

import json
import math

import pytest
import torch
from live_checks import check_live_figures
from live_pages import js

from ncsn_edu.figures import live
from ncsn_edu.sampling import annealed_langevin_dynamics, langevin_dynamics
from ncsn_edu.schedules import geometric_sigmas
from ncsn_edu.toy.annealing_theory import equilibrium_side_fraction
from ncsn_edu.toy.distributions import GaussianMixture, annealed_score_fn, mode_fractions, nearest_component

pytestmark = pytest.mark.slow
SIGMAS = geometric_sigmas(20.0, 1.0, 10)


@pytest.mark.parametrize("convention", ["code", "perturbed"])
def test_level_equilibrium_matches_the_package(page, convention):
    for w in (0.8, 0.3):
        mix = GaussianMixture([[-5.0, -5.0], [5.0, 5.0]], [1.0, 1.0], [1 - w, w], dtype=torch.float64)
        got = js(page, "var m = new L.Mixture(a0); return a1.map(function (s) { return L.sideFraction(m, 1, s, a2); })",
                 live.mixture_config(mix), SIGMAS.tolist(), convention)
        want = equilibrium_side_fraction(mix, SIGMAS, convention)
        assert torch.allclose(torch.tensor(got, dtype=torch.float64), want, atol=1e-6), (w, convention)


def package_runs(w, n, seed):
    """The package's plain (eps 0.1, 1000 steps) and annealed runs from uniform starts on [-8, 8]^2."""
    mix = GaussianMixture([[-5.0, -5.0], [5.0, 5.0]], 1.0, [1 - w, w])
    gen = torch.Generator().manual_seed(seed)
    start = (torch.rand(n, 2, generator=gen) * 2 - 1) * 8
    plain = langevin_dynamics(mix.score, start, 0.1, 1000, gen)
    annealed = annealed_langevin_dynamics(annealed_score_fn(mix, SIGMAS, "code"), start, SIGMAS, 0.1, 100, gen)
    return mix, plain, annealed


def spread_per_mode(mix, x):
    """For each mode, the per-coordinate variance of the offsets of the chains nearest to it, and its
    standard error sqrt((m4 - v^2) / count) over the pooled coordinates."""
    x = x.double()
    near = nearest_component(mix, x)
    out = []
    for k in range(len(mix.means)):
        off = (x[near == k] - mix.means[k].double()).flatten()
        v = off.pow(2).mean().item()
        out.append((v, math.sqrt((off.pow(4).mean().item() - v**2) / off.numel())))
    return out


def test_the_figure_at_a_chosen_weight_agrees_with_the_package(page, tmp_path):
    """Weight 0.35 set with the slider (default 0.8): annealed Langevin in the page tracks it, plain
    Langevin keeps its start's split, both as the package's own runs do, within 4 standard errors of
    the difference (1280 chains in the page, 4000 in the package). Within each mode the plain chains
    spread as the package's do and as Langevin with step eps settles on N(mu, v I): per coordinate
    v / (1 - eps / (4 v)) = 1.026 for v = 1, eps = 0.1 (the drift eps/2 s; a drift eps s would give
    v / (2 - eps / v) = 0.526, about 12 standard errors away: about 1280 coordinates per mode,
    s.e. sqrt(2 v^2 / 1280) = 0.04)."""
    w, n_page, n_ref = 0.35, 1280, 4000
    fig = live.mixing_figure(GaussianMixture.paper_toy(), SIGMAS, seed=3)
    path = tmp_path / "mixing.html"
    path.write_text(f"<!doctype html><meta charset='utf-8'><body>{fig._repr_html_()}</body>")
    page.get(path.as_uri())
    state = json.loads(page.execute_script("""
        var root = document.querySelector('[data-ncsn-live]'), r = root.querySelector('input[name=weight]');
        r.value = arguments[0]; r.dispatchEvent(new Event('input', {bubbles: true}));
        root.figure.advance(2000); return root.state();""", w))
    assert state["weight"] == pytest.approx(w) and state["t_plain"] == 1000 and state["t_annealed"] == 1000
    assert state["step_size"] == 0.1
    mix, ref_plain, ref_annealed = package_runs(w, n_ref, seed=0)
    for got, ref in ((state["fraction_plain"], mode_fractions(mix, ref_plain)[1].item()),
                     (state["fraction_annealed"], mode_fractions(mix, ref_annealed)[1].item())):
        se = math.sqrt(ref * (1 - ref) / n_page + ref * (1 - ref) / n_ref)
        assert abs(got - ref) < 4 * se, (got, ref, se)
    assert abs(state["fraction_annealed"] - w) < 4 * math.sqrt(w * (1 - w) / n_page)
    assert abs(state["fraction_plain"] - 0.5) < 0.06  # the uniform start's split, not the weight
    eps, v = 0.1, 1.0
    stationary = v / (1 - eps / (4 * v))
    page_plain = torch.tensor(state["points_plain"], dtype=torch.float64)
    for k, ((vp, sp), (vr, sr)) in enumerate(zip(spread_per_mode(mix, page_plain), spread_per_mode(mix, ref_plain))):
        assert abs(vp - vr) < 4 * math.hypot(sp, sr), (k, vp, vr, sp, sr)
        assert abs(vp - stationary) < 4 * sp, (k, vp, stationary, sp)
        assert abs(vr - stationary) < 4 * sr, (k, vr, stationary, sr)


def test_the_mixing_figure_responds(live_drv, tmp_path):
    fig = live.mixing_figure(GaussianMixture.paper_toy(), SIGMAS, n=400)
    path = tmp_path / "mixing.html"
    path.write_text(f"<!doctype html><meta charset='utf-8'><body>{fig._repr_html_()}</body>")
    assert check_live_figures(live_drv, path.as_uri()) == 1
    with pytest.raises(ValueError):
        live.mixing_figure(GaussianMixture.paper_toy(), [1.0, 20.0])
