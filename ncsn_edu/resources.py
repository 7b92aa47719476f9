"""Where data sets and the book's committed results live.

The data root is, in order: the ``NCSN_EDU_DATA`` environment variable, the ``data/``
folder of a source checkout (next to the ``ncsn_edu`` package), or
``~/.cache/ncsn_edu/data``. Data sets are downloaded there by torchvision; small result
files (checkpoints, loss curves) are committed there by the project.
"""

from __future__ import annotations

import os
from pathlib import Path


def data_root() -> Path:
    """The folder data sets are loaded from (and downloaded into)."""
    env = os.environ.get("NCSN_EDU_DATA")
    if env:
        return Path(env).expanduser()
    checkout = Path(__file__).resolve().parents[1] / "data"
    if checkout.is_dir():
        return checkout
    return Path.home() / ".cache" / "ncsn_edu" / "data"


def resource_path(name: str) -> Path:
    """The path of a committed result file under the data root, with a clear error
    naming the command that regenerates it when it is missing."""
    path = data_root() / name
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing. It is a result file committed with the book; run the book "
            f"from a checkout of the repository, set NCSN_EDU_DATA to its data/ folder, or "
            f"regenerate it with the command given in data/README.md."
        )
    return path
