"""Progress bars that behave in every place the book runs.

In Jupyter and Colab a bar is tqdm's notebook widget; in a terminal it is text. While the
book is built (static mode, see :mod:`ncsn_edu.sliders`) bars are switched off: a widget
would need a kernel and a CDN in the static page, and text bars would only add noise.
"""

from __future__ import annotations

from tqdm.auto import tqdm

from .sliders import static_mode


def progress_bar(iterable=None, enabled: bool = True, **kwargs):
    """``tqdm(iterable, **kwargs)``, disabled when ``enabled`` is false or in static mode.
    Used by the package's loops from chapter 2 (score matching) on."""
    return tqdm(iterable, disable=(not enabled) or static_mode(), **kwargs)
