"""Live figures respond in a real browser with no network: in a page made from the package's own
figure HTML (always), and on every page of the built book that has one (after ``dev.py book``)."""

from __future__ import annotations

import functools
import json
import re
import shutil
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from browser import browser, open_page, serve
from live_checks import check_live_figures, console_errors, live_browser, outside_requests

from ncsn_edu.figures import live
from ncsn_edu.toy.distributions import GaussianMixture

#: Ten seconds or more on one core (a browser, figures animating): parallel runs start it first.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BUILT_PAGES = sorted((ROOT / "_build" / "html" / "book").glob("*.html"))
#: The site's own pages besides the chapters (search, index of terms); index.html only redirects.
SITE_PAGES = sorted(p for p in (ROOT / "_build" / "html").glob("*.html") if p.name != "index.html") + BUILT_PAGES
LIVE_PAGES = [p for p in BUILT_PAGES if "data-ncsn-live" in p.read_text()]
#: The toy chapters, which must each have a live figure once the book is built.
#: The pages with live image figures (live_images.py: data-ncsn-onnx), which run the score network with
#: onnxruntime-web from the site's _static/ and so need the site served over http.
ONNX_PAGES = [p for p in BUILT_PAGES if "data-ncsn-onnx" in p.read_text()]
#: The image chapters, which must each have a live image figure once the book is built.
IMAGE_CHAPTERS = ["10_mnist_ncsn", "11_mnist_inpainting_and_quality", "11b_ncsnv2_techniques"]
TOY_CHAPTERS = ["01_scores_and_langevin", "04_denoising_score_matching", "06_low_density_scores",
                "07_slow_mixing", "08_noise_conditional_networks", "09_annealed_langevin"]


@pytest.fixture(scope="module")
def drv():
    driver = live_browser()
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def live_checked(drv):
    """``live_checked(page)``: the live-figure checks of a built page (``check_live_figures``), run on
    one load of it: None when they passed, else their AssertionError. They include the page's console
    errors and requests outside the site, so a page that passed them needs no second load for those."""
    done = {}

    def check(page: Path):
        if page not in done:
            try:
                check_live_figures(drv, page.as_uri())
                done[page] = None
            except AssertionError as failure:
                done[page] = failure
        return done[page]

    return check


def fallback_png():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, 1])
    return fig


def test_the_langevin_figure_responds(drv, tmp_path):
    fig = live.langevin_figure(GaussianMixture.paper_toy(), n=500, fallback=fallback_png(), title="test")
    page = tmp_path / "langevin.html"
    page.write_text(f"<!doctype html><html><head><meta charset='utf-8'></head><body>{fig._repr_html_()}</body></html>")
    assert check_live_figures(drv, page.as_uri()) == 1


def test_a_figure_with_unknown_settings_fails_in_python_not_in_the_page():
    with pytest.raises(ValueError):
        live.LiveFigure("no_such_kind", {})
    with pytest.raises(ValueError):
        live.langevin_figure(GaussianMixture.paper_toy(), step_size=0)
    with pytest.raises(ValueError):
        live.mixture_config(GaussianMixture([[0.0, 0.0, 0.0]]))
    with pytest.raises(TypeError):
        live.export_network(torch.nn.Linear(2, 2))


@pytest.mark.skipif(not BUILT_PAGES, reason="the book is not built (python3 dev.py book)")
def test_every_toy_chapter_has_a_live_figure():
    names = {p.stem for p in LIVE_PAGES}
    assert not [c for c in TOY_CHAPTERS if c not in names], f"toy chapters without a live figure; have {names}"


@pytest.mark.skipif(not LIVE_PAGES, reason="the book is not built (python3 dev.py book)")
@pytest.mark.parametrize("page", LIVE_PAGES, ids=lambda p: p.name)
def test_every_live_figure_in_the_built_book_responds(live_checked, page):
    failure = live_checked(page)
    if failure is not None:
        raise failure


@pytest.mark.skipif(not BUILT_PAGES, reason="the book is not built (python3 dev.py book)")
@pytest.mark.parametrize("page", SITE_PAGES, ids=lambda p: p.name)
def test_no_page_logs_a_console_error_or_asks_the_network(drv, live_checked, page):
    if page in LIVE_PAGES and live_checked(page) is None:
        return  # its live-figure checks loaded it, used it, and found no console error or outside request
    drv.get_log("browser")
    open_page(drv, page.as_uri())
    time.sleep(0.5)  # deferred and async scripts (MathJax, the theme's) run after load
    assert not console_errors(drv), f"{page.name}: console errors {console_errors(drv)}"
    assert not outside_requests(drv), f"{page.name}: requests outside the site {outside_requests(drv)}"


