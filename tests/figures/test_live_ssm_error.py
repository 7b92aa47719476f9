"""Chapter 6's live figure (kind ``ssm_error``) in headless Chromium: the committed Figure 2
network at every saved training step runs in the page, and what the page prints is what the
package computes: the weighted, high- and low-density errors of ``score_error_stats``, the error
by bands of |x1 + x2|, and the readout where the reader clicks. The page runs the float16-rounded
weights (``export_network(..., dtype="float16")``), so it is compared to float64 PyTorch on those
weights to rounding, and to the package's float32 numbers (which it prints beside its own) to
within the float16 rounding's effect."""

from __future__ import annotations

import json
import time

import matplotlib.pyplot as plt
import pytest
import torch
from browser import browser, open_page
from live_pages import page_html

from ncsn_edu.experiments.low_density import load_result
from ncsn_edu.figures.live import SSM_ERROR_BANDS, ssm_error_figure
from ncsn_edu.resources import resource_path
from ncsn_edu.toy.distributions import GaussianMixture
from ncsn_edu.toy.domain import grid
from ncsn_edu.toy.metrics import score_error_stats
from ncsn_edu.toy.nets import ScoreMLP, model_at

#: A browser and ten error maps: parallel runs start it first.
pytestmark = pytest.mark.slow

MIX64 = GaussianMixture.paper_toy(dtype=torch.float64)


@pytest.fixture(scope="module")
def result():
    return load_result(resource_path("low_density_ssm.pt"))


@pytest.fixture(scope="module")
def page(result, tmp_path_factory):
    """The figure made by ssm_error_figure, with a static fallback, mounted in a page of its own."""
    torch.set_num_threads(1)
    fallback, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1])
    fig = ssm_error_figure(result, fallback=fallback, title="test")
    path = tmp_path_factory.mktemp("ssm_error") / "page.html"
    path.write_text(page_html(fig._repr_html_()))
    drv = browser()
    drv.set_window_size(1300, 1200)
    open_page(drv, path.as_uri())
    wait_computed(drv)
    yield drv
    drv.quit()


def state(drv) -> dict:
    return json.loads(drv.execute_script("return document.querySelector('[data-ncsn-live]').state();"))


def wait_computed(drv, step_index=None, timeout=60.0) -> dict:
    t0 = time.time()
    while time.time() - t0 < timeout:
        st = state(drv)
        if st["computed"] and (step_index is None or st["step_index"] == step_index):
            return st
        time.sleep(0.1)
    raise AssertionError(f"the error map was not computed within {timeout} s: {st}")


def set_slider(drv, name: str, value) -> None:
    drv.execute_script("""var i = document.querySelector('[data-ncsn-live] input[name="' + arguments[0] + '"]');
        i.value = arguments[1]; i.dispatchEvent(new Event('input'));""", name, str(value))


def canvases(drv) -> list[str]:
    return drv.execute_script("return Array.from(document.querySelectorAll('[data-ncsn-live] canvas'))"
                              ".map(function (c) { return c.toDataURL(); });")


def rounded(result, step) -> ScoreMLP:
    """The network the page runs: the snapshot's weights rounded to float16, in float64."""
    model = ScoreMLP().double()
    model.load_state_dict({k: v.half().double() for k, v in result["snapshots"][step].items()})
    return model.eval()


def reference(model, low_fraction=1e-3) -> dict:
    """score_error_stats' numbers and the band split, in float64, on its grid."""
    t = torch.linspace(-8.0, 8.0, 100, dtype=torch.float64)
    Y, X = torch.meshgrid(t, t, indexing="ij")
    pts = torch.stack([X.flatten(), Y.flatten()], 1)
    assert torch.allclose(pts.float(), grid(8.0, 100)[2])  # the package's grid, in float64
    with torch.no_grad():
        s, ex = model(pts), MIX64.score(pts)
    err = (s - ex).norm(dim=1)
    p = MIX64.log_prob(pts).exp()
    high = p >= low_fraction * p.max()
    w = (p * err).sum() / p.sum()
    u = (pts[:, 0] + pts[:, 1]).abs()
    bands = []
    for lo, hi in zip(SSM_ERROR_BANDS, SSM_ERROR_BANDS[1:]):
        k = (u >= lo) & (u < hi)
        d = s[k] - ex[k]
        bands.append({"n": int(k.sum()), "relative_error": (d.pow(2).sum() / ex[k].pow(2).sum()).sqrt().item(),
                      "mean_cosine": torch.nn.functional.cosine_similarity(s[k], ex[k], dim=1).mean().item(),
                      "mean_error": d.norm(dim=1).mean().item()})
    return {"weighted_error": w.item(), "high_density_error": err[high].mean().item(),
            "low_density_error": err[~high].mean().item(), "ratio": (err[~high].mean() / w).item(),
            "low_share": (~high).double().mean().item(), "bands": bands}


def test_mounts_hides_the_fallback_and_shows_the_last_step(page, result):
    st = state(page)
    assert st["kind"] == "ssm_error" and st["dtype"] == "float16"
    assert st["step"] == max(result["snapshots"]) and st["step_index"] == len(result["snapshots"]) - 1
    assert page.execute_script("return document.querySelector('.ncsn-live-fallback').style.display") == "none"
    assert page.execute_script("return document.querySelectorAll('[data-ncsn-live] canvas').length") == 2


