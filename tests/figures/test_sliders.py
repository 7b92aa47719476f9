"""The slider shows, for every position, the picture drawn for that position's value."""

import base64
import io
import json
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from ncsn_edu import progress  # noqa: E402
from ncsn_edu.figures import sliders  # noqa: E402

VALUES = [0.1, 0.5, 0.9]


def draw_grey(value):
    """A figure filled with grey level ``value``: the picture encodes its value."""
    fig = plt.figure(figsize=(1, 1))
    fig.patch.set_facecolor((value, value, value))
    return fig


def grey_of(png_bytes):
    img = mpimg.imread(io.BytesIO(png_bytes), format="png")
    return float(img[img.shape[0] // 2, img.shape[1] // 2, 0])


def test_static_frames_pair_each_value_with_its_picture():
    s = sliders.slider(draw_grey, VALUES, name="sigma", fmt="{:.1f}", static=True)
    html = s._repr_html_()
    data = json.loads(re.search(r'<script type="application/json"[^>]*>(.*?)</script>', html, re.S).group(1))
    assert [label for label, _ in data] == ["0.1", "0.5", "0.9"]
    for (label, src), value in zip(data, VALUES):
        png = base64.b64decode(src.split(",", 1)[1])
        assert abs(grey_of(png) - value) < 0.01, f"frame for {label} shows grey {grey_of(png)}"
    # the initial picture and value shown without any JavaScript belong together
    assert re.search(r'<output [^>]*>0.1</output>', html)
    assert data[0][1] in re.search(r'<img [^>]*src="([^"]+)"', html).group(1)
    assert 'max="2"' in html and "http" not in html.replace("http://www.w3.org", "")



def test_live_slider_redraws_with_the_chosen_value():
    calls = []

    def draw(v):
        calls.append(v)
        return draw_grey(v)

    box = sliders.slider(draw, VALUES, name="sigma", static=False, initial=1)
    control = box.children[0]
    assert calls == [0.5]
    control.value = 2
    assert calls == [0.5, 0.9]
    assert control.options[2][0] == "0.9"


def test_bad_input():
    with pytest.raises(ValueError):
        sliders.slider(draw_grey, [], static=True)
    with pytest.raises(ValueError):
        sliders.slider(draw_grey, VALUES, initial=5, static=True)


def test_progress_bars_are_off_in_the_static_build(monkeypatch):
    from ncsn_edu.progress import progress_bar

    monkeypatch.setenv(progress.STATIC_ENV, "1")
    assert progress_bar(range(3), enabled=True).disable
    monkeypatch.setenv(progress.STATIC_ENV, "0")
    assert not progress_bar(range(3), enabled=True).disable
    assert progress_bar(range(3), enabled=False).disable
