"""Every built page reads right in a browser: after MathJax has run, no maths is left as raw TeX
or as a MathJax error, and no prose was swallowed into a formula; figures get a wide column on a
desktop, fit a phone's screen, and show each digit of an image grid at a readable size (issue 23);
no printed output is wider than its box on a desktop, where its end would be cut off (issue 29).

Display maths ``$$...$$`` inside a running paragraph builds without a warning, but the page then
shows raw TeX and stray ``$`` signs, or typesets the prose after it as one italic formula. Only a
browser sees that, so these tests load each page in headless Chromium, wait for MathJax 3 to finish,
and read the text the reader sees. Each built page is loaded once, at a desktop window (1300 px),
and measured again after the window is narrowed to a phone's (390 px): every check of a page reads
that one load (``shown``).
"""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import pytest
from browser import browser_fixture, open_page, wait_for_mathjax
from live_checks import check_sliders
from small_book import ROOT, SLIDER_CELL, build, make_book

#: Builds a small book (about half a minute on one core): parallel runs start this file early.
pytestmark = pytest.mark.slow

HTML = ROOT / "_build" / "html"
BUILT_PAGES = sorted((HTML / "book").glob("*.html"))
#: index.html only redirects to the preface (a meta refresh), so the preface stands for it.
PAGES = BUILT_PAGES

#: One headless browser for the file's pages.
drv = browser_fixture()

#: Text the reader sees: every text node of the body outside code, program output and typeset
#: maths (whose TeX MathJax has replaced by its own elements). Maths that MathJax did not typeset
#: stays here as raw TeX. Each entry is [text, the id of the nearest section, for the report].
_VISIBLE_TEXT = """
const skip = "pre, code, kbd, samp, script, style, noscript, textarea, template, svg, .highlight, mjx-container";
const out = [];
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  const el = node.parentElement;
  if (!el || el.closest(skip) || !node.textContent.trim()) continue;
  const section = el.closest("section[id]");
  out.push([node.textContent, section ? section.id : ""]);
}
return out;
"""

#: The TeX source of every formula MathJax typeset on the page.
_TYPESET_TEX = """
if (!(window.MathJax && MathJax.startup && MathJax.startup.document)) return [];
return Array.from(MathJax.startup.document.math, m => m.math);
"""

#: Raw TeX in prose: a dollar sign, a backslash command such as \\sigma or \\frac, a TeX
#: delimiter \\( \\) \\[ \\] or an escaped brace, bar or space, a sub- or superscript group.
RAW_TEX = re.compile(r"\$|\\[A-Za-z]+|\\[()\[\]{}|,;!]|[_^]\{")

#: Commands whose argument is words in a formula (\text{for all}), removed before looking for prose.
_TEXT_ARG = re.compile(r"\\(?:text|textrm|textit|textbf|mathrm|operatorname|mbox|hbox)\s*\{[^{}]*\}")
#: Four plain words in a row (after commands are removed) are prose that ended up inside maths.
_PROSE = re.compile(r"(?:\b[A-Za-z]{2,}\b[ ,.;:]+){3,}\b[A-Za-z]{2,}\b")


def prose_in_formula(tex: str) -> str | None:
    """The run of prose words in the TeX source of one formula, or None."""
    bare = re.sub(r"\\[A-Za-z]+", " ", _TEXT_ARG.sub(" ", tex))
    found = _PROSE.search(bare)
    return found.group(0) if found else None


def snippet(text: str, start: int, end: int, width: int = 40) -> str:
    return " ".join(text[max(0, start - width) : end + width].split())


def rendering_faults(driver, page: Path) -> list[str]:
    """Load ``page`` (a built HTML file), wait for MathJax, and list what renders wrongly
    (:func:`maths_faults`)."""
    driver.get(page.as_uri())
    wait_for_mathjax(driver)
    return maths_faults(driver)


