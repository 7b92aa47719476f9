"""ncsn_edu.progress: the static-mode switch the book build sets, and bars that switch off with it."""

import matplotlib.pyplot as plt

from ncsn_edu import progress
from ncsn_edu.figures import sliders


def test_static_mode_follows_the_build_environment(monkeypatch):
    monkeypatch.setenv(progress.STATIC_ENV, "1")
    assert progress.static_mode()
    assert isinstance(sliders.slider(lambda v: plt.figure(figsize=(1, 1)), [0.2, 0.8]), sliders.StaticSlider)
    for off in ("0", ""):
        monkeypatch.setenv(progress.STATIC_ENV, off)
        assert not progress.static_mode()
    monkeypatch.delenv(progress.STATIC_ENV)
    assert not progress.static_mode()


def test_bars_are_off_while_the_book_is_built_or_when_asked(monkeypatch):
    monkeypatch.setenv(progress.STATIC_ENV, "0")
    assert not progress.progress_bar(range(3)).disable
    assert progress.progress_bar(range(3), enabled=False).disable
    monkeypatch.setenv(progress.STATIC_ENV, "1")
    bar = progress.progress_bar(range(3))
    assert bar.disable and list(bar) == [0, 1, 2]  # still iterates
