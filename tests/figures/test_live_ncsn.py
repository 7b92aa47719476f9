"""Chapters 8 and 9's live figures (kinds "ncsn_field" and "ncsn_sampler"): the trained toy NCSN in
the page against the package: the field error the figure prints, the levels it samples with, and the
fraction of the page's annealed Langevin chains in the (5, 5) mode against the package's own run."""

from __future__ import annotations

import json
import math

import pytest
import torch
from browser import open_page
from live_checks import check_live_figures
from live_pages import js

from ncsn_edu.figures import live
from ncsn_edu.sampling import annealed_langevin_dynamics
from ncsn_edu.schedules import geometric_sigmas
from ncsn_edu.toy.distributions import GaussianMixture, annealed_score_fn, mode_fractions
from ncsn_edu.toy.training import train_toy_ncsn

pytestmark = pytest.mark.slow
SIGMAS = geometric_sigmas(20.0, 1.0, 10)
MIX = GaussianMixture.paper_toy()


@pytest.fixture(scope="module")
def net():
    """A small toy NCSN, briefly trained (the comparisons hold for any weights)."""
    return train_toy_ncsn(SIGMAS, n_steps=300, hidden=32, seed=0)[0]


def test_field_error_matches_a_direct_computation(page, net):
    nx, lim, level = 40, 8.0, 6
    sigma = SIGMAS[level].item()
    got = js(page, "return L.fieldError(new L.Mixture(a0), new L.Network(a1), a2, a3, a4, a5, null);",
             live.mixture_config(MIX), live.export_network(net), level, sigma, lim, nx)
    t = -lim + (torch.arange(nx, dtype=torch.float64) + 0.5) * 2 * lim / nx
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    g = torch.stack([xx.flatten(), yy.flatten()], 1)
    q = MIX.to(dtype=torch.float64).perturbed(sigma)
    with torch.no_grad():
        s_net = net.double()(g, torch.full((len(g),), level, dtype=torch.long))
    net.float()
    s = q.score(g)
    err, w = (s_net - s).norm(dim=1), q.log_prob(g).exp()
    assert got["weighted"] == pytest.approx(((w * err).sum() / w.sum()).item(), rel=1e-9)
    assert got["weightedRelative"] == pytest.approx(((w * err).sum() / (w * s.norm(dim=1)).sum()).item(), rel=1e-9)
    assert got["relative"] == pytest.approx((err.sum() / s.norm(dim=1).sum()).item(), rel=1e-9)
    assert got["rmsRelative"] == pytest.approx(((w * err**2).sum() / (w * s.pow(2).sum(1)).sum()).sqrt().item(),
                                               rel=1e-9)


def test_level_subsets_keep_the_first_and_last_level(page):
    got = js(page, "return [10, 1, 4, 2].map(function (k) { return L.levelSubset(10, k); });")
    assert got == [list(range(10)), [9], [0, 3, 6, 9], [0, 9]]


def run_figure(drv, tmp_path, fig, settings: dict, steps: int) -> dict:
    path = tmp_path / "ncsn.html"
    path.write_text(f"<!doctype html><meta charset='utf-8'><body>{fig._repr_html_()}</body>")
    open_page(drv, path.as_uri())
    return json.loads(drv.execute_script("""
        var root = document.querySelector('[data-ncsn-live]'), s = arguments[0];
        Object.keys(s).forEach(function (name) {
          var el = root.querySelector('[name="' + name + '"]');
          if (el.ncsnControl) el.ncsnControl.set(s[name]); else el.value = s[name];
          el.dispatchEvent(new Event(el.tagName === 'SELECT' ? 'change' : 'input', {bubbles: true}));
        });
        root.figure.advance(arguments[1]); return root.state();""", settings, steps))


def package_fraction(score_fn, sigmas, n, seed, eps=0.1, steps=100):
    gen = torch.Generator().manual_seed(seed)
    x = annealed_langevin_dynamics(score_fn, (torch.rand(n, 2, generator=gen) * 2 - 1) * 8, sigmas, eps, steps, gen)
    return mode_fractions(MIX, x)[1].item()


def agree(got, ref, n_page, n_ref):
    se = math.sqrt(ref * (1 - ref) / n_page + ref * (1 - ref) / n_ref)
    assert abs(got - ref) < 4 * se, (got, ref, se)


def test_page_sampler_with_the_network_agrees_with_the_package(page, net, tmp_path):
    state = run_figure(page, tmp_path, live.ncsn_sampler_figure(net, MIX, seed=1), {}, 1000)
    assert state["t"] == state["total"] == 1000 and state["network_levels"] == list(range(10))
    agree(state["fraction"], package_fraction(net, SIGMAS, 4000, seed=0), 1280, 4000)