def maths_faults(driver) -> list[str]:
    """What renders wrongly on the loaded page, after MathJax has run: MathJax errors, raw TeX in
    the visible text, and prose typeset as a formula."""
    from selenium.webdriver.common.by import By

    faults = []
    for err in driver.find_elements(By.CSS_SELECTOR, "mjx-merror, [data-mjx-error]"):
        message = err.get_attribute("data-mjx-error") or err.get_attribute("textContent")
        faults.append(f"MathJax error: {message[:120]}")
    for text, section in driver.execute_script(_VISIBLE_TEXT):
        for hit in RAW_TEX.finditer(text):
            faults.append(f"raw TeX {hit.group(0)!r} in #{section}: ...{snippet(text, hit.start(), hit.end())}...")
    for tex in driver.execute_script(_TYPESET_TEX):
        words = prose_in_formula(tex)
        if words:
            faults.append(f"prose typeset as maths ({words!r}) in: {' '.join(tex.split())[:160]}")
    return faults


@pytest.mark.skipif(not BUILT_PAGES, reason="the book is not built (python3 dev.py book)")
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_built_page_renders_its_maths(shown, page):
    faults = shown(page)["maths"]
    assert not faults, f"{page.name}: {len(faults)} rendering fault(s):\n" + "\n".join(faults)


# --- the check itself, on a small book built here: it must pass a right page and flag a wrong one

GOOD = [
    "# Maths done right",
    "The noise level $\\sigma_i$ perturbs the data, and the score is $\\nabla_x \\log p(x)$ for every $x$.",
    "The loss, in its own paragraph:",
    "$$\n\\ell(\\theta) = \\frac{1}{2} \\mathbb{E}\\left[\\| s_\\theta(x) - \\nabla_x \\log p(x) \\|^2\\right]\n$$",
    "After the formula the prose goes on, with $\\alpha = \\epsilon / \\sigma^2$ inline.",
    "A price in code is fine: `$HOME` and\n\n```bash\necho $NCSN_EDU_DATA \\sigma\n```",
]
#: The planted bug of issue 23: display maths in the middle of a running paragraph.
PLANTED = [
    "# Maths inside a paragraph",
    "The weight is chosen so that $$x$$ holds, and the text goes on after it.",
]
PLANTED_MULTILINE = [
    "# A display inside a paragraph",
    "The objective of the paper is\n$$\nL(\\theta) = \\frac{1}{L} \\sum_{i=1}^{L} \\lambda(\\sigma_i)\n$$\n"
    "with the weight $\\lambda(\\sigma) = \\sigma^2$ explained in the next sentence of the paragraph.",
]


WIDE_FIGURE = """import matplotlib.pyplot as plt
fig, axes = plt.subplots(1, 3, figsize=(14, 4))
for ax in axes:
    ax.plot([0, 1, 2], [0, 1, 0])
plt.show()"""
#: Printed lines of 78 and 153 characters: at a 1300 px window the first fits its box, the second not.
NARROW_PRINT = 'print("sigma " + "0.123 " * 12)'
WIDE_PRINT = 'print("wide: " + " ".join(f"{k:8.4f}" for k in range(16)) + " end")'


@pytest.fixture(scope="module")
def small_site(tmp_path_factory):
    """One small book for the checks' own tests (a build takes about half a minute on one core): the
    maths pages, and a chapter without maths holding a three-panel figure 14 inches wide, as chapters
    6 to 9 draw them, a printed line that fits its box and one that does not, and a picture slider.
    It builds (tests/book/test_book_build.py: the same build fails on a chapter that raises)."""
    book = make_book(tmp_path_factory.mktemp("small") / "book_root",
                     [WIDE_FIGURE, NARROW_PRINT, WIDE_PRINT, SLIDER_CELL],
                     pages={"good": GOOD, "planted": PLANTED, "planted_multiline": PLANTED_MULTILINE})
    result = build(book)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return book / "_build" / "html" / "book"


def test_the_small_book_builds_with_a_static_slider(small_site):
    html = (small_site / "chapter.html").read_text()
    assert html.count('class="ncsn-slider"') == 1
    assert "application/vnd.jupyter.widget" not in html  # no live widget needing a kernel


def test_slider_works_in_a_headless_browser_without_network(drv, small_site):
    drv.set_window_size(*DESKTOP)
    check_sliders(drv, small_site / "chapter.html")


def test_a_page_with_correct_maths_passes(drv, small_site):
    assert rendering_faults(drv, small_site / "good.html") == []
    assert drv.execute_script("return document.querySelectorAll('mjx-container').length") == 5


