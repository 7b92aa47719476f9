"""A small MNIST classifier, the yardstick for the quality of MNIST samples.

Inception-v3 (behind the paper's Inception score and FID) knows nothing about
handwritten digits; a classifier trained on MNIST does. :class:`MnistClassifier` is a
two-convolution network whose 64-dimensional penultimate layer serves as the feature
space for a Frechet distance (see :mod:`ncsn_edu.images.metrics`). Train and save it with

    python -m ncsn_edu.images.mnist_classifier --out data/mnist_classifier.pt

which records the test accuracy in the file; :func:`load_classifier` reads it back.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from ncsn_edu.progress import progress_bar

FEATURES = 64


class MnistClassifier(nn.Module):
    """conv5x5(16) -> pool -> conv5x5(32) -> pool -> 64 features -> 10 logits (ReLU).
    Input: images ``(N, 1, 28, 28)`` in ``[0, 1]``.
    Belongs to chapter 11 (MNIST inpainting and sample quality)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5, padding=2)
        self.conv2 = nn.Conv2d(16, 32, 5, padding=2)
        self.fc = nn.Linear(32 * 7 * 7, FEATURES)
        self.head = nn.Linear(FEATURES, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"expected MNIST images of shape (N, 1, 28, 28), got {tuple(x.shape)}")
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        return F.relu(self.fc(h.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _tensors(train: bool, root=None):
    from ncsn_edu.images.data import image_dataset

    ds = image_dataset("mnist", train=train, root=root)
    # torchvision keeps the raw uint8 digits in .data; scale as ToTensor does.
    return ds.data.unsqueeze(1).float() / 255.0, ds.targets.clone()


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    """Fraction of ``images`` classified as ``labels``.
    Belongs to chapter 11 (MNIST inpainting and sample quality)."""
    model.eval()
    correct = sum((model(images[i : i + batch_size]).argmax(1) == labels[i : i + batch_size]).sum().item()
                  for i in range(0, len(images), batch_size))
    return correct / len(images)


def train_classifier(epochs: int = 2, batch_size: int = 128, lr: float = 1e-3, seed: int = 0,
                     root=None, progress: bool = True) -> tuple[MnistClassifier, dict]:
    """Train on the 60,000 training digits with Adam; return the model and a summary
    (test accuracy on the 10,000 test digits, settings, wall time).
    Belongs to chapter 11 (MNIST inpainting and sample quality)."""
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError("epochs and batch_size must be at least 1 and lr positive")
    g = torch.Generator().manual_seed(seed)
    x, y = _tensors(True, root)
    xt, yt = _tensors(False, root)
    with torch.random.fork_rng(devices=[]):  # the network's initialisation; global RNG untouched
        torch.manual_seed(seed)
        model = MnistClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    start = time.time()
    steps = epochs * (len(x) // batch_size)
    bar = progress_bar(total=steps, enabled=progress, desc="classifier")
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=g)
        for i in range(len(x) // batch_size):
            idx = order[i * batch_size : (i + 1) * batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    bar.close()
    summary = {"test_accuracy": accuracy(model, xt, yt), "epochs": epochs, "batch_size": batch_size, "lr": lr,
               "seed": seed, "train_seconds": time.time() - start, "threads": torch.get_num_threads()}
    return model.eval(), summary


def save_classifier(model: MnistClassifier, summary: dict, path) -> None:
    """Belongs to chapter 11 (MNIST inpainting and sample quality)."""
    torch.save({"model": model.state_dict(), "summary": summary}, path)


def load_classifier(path=None) -> tuple[MnistClassifier, dict]:
    """The classifier committed as ``data/mnist_classifier.pt`` (or ``path``), in eval
    mode, with its training summary (test accuracy, settings).
    Introduced in chapter 11 (MNIST inpainting and sample quality)."""
    from ncsn_edu.resources import resource_path

    state = torch.load(path or resource_path("mnist_classifier.pt"), map_location="cpu", weights_only=True)
    model = MnistClassifier()
    model.load_state_dict(state["model"])
    return model.eval(), state["summary"]


def main(argv=None) -> dict:
    """The command line. Belongs to chapter 11 (MNIST inpainting and sample quality)."""
    p = argparse.ArgumentParser(prog="python -m ncsn_edu.images.mnist_classifier", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="data/mnist_classifier.pt")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root", default=None)
    args = p.parse_args(argv)
    model, summary = train_classifier(args.epochs, args.batch_size, args.lr, args.seed, args.data_root)
    save_classifier(model, summary, args.out)
    print(summary)
    return summary


if __name__ == "__main__":
    main()