def test_live_errors_and_bands_match_the_package_at_every_saved_step(page, result):
    """Each step: the page's numbers equal float64 PyTorch on the float16 weights (to rounding) and
    the package's score_error_stats on them; the package's float32 numbers it prints are
    score_error_stats of model_at(result, step), and differ from the live ones by the float16
    rounding only (under 1%)."""
    steps = sorted(result["snapshots"])
    for i, step in enumerate(steps):
        set_slider(page, "step", i)
        st = wait_computed(page, i)
        assert st["step"] == step
        live, ref = st["live"], reference(rounded(result, step))
        for key in ("weighted_error", "high_density_error", "low_density_error", "ratio", "low_share"):
            assert live[key] == pytest.approx(ref[key], rel=1e-9), (step, key)
        for got, want in zip(live["bands"], ref["bands"], strict=True):
            assert got["n"] == want["n"]
            for key in ("relative_error", "mean_cosine", "mean_error"):
                assert got[key] == pytest.approx(want[key], rel=1e-9, abs=1e-12), (step, got, want)
        m16 = rounded(result, step)
        pkg16 = score_error_stats(lambda x, m=m16: m(x.double()), MIX64)
        pkg32 = score_error_stats(model_at(result, step))
        for key in ("weighted_error", "high_density_error", "low_density_error", "ratio"):
            assert live[key] == pytest.approx(pkg16[key], rel=1e-5), (step, key)
            assert st["package"][key] == pytest.approx(pkg32[key], rel=1e-6), (step, key)
            assert live[key] == pytest.approx(pkg32[key], rel=0.01), (step, key)
    assert sum(b["n"] for b in ref["bands"]) == 100 * 100  # the bands cover the grid


def test_the_step_and_threshold_sliders_redraw(page, result):
    set_slider(page, "step", len(result["snapshots"]) - 1)
    wait_computed(page, len(result["snapshots"]) - 1)
    before = canvases(page)
    set_slider(page, "step", 3)
    st = wait_computed(page, 3)
    after = canvases(page)
    assert before[0] != after[0] and before[1] != after[1]
    # the threshold: a slider position that is no round number moves the outline and the split
    set_slider(page, "low_fraction", 437)
    time.sleep(0.3)
    moved = state(page)
    assert moved["low_fraction"] != st["low_fraction"] and canvases(page)[1] != after[1]
    ref = reference(rounded(result, sorted(result["snapshots"])[3]), moved["low_fraction"])
    assert moved["live"]["low_density_error"] == pytest.approx(ref["low_density_error"], rel=1e-9)
    assert moved["live"]["low_share"] == pytest.approx(ref["low_share"], rel=1e-12)
    set_slider(page, "low_fraction", 600)  # back to 10^-3


def test_a_click_reads_the_error_there(page, result):
    k = len(result["snapshots"]) - 1
    set_slider(page, "step", k)
    wait_computed(page, k)
    before = canvases(page)
    for canvas, (x, y) in [(0, (0.7, -1.3)), (1, (5.2, 4.1)), (1, (-6.0, 6.5))]:
        page.execute_script("""var c = document.querySelectorAll('[data-ncsn-live] canvas')[arguments[0]];
            var r = c.getBoundingClientRect(), left = 38, top = 22, right = arguments[0] ? 72 : 12;
            var size = Math.min(c.width - left - right, c.height - top - 32);  // the figure's L.View margins
            var px = left + (arguments[1] + 8) / 16 * size, py = top + (8 - arguments[2]) / 16 * size;
            c.dispatchEvent(new MouseEvent('click', {bubbles: true, clientX: r.left + px * r.width / c.width,
              clientY: r.top + py * r.height / c.height}));""", canvas, x, y)
        pt = state(page)["point"]
        assert abs(pt["x"] - x) < 0.1 and abs(pt["y"] - y) < 0.1  # within a pixel or two
        q = torch.tensor([[pt["x"], pt["y"]]], dtype=torch.float64)
        with torch.no_grad():
            s, ex = rounded(result, max(result["snapshots"]))(q)[0], MIX64.score(q)[0]
        t = torch.linspace(-8.0, 8.0, 100, dtype=torch.float64)
        Y, X = torch.meshgrid(t, t, indexing="ij")
        p_max = MIX64.log_prob(torch.stack([X.flatten(), Y.flatten()], 1)).exp().max()
        assert torch.allclose(torch.tensor(pt["learned"], dtype=torch.float64), s, rtol=1e-9, atol=1e-12)
        assert torch.allclose(torch.tensor(pt["exact"], dtype=torch.float64), ex, rtol=1e-12, atol=1e-12)
        assert pt["error"] == pytest.approx((s - ex).norm().item(), rel=1e-9)
        assert pt["relative_error"] == pytest.approx(((s - ex).norm() / ex.norm()).item(), rel=1e-9)
        assert pt["cosine"] == pytest.approx(torch.nn.functional.cosine_similarity(s, ex, dim=0).item(), rel=1e-9)
        assert pt["density_ratio"] == pytest.approx((MIX64.log_prob(q).exp()[0] / p_max).item(), rel=1e-9)
    assert canvases(page) != before  # the marker is drawn


def test_no_console_errors_and_no_requests(page):
    assert page.execute_script("return window.__errors") == []
    urls = page.execute_script("return performance.getEntriesByType('resource').map(function (e) { return e.name; })")
    assert all(u.startswith(("file:", "data:")) for u in urls), urls


def test_constructor_validates():
    res = {"snapshots": {0: ScoreMLP().state_dict()}}
    with pytest.raises(ValueError, match="saved training steps"):
        ssm_error_figure(res, steps=[5])
    with pytest.raises(ValueError, match="low_fraction"):
        ssm_error_figure(res, low_fraction=2.0)
    with pytest.raises(ValueError, match="dtype"):
        ssm_error_figure(res, dtype="int8")
