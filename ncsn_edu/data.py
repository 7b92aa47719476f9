"""Image data sets through torchvision, scaled to ``[0, 1]`` as in the paper."""

from __future__ import annotations

from pathlib import Path

from .resources import data_root

DATASETS = ("mnist", "cifar10", "fashion_mnist")


def image_dataset(name: str, train: bool = True, root=None, flip: bool = False, download: bool = True):
    """torchvision's data set ``name`` as tensors in ``[0, 1]`` of shape ``(C, H, W)``.

    ``root`` defaults to :func:`ncsn_edu.resources.data_root`. torchvision finds files
    already there (for example an offline copy of ``MNIST/raw``) and downloads otherwise.
    ``flip`` adds random horizontal flips (the paper uses them for CIFAR-10, not MNIST).
    """
    import torchvision
    from torchvision import transforms

    name = name.lower().replace("-", "_")
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    root = Path(root) if root is not None else data_root()
    tf = ([transforms.RandomHorizontalFlip()] if flip else []) + [transforms.ToTensor()]
    cls = {
        "mnist": torchvision.datasets.MNIST,
        "cifar10": torchvision.datasets.CIFAR10,
        "fashion_mnist": torchvision.datasets.FashionMNIST,
    }[name]
    try:
        return cls(str(root), train=train, download=download, transform=transforms.Compose(tf))
    except (RuntimeError, OSError) as err:  # missing files and no network
        raise FileNotFoundError(
            f"could not load {name} from {root}: {err}\n"
            f"Put the data set's files under {root} in torchvision's layout (for example "
            f"{root}/MNIST/raw/ or {root}/cifar-10-batches-py/), set NCSN_EDU_DATA to a folder "
            f"that holds them, or run with network access so torchvision can download them."
        ) from err
