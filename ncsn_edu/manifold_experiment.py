"""The paper's Figure 1: sliced score matching on clean images versus slightly noisy ones.

Data on a low-dimensional manifold have no score in the ambient space, so sliced score
matching on clean images has no finite optimum: the loss keeps falling and fluctuates.
Adding ``N(0, 0.01^2)`` noise to every pixel gives the data a density everywhere and the
loss converges. This module trains the same residual score network
(:class:`ncsn_edu.resnet_score.ResNetScore`) twice, on clean and on noisy data, from the
same initialisation and the same batches, and records both loss curves.

Command (writes a JSON file with both curves, the settings and the command itself)::

    python -m ncsn_edu.manifold_experiment --dataset mnist --out data/manifold_loss_mnist.json
    python -m ncsn_edu.manifold_experiment --dataset cifar10 --widths 32,64,64,128,128 \\
        --n-iters 50000 --batch-size 128 --device cuda --out runs/manifold_loss_cifar10.json

The second line is the paper's own setting (on a GPU).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
from .progress import progress_bar

from .losses import sliced_score_matching_loss
from .resnet_score import PAPER_WIDTHS, ResNetScore

#: Narrow widths that keep the paper's block structure and train on a 2-core CPU.
CPU_WIDTHS = (8, 16, 16, 32, 32)


def bar_images(n: int, side: int = 16, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` synthetic images ``(n, 1, side, side)`` on a 3-dimensional manifold.

    Each image is one short bright bar whose centre (2 numbers) and angle (1 number) are
    random, inside a blank border: like MNIST, most pixels are exactly zero in most images
    and the images vary along only a few directions of the ``side^2``-dimensional space.
    Cheap enough for tests of the Figure 1 effect on a CPU.
    """
    if n < 1 or side < 8 or side % 4:
        raise ValueError("need n >= 1 and a side >= 8 divisible by 4")
    lo, span = side * 5 / 16, side * 6 / 16
    c = lo + span * torch.rand(n, 2, generator=generator)
    angle = torch.rand(n, generator=generator) * math.pi
    t = torch.arange(side, dtype=torch.float32)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    dx, dy = xx[None] - c[:, 0, None, None], yy[None] - c[:, 1, None, None]
    cos, sin = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    along, across = dx * cos + dy * sin, -dx * sin + dy * cos
    img = torch.exp(-(along / (side * 2.5 / 16)) ** 4 - across**2)
    return torch.where(img < 0.1, torch.zeros_like(img), img)[:, None]


def load_images(dataset: str, root=None, limit: int | None = None) -> torch.Tensor:
    """All training images of ``dataset`` (``"mnist"`` or ``"cifar10"``) as one float
    tensor ``(N, C, H, W)`` in ``[0, 1]``, loaded with :func:`ncsn_edu.data.image_dataset`
    (``limit`` keeps the first ``limit`` images). ``"bars"`` gives 4096 (or ``limit``)
    images of :func:`bar_images` instead, with a fixed seed."""
    from .data import image_dataset

    if dataset == "bars":
        return bar_images(limit or 4096, 16, torch.Generator().manual_seed(0))

    ds = image_dataset(dataset, train=True, root=root)
    raw = getattr(ds, "data", None)
    if isinstance(raw, torch.Tensor) and raw.ndim == 3:  # MNIST-like: (N, H, W) uint8
        x = raw[:limit].float().div(255).unsqueeze(1)
    elif raw is not None and getattr(raw, "ndim", 0) == 4:  # CIFAR-10: (N, H, W, C) uint8
        x = torch.as_tensor(raw[:limit]).float().div(255).permute(0, 3, 1, 2).contiguous()
    else:  # any other data set: go through its transform
        n = len(ds) if limit is None else min(limit, len(ds))
        x = torch.stack([ds[i][0] for i in range(n)])
    return x


def loss_fluctuation(losses, tail: float = 0.2, detrend: bool = False) -> float:
    """Standard deviation of the loss over the last ``tail`` fraction of iterations,
    relative to the absolute value of its mean there. Small means a steady loss.

    With ``detrend`` the standard deviation is taken of the residuals about the
    least-squares straight line through that part of the curve, so that a loss that is
    still falling steadily does not count as fluctuating.
    """
    losses = torch.as_tensor(list(losses), dtype=torch.float64)
    if len(losses) < 5 or not 0 < tail <= 1:
        raise ValueError("need at least 5 losses and 0 < tail <= 1")
    if not torch.isfinite(losses).all():
        return math.inf
    last = losses[-max(3, int(round(tail * len(losses)))):]
    spread = last
    if detrend:
        t = torch.arange(len(last), dtype=torch.float64)
        design = torch.stack([t, torch.ones_like(t)], 1)
        coef = torch.linalg.lstsq(design, last[:, None]).solution
        spread = last - (design @ coef).flatten()
    return (spread.std() / last.mean().abs().clamp_min(1e-12)).item()


