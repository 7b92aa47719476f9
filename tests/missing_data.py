"""What a test says when a data set it needs is missing: where the files go and the
command that puts them there. Under CI such a skip fails the run (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ncsn_edu.resources import data_root

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def how_to_provide(dataset: str) -> str:
    """Exactly where ``dataset`` ("mnist" or "cifar10") must be and how to put it there."""
    root = data_root()
    linked = ROOT / "data"  # where dev.py links or unpacks the offline copies
    if root.resolve() == linked.resolve():
        where = f"into {linked}"
    else:
        where = f"into {linked}, which is used once NCSN_EDU_DATA (now {root}) is unset"
    if dataset == "mnist":
        return (f"MNIST is read from {root}/MNIST/raw/ (the four uncompressed IDX files: "
                f"train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
                f"t10k-labels-idx1-ubyte). With the offline copy at {SHARED}/MNIST/raw beside the "
                f"checkout, `python3 dev.py setup` links it {where}. Otherwise copy or link those "
                f"files to {root}/MNIST/raw/, or run once with network access so torchvision "
                f"downloads them.")
    if dataset == "cifar10":
        return (f"CIFAR-10 is read from {root}/cifar10-jpeg/{{train,test}}/<class>/*.jpg (the offline "
                f"JPEG copy) or {root}/cifar-10-batches-py/ (torchvision's original). With "
                f"{SHARED}/cifar10-jpeg/cifar10_jpeg.tar.gz beside the checkout, `python3 dev.py setup` "
                f"unpacks it {where}. Otherwise unpack that archive in {root}/cifar10-jpeg/, or run "
                f"once with network access so torchvision downloads the original.")
    raise ValueError(f"no instructions for data set {dataset!r}")


def skip_missing(dataset: str, err: Exception) -> None:
    """Skip the calling test because ``dataset`` is missing, saying how to provide it."""
    pytest.skip(f"data set missing: {err}\n{how_to_provide(dataset)}")
