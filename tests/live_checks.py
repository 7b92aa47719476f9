"""Checks that a page's live figures respond, shared by the live-figure tests: every slider moved to
a value on no grid redraws the figure, a click on a canvas changes the figure's state, the static
picture gives way to the live one, no console error is logged and nothing outside the page's own
files is requested. And the picture sliders' check (``check_sliders``): the value shown and the
picture change together."""

from __future__ import annotations

import json
import time
from pathlib import Path

from browser import browser, open_page

#: Canvas contents of every canvas in a root, as one checksum per canvas (computed in the page).
HASH_JS = """
function ncsnHash(root) {
  return Array.from(root.querySelectorAll('canvas')).map(function (c) {
    var d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data, h = 2166136261;
    for (var i = 0; i < d.length; i += 1) { h ^= d[i]; h = Math.imul(h, 16777619); }
    return h >>> 0;
  });
}
"""


def live_browser():
    """Headless Chromium with the network off and the console log kept (for console errors)."""
    return browser((1300, 1000))


def console_errors(drv) -> list[str]:
    return [e["message"] for e in drv.get_log("browser") if e["level"] == "SEVERE"]


def outside_requests(drv) -> list[str]:
    """Resources the page asked for that are not its own files (file://) or inline (data:)."""
    names = drv.execute_script("return performance.getEntriesByType('resource').map(function (e) { return e.name; })")
    return [n for n in names if not n.startswith(("file:", "data:", "blob:"))]


def slider_redraws(drv, root, rng) -> bool:
    """Move ``rng`` to a value on no grid (37% of its range, off its initial value) with an input
    event, and say whether any canvas of ``root`` changed in that same handler."""
    return drv.execute_script(HASH_JS + """
      var root = arguments[0], r = arguments[1], before = ncsnHash(root);
      var lo = Number(r.min || 0), hi = Number(r.max || 100), v = lo + 0.37 * (hi - lo);
      if (r.step && r.step !== 'any') v = lo + Math.round((v - lo) / Number(r.step)) * Number(r.step);
      if (String(v) === r.value) v = lo + 0.63 * (hi - lo);
      r.value = v; r.dispatchEvent(new Event('input', {bubbles: true}));
      var after = ncsnHash(root);
      return JSON.stringify(before) !== JSON.stringify(after);""", root, rng)


def settle(drv, root, start: str, most: float = 1.0) -> None:
    """Wait until the figure's ``state()`` differs from ``start`` (JSON with sorted keys): an animated
    figure has moved on from its start, usually within a few frames; a figure that does not animate
    gets the whole ``most`` seconds, as every figure once did."""
    end = time.monotonic() + most
    while time.monotonic() < end:
        now = json.dumps(json.loads(drv.execute_script("return arguments[0].state()", root)), sort_keys=True)
        if now != start:
            return
        time.sleep(0.05)


def check_live_figures(drv, url: str, min_figures: int = 1) -> int:
    """Load ``url`` and check every live figure on it; returns how many there were."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    drv.get_log("browser")  # drop what an earlier page logged
    open_page(drv, url)
    roots = drv.find_elements(By.CSS_SELECTOR, "[data-ncsn-live]")
    assert len(roots) >= min_figures, f"{url}: {len(roots)} live figures"
    for root in roots:
        kind = root.get_attribute("data-ncsn-live")
        drv.execute_script("arguments[0].scrollIntoView({block: 'center'});", root)
        assert drv.execute_script("return typeof arguments[0].state === 'function'", root), f"{kind}: not mounted"
        state = json.loads(drv.execute_script("return arguments[0].state()", root))
        assert isinstance(state, dict) and state, kind
        fallback = root.find_elements(By.CSS_SELECTOR, ".ncsn-live-fallback")
        assert all(not f.is_displayed() for f in fallback), f"{kind}: the static picture still shows"
        settle(drv, root, json.dumps(state, sort_keys=True))  # let the figure animate away from its start
        sliders = root.find_elements(By.CSS_SELECTOR, "input[type=range]")
        assert sliders, f"{kind}: no slider"
        for rng in sliders:
            name = rng.get_attribute("name")
            moved = slider_redraws(drv, root, rng)
            if not moved:  # the previous slider may have restarted the figure to this very picture
                time.sleep(1.0)
                moved = slider_redraws(drv, root, rng)
            assert moved, f"{kind}: moving the slider {name!r} to a value on no grid did not redraw"
        canvas = root.find_elements(By.CSS_SELECTOR, "canvas")[0]
        before = drv.execute_script("return arguments[0].state()", root)
        ActionChains(drv).move_to_element_with_offset(canvas, canvas.size["width"] // 5, -canvas.size["height"] // 7)\
            .click().perform()
        time.sleep(0.3)
        after = drv.execute_script("return arguments[0].state()", root)
        assert after != before, f"{kind}: a click on the canvas changed nothing"
    errors = console_errors(drv)
    assert not errors, f"{url}: console errors {errors}"
    outside = outside_requests(drv)
    assert not outside, f"{url}: requests outside the page's own files {outside}"
    return len(roots)


def check_sliders(drv, page: Path, min_sliders: int = 1):
    """Drag and step every slider on the page; the shown value and picture must change
    together and always form a pair that the page's data pairs."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    open_page(drv, page.as_uri())
    sliders = drv.find_elements(By.CSS_SELECTOR, "div.ncsn-slider")
    assert len(sliders) >= min_sliders
    for box in sliders:
        uid = box.get_attribute("id")
        pairs = json.loads(drv.find_element(By.ID, f"{uid}-data").get_attribute("textContent"))
        rng = drv.find_element(By.ID, f"{uid}-range")
        img = drv.find_element(By.ID, f"{uid}-img")
        out = drv.find_element(By.ID, f"{uid}-value")
        drv.execute_script("arguments[0].scrollIntoView({block: 'center'});", rng)

        def shown():
            label, src = out.text, img.get_attribute("src")
            assert [label, src] in pairs, "the picture shown does not belong to the value shown"
            assert drv.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img)
            return label, src

        first = shown()
        ActionChains(drv).click_and_hold(rng).move_by_offset(rng.size["width"], 0).release().perform()
        dragged = shown()
        assert dragged == tuple(pairs[-1]), "dragging to the right end must show the last value"
        rng.send_keys(Keys.ARROW_LEFT)
        stepped = shown()
        assert stepped == tuple(pairs[-2]) and stepped != dragged
        assert len({first, dragged, stepped}) >= 2