def train_ssm(
    data: torch.Tensor,
    noise_std: float = 0.0,
    widths=CPU_WIDTHS,
    n_iters: int = 2000,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
    desc: str = "SSM",
) -> list[float]:
    """Train a fresh :class:`ResNetScore` with variance-reduced sliced score matching
    (Adam) on random batches of ``data`` (plus ``N(0, noise_std^2)`` noise drawn anew for
    every batch) and return the loss of every iteration. Training stops early, with the
    last loss recorded as non-finite, if the loss overflows."""
    if data.ndim != 4:
        raise ValueError(f"data must have shape (N, C, H, W), got {tuple(data.shape)}")
    if noise_std < 0 or n_iters < 1 or batch_size < 1:
        raise ValueError("noise_std must be >= 0, n_iters and batch_size >= 1")
    with torch.random.fork_rng(devices=[]):  # the network's initialisation; global RNG untouched
        torch.manual_seed(seed)
        model = ResNetScore(data.shape[1], widths).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g_batch = torch.Generator().manual_seed(seed + 1)  # which images (same for clean/noisy)
    g_noise = torch.Generator(device=device).manual_seed(seed + 2)  # projections and pixel noise
    losses = []
    bar = progress_bar(range(n_iters), enabled=progress, desc=desc)
    for _ in bar:
        idx = torch.randint(0, data.shape[0], (batch_size,), generator=g_batch)
        x = data[idx].to(device)
        if noise_std > 0:
            x = x + noise_std * torch.randn(x.shape, generator=g_noise, device=device)
        loss = sliced_score_matching_loss(model, x, variance_reduced=True, generator=g_noise)
        losses.append(loss.item())
        if not torch.isfinite(loss):
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if len(losses) % 50 == 0:
            bar.set_postfix(loss=f"{losses[-1]:.4g}")
    return losses


def run_experiment(
    data: torch.Tensor,
    noise_std: float = 0.01,
    widths=CPU_WIDTHS,
    n_iters: int = 2000,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
) -> dict:
    """Both runs of Figure 1 (clean, then noisy) from the same start; returns a dict with
    the settings, both loss curves and their :func:`loss_fluctuation`."""
    common = dict(widths=widths, n_iters=n_iters, batch_size=batch_size, lr=lr, seed=seed, device=device, progress=progress)
    t0 = time.time()
    clean = train_ssm(data, 0.0, desc="clean data", **common)
    noisy = train_ssm(data, noise_std, desc=f"data + N(0, {noise_std}^2)", **common)
    n_params = sum(p.numel() for p in ResNetScore(data.shape[1], widths).parameters())
    return {
        "settings": {
            "noise_std": noise_std, "widths": list(widths), "n_iters": n_iters, "batch_size": batch_size,
            "lr": lr, "seed": seed, "device": device, "n_images": int(data.shape[0]),
            "image_shape": list(data.shape[1:]), "n_params": n_params,
            "loss": "sliced score matching, variance-reduced, one Gaussian projection per image",
        },
        "seconds": round(time.time() - t0, 1),
        "clean": clean,
        "noisy": noisy,
        "fluctuation": {"clean": loss_fluctuation(clean), "noisy": loss_fluctuation(noisy)},
        "fluctuation_detrended": {"clean": loss_fluctuation(clean, detrend=True),
                                  "noisy": loss_fluctuation(noisy, detrend=True)},
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], prog="python -m ncsn_edu.manifold_experiment")
    p.add_argument("--dataset", choices=["mnist", "cifar10", "bars"], default="mnist",
                   help="bars: small synthetic images on a 3-dimensional manifold (for tests)")
    p.add_argument("--root", default=None, help="data root (default: ncsn_edu.resources.data_root())")
    p.add_argument("--limit", type=int, default=None, help="use only the first LIMIT training images")
    p.add_argument("--widths", default=",".join(map(str, CPU_WIDTHS)),
                   help=f"five encoder widths (paper: {','.join(map(str, PAPER_WIDTHS))})")
    p.add_argument("--n-iters", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--noise-std", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads on CPU")
    p.add_argument("--out", required=True, help="JSON file for the two loss curves")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    widths = tuple(int(w) for w in args.widths.split(","))
    data = load_images(args.dataset, args.root, args.limit)
    result = run_experiment(data, args.noise_std, widths, args.n_iters, args.batch_size, args.lr,
                            args.seed, args.device, not args.no_progress)
    result["settings"]["dataset"] = args.dataset
    result["command"] = "python -m ncsn_edu.manifold_experiment " + " ".join(
        sys.argv[1:] if argv is None else list(argv))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result))
    f = result["fluctuation"]
    print(f"wrote {out}: fluctuation (std/|mean|, last 20%) clean {f['clean']:.4g}, noisy {f['noisy']:.4g}")
    return result


if __name__ == "__main__":
    main()
