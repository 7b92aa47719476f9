"""Pages for the live-figure tests (not a test file): a figure or the whole library in a page of its
own, and what the tests read from it. The fixtures that hold such pages (``page``: the library;
``drv``: a browser) are in ``tests/figures/conftest.py``.

    from live_pages import frames, js, pictures, show, state, trained_like
"""

from __future__ import annotations

import json
from importlib import resources

import torch
from browser import open_page

from ncsn_edu.figures import live

#: Collects the page's uncaught errors and console errors in ``window.__errors``.
ERRORS = """<script>window.__errors = [];
window.addEventListener("error", function (e) { window.__errors.push(String(e.message)); });
var __ce = console.error;
console.error = function () { window.__errors.push(Array.from(arguments).join(" ")); __ce.apply(console, arguments); };
</script>"""


def all_kinds() -> list[str]:
    """Every figure kind (``ncsn_edu/figures/live_js/<kind>.js`` besides ``core.js``)."""
    folder = resources.files("ncsn_edu.figures").joinpath("live_js")
    return sorted(p.name[:-3] for p in folder.iterdir() if p.name.endswith(".js") and p.name != "core.js")


def kind_source(kind: str) -> str:
    """The JavaScript of figure kind ``kind``."""
    return resources.files("ncsn_edu.figures").joinpath("live_js", f"{kind}.js").read_text(encoding="utf-8")


def page_html(body: str) -> str:
    """A whole page holding ``body``, with :data:`ERRORS` collecting its errors."""
    return f"<!doctype html><html><head><meta charset='utf-8'></head><body>{ERRORS}{body}</body></html>"


def library_html() -> str:
    """A blank page that loads the whole library (core and every figure kind)."""
    return page_html(f"<script>{live.library_js(all_kinds())}</script>")


def js(drv, body: str, *args):
    """Run ``body`` (a function body using NCSNLive as L and the arguments as a0, a1, ...) and
    return its JSON-encoded result decoded."""
    names = ", ".join(f"a{i}" for i in range(len(args)))
    src = f"var L = window.NCSNLive; return JSON.stringify((function ({names}) {{ {body} }})(...arguments));"
    return json.loads(drv.execute_script(src, *args))


def show(drv, tmp_path, fig):
    """Load a page holding only ``fig`` and return its root element's id."""
    path = tmp_path / f"{fig.uid}.html"
    path.write_text(page_html(fig._repr_html_()))
    open_page(drv, path.as_uri())
    return fig.uid


def state(drv, uid):
    """The figure's ``state()``, decoded."""
    return json.loads(drv.execute_script(f"return document.getElementById('{uid}').state();"))


def frames(drv, n=3):
    """Let n animation frames run."""
    drv.execute_async_script("var done = arguments[0], k = " + str(n) + ";"
                             "(function f() { if (k-- <= 0) done(); else requestAnimationFrame(f); })();")


def pictures(drv, uid):
    """Every canvas of the figure, as a data URL."""
    return drv.execute_script(f"return Array.from(document.getElementById('{uid}').querySelectorAll('canvas'))"
                              ".map(function (c) {{ return c.toDataURL(); }});")


def trained_like(model, seed=0):
    """Weights away from their initial symmetries (a level table that is not all ones)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return model
