"""Headless Chromium for the tests that open built pages (not a test file).

    from browser import browser_fixture, wait_for_mathjax

    drv = browser_fixture()  # one browser for this module's tests; a test takes it as ``drv``

``browser()`` starts one headless Chromium with the network off: every request outside
file:// fails, so a page that needs a CDN or a server shows it. ``browser_fixture()`` makes
a module-scoped pytest fixture holding one such browser for all the tests of a module.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

#: Chromium's command-line flags: headless, no first-run or background traffic, and no network.
OFFLINE_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # The network is off: every request outside file:// fails.
    "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
    "--host-resolver-rules=MAP * ~NOTFOUND",
)


def browser(window: tuple[int, int] | None = None, loopback: bool = False, mobile: dict | None = None):
    """A selenium Chrome driver on the system's chromium, offline (``OFFLINE_FLAGS``).
    ``window`` = (width, height) in CSS pixels sets the window size; else chromium's default.
    ``loopback``: 127.0.0.1 stays reachable (through the proxy bypass and the resolver rules), for a
    site served by :func:`serve`, and scripts may run for 120 s. ``mobile``: chromedriver's
    ``mobileEmulation`` settings. Skips the test when chromium or chromedriver is missing, and fails it
    under CI."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        if os.environ.get("CI"):
            pytest.fail("chromium and chromedriver must be installed in CI (python3 dev.py test installs them)")
        pytest.skip("chromium/chromedriver not installed (python3 dev.py test installs them as root)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in OFFLINE_FLAGS:
        if loopback:
            arg = arg.replace("<-loopback>", "127.0.0.1").replace("MAP * ~NOTFOUND",
                                                                  "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
        opts.add_argument(arg)
    if window is not None:
        opts.add_argument(f"--window-size={window[0]},{window[1]}")
    if mobile is not None:
        opts.add_experimental_option("mobileEmulation", mobile)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # drv.get_log("browser"): console errors
    drv = webdriver.Chrome(service=Service(driver), options=opts)
    if loopback:
        drv.set_script_timeout(120)
    return drv


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(folder):
    """Serve ``folder`` over http on 127.0.0.1 (a free port) while the block runs; yields its
    ``http://127.0.0.1:<port>/`` address (the image figures need http; read with a :func:`browser`
    made with ``loopback=True``)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()


def browser_fixture(window: tuple[int, int] | None = None):
    """A module-scoped fixture: one headless :func:`browser` for the module's pages (each test
    loads its own page), closed after the module's last test. Assign it to the fixture's name."""

    @pytest.fixture(scope="module")
    def module_browser():
        driver = browser(window)
        yield driver
        driver.quit()

    return module_browser


#: Resolves to "none" on a page without MathJax, "ok" once MathJax 3 has typeset the page,
#: or a message when MathJax was meant to run and could not.
_MATHJAX_DONE = """
const done = arguments[arguments.length - 1];
const wanted = [...document.scripts].some(s => /mathjax/i.test(s.src || ""));
if (!wanted) { done("none"); return; }
if (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) {
  done("the page loads MathJax, but MathJax did not start (script missing or failed)"); return;
}
MathJax.startup.promise.then(() => done("ok"), e => done("MathJax failed: " + e));
"""


def wait_for_mathjax(driver, timeout: float = 60) -> str:
    """Wait until MathJax 3 has finished typesetting the loaded page. Returns "none" for a page
    without maths and "ok" after typesetting; fails the test when the page's MathJax did not run."""
    driver.set_script_timeout(timeout)
    state = driver.execute_async_script(_MATHJAX_DONE)
    if state not in ("none", "ok"):
        pytest.fail(f"{driver.current_url}: {state}")
    return state


def open_page(driver, url: str, timeout: float = 30) -> None:
    """``driver.get(url)``, then wait until the browser shows that page, fully loaded. In full CI runs
    (four test workers on two cores) a query right after ``get`` has three times found a document
    without the page's figures (chapters 7 and 11b, and the small test book); waiting for
    ``location.href`` to be ``url`` and ``readyState`` to be complete closes that window. Fails the
    test, saying where the browser is, if the page does not come."""
    import time

    driver.get(url)
    end, where = time.monotonic() + timeout, {}
    while time.monotonic() < end:
        where = driver.execute_script("return {url: location.href, ready: document.readyState};")
        if where["url"].split("#")[0] == url.split("#")[0] and where["ready"] == "complete":
            return
        time.sleep(0.2)
    pytest.fail(f"{url} did not load within {timeout} s; the browser is at {where}")
