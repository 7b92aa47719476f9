"""Test-side helpers for the image trainer: a tiny stand-in score network, small data
sets written in MNIST's and CIFAR-10's own file formats, and a launcher that subprocess
tests (SIGKILL, torchrun) run as a script.

    python tests/image_train_helpers.py [--tiny-model] [--record-batch FILE] [--fake-cifar-md5 FILE] -- ARGS

runs ``ncsn_edu.train_images.main(TRAINER ARGS)``; ``--fake-cifar-md5`` makes
torchvision accept a generated CIFAR-10 (md5s read from a JSON file), ``--tiny-model``
swaps in :class:`TinyScore` for a fast CPU run, ``--record-batch FILE`` writes the batch
sizes the tiny model trained on to ``FILE.<rank>``.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn


class TinyScore(nn.Module):
    """A small noise-conditional score network with the interface of
    ``CondRefineNetDilated``: ``forward(x in [0, 1], labels) -> score of x's shape``."""

    def __init__(self, in_channels: int = 1, ngf: int = 8, num_classes: int = 10, image_size: int = 28):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, ngf, 3, padding=1)
        self.conv2 = nn.Conv2d(ngf, ngf, 3, padding=1)
        self.conv3 = nn.Conv2d(ngf, in_channels, 3, padding=1)
        self.scale = nn.Embedding(num_classes, ngf)
        nn.init.ones_(self.scale.weight)
        self.batch_sizes_seen: set = set()  # training batch sizes this process saw

    def forward(self, x, labels):
        if self.training:
            self.batch_sizes_seen.add(x.shape[0])
        h = 2 * x - 1
        h = torch.nn.functional.elu(self.conv1(h)) * self.scale(labels)[:, :, None, None]
        h = torch.nn.functional.elu(self.conv2(h))
        return self.conv3(h)


def tiny_factory(dataset: str, ngf: int, n_sigmas: int) -> nn.Module:
    from ncsn_edu.images.presets import DATASET_DEFAULTS

    d = DATASET_DEFAULTS[dataset]
    return TinyScore(d["channels"], ngf, n_sigmas, d["image_size"])



class Crash(KeyboardInterrupt):
    """What crashing_factory's network raises: an interruption, as Ctrl-C would be."""


def crashing_factory(after_steps: int):
    """tiny_factory's network, which dies (raises Crash) in the training step after
    ``after_steps``; evaluation passes (sampling, test loss) do not count."""
    def factory(*a, **kw):
        net = tiny_factory(*a, **kw)
        calls, forward = [0], net.forward

        def dying(x, labels):
            if net.training:
                calls[0] += 1
                if calls[0] > after_steps:
                    raise Crash("killed")
            return forward(x, labels)

        net.forward = dying
        return net
    return factory


def write_fake_mnist(root, n_train: int = 256, n_test: int = 64, seed: int = 0) -> Path:
    """Random 28x28 digits-like images in MNIST's IDX format under ``root/MNIST/raw``
    (torchvision reads the uncompressed files there without downloading)."""
    rng = np.random.default_rng(seed)
    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        # Blurry blobs: a little structure, values spread over [0, 255].
        imgs = np.zeros((n, 28, 28), dtype=np.uint8)
        yy, xx = np.mgrid[:28, :28]
        for i in range(n):
            cy, cx = rng.uniform(8, 20, 2)
            imgs[i] = (255 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 20.0)).astype(np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        with open(raw / f"{prefix}-images-idx3-ubyte", "wb") as f:
            f.write(struct.pack(">IIII", 2051, n, 28, 28) + imgs.tobytes())
        with open(raw / f"{prefix}-labels-idx1-ubyte", "wb") as f:
            f.write(struct.pack(">II", 2049, n) + labels.tobytes())
    return raw


def asymmetric_images(n: int, shape=(3, 4, 6), seed: int = 0) -> torch.Tensor:
    """``n`` random ``uint8`` images of ``shape`` (C, H, W): no image is near its own mirror or another
    image's (checked by the tests that use them, with :func:`nearest_stored`)."""
    return torch.randint(0, 256, (n, *shape), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def nearest_stored(grey: torch.Tensor, images: torch.Tensor):
    """For each image of ``grey`` (``(N, C, H, W)`` in grey levels 0..255, any float dtype), the stored
    image of ``images`` nearest to it in the largest pixel difference: ``(distances, indices)``."""
    d = (grey.double()[:, None] - images.double()[None]).abs().flatten(2).amax(2)
    return d.min(1)


def write_idx(root, folder: str, train: np.ndarray, test: np.ndarray) -> Path:
    """uint8 images ``(N, 28, 28)`` as the uncompressed IDX files torchvision reads from
    ``root/<folder>/raw`` (``MNIST`` or ``FashionMNIST``), with labels ``i % 10``."""
    raw = Path(root) / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, imgs in (("train", train), ("t10k", test)):
        n = len(imgs)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, 28, 28)
                                                          + imgs.astype(np.uint8).tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n)
                                                          + (np.arange(n) % 10).astype(np.uint8).tobytes())
    return raw


def tiny_args(root, out, *extra):
    return ["--data-root", str(root), "--out", str(out), "--ngf", "4", "--batch-size", "8", "--test-batches", "0",
            "--sample-n", "1", "--sample-steps-each", "1", "--no-progress", *extra]


#: A few steps of the tiny network on ``mnist_root``; a test overrides what it needs
SMALL = dict(ngf=4, batch_size=16, n_iters=4, ckpt_every=2, log_every=2, test_every=2, test_batches=1,
             sample_every=100, sample_n=2, sample_steps_each=1, progress=False)



def _launch(argv):
    sep = argv.index("--") if "--" in argv else len(argv)
    own, rest = argv[:sep], argv[sep + 1:]
    factory, built = None, []
    if "--tiny-model" in own:
        def factory(*a):
            built.append(tiny_factory(*a))
            return built[-1]
    if "--fake-cifar-md5" in own:
        from torchvision.datasets import CIFAR10

        md5s = json.loads(Path(own[own.index("--fake-cifar-md5") + 1]).read_text())
        CIFAR10.train_list = [[f"data_batch_{i}", md5s[f"data_batch_{i}"]] for i in range(1, 6)]
        CIFAR10.test_list = [["test_batch", md5s["test_batch"]]]
        CIFAR10.meta = dict(CIFAR10.meta, md5=md5s["batches.meta"])
    torch.set_num_threads(1)
    from ncsn_edu.train_images import main

    rc = main(rest, model_factory=factory)
    if "--record-batch" in own and built:  # which batch sizes this process trained on
        import os

        path = Path(own[own.index("--record-batch") + 1] + "." + os.environ.get("RANK", "0"))
        path.write_text(json.dumps(sorted(built[-1].batch_sizes_seen)))
    return rc


if __name__ == "__main__":
    sys.exit(_launch(sys.argv[1:]))
