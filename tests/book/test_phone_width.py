"""The image chapters' live figures on a phone: the built site over http on 127.0.0.1, in headless
Chromium emulating a touch screen 390 CSS pixels wide (chromedriver's mobile emulation: 390 x 844,
touch and mobile on). On every page with live image figures (chapter 10's denoiser and sampler,
chapter 11's inpainting, chapter 11b's sampler and inpainting) each figure goes live, no part of it
lies outside the screen's width and the page does not scroll sideways; a finger (real touch input
through the DevTools protocol: touchStart, touchMove, touchEnd, which the page receives as touch
events and as pointer events of type touch) painting over the inpainting figure's digit hides pixels
without scrolling the page, and one drawing on the denoiser's clean digit draws. With
``NCSN_EDU_PHONE_SHOTS=<folder>`` each figure's picture at 390 px is saved there
(``<chapter>-<n>-<kind>.png``), to be looked at."""

from __future__ import annotations

import base64
import functools
import json
import os
import shutil
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from browser import browser, open_page, serve

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "_build" / "html"
ONNX_PAGES = sorted(p for p in (SITE / "book").glob("*.html") if "data-ncsn-onnx" in p.read_text())
#: The chapters whose live image figures must fit a phone, and the kinds each must have.
EXPECTED = {"10_mnist_ncsn": {"mnist_denoise", "mnist_generate"},
            "11_mnist_inpainting_and_quality": {"mnist_inpaint"},
            "11b_ncsnv2_techniques": {"mnist_generate", "mnist_inpaint"}}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def phone():
    """The built site over http on 127.0.0.1 and a headless Chromium that emulates a 390-px touch
    screen and may reach only that address."""
    mobile = {"deviceMetrics": {**PHONE, "pixelRatio": 2.0, "touch": True, "mobile": True},
              "userAgent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
                           "Chrome/120.0 Mobile Safari/537.36"}
    with serve(SITE) as origin:
        drv = browser(loopback=True, mobile=mobile)
        yield drv, origin
        drv.quit()


def wait_live(drv, uid, kind):
    end = time.time() + 90
    while time.time() < end:
        st = json.loads(drv.execute_script(f"return document.getElementById('{uid}').state()"))
        assert st.get("status") != "failed", (kind, st)
        if "live" not in st and not st.get("busy"):
            return st
        time.sleep(0.2)
    raise AssertionError(f"{kind}: not live after 90 s")


#: Every shown element of a figure whose box leaves the screen's width (a hidden one has no box), and
#: every one whose content is wider than its box (text cut off, or a box to scroll sideways).
OUTSIDE = """var root = document.getElementById(arguments[0]), w = document.documentElement.clientWidth;
var out = [], cut = [];
function name(e) {
  return e.tagName.toLowerCase() + '.' + (e.getAttribute('class') || '') + ' ' + (e.getAttribute('name') || '');
}
[root].concat(Array.from(root.querySelectorAll('*'))).forEach(function (e) {
  var r = e.getBoundingClientRect();
  if (r.width === 0 && r.height === 0) return;
  if (r.left < -0.5 || r.right > w + 0.5) out.push(name(e) + ': ' + Math.round(r.left) + '..' + Math.round(r.right));
  if (!/^(INPUT|SELECT|OPTION|CANVAS|IMG)$/.test(e.tagName) && e.scrollWidth > e.clientWidth + 1)
    cut.push(name(e) + ': content ' + e.scrollWidth + ' px in ' + e.clientWidth);
});
return {width: w, outside: out, cut: cut, page: document.documentElement.scrollWidth};"""


