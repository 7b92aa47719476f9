"""Where the book's committed results and the data sets live: two separate homes.

*Results* (checkpoints, loss curves, sample shards: the small files the project commits
under the repository's ``data/`` folder) are found by :func:`resource_path` in
:func:`results_root`: the ``results`` sub-package of an installed package (a wheel, or
``pip install .`` of a clone, carries them as package data), else the ``data/`` folder of
a source checkout (an editable install or ``PYTHONPATH``). ``NCSN_EDU_DATA`` never changes
where results are looked up.

*Data sets* (MNIST, CIFAR-10 copies, their caches) are downloaded, linked or unpacked into
:func:`data_root`: the ``NCSN_EDU_DATA`` environment variable, else the ``data/`` folder
of a source checkout (git-ignored folders there), else ``~/.cache/ncsn_edu/data``.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
#: Where an installed package keeps its results (``pyproject.toml`` maps ``data/`` there).
_INSTALLED_RESULTS = _PACKAGE / "results"
#: The ``data/`` folder of a source checkout, next to the ``ncsn_edu`` package.
_CHECKOUT_DATA = _PACKAGE.parent / "data"


def _checkout_data() -> Path | None:
    """The checkout's ``data/`` folder, only when this package is a checkout's (an
    installed package's parent is site-packages, whose ``data`` is no result folder)."""
    if _CHECKOUT_DATA.is_dir() and (_PACKAGE.parent / "pyproject.toml").is_file():
        return _CHECKOUT_DATA
    return None


def results_root() -> Path:
    """The folder holding the book's committed results, however the package was
    installed; independent of ``NCSN_EDU_DATA``.
    Belongs to chapter 4 (denoising score matching)."""
    if _INSTALLED_RESULTS.is_dir():
        return _INSTALLED_RESULTS
    checkout = _checkout_data()
    if checkout is not None:
        return checkout
    raise FileNotFoundError(
        f"ncsn_edu at {_PACKAGE} has no committed results: it is neither a checkout of the "
        f"repository nor an install that carries them. Reinstall it from a clone "
        f"(pip install --no-deps --force-reinstall PATH_TO_CLONE) or run from the clone."
    )


def data_root() -> Path:
    """The folder data sets are loaded from (and downloaded into).
    Belongs to chapter 10 (NCSN on MNIST)."""
    env = os.environ.get("NCSN_EDU_DATA")
    if env:
        return Path(env).expanduser()
    checkout = _checkout_data()
    if checkout is not None:
        return checkout
    return Path.home() / ".cache" / "ncsn_edu" / "data"


def resource_path(name: str) -> Path:
    """The path of a committed result file (``name`` relative to the repository's
    ``data/`` folder, e.g. ``"mnist_ncsn_ngf16.pt"`` or ``"mnist_ncsn_samples"``), with a
    clear error naming how to regenerate it when it is missing.
    Introduced in chapter 4 (denoising score matching)."""
    path = results_root() / name
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing. It is a result file committed with the book under data/; "
            f"regenerate it with the command given in data/README.md, or reinstall ncsn_edu "
            f"from an up-to-date clone of the repository."
        )
    return path
