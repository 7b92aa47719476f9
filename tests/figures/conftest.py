"""Fixtures of the live-figure tests: ``page``, a browser on a blank page that has loaded the whole
library, and ``drv``, a browser for a test to load its own figures into (with
``live_pages.show``). One of each per test module; a module may define its own instead."""

import pytest
from browser import browser, browser_fixture
from live_pages import library_html

drv = browser_fixture()


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """A blank page that has loaded the whole library (core and every figure kind)."""
    driver = browser()
    path = tmp_path_factory.mktemp("live") / "lib.html"
    path.write_text(library_html())
    driver.get(path.as_uri())
    yield driver
    driver.quit()