def test_a_page_without_maths_passes(drv, small_site):
    assert rendering_faults(drv, small_site / "chapter.html") == []
    assert drv.execute_script("return document.querySelectorAll('mjx-container').length") == 0


@pytest.mark.parametrize("name", ["planted", "planted_multiline"])
def test_display_maths_inside_a_paragraph_is_flagged(drv, small_site, name):
    assert rendering_faults(drv, small_site / f"{name}.html"), f"the check missed the {name} page's maths"


def test_a_mathjax_error_is_flagged(drv, small_site):
    """A formula MathJax cannot parse (here a stray closing brace, put into the page's maths
    before MathJax runs) shows as an error element, and the check reports it."""
    html = (small_site / "good.html").read_text()
    broken = small_site / "broken_tex.html"
    broken.write_text(html.replace("\\sigma_i", "\\sigma_i}", 1))
    faults = rendering_faults(drv, broken)
    assert any(f.startswith("MathJax error") for f in faults), faults


@pytest.mark.parametrize("tex, prose", [
    ("L(\\theta) = \\frac{1}{2} \\sum_i \\lambda(\\sigma_i)", None),
    ("\\text{for all } x \\text{ in the support}", None),
    ("p(x) = 1 with the weight chosen so that the loss", "with the weight chosen so that the loss"),
])
def test_prose_in_formula(tex, prose):
    assert prose_in_formula(tex) == prose


# --- figures: a wide column on a desktop, nothing wider than a phone's screen, readable digits

DESKTOP, PHONE = (1300, 1000), (390, 900)
#: The content column at a 1300 px window: 692 px with the theme's own layout, about 830 px with
#: book/_static/ncsn.css. A multi-panel figure (natural width 1,000 to 1,460 px) is scaled to it.
MIN_COLUMN = 800
#: The smallest on-screen size of one digit of an image grid at a 1300 px window (issue 23).
MIN_DIGIT_PX = 24

#: The content column's inner width, the viewport's and the page's width, and every image of the
#: article: natural and shown size, right edge, and its source (a file under _images or a data: URI
#: of a slider's frame).
_LAYOUT = """
const art = document.querySelector('.bd-article');
const cs = getComputedStyle(art);
const column = art.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
const images = [...art.querySelectorAll('img')].map(i => {
  const r = i.getBoundingClientRect();
  return {src: i.src, alt: i.alt, natural: i.naturalWidth, shown: r.width, right: r.right};
});
return {column: column, viewport: document.documentElement.clientWidth,
        page: document.scrollingElement.scrollWidth, images: images};
"""


def layout(driver, page: Path, window: tuple[int, int]) -> dict:
    driver.set_window_size(*window)
    driver.get(page.as_uri())
    wait_for_mathjax(driver)
    return driver.execute_script(_LAYOUT)


#: Every cell output whose content is wider than its box: an element inside it that scrolls sideways
#: (a <pre> of printed text is overflow: auto, so its end is cut off and needs a scroll bar) or that
#: sticks out past the box. For each: the content's and the box's width, the nearest section, and the
#: output's longest line (its length and start), which is what the reader cannot see whole.
_OUTPUT_OVERFLOW = """
const found = [];
for (const box of document.querySelectorAll('div.cell_output')) {
  const r = box.getBoundingClientRect();
  if (!r.width) continue;
  let widest = 0;
  for (const el of [box, ...box.querySelectorAll('*')]) {
    const e = el.getBoundingClientRect();
    if (!e.width && !e.height) continue;
    if (getComputedStyle(el).overflowX !== 'visible' && el.scrollWidth > el.clientWidth + 1)
      widest = Math.max(widest, r.width + el.scrollWidth - el.clientWidth);
    if (e.right > r.right + 1 || e.left < r.left - 1)
      widest = Math.max(widest, Math.max(e.right, r.right) - Math.min(e.left, r.left));
  }
  if (!widest) continue;
  const lines = (box.innerText || '').split('\\n');
  const longest = lines.reduce((a, b) => (b.length > a.length ? b : a), '');
  const section = box.closest('section[id]');
  found.push({width: Math.round(widest), box: Math.round(r.width), section: section ? section.id : '',
              chars: longest.length, line: longest.slice(0, 60)});
}
return found;
"""