def touch_stroke(drv, uid, canvas_index, points):
    """A finger pressed on canvas ``canvas_index`` of the figure, moved through ``points`` (fractions of
    the canvas) and lifted, as real touch input; returns (touch events, touch pointer events, scroll
    of the page during the stroke)."""
    drv.execute_script(f"""var c = document.getElementById('{uid}').querySelectorAll('canvas')[{canvas_index}];
      c.scrollIntoView({{block: 'center'}}); c.ncsnSeen = {{touch: 0, pointer: 0}};
      c.addEventListener('touchstart', function () {{ c.ncsnSeen.touch += 1; }});
      c.addEventListener('touchmove', function () {{ c.ncsnSeen.touch += 1; }});
      c.addEventListener('pointermove', function (e) {{ if (e.pointerType === 'touch') c.ncsnSeen.pointer += 1; }});""")
    time.sleep(0.2)
    r = drv.execute_script(f"var r = document.getElementById('{uid}').querySelectorAll('canvas')[{canvas_index}]"
                           ".getBoundingClientRect(); return [r.left, r.top, r.width, r.height, window.scrollY];")
    pts = [{"x": r[0] + fx * r[2], "y": r[1] + fy * r[3]} for fx, fy in points]
    drv.execute_cdp_cmd("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [pts[0]]})
    for p in pts[1:]:
        drv.execute_cdp_cmd("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [p]})
    drv.execute_cdp_cmd("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    seen = drv.execute_script(f"var c = document.getElementById('{uid}').querySelectorAll('canvas')[{canvas_index}];"
                              " return [c.ncsnSeen.touch, c.ncsnSeen.pointer, window.scrollY];")
    return seen[0], seen[1], seen[2] - r[4]


def screenshot(drv, uid, path: Path):
    """The figure's whole box (beyond the screen's height too) as a PNG at the device's pixel ratio."""
    box = drv.execute_script(f"var r = document.getElementById('{uid}').getBoundingClientRect();"
                             " return [r.left + window.scrollX, r.top + window.scrollY, r.width, r.height];")
    shot = drv.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": box[0], "y": box[1], "width": box[2], "height": box[3], "scale": 1}})
    path.write_bytes(base64.b64decode(shot["data"]))


@pytest.mark.skipif(not ONNX_PAGES, reason="the book is not built with the live image figures (python3 dev.py book)")
def test_every_image_chapter_is_checked_at_phone_width():
    names = {p.stem for p in ONNX_PAGES}
    assert set(EXPECTED) <= names, f"image chapters without a live image figure: {set(EXPECTED) - names}"


@pytest.mark.skipif(not ONNX_PAGES, reason="the book is not built with the live image figures (python3 dev.py book)")
@pytest.mark.parametrize("page", ONNX_PAGES, ids=lambda p: p.stem)
def test_the_figures_fit_a_390_px_touch_screen_and_paint_by_touch(phone, page):
    drv, origin = phone
    open_page(drv, origin + "book/" + page.name)
    assert drv.execute_script("return document.documentElement.clientWidth") == PHONE["width"]
    assert drv.execute_script("return navigator.maxTouchPoints > 0 && matchMedia('(pointer: coarse)').matches")
    roots = drv.execute_script("return Array.from(document.querySelectorAll('[data-ncsn-onnx]')).map(function (r) {"
                               " return [r.id, r.getAttribute('data-ncsn-onnx')]; })")
    kinds = [k for _, k in roots]
    assert EXPECTED.get(page.stem, set()) <= set(kinds), (page.stem, kinds)
    shots = os.environ.get("NCSN_EDU_PHONE_SHOTS")
    for n, (uid, kind) in enumerate(roots):
        wait_live(drv, uid, kind)
        get = f"document.getElementById('{uid}')"
        if kind == "mnist_inpaint":
            before = json.loads(drv.execute_script(f"return {get}.state()"))["hidden"]
            # over the known (left) half of the digit, brush "hide"
            touches, pointers, scrolled = touch_stroke(drv, uid, 0, [(0.15, 0.3), (0.25, 0.4), (0.35, 0.5), (0.4, 0.6)])
            after = json.loads(drv.execute_script(f"return {get}.state()"))["hidden"]
            assert touches > 0 and pointers > 0, (touches, pointers)
            assert after > before, f"{page.stem}: painting by touch hid no pixel ({before} -> {after})"
            assert scrolled == 0, "the finger scrolled the page instead of painting"
        elif kind == "mnist_denoise":
            touches, pointers, scrolled = touch_stroke(drv, uid, 0, [(0.2, 0.2), (0.5, 0.5), (0.8, 0.6)])
            assert touches > 0 and pointers > 0 and scrolled == 0, (touches, pointers, scrolled)
            assert json.loads(drv.execute_script(f"return {get}.state()"))["drawn"], "drawing by touch"
        if kind != "mnist_denoise":  # a few steps, so the picture shows a chain under way
            t = drv.execute_async_script(f"var done = arguments[0]; {get}.figure.advance(2).then(done, String);")
            assert t == 2, (kind, t)
        drv.execute_script(f"{get}.scrollIntoView({{block: 'start'}})")
        fit = drv.execute_script(OUTSIDE, uid)
        assert not fit["outside"] and not fit["cut"], f"{page.stem} {kind}: wider than the screen: {fit}"
        assert fit["page"] <= PHONE["width"], f"{page.stem}: the page scrolls sideways ({fit['page']} px)"
        if shots:
            Path(shots).mkdir(parents=True, exist_ok=True)
            screenshot(drv, uid, Path(shots) / f"{page.stem}-{n}-{kind}.png")
    errors = [e["message"] for e in drv.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
