"""Sphinx extension for the book.

* Puts ncsn_edu's sliders in static mode: kernels started to execute the chapters inherit this
  process's environment, so ``ncsn_edu.figures.sliders.slider`` embeds every frame as HTML instead of
  needing a kernel.
* Keeps the built pages free of console errors (the live-figure tests check every page):
  sphinx-thebe's and sphinx-togglebutton's inline configuration scripts reach the page twice
  (the second ``const THEBE_JS_URL`` is a SyntaxError), so identical inline scripts are kept
  once; and the theme's colour mode, which the book's theme leaves empty (the theme then
  logs "invalid theme mode"), is set to light.
"""

import os


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


def setup(app):
    os.environ["NCSN_EDU_STATIC"] = "1"
    app.connect("html-page-context", _one_of_each_script)
    app.connect("html-page-context", _light_mode)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
