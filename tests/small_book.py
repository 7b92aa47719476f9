"""A tiny book with the project's own _config.yml, extension and static files, built by
jupyter-book as ``dev.py book`` builds the real one (not a test file; used by
test_book_build and test_rendered_pages)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
JB = Path(sys.executable).parent / "jupyter-book"

#: A code cell drawing a picture slider of three values (ncsn_edu.figures.sliders), static in the site.
SLIDER_CELL = """import matplotlib.pyplot as plt
from ncsn_edu.figures.sliders import slider

def draw(v):
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.bar([0], [v])
    ax.set_ylim(0, 4)
    ax.set_title(f"value {v}")
    return fig

slider(draw, [1, 2, 3], name="height", fmt="{}")"""


def _notebook(cells) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def make_book(folder: Path, cells: list[str], pages: dict[str, list[str]] | None = None) -> Path:
    """A book whose root chapter ``book/chapter`` is a heading and the code ``cells``, with the
    project's own _config.yml settings, extension and static files. ``pages`` adds one chapter
    per entry, ``book/<name>``: a notebook of the given markdown cells."""
    folder.mkdir(parents=True)
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    (folder / "_config.yml").write_text(yaml.safe_dump(config))
    toc = {"format": "jb-book", "root": "book/chapter"}
    if pages:
        toc["chapters"] = [{"file": f"book/{name}"} for name in pages]
    (folder / "_toc.yml").write_text(yaml.safe_dump(toc))
    shutil.copytree(ROOT / "book" / "_ext", folder / "book" / "_ext")
    if (ROOT / "book" / "_static").is_dir():
        shutil.copytree(ROOT / "book" / "_static", folder / "book" / "_static")
    nb = _notebook([nbformat.v4.new_markdown_cell("# A chapter")] + [nbformat.v4.new_code_cell(c) for c in cells])
    nbformat.write(nb, folder / "book" / "chapter.ipynb")
    for name, markdown in (pages or {}).items():
        page = _notebook([nbformat.v4.new_markdown_cell(m) for m in markdown])
        nbformat.write(page, folder / "book" / f"{name}.ipynb")
    return folder


def build(folder: Path) -> subprocess.CompletedProcess:
    """``jupyter-book build folder -W --keep-going``, as ``dev.py book`` builds the book."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("MPLBACKEND", None)
    env.pop(  # the Sphinx extension, not the caller, must switch sliders to static mode
        "NCSN_EDU_STATIC", None
    )
    return subprocess.run(
        [str(JB), "build", str(folder), "-W", "--keep-going"],
        capture_output=True, text=True, env=env, timeout=600,
    )
