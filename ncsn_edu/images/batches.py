"""The trainer's data source: a data set read once into a ``uint8`` tensor, and the batch
of every training step as a pure function of ``(seed, step)`` (chapter 12).

Images are scaled to ``[0, 1]`` as in the paper. With dequantisation (the official code's
default, ``runners/anneal_runner.py``) a pixel of value ``v`` in ``0..255`` becomes
``(v + u) / 256`` with ``u ~ U(0, 1)``: the official ``x * 255/256 + U(0, 1)/256`` of
``x = v / 255``, which spreads each quantised value over its bin.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ncsn_edu.images import seeding


@dataclass
class ImageSet:
    """One split of a data set: ``images`` (``uint8``, ``(N, C, H, W)``), ``labels``, and
    ``source`` (what was read, e.g. the original CIFAR-10 or its JPEG copy).
    Used by the training command (chapter 10, NCSN on MNIST)."""

    images: torch.Tensor
    labels: torch.Tensor
    source: str

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])


def _describe(ds, name: str, root) -> str:
    """What a data set object read, for data sets that do not say it themselves."""
    where = getattr(ds, "root", root)
    return f"{name}: torchvision {type(ds).__name__} files under {where}"


def _as_uint8(ds) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole data set as ``uint8`` ``(N, C, H, W)`` and labels: from its stored array
    when it has one of the advertised shape (torchvision's MNIST and CIFAR-10, cached
    copies), else item by item (values in [0, 1] rounded back to 0..255)."""
    data, targets = getattr(ds, "data", None), getattr(ds, "targets", None)
    if data is not None and targets is not None:
        t = torch.as_tensor(data)
        if t.dtype == torch.uint8 and t.ndim in (3, 4):
            if t.ndim == 3:  # MNIST-like (N, H, W)
                t = t.unsqueeze(1)
            elif t.shape[-1] in (1, 3) and t.shape[1] not in (1, 3):  # CIFAR-10-like (N, H, W, C)
                t = t.permute(0, 3, 1, 2)
            c, h = t.shape[1], t.shape[2]
            if getattr(ds, "channels", c) == c and getattr(ds, "image_size", h) == h:
                return t.contiguous(), torch.as_tensor(targets)
    xs, ys = [], []
    for i in range(len(ds)):
        x, y = ds[i]
        xs.append((torch.as_tensor(x) * 255).round().clamp(0, 255).to(torch.uint8))
        ys.append(int(y))
    return torch.stack(xs).contiguous(), torch.tensor(ys)


def read_image_set(dataset: str, train: bool, root=None, image_size=None, crop=None) -> ImageSet:
    """A split of ``dataset`` (``mnist``, ``fashion_mnist``, ``cifar10`` or ``folder``)
    through :func:`ncsn_edu.images.data.image_dataset`, as an :class:`ImageSet`.
    Used by the training command (chapter 10, NCSN on MNIST)."""
    from ncsn_edu.images.data import image_dataset

    if root is not None and not Path(root).is_dir():
        raise FileNotFoundError(
            f"--data-root {root} is not a folder. Give the folder that holds the data set in "
            f"torchvision's layout (MNIST/raw/ or cifar-10-batches-py/) or a folder of images, or leave "
            f"--data-root out to use the default data folder, where torchvision downloads the data set "
            f"when it can.")
    kw = {k: v for k, v in dict(image_size=image_size, crop=crop).items() if v is not None}
    ds = image_dataset(dataset, train=train, root=root, download=True, **kw)
    images, labels = _as_uint8(ds)
    return ImageSet(images, labels, getattr(ds, "source", None) or _describe(ds, dataset, root))


def load_images(dataset: str, train: bool, root=None, image_size=None, crop=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole split as ``uint8`` images ``(N, C, H, W)`` and labels.
    Used by the training command (chapter 10, NCSN on MNIST)."""
    s = read_image_set(dataset, train, root, image_size, crop)
    return s.images, s.labels


class StepBatches:
    """The batch of step ``k``, a pure function of ``(seed, k)``.

    Each epoch visits the training images in a fresh random order (the last incomplete
    batch is dropped); flips and uniform dequantisation are drawn from a generator seeded
    by ``(seed, k)``. ``batch(k, rank, world)`` returns rank's share of the global batch.
    Used by the training command (chapter 10, NCSN on MNIST).
    """

    def __init__(self, images: torch.Tensor, batch_size: int, seed: int, flip: bool, dequantize: bool):
        if batch_size > len(images):
            raise ValueError(f"batch size {batch_size} exceeds the {len(images)} training images")
        self.images, self.batch_size, self.seed = images, batch_size, seed
        self.flip, self.dequantize = flip, dequantize
        self.per_epoch = len(images) // batch_size
        self._perm_epoch, self._perm = None, None

    def _order(self, epoch: int) -> torch.Tensor:
        if self._perm_epoch != epoch:
            g = seeding.generator(self.seed, seeding.ORDER, epoch)
            self._perm, self._perm_epoch = torch.randperm(len(self.images), generator=g), epoch
        return self._perm

    def batch(self, step: int, rank: int = 0, world: int = 1) -> torch.Tensor:
        epoch, j = divmod(step, self.per_epoch)
        idx = self._order(epoch)[j * self.batch_size:(j + 1) * self.batch_size]
        g = seeding.generator(self.seed, seeding.BATCH, step)
        flips = torch.rand(self.batch_size, generator=g) < 0.5
        deq = torch.rand((self.batch_size, *self.images.shape[1:]), generator=g) if self.dequantize else None
        share = self.batch_size // world
        sl = slice(rank * share, (rank + 1) * share)
        idx = idx[sl].to(self.images.device)
        x = self.images[idx].float()
        if deq is not None:  # the official code's dequantisation: (255 x + u) / 256
            x = x + deq[sl].to(x.device)
            x = x / 256.0
        else:
            x = x / 255.0
        if self.flip:
            f = flips[sl].to(x.device)
            x = torch.where(f.view(-1, 1, 1, 1), x.flip(-1), x)
        return x


def held_out_batch(images: torch.Tensor, b: int, batch_size: int, seed: int, dequantize: bool) -> torch.Tensor:
    """Held-out batch ``b`` (drawn with replacement), dequantised as the training batches
    are (the official code does the same to its test batches).
    Used by the training command (chapter 10, NCSN on MNIST)."""
    g = seeding.generator(seed, seeding.TEST_IMAGES, b)
    idx = torch.randint(0, len(images), (batch_size,), generator=g)
    x = images[idx].float()
    if dequantize:
        return (x + torch.rand(x.shape, generator=g).to(x.device)) / 256.0
    return x / 255.0
