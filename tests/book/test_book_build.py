"""The book build: a chapter that raises fails it (a small book; the same book without the error
builds: tests/book/test_rendered_pages.py's small book, which also holds a picture slider), and the
built book's sliders work in a real browser with no kernel and no network."""

from __future__ import annotations

import re

import pytest
from browser import browser_fixture
from live_checks import check_sliders
from small_book import ROOT, build, make_book

#: Ten seconds or more on one core: parallel runs (dev.py test) start this file first.
pytestmark = pytest.mark.slow

def test_a_chapter_that_raises_fails_the_build(tmp_path):
    book = make_book(tmp_path / "broken", ["x = 1", "raise ValueError('this chapter is broken')"])
    result = build(book)
    assert result.returncode != 0, result.stdout[-3000:]
    assert "this chapter is broken" in result.stdout + result.stderr


#: One headless browser for the built book's slider pages.
drv = browser_fixture()


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
