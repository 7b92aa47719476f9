"""Sphinx extension for the book: puts ncsn_edu's sliders in static mode.

Kernels started to execute the chapters inherit this process's environment, so
``ncsn_edu.sliders.slider`` embeds every frame as HTML instead of needing a kernel.
"""

import os


def setup(app):
    os.environ["NCSN_EDU_STATIC"] = "1"
    return {"parallel_read_safe": True, "parallel_write_safe": True}