def output_overflow(driver) -> list[str]:
    """The cell outputs of the loaded page wider than their box, one line each."""
    return [f"#{o['section']}: {o['width']} px in a {o['box']} px box, its longest line {o['chars']} characters: "
            f"{o['line']!r}" for o in driver.execute_script(_OUTPUT_OVERFLOW)]


@pytest.fixture(scope="module")
def shown(drv):
    """``shown(page)``: what a built page shows, measured on one load of it: MathJax's faults
    (``maths``) and the layout (``desktop``) and wide outputs (``outputs``) at a 1300 px window,
    then the layout with the window narrowed to a phone's (``phone``; the page re-lays itself out
    without a reload, as the theme's CSS and MathJax's output are responsive)."""
    seen = {}

    def measure(page: Path) -> dict:
        if page not in seen:
            drv.set_window_size(*DESKTOP)
            open_page(drv, page.as_uri())
            wait_for_mathjax(drv)
            report = {"maths": maths_faults(drv), "desktop": drv.execute_script(_LAYOUT),
                      "outputs": output_overflow(drv)}
            drv.set_window_size(*PHONE)
            report["phone"] = drv.execute_script(_LAYOUT)
            drv.set_window_size(*DESKTOP)  # as the next test expects to find it
            seen[page] = report
        return seen[page]

    return measure


def image_bytes(src: str) -> bytes:
    if src.startswith("data:"):
        return base64.b64decode(src.split(",", 1)[1])
    return Path(src.removeprefix("file://")).read_bytes()


def grid_tile_width(png: bytes) -> float | None:
    """The width in image pixels of one tile of an image grid drawn by ncsn_edu.figures.plotting.show_grid
    (digits on black tiles with light gaps between them), or None for a picture that is not such a
    grid. In the rows that cross the grid, the columns inside a tile are mostly dark and the gaps
    light: the tiles are the runs of dark columns, and a grid has at least 4 runs of one width."""
    import numpy as np
    from PIL import Image

    dark = np.asarray(Image.open(io.BytesIO(png)).convert("L")) < 77
    rows = dark.mean(1) > 0.3
    if rows.sum() < 10:
        return None
    runs = [len(r) for r in "".join("x" if c else " " for c in dark[rows].mean(0) > 0.5).split()]
    runs = [r for r in runs if r >= 8]
    if not runs:
        return None
    width = float(np.median(runs))
    same = [r for r in runs if abs(r - width) <= 0.1 * width]
    return width if len(same) >= 4 and len(same) >= 0.6 * len(runs) else None


def test_grid_tile_width_finds_the_tiles_of_show_grid():
    """The detector reads a show_grid figure's tile width, and finds no grid in a line plot."""
    import matplotlib.pyplot as plt
    import torch

    from ncsn_edu.figures.plotting import show_grid

    digits = torch.zeros(16, 1, 28, 28)
    digits[:, :, 10:18, 12:16] = 1  # a short white stroke on black
    fig, ax = plt.subplots(figsize=(4, 4))
    show_grid(ax, digits, 4)
    fig.subplots_adjust(0, 0, 1, 1)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    # 400 px for 4 tiles of 28 + 2 gap pixels: 28 * 400 / 120 = 93 px of dark tile each
    assert abs(grid_tile_width(buf.getvalue()) - 28 * 400 / 120) <= 2
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1, 2], [0, 1, 0])
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    assert grid_tile_width(buf.getvalue()) is None


@pytest.fixture(scope="module")
def figure_page(small_site):
    """The small book's chapter: a three-panel figure 14 inches wide, two printed lines, a slider."""
    return small_site / "chapter.html"


def figures(images: list[dict]) -> list[dict]:
    """The figures among a page's images (a slider's frames are data: URIs)."""
    return [i for i in images if not i["src"].startswith("data:")]


def test_the_content_column_is_wide_on_a_desktop(drv, figure_page):
    """The book's CSS (book/_static/ncsn.css, wired in _config.yml) is served offline and widens
    the column; a wide figure fills it, and on a phone it shrinks to the screen."""
    desk = layout(drv, figure_page, DESKTOP)
    assert desk["column"] >= MIN_COLUMN, desk
    [figure] = figures(desk["images"])
    assert figure["natural"] > desk["column"] and abs(figure["shown"] - desk["column"]) <= 1, desk
    phone = layout(drv, figure_page, PHONE)
    [figure] = figures(phone["images"])
    assert figure["shown"] <= phone["column"] + 1 and figure["right"] <= phone["viewport"], phone


