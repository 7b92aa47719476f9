"""Small CIFAR-10 data sets written in CIFAR-10's own file format, for tests.

CIFAR-10 cannot be downloaded on the project's machines, so tests write a few random
images in the original python-pickle layout (``cifar-10-batches-py/data_batch_1..5``,
``test_batch``, ``batches.meta``) and load them with torchvision's real ``CIFAR10``
class. torchvision checks each file's md5 against the real data set's; tests swap in the
md5s of the generated files with :func:`trust_fake_cifar10` (the integrity check itself
still runs).
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_fake_cifar10(root, n_per_batch: int = 20, n_test: int = 20, seed: int = 0) -> dict:
    """Write a tiny CIFAR-10 (5 training batches of ``n_per_batch`` images and a test
    batch of ``n_test``) under ``root/cifar-10-batches-py``; return ``{file: md5}``."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)

    def batch(name, n):
        entry = {
            "batch_label": f"fake {name}".encode(),
            "labels": rng.integers(0, 10, n).tolist(),
            "data": rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8),
            "filenames": [f"img_{i}.png".encode() for i in range(n)],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f)

    for i in range(1, 6):
        batch(f"data_batch_{i}", n_per_batch)
    batch("test_batch", n_test)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"num_cases_per_batch": n_per_batch, "label_names": CLASSES, "num_vis": 3072}, f)
    return {p.name: _md5(p) for p in folder.iterdir()}


def trust_fake_cifar10(monkeypatch, md5s: dict) -> None:
    """Make torchvision's CIFAR10 accept the generated files' md5s (pytest monkeypatch)."""
    from torchvision.datasets import CIFAR10

    monkeypatch.setattr(CIFAR10, "train_list", [[f"data_batch_{i}", md5s[f"data_batch_{i}"]] for i in range(1, 6)])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5s["test_batch"]]])
    monkeypatch.setattr(CIFAR10, "meta", dict(CIFAR10.meta, md5=md5s["batches.meta"]))
