"""The book build: a chapter that raises fails it, and sliders work in a real browser
with no kernel and no network."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

#: Ten seconds or more on one core: parallel runs (dev.py test) start this file first.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
JB = Path(sys.executable).parent / "jupyter-book"

SLIDER_CELL = """import matplotlib.pyplot as plt
from ncsn_edu.sliders import slider

def draw(v):
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.bar([0], [v])
    ax.set_ylim(0, 4)
    ax.set_title(f"value {v}")
    return fig

slider(draw, [1, 2, 3], name="height", fmt="{}")"""


def make_book(folder: Path, cells: list[str]) -> Path:
    """A one-chapter book with the project's own _config.yml settings and extension."""
    folder.mkdir(parents=True)
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    (folder / "_config.yml").write_text(yaml.safe_dump(config))
    (folder / "_toc.yml").write_text(yaml.safe_dump({"format": "jb-book", "root": "book/chapter"}))
    shutil.copytree(ROOT / "book" / "_ext", folder / "book" / "_ext")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# A chapter")]
                                  + [nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / "book" / "chapter.ipynb")
    return folder


def build(folder: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("MPLBACKEND", None)
    env.pop(  # the Sphinx extension, not the caller, must switch sliders to static mode
        "NCSN_EDU_STATIC", None
    )
    return subprocess.run(
        [str(JB), "build", str(folder), "-W", "--keep-going"],
        capture_output=True, text=True, env=env, timeout=600,
    )


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


def browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        if os.environ.get("CI"):
            pytest.fail("chromium and chromedriver must be installed in CI (python3 dev.py test installs them)")
        pytest.skip("chromium/chromedriver not installed (python3 dev.py test installs them as root)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        # The network is off: every request outside file:// fails.
        "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
        "--host-resolver-rules=MAP * ~NOTFOUND",
    ]:
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=opts)


@pytest.fixture(scope="module")
def drv():
    """One headless browser for the file's pages (each test loads its own page)."""
    driver = browser()
    yield driver
    driver.quit()


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