def test_a_printed_line_wider_than_its_box_is_flagged(drv, figure_page):
    """At a 1300 px window the 153-character line is flagged and the 78-character one, the figure
    and the slider are not."""
    drv.set_window_size(*DESKTOP)
    open_page(drv, figure_page.as_uri())
    found = drv.execute_script(_OUTPUT_OVERFLOW)
    assert [o["line"][:5] for o in found] == ["wide:"], found
    assert found[0]["chars"] == 153 and found[0]["width"] > found[0]["box"] >= MIN_COLUMN, found


@pytest.mark.skipif(not BUILT_PAGES, reason="the book is not built (python3 dev.py book)")
@pytest.mark.parametrize("page", BUILT_PAGES, ids=lambda p: p.name)
def test_no_printed_output_is_wider_than_its_box_on_a_desktop(shown, page):
    """Every cell output fits its box at a 1300 px window: a wider printed line is cut off there
    and needs a sideways scroll, so the numbers at its end, which the prose may cite, go unseen."""
    wide = shown(page)["outputs"]
    assert not wide, f"{page.name}: {len(wide)} output(s) wider than their box at {DESKTOP[0]} px:\n" + "\n".join(wide)


@pytest.mark.skipif(not BUILT_PAGES, reason="the book is not built (python3 dev.py book)")
@pytest.mark.parametrize("page", BUILT_PAGES, ids=lambda p: p.name)
def test_every_page_fits_a_phone_screen(shown, page):
    """No figure is wider than a phone's screen, and nothing makes the page scroll sideways
    (long inline code once did: book/_static/ncsn.css lets it wrap)."""
    phone = shown(page)["phone"]
    too_wide = [i["src"][-60:] for i in phone["images"] if i["right"] > phone["viewport"] + 1]
    assert not too_wide, f"wider than a {PHONE[0]} px screen: {too_wide}"
    assert phone["page"] <= phone["viewport"], f"the page is {phone['page']} px wide on a {PHONE[0]} px screen"


GRID_PAGES = [p for p in BUILT_PAGES if p.name.startswith(("10_", "11_"))]


@pytest.mark.skipif(not GRID_PAGES, reason="the book is not built (python3 dev.py book)")
@pytest.mark.parametrize("page", GRID_PAGES, ids=lambda p: p.name)
def test_every_digit_of_an_image_grid_is_readable_on_a_desktop(shown, page):
    desk = shown(page)["desktop"]
    shown = {}
    for img in desk["images"]:
        tile = grid_tile_width(image_bytes(img["src"]))
        if tile is not None:
            shown[img["src"][-40:]] = tile * img["shown"] / img["natural"]
    assert len(shown) >= 2, "the page's image grids were not found"  # 10: Figures 4 and 5; 11: 6 and 9
    small = {src: round(px, 1) for src, px in shown.items() if px < MIN_DIGIT_PX}
    assert not small, f"digits shown smaller than {MIN_DIGIT_PX} px at a {DESKTOP[0]} px window: {small}"


CAPSTONE = HTML / "book" / "12_capstone_cifar10.html"


@pytest.mark.skipif(not CAPSTONE.exists(), reason="the book is not built (python3 dev.py book)")
@pytest.mark.parametrize("window", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_capstone_sample_grid_is_readable(shown, window):
    """The 36 samples of the capstone's CPU run: a 6 x 6 grid of 28 px digits with 2 px of padding
    (torchvision's save_grid), shown large enough to read on a desktop and on a phone."""
    seen = shown(CAPSTONE)["desktop" if window == DESKTOP else "phone"]
    [grid] = [i for i in seen["images"] if i["src"].endswith("mnist_cpu_samples.png")]
    assert grid["natural"] == 6 * 30 + 2
    digit = grid["shown"] / grid["natural"] * 28
    assert digit >= 2 * MIN_DIGIT_PX, f"one digit is {digit:.1f} px wide at a {window[0]} px window"
