"""The live figures' JavaScript computes what the Python package computes, in a real headless
Chromium with no network: mixture densities and scores (perturbed and not), the toy networks'
forward pass, one Langevin step with the same noise, and the statistics of the in-page
samplers against closed forms and the package's own runs."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch
from live_pages import all_kinds, js, kind_source, trained_like

from ncsn_edu.figures import live
from ncsn_edu.sampling import annealed_langevin_dynamics, langevin_dynamics
from ncsn_edu.schedules import geometric_sigmas
from ncsn_edu.toy.distributions import GaussianMixture, annealed_score_fn, mode_fractions, spread_around_modes
from ncsn_edu.toy.nets import ConditionalScoreMLP, ScoreMLP

#: Ten seconds or more on one core (a browser and statistical runs): parallel runs start it first.
pytestmark = pytest.mark.slow


def test_mixture_log_density_and_score_match_the_package(page):
    mix = GaussianMixture([[-5.0, -5.0], [5.0, 5.0], [3.0, -2.0]], [1.0, 0.7, 1.6], [0.2, 0.5, 0.3],
                          dtype=torch.float64)
    pts = torch.rand(200, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 24 - 12
    for sigma in (0.0, 0.5, 3.0):
        for convention in ("perturbed", "code"):
            if convention == "code" and sigma == 0:
                continue
            ref = mix.perturbed(sigma) if convention == "perturbed" else GaussianMixture(
                mix.means, sigma, mix.weights, dtype=torch.float64)
            got = js(page, """var m = new L.Mixture(a0), n = a1.length / 2, lp = [];
                for (var i = 0; i < n; i++) lp.push(m.logProb(a1[2 * i], a1[2 * i + 1], a2, a3));
                return {lp: lp, s: Array.from(m.score(Float64Array.from(a1), n, null, a2, a3))};""",
                     live.mixture_config(mix), pts.flatten().tolist(), sigma, convention)
            lp = torch.tensor(got["lp"], dtype=torch.float64)
            assert torch.allclose(lp, ref.log_prob(pts), rtol=1e-12, atol=1e-10)
            assert torch.allclose(torch.tensor(got["s"], dtype=torch.float64).view(-1, 2), ref.score(pts),
                                  rtol=1e-10, atol=1e-10), (sigma, convention)


def forward_in_page(drv, spec, pts, level=None, sigma=None):
    return torch.tensor(js(drv, """var net = new L.Network(a0), n = a1.length / 2;
        return Array.from(net.forward(Float64Array.from(a1), n, null, a2, a3));""",
                          spec, pts.flatten().tolist(), level, sigma), dtype=torch.float64).view(-1, 2)


def test_network_forward_pass_matches_pytorch(page):
    torch.manual_seed(0)
    pts = torch.rand(64, 2, generator=torch.Generator().manual_seed(1)) * 16 - 8
    sigmas = geometric_sigmas(20.0, 1.0, 10)
    nets = [(ScoreMLP(), None, None)]
    for condition in ("level", "sigma"):
        for scale in (False, True):
            net = trained_like(ConditionalScoreMLP(sigmas, condition=condition, scale_output=scale), seed=len(nets))
            nets += [(net, 3, None), (net, 9, None)]
            if condition == "sigma":
                nets.append((net, None, 2.7))  # a sigma between the levels
    for net, level, sigma in nets:
        spec = live.export_network(net)
        got = forward_in_page(page, spec, pts, level, sigma)
        with torch.no_grad():
            if isinstance(net, ScoreMLP):
                want32, want64 = net(pts), net.double()(pts.double())
            elif sigma is not None:
                want32, want64 = net.score_at(pts, sigma), net.double().score_at(pts.double(), sigma)
            else:
                labels = torch.full((len(pts),), level, dtype=torch.long)
                want32, want64 = net(pts, labels), net.double()(pts.double(), labels)
        net.float()
        # the page computes in double precision from the float32 weights: equal to PyTorch in float64
        # up to rounding, and to PyTorch's own float32 pass up to float32 rounding
        assert torch.allclose(got, want64, rtol=1e-9, atol=1e-9), (type(net).__name__, level, sigma)
        scale = want32.abs().max().item()
        assert (got - want32.double()).abs().max().item() <= 1e-5 * scale + 1e-6


def test_float16_export_runs_the_rounded_weights(page):
    net = trained_like(ScoreMLP(), seed=5)
    pts = torch.rand(32, 2, generator=torch.Generator().manual_seed(2)) * 16 - 8
    got = forward_in_page(page, live.export_network(net, dtype="float16"), pts)
    rounded = ScoreMLP().double()
    rounded.load_state_dict({k: v.half().double() for k, v in net.state_dict().items()})
    with torch.no_grad():
        assert torch.allclose(got, rounded(pts.double()), rtol=1e-9, atol=1e-9)


def test_one_langevin_step_with_the_same_noise(page):
    mix = GaussianMixture.paper_toy(dtype=torch.float64)
    x = torch.rand(50, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 16 - 8
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    want = langevin_dynamics(mix.score, x, 0.37, 1, generator=torch.Generator().manual_seed(4))
    got = js(page, """var m = new L.Mixture(a0), x = Float64Array.from(a1), n = x.length / 2;
        L.langevinStep(x, n, m.score(x, n), a2, null, Float64Array.from(a3)); return Array.from(x);""",
             live.mixture_config(mix), x.flatten().tolist(), 0.37, z.flatten().tolist())
    assert torch.allclose(torch.tensor(got, dtype=torch.float64).view(-1, 2), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("convention", ["paper", "code"])
def test_annealed_steps_with_the_same_noise(page, convention):
    """Three levels, two steps each: every step's coefficients scale with sigma_i^2 / sigma_L^2."""
    mix = GaussianMixture.paper_toy(dtype=torch.float64)
    sigmas = torch.tensor([6.0, 2.5, 1.0], dtype=torch.float64)
    x = torch.rand(40, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 16 - 8
    g = torch.Generator().manual_seed(6)
    z = [torch.randn(x.shape, generator=g, dtype=torch.float64) for _ in range(6)]
    score_fn = annealed_score_fn(mix, sigmas, "perturbed")
    want = annealed_langevin_dynamics(score_fn, x, sigmas, 0.05, 2, torch.Generator().manual_seed(6),
                                      convention=convention)
    got = js(page, """var m = new L.Mixture(a0), x = Float64Array.from(a1), n = x.length / 2, z = a2, sig = a3, k = 0;
        for (var i = 0; i < sig.length; i++) for (var t = 0; t < 2; t++) {
          var c = L.stepCoefficients(a4, sig[i], sig[sig.length - 1], a5);
          L.step(x, n, m.score(x, n, null, sig[i]), c[0], c[1], null, Float64Array.from(z[k++]));
        }
        return Array.from(x);""", live.mixture_config(mix), x.flatten().tolist(),
             [zi.flatten().tolist() for zi in z], sigmas.tolist(), 0.05, convention)
    assert torch.allclose(torch.tensor(got, dtype=torch.float64).view(-1, 2), want, rtol=1e-10, atol=1e-10)


def test_the_resumable_annealed_run_is_algorithm_1(page):
    """AnnealedRun, which the figures use, takes the same steps as the explicit loop above: the
    same seeded noise gives the same points, and the run visits every level n_steps_each times."""
    got = js(page, """var m = new L.Mixture(a0), sig = [6, 2.5, 1], n = 30;
        function make(seed) { var r = new L.Rng(seed), x = new Float64Array(2 * n);
          for (var i = 0; i < 2 * n; i++) x[i] = r.uniform() * 16 - 8; return {r: r, x: x}; }
        var a = make(7), b = make(7), levels = [];
        var run = new L.AnnealedRun({sigmas: sig, eps: 0.05, nStepsEach: 4, x: a.x, n: n, rng: a.r,
          scoreAt: function (x, n, out, level, sigma) { levels.push(level); return m.score(x, n, out, sigma); }});
        run.advance(5); var done = run.advance(100);
        for (var i = 0; i < sig.length; i++) for (var t = 0; t < 4; t++) {
          var c = L.stepCoefficients(0.05, sig[i], 1, "paper");
          L.step(b.x, n, m.score(b.x, n, null, sig[i]), c[0], c[1], b.r);
        }
        var diff = 0; for (var j = 0; j < 2 * n; j++) diff = Math.max(diff, Math.abs(a.x[j] - b.x[j]));
        return {diff: diff, levels: levels, done: done, t: run.t};""", live.mixture_config(GaussianMixture.paper_toy()))
    assert got["done"] and got["t"] == 12 and got["diff"] == 0
    assert got["levels"] == [0] * 4 + [1] * 4 + [2] * 4


def test_seeded_generator_repeats_and_is_standard_normal(page):
    got = js(page, """var r = new L.Rng(11), a = [], i; for (i = 0; i < 5; i++) a.push(r.normal());
        r.reset(); var b = []; for (i = 0; i < 5; i++) b.push(r.normal());
        var n = 200000, s = 0, s2 = 0, s4 = 0;
        for (i = 0; i < n; i++) { var v = r.normal(); s += v; s2 += v * v; s4 += v * v * v * v; }
        return {a: a, b: b, mean: s / n, var: s2 / n, m4: s4 / n, n: n};""")
    assert got["a"] == got["b"]
    n = got["n"]
    assert abs(got["mean"]) < 4 / math.sqrt(n)
    assert abs(got["var"] - 1) < 4 * math.sqrt(2 / n)
    assert abs(got["m4"] - 3) < 4 * math.sqrt(96 / n)  # Var(z^4) = 105 - 9


def test_in_page_annealed_langevin_finds_the_mode_weights(page):
    """Chapter 9's exact-score run (sigmas 20..1, 10 levels, eps 0.1, 100 steps each, uniform starts
    on [-8, 8]^2) puts 0.8 of the chains in the (5, 5) mode, within 4 standard errors."""
    n = 2000
    got = js(page, """var m = new L.Mixture(a0), r = new L.Rng(3), n = a1, x = new Float64Array(2 * n);
        for (var i = 0; i < 2 * n; i++) x[i] = (r.uniform() * 2 - 1) * 8;
        var run = new L.AnnealedRun({sigmas: L.geometricSigmas(20, 1, 10), eps: 0.1, nStepsEach: 100, x: x, n: n,
          rng: r, scoreAt: function (x, n, out, level, sigma) { return m.score(x, n, out, sigma); }});
        run.advance(1000); return m.modeFractions(x, n)[1];""", live.mixture_config(GaussianMixture.paper_toy()), n)
    assert abs(got - 0.8) < 4 * math.sqrt(0.8 * 0.2 / n), got


def test_in_page_plain_langevin_keeps_the_split_chapter_7_measures(page):
    """Plain Langevin (eps 0.1, 1000 steps) from uniform starts leaves the (5, 5) fraction where the
    package's own run leaves it (about one half, not 0.8): the two runs agree within 4 standard errors
    of their difference."""
    n = 4000
    mix = GaussianMixture.paper_toy()
    gen = torch.Generator().manual_seed(0)
    start = (torch.rand(n, 2, generator=gen) * 2 - 1) * 8
    ref = (langevin_dynamics(mix.score, start, 0.1, 1000, gen).sum(1) > 0).float().mean().item()
    got = js(page, """var m = new L.Mixture(a0), r = new L.Rng(5), n = a1;
        var x = new Float64Array(2 * n), s = new Float64Array(2 * n);
        for (var i = 0; i < 2 * n; i++) x[i] = (r.uniform() * 2 - 1) * 8;
        for (var t = 0; t < 1000; t++) { m.score(x, n, s); L.langevinStep(x, n, s, 0.1, r); }
        return m.modeFractions(x, n)[1];""", live.mixture_config(mix), n)
    p = (ref + got) / 2
    assert abs(got - ref) < 4 * math.sqrt(2 * p * (1 - p) / n), (got, ref)
    assert abs(got - 0.8) > 0.2  # and so far from the weight: the failure chapter 7 shows


def test_in_page_langevin_settles_at_the_closed_form_variance(page):
    """On N(0, v I) unadjusted Langevin settles at v / (1 - eps / (4 v)) (chapter 1). Chains start
    from exact samples and run until a fraction e^-8 of the start is left."""
    v, eps, n = 0.5, 0.8, 20000
    steps = math.ceil(8 / (1 - (1 - eps / (2 * v)) ** 2))
    got = js(page, """var m = new L.Mixture({means: [[0, 0]], stds: [Math.sqrt(a0)], weights: [1]}), r = new L.Rng(9);
        var n = a2, x = m.sample(n, r), s = new Float64Array(2 * n);
        for (var t = 0; t < a3; t++) { m.score(x, n, s); L.langevinStep(x, n, s, a1, r); }
        var q = 0, q2 = 0; for (var i = 0; i < 2 * n; i++) { q += x[i] * x[i]; q2 += x[i] * x[i] * x[i] * x[i]; }
        return {var: q / (2 * n), m4: q2 / (2 * n)};""", v, eps, n, steps)
    theory = v / (1 - eps / (4 * v))
    se = math.sqrt((got["m4"] - got["var"] ** 2) / (2 * n))  # coordinates of one chain are independent here
    assert abs(got["var"] - theory) < 4 * se, (got["var"], theory, se)
    assert abs(got["var"] - v) > 10 * se  # the inflation is resolved, so the check has teeth


def as_js_numbers(x) -> list[str]:
    """The coordinates of x as text that JavaScript's Number() reads back exactly, non-finite ones included."""
    names = {math.inf: "Infinity", -math.inf: "-Infinity"}
    return ["NaN" if math.isnan(v) else names.get(v, repr(v)) for v in x.flatten().tolist()]


def test_spread_around_modes_is_the_packages(page):
    """L.spreadAroundModes, which the langevin figure prints, returns what spread_around_modes returns on the
    same points, to 1e-12 relative: over the finite chains only, when some are NaN or infinite, and NaN with
    count 0 when none is finite."""
    mix = GaussianMixture([[-5.0, -5.0], [5.0, 5.0], [3.0, -2.0]], [1.0, 0.7, 1.6], [0.2, 0.5, 0.3],
                          dtype=torch.float64)
    x = torch.rand(500, 2, generator=torch.Generator().manual_seed(8), dtype=torch.float64) * 20 - 10
    nonfinite = torch.tensor([[math.nan, 1.0], [2.0, math.inf], [-math.inf, -math.inf], [math.nan, math.nan]],
                             dtype=torch.float64)
    cases = {"finite": x, "some chains not finite": torch.cat([x[:100], nonfinite, x[100:]]),
             "none finite": nonfinite, "one chain": x[:1]}
    for name, pts in cases.items():
        got = js(page, "var p = Float64Array.from(a1.map(Number)); return L.spreadAroundModes(new L.Mixture(a0), p, "
                 "p.length / 2);", live.mixture_config(mix), as_js_numbers(pts))
        want = spread_around_modes(mix, pts)
        assert got["count"] == want["count"], name
        for key in ("variance", "variance_se", "std", "std_se"):
            if math.isnan(want[key]):
                assert got[key] is None, (name, key)  # NaN is null in JSON
            else:
                assert got[key] == pytest.approx(want[key], rel=1e-12, abs=0), (name, key)


def test_mode_fractions_count_the_finite_chains_only(page):
    """Mixture.modeFractions, which the samplers print, is mode_fractions over the finite chains: when some
    chains diverged (NaN or infinite) the count per mode is divided by the m finite ones, not by all n
    (chapter 9 prints the fraction beside "k of n chains diverged"); NaN when none is finite. Here 150 of
    550 chains are not finite, so dividing by n would shrink every fraction by 400/550."""
    mix = GaussianMixture([[-5.0, -5.0], [5.0, 5.0], [3.0, -2.0]], [1.0, 0.7, 1.6], [0.2, 0.5, 0.3],
                          dtype=torch.float64)
    x = torch.rand(400, 2, generator=torch.Generator().manual_seed(8), dtype=torch.float64) * 20 - 10
    bad = torch.tensor([[math.nan, 1.0], [2.0, math.inf], [-math.inf, -math.inf], [math.nan, math.nan],
                        [1e300, math.inf], [0.0, -math.inf]], dtype=torch.float64).repeat(25, 1)
    mixed = torch.cat([x[:100], bad, x[100:]])
    cases = {"finite": (x, x), "some chains not finite": (mixed, x), "one chain": (x[:1], x[:1])}
    code = ("var p = Float64Array.from(a1.map(Number));"
            "return Array.from(new L.Mixture(a0).modeFractions(p, p.length / 2));")
    for name, (pts, finite) in cases.items():
        got = js(page, code, live.mixture_config(mix), as_js_numbers(pts))
        want = mode_fractions(mix, finite)
        assert got == pytest.approx(want.tolist(), rel=1e-12, abs=0), name
        assert sum(got) == pytest.approx(1.0, rel=1e-12), name
    assert js(page, code, live.mixture_config(mix), as_js_numbers(bad)) == [None] * 3  # NaN is null in JSON


def test_uniform_starts_keep_the_kinds_draw_order(page):
    """Chain i's x, then its y, each (u * 2 - 1) * lim: the order every seeded figure has always used."""
    got = js(page, """var a = L.uniformStarts(new L.Rng(7), 50, 8), r = new L.Rng(7), b = [];
        for (var i = 0; i < 100; i++) b.push((r.uniform() * 2 - 1) * 8);
        return {a: Array.from(a), b: b};""")
    assert got["a"] == got["b"]


def emitted_settings(fig) -> dict:
    """The settings JSON that a figure's HTML carries to its kind."""
    html = fig._repr_html_()
    start = html.index('class="ncsn-live-config">') + len('class="ncsn-live-config">')
    return json.loads(html[start:html.index("</script>", start)].replace("<\\/", "</"))


def figures_with_default_settings() -> list:
    """One figure of every kind, made with the figure functions' own defaults (perturbed with and without networks)."""
    from ncsn_edu.experiments.low_density import load_result
    from ncsn_edu.resources import resource_path

    mix, sigmas = GaussianMixture.paper_toy(), geometric_sigmas(20.0, 1.0, 10)
    cond = ConditionalScoreMLP(sigmas, hidden=16)
    result = load_result(resource_path("low_density_ssm.pt"))
    first = min(int(s) for s in result["snapshots"])
    return [live.langevin_figure(mix), live.mixing_figure(mix, sigmas), live.ncsn_field_figure(cond, mix),
            live.ncsn_sampler_figure(cond, mix), live.perturbed_figure(mix),
            live.perturbed_figure(mix, networks={1.0: ScoreMLP(hidden=8)}),
            live.ssm_error_figure(result, steps=[first], n=10)]


def test_every_setting_a_kind_reads_comes_from_python():
    """Defaults live in Python only: each kind's JavaScript reads cfg.<name> with no fallback of its own
    (cfg.x || default, cfg.x === undefined ? ...), and the settings its figure function emits hold every
    such name, so a setting that Python does not send fails here and not as undefined in a reader's page."""
    figures = figures_with_default_settings()
    # the toy kinds; mnist.js (the image figures) is held to the same rule in tests/figures/test_live_mnist.py
    assert sorted({fig.kind for fig in figures}) == [k for k in all_kinds() if k != "mnist"]
    for fig in figures:
        source = kind_source(fig.kind)
        assert "cfg[" not in source, fig.kind  # every read is cfg.<name>, which the scan below sees
        fallbacks = re.findall(r"cfg\.\w+\s*(?:\|\||\?\?|[!=]==?\s*(?:undefined|null))", source)
        assert not fallbacks, (fig.kind, fallbacks)
        read = set(re.findall(r"\bcfg\.([A-Za-z_]\w*)", source))
        assert read, fig.kind
        missing = sorted(read - set(emitted_settings(fig)))
        assert not missing, f"{fig.kind} reads settings that live.py does not send: {missing}"