def test_page_sampler_with_exact_scores_and_four_levels_agrees_with_the_package(page, net, tmp_path):
    """L = 4 levels from 20 to 1, T = 50, eps = 0.2 set with the figure's controls."""
    state = run_figure(page, tmp_path, live.ncsn_sampler_figure(net, MIX, seed=2),
                       {"scores": "exact", "n_levels": 4, "n_steps_each": 50, "eps": 0.2}, 200)
    assert state["t"] == 200 and state["sigmas"] == pytest.approx(geometric_sigmas(20.0, 1.0, 4).tolist())
    sig = geometric_sigmas(20.0, 1.0, 4)
    ref = package_fraction(annealed_score_fn(MIX, sig, "perturbed"), sig, 4000, 0, 0.2, 50)
    agree(state["fraction"], ref, 1280, 4000)


def test_both_ncsn_figures_respond(live_drv, net, tmp_path):
    figures = {"field": live.ncsn_field_figure(net, MIX), "sampler": live.ncsn_sampler_figure(net, MIX, n=400)}
    for name, fig in figures.items():
        path = tmp_path / f"{name}.html"
        path.write_text(f"<!doctype html><meta charset='utf-8'><body>{fig._repr_html_()}</body>")
        assert check_live_figures(live_drv, path.as_uri()) == 1
    with pytest.raises(TypeError):
        live.ncsn_field_figure(torch.nn.Linear(2, 2), MIX)
    with pytest.raises(ValueError):
        live.ncsn_sampler_figure(net, MIX, convention="other")


def test_page_sampler_diverges_where_the_package_does(page, net, tmp_path):
    """eps = 5 is past the top level's stability threshold (alpha_1 = 400 eps > 4 (1 + 20^2)): the
    package's float32 chains overflow and end as NaN (chapter 9's table). The page computes in
    float64, where the chains could shrink back from 1e100 at the stable bottom levels; it must
    lose them as the package does."""
    gen = torch.Generator().manual_seed(0)
    x = annealed_langevin_dynamics(net, (torch.rand(200, 2, generator=gen) * 2 - 1) * 8, SIGMAS, 5.0, 100, gen)
    assert not torch.isfinite(x).any()
    state = run_figure(page, tmp_path, live.ncsn_sampler_figure(net, MIX, n=200), {"eps": 5}, 1000)
    assert state["t"] == 1000 and state["eps"] == 5 and state["finite"] == 0
    text = page.execute_script("return document.querySelector('.ncsn-live-stats').textContent;")
    assert "all 200 chains diverged" in text


@pytest.mark.parametrize("level", [0, 9])
def test_field_figure_prints_the_chapters_relative_error(page, net, tmp_path, level):
    """The figure's relative error (the grid quadrature over a square that holds q) agrees with
    the Monte Carlo estimate on samples of q_sigma that chapter 8's table prints, within four
    standard errors (delta method). At sigma_1 = 20 most of q lies outside the [-8, 8]^2 window,
    so a quadrature over the window alone would not agree."""
    path = tmp_path / "field.html"
    fig = live.ncsn_field_figure(net, MIX, level=level)
    path.write_text(f"<!doctype html><meta charset='utf-8'><body>{fig._repr_html_()}</body>")
    page.get(path.as_uri())
    state = json.loads(page.execute_script("return document.querySelector('[data-ncsn-live]').state();"))
    assert state["level"] == level and state["cover"] >= 5 + 6 * math.sqrt(1 + SIGMAS[level].item() ** 2) - 1e-9
    q = MIX.to(dtype=torch.float64).perturbed(SIGMAS[level].item())
    x = q.sample(20_000, torch.Generator().manual_seed(5))
    with torch.no_grad():
        s_net = net.double()(x, torch.full((len(x),), level, dtype=torch.long))
    net.float()
    s = q.score(x)
    e2, s2 = (s_net - s).pow(2).sum(1), s.pow(2).sum(1)
    ratio = e2.mean() / s2.mean()
    se_ratio = ((e2 - ratio * s2) / s2.mean()).std() / math.sqrt(len(x))
    ref, se = ratio.sqrt().item(), (se_ratio / (2 * ratio.sqrt())).item()
    assert abs(state["rms_relative_error"] - ref) < 4 * se, (state["rms_relative_error"], ref, se)


def test_the_level_slider_shows_the_levels_the_network_uses(page, net, tmp_path):
    """The level-conditioned network has ten levels: asking it for 20 runs ten, and the slider says 10."""
    state = run_figure(page, tmp_path, live.ncsn_sampler_figure(net, MIX, n=100), {"n_levels": 20}, 0)
    assert state["network_levels"] == list(range(10)) and state["total"] == 1000
    shown = page.execute_script("return document.querySelector('[name=\"n_levels\"]').ncsnControl.get();")
    assert shown == 10
    # with exact scores any L runs (set after the scores: the driver passes the settings in sorted order)
    (tmp_path / "exact").mkdir()
    run_figure(page, tmp_path / "exact", live.ncsn_sampler_figure(net, MIX, n=100), {"scores": "exact"}, 0)
    state = json.loads(page.execute_script("""
        var root = document.querySelector('[data-ncsn-live]'), el = root.querySelector('[name="n_levels"]');
        el.ncsnControl.set(20); el.dispatchEvent(new Event('input', {bubbles: true})); return root.state();"""))
    assert state["score"] == "exact" and len(state["sigmas"]) == 20
