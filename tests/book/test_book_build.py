"""The book build: a chapter that raises fails it, and sliders work in a real browser
with no kernel and no network."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from browser import browser_fixture
from small_book import ROOT, build, make_book

#: Ten seconds or more on one core: parallel runs (dev.py test) start this file first.
pytestmark = pytest.mark.slow

SLIDER_CELL = """import matplotlib.pyplot as plt
from ncsn_edu.figures.sliders import slider

def draw(v):
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.bar([0], [v])
    ax.set_ylim(0, 4)
    ax.set_title(f"value {v}")
    return fig

slider(draw, [1, 2, 3], name="height", fmt="{}")"""


def test_a_chapter_that_raises_fails_the_build(tmp_path):
    book = make_book(tmp_path / "broken", ["x = 1", "raise ValueError('this chapter is broken')"])
    result = build(book)
    assert result.returncode != 0, result.stdout[-3000:]
    assert "this chapter is broken" in result.stdout + result.stderr


@pytest.fixture(scope="module")
def slider_book(tmp_path_factory):
    book = make_book(tmp_path_factory.mktemp("ok") / "book_root", [SLIDER_CELL])
    result = build(book)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return book / "_build" / "html" / "book" / "chapter.html"


def test_the_same_book_without_the_error_builds_with_a_static_slider(slider_book):
    html = slider_book.read_text()
    assert html.count('class="ncsn-slider"') == 1
    assert "application/vnd.jupyter.widget" not in html  # no live widget needing a kernel


#: One headless browser for the file's pages (each test loads its own page).
drv = browser_fixture()


def check_sliders(drv, page: Path, min_sliders: int = 1):
    """Drag and step every slider on the page; the shown value and picture must change
    together and always form a pair that the page's data pairs."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    drv.get(page.as_uri())
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


def test_slider_works_in_a_headless_browser_without_network(drv, slider_book):
    check_sliders(drv, slider_book)


BUILT_PAGES = sorted((ROOT / "_build" / "html" / "book").glob("*.html"))
SLIDER_PAGES = [p for p in BUILT_PAGES if 'class="ncsn-slider"' in p.read_text()]


@pytest.mark.skipif(not SLIDER_PAGES, reason="the book is not built (python3 dev.py book)")
@pytest.mark.parametrize("page", SLIDER_PAGES, ids=lambda p: p.name)
def test_every_slider_in_the_built_book_works_without_network(drv, page):
    check_sliders(drv, page)


@pytest.mark.skipif(not BUILT_PAGES, reason="the book is not built (python3 dev.py book)")
@pytest.mark.parametrize("page", BUILT_PAGES, ids=lambda p: p.name)
def test_built_pages_need_no_widget_kernel_or_cdn_for_interaction(page):
    html = page.read_text()
    assert "application/vnd.jupyter.widget-state+json" not in html, "widget state was saved into the page"
    assert "@jupyter-widgets/html-manager" not in html
    # every script, the maths renderer included, is served by the site itself
    assert not re.findall(r'<script[^>]+src="(?:https?:)?//', html)
