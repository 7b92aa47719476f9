"""Progress bars that behave in every place the book runs, and the switch that says where that is.

In Jupyter and Colab a bar is tqdm's notebook widget; in a terminal it is text. While the
book is built (static mode: the book's Sphinx extension sets ``NCSN_EDU_STATIC=1`` and the
executing kernel inherits it) bars are switched off: a widget would need a kernel and a CDN in
the static page, and text bars would only add noise. The picture sliders
(:mod:`ncsn_edu.figures.sliders`) read the same switch.
"""

from __future__ import annotations

import os

from tqdm.auto import tqdm

STATIC_ENV = "NCSN_EDU_STATIC"


def static_mode() -> bool:
    """True while the book is being built (or when forced with ``NCSN_EDU_STATIC=1``).
    Belongs to chapter 1 (scores and Langevin dynamics)."""
    return os.environ.get(STATIC_ENV, "") not in ("", "0")


def progress_bar(iterable=None, enabled: bool = True, **kwargs):
    """``tqdm(iterable, **kwargs)``, disabled when ``enabled`` is false or in static mode.
    Used by the package's loops from chapter 2 (score matching) on."""
    return tqdm(iterable, disable=(not enabled) or static_mode(), **kwargs)
