"""Figures driven by a slider, live in Jupyter and Colab and static in the built book.

One call, :func:`slider`, serves both places:

* In a live kernel (Jupyter, Colab) it returns an ipywidgets slider; moving it redraws
  the figure by calling ``draw(value)``.
* While the book is built (the book's Sphinx extension sets ``NCSN_EDU_STATIC=1``, and
  the executing kernel inherits it) it draws every value once and returns a
  self-contained HTML slider: the frames are embedded PNGs and a few lines of inline
  JavaScript swap the picture and the printed value together. It needs no kernel and
  no network. Frame ``i`` is always shown with value ``i``: both are updated in the
  same handler from the same index.
"""

from __future__ import annotations

import base64
import html
import io
import json
import uuid

from ncsn_edu.progress import static_mode


def figure_to_png(fig, dpi: int = 80) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it.
    Belongs to chapter 1 (scores and Langevin dynamics)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


class StaticSlider:
    """A slider over pre-rendered frames, shown as HTML with inline JavaScript.
    Belongs to chapter 1 (scores and Langevin dynamics)."""

    def __init__(self, frames: list[bytes], labels: list[str], name: str, initial: int = 0, alt: str = ""):
        if len(frames) != len(labels) or not frames:
            raise ValueError("need one label per frame and at least one frame")
        self.frames, self.labels, self.name = frames, labels, name
        self.initial, self.alt = initial, alt or f"figure for {name}"
        self.uid = "ncsn-slider-" + uuid.uuid4().hex[:10]

    def _repr_html_(self) -> str:
        uid, i0 = self.uid, self.initial
        srcs = ["data:image/png;base64," + base64.b64encode(f).decode("ascii") for f in self.frames]
        name = html.escape(self.name)
        # Frames and labels are kept in one JSON array so that index i always pairs them.
        data = json.dumps([[lab, src] for lab, src in zip(self.labels, srcs)])
        return f"""
<div class="ncsn-slider" id="{uid}" data-count="{len(srcs)}">
  <div style="font-family: monospace; margin-bottom: 4px">
    <label for="{uid}-range">{name}</label> =
    <output id="{uid}-value" data-index="{i0}">{html.escape(self.labels[i0])}</output>
  </div>
  <input type="range" id="{uid}-range" min="0" max="{len(srcs) - 1}" step="1" value="{i0}"
         style="width: 60%" aria-label="{name}">
  <div><img id="{uid}-img" data-index="{i0}" src="{srcs[i0]}" alt="{html.escape(self.alt)}"
            style="max-width: 100%"></div>
  <script type="application/json" id="{uid}-data">{data}</script>
  <script>
  (function () {{
    var frames = JSON.parse(document.getElementById("{uid}-data").textContent);
    var range = document.getElementById("{uid}-range");
    var img = document.getElementById("{uid}-img");
    var out = document.getElementById("{uid}-value");
    function show() {{
      var i = parseInt(range.value, 10);
      img.src = frames[i][1]; img.dataset.index = i;
      out.textContent = frames[i][0]; out.dataset.index = i;
    }}
    range.addEventListener("input", show);
    range.addEventListener("change", show);
  }})();
  </script>
</div>"""

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/html": self._repr_html_(), "text/plain": f"<slider over {self.name}: {len(self.frames)} frames>"}


def slider(draw, values, name: str = "sigma", fmt: str = "{:.3g}", initial: int = 0, dpi: int = 80, static=None):
    """Show the figure ``draw(value)`` with a slider over ``values``.

    ``draw`` takes one value and returns a matplotlib figure. ``values`` is the list of
    slider positions (the same in the live and the static slider); ``fmt`` formats the
    value shown beside the slider; ``initial`` is the starting index. ``static`` forces
    one mode (default: static while the book is built, live otherwise).

    Display the result as a cell's last expression (or with ``display``).
    Introduced in chapter 1 (scores and Langevin dynamics).
    """
    values = list(values)
    if not values:
        raise ValueError("slider needs at least one value")
    if not 0 <= initial < len(values):
        raise ValueError(f"initial index {initial} is outside 0..{len(values) - 1}")
    labels = [fmt.format(v) for v in values]
    if static is None:
        static = static_mode()
    if static:
        return StaticSlider([figure_to_png(draw(v), dpi) for v in values], labels, name, initial)
    return _live_slider(draw, values, labels, name, initial)


def _live_slider(draw, values, labels, name, initial):
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    control = widgets.SelectionSlider(
        options=list(zip(labels, range(len(values)))),
        value=initial,
        description=name,
        continuous_update=False,
        layout=widgets.Layout(width="60%"),
    )
    out = widgets.Output()

    def redraw(change=None):
        fig = draw(values[control.value])
        with out:
            out.clear_output(wait=True)
            display(fig)
        plt.close(fig)

    control.observe(redraw, names="value")
    redraw()
    return widgets.VBox([control, out])
