"""Fixtures of the live-figure tests: ``page``, a browser on a blank page that has loaded the whole
library, ``drv``, a browser for a test to load its own figures into (with ``live_pages.show``),
and ``live_drv``, a desktop-sized one for ``live_checks.check_live_figures``. One of each per test
module, started when a test first asks for it; a module may define its own instead."""

import pytest
from browser import browser, browser_fixture
from live_pages import library_html

drv = browser_fixture()
#: A browser at a desktop window (1300 x 1000) for ``live_checks.check_live_figures``, shared by a module's tests.
live_drv = browser_fixture((1300, 1000))


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """A blank page that has loaded the whole library (core and every figure kind)."""
    driver = browser()
    path = tmp_path_factory.mktemp("live") / "lib.html"
    path.write_text(library_html())
    driver.get(path.as_uri())
    yield driver
    driver.quit()
