"""Sphinx extension for the book.

* Puts ncsn_edu's sliders in static mode: kernels started to execute the chapters inherit this
  process's environment, so ``ncsn_edu.figures.sliders.slider`` embeds every frame as HTML instead of
  needing a kernel.
* Keeps the built pages free of console errors (the live-figure tests check every page):
  sphinx-thebe's and sphinx-togglebutton's inline configuration scripts reach the page twice
  (the second ``const THEBE_JS_URL`` is a SyntaxError), so identical inline scripts are kept
  once; and the theme's colour mode, which the book's theme leaves empty (the theme then
  logs "invalid theme mode"), is set to light.
* Ships what the live image figures run in the reader's browser (chapters 10, 11 and 11b), once
  per build and never per page: onnxruntime-web's WebAssembly files from ``node_modules``
  (``npm ci`` installs the version ``package-lock.json`` pins; ``dev.py book`` runs it) into
  ``_static/ort/``, and the MNIST networks exported to ONNX with their manifest
  (``ncsn_edu.images.onnx_export.write_site_assets``) into ``_static/ncsn_edu/``; a rebuild
  reuses the exported files while the checkpoints are unchanged. A book folder without a
  ``package.json`` (the test suite's small books) has no browser dependencies and gets neither.
"""

import os
import time
from pathlib import Path


def _one_of_each_script(app, pagename, templatename, context, doctree):
    scripts, seen = context.get("script_files"), set()
    if not scripts:
        return
    kept = []
    for s in scripts:
        attrs = getattr(s, "attributes", {}) or {}
        # an inline script is the same script whatever its priority; a file, whatever its query string
        key = ("inline", attrs.get("body")) if attrs.get("body") else ("file", str(s).split("?")[0])
        if key in seen:
            continue
        seen.add(key)
        kept.append(s)
    scripts[:] = kept


def _light_mode(app, pagename, templatename, context, doctree):
    if not context.get("default_mode"):
        context["default_mode"] = "light"


def _live_image_assets(app):
    """Copy onnxruntime-web's files and export the networks into the site's ``_static``."""
    from sphinx.errors import ExtensionError
    from sphinx.util import logging

    root = Path(app.srcdir)
    if app.builder.format != "html" or not (root / "package.json").is_file():
        return
    from ncsn_edu.images.onnx_export import copy_ort_runtime, write_site_assets
    from ncsn_edu.resources import results_root

    start, cpu = time.perf_counter(), time.process_time()
    static = Path(app.outdir) / "_static"
    try:
        copy_ort_runtime(root / "node_modules", static / "ort")
    except FileNotFoundError as err:
        raise ExtensionError(f"the live image figures need onnxruntime-web: {err}") from None
    v2 = results_root() / "mnist_ncsnv2_ngf16.pt"  # the finished NCSNv2 run, once it is committed
    write_site_assets(static / "ncsn_edu", v2_checkpoint=v2 if v2.is_file() else None)
    logging.getLogger(__name__).info(
        f"ncsn_book: onnxruntime-web and the ONNX networks in _static/ in {time.perf_counter() - start:.1f} s "
        f"({time.process_time() - cpu:.1f} s of processor time)")


def setup(app):
    os.environ["NCSN_EDU_STATIC"] = "1"
    app.connect("builder-inited", _live_image_assets)
    app.connect("html-page-context", _one_of_each_script)
    app.connect("html-page-context", _light_mode)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