# ---------- the image chapters' figures (live_images.py), over http on 127.0.0.1 ----------

def onnx_blocks(text: str) -> list[str]:
    """The HTML of each live image figure on a page (from its root to its mount call)."""
    pattern = r'<div class="ncsn-live" id="(ncsn-onnx-\w+)".*?NCSNLive\.onnx\.mount\("\1"\);</script>'
    return [m.group(0) for m in re.finditer(pattern, text, re.S)]


@pytest.mark.skipif(not BUILT_PAGES, reason="the book is not built (python3 dev.py book)")
def test_every_image_chapter_has_live_figures_and_they_weigh_under_300_kb():
    """The model and onnxruntime travel once per site (_static); a page carries only its figures'
    settings, script and static pictures: under 300 kB per chapter."""
    names = {p.stem for p in ONNX_PAGES}
    assert not [c for c in IMAGE_CHAPTERS if c not in names], f"image chapters without a live figure; have {names}"
    for page in ONNX_PAGES:
        text = page.read_text()
        sizes = [len(b) for b in onnx_blocks(text)]
        assert len(sizes) == len(re.findall(r'id="ncsn-onnx-\w+"', text)) and sum(sizes) < 300_000, (page.name, sizes)
    site = ROOT / "_build" / "html" / "_static"
    assert (site / "ort" / "ort.wasm.min.js").is_file() and (site / "ncsn_edu" / "models.json").is_file()


@pytest.fixture(scope="module")
def served_site():
    """The built site over http on 127.0.0.1 and a headless Chromium that may reach only that address."""
    with serve(ROOT / "_build" / "html") as origin:
        drv = browser((1300, 1000), loopback=True)
        yield drv, origin
        drv.quit()


@pytest.mark.skipif(not ONNX_PAGES, reason="the book is not built with the live image figures (python3 dev.py book)")
@pytest.mark.parametrize("page", ONNX_PAGES, ids=lambda p: p.name)
def test_every_image_figure_in_the_built_book_runs_over_http(served_site, page):
    """Each figure loads the site's onnxruntime and model, computes (the denoiser redraws for a new sigma,
    the samplers take two steps), and nothing is logged as an error or asked of another address."""
    drv, origin = served_site
    drv.get_log("browser")
    open_page(drv, origin + "book/" + page.name)
    roots = drv.execute_script("return Array.from(document.querySelectorAll('[data-ncsn-onnx]')).map(function (r) {"
                               " return [r.id, r.getAttribute('data-ncsn-onnx')]; })")
    assert roots, f"no live figure in {page.name}"
    for uid, kind in roots:
        get = f"document.getElementById('{uid}')"
        end = time.time() + 90
        while time.time() < end:
            st = json.loads(drv.execute_script(f"return {get}.state()"))
            assert st.get("status") != "failed", (kind, st)
            if "live" not in st and not st.get("busy"):
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"{kind}: not live after 90 s")
        shown = f"var f = {get}.querySelector('.ncsn-live-fallback'); return !!f && f.offsetHeight > 0"
        assert not drv.execute_script(shown), f"{kind}: the static picture still shows"
        pics = f"return Array.from({get}.querySelectorAll('canvas')).map(function (c) {{ return c.toDataURL(); }})"
        before = drv.execute_script(pics)
        if kind == "mnist_denoise":
            drv.execute_script(f"var r = {get}.querySelector('input[name=sigma]'); r.value = 777; "
                               "r.dispatchEvent(new Event('input'));")
            time.sleep(1.0)
        else:
            t = drv.execute_async_script(f"var done = arguments[0]; {get}.figure.advance(2).then(done, String);")
            assert t == 2, (kind, t)
        assert drv.execute_script(pics) != before, f"{kind}: the picture did not change"
    errors = console_errors(drv)
    assert not errors, f"{page.name}: console errors {errors}"
    names = drv.execute_script("return performance.getEntriesByType('resource').map(function (e) { return e.name; })")
    assert not [n for n in names if not n.startswith((origin, "data:", "blob:"))], names
