"""The paper's Figure 1: sliced score matching on clean images versus slightly noisy ones.

Data on a low-dimensional manifold have no score in the ambient space, so sliced score
matching on clean images has no finite optimum: the loss keeps falling and fluctuates.
Adding ``N(0, 0.01^2)`` noise to every pixel gives the data a density everywhere and the
loss converges. This module trains the authors' residual score network (``ResScore``, here
:class:`ncsn_edu.images.resnet_score.ResNetScore`) twice, on clean and on noisy data, from the
same initialisation and the same batches, in lockstep, and records both loss curves.

Commands (each writes a JSON file with both curves, the settings, the data source, the
machine and the command itself)::

    python -m ncsn_edu.experiments.manifold --dataset mnist --out data/manifold_loss_mnist.json
    python -m ncsn_edu.experiments.manifold --dataset cifar10 --widths 32,64,64,128,128 \\
        --n-iters 50000 --batch-size 128 --device cuda --out runs/manifold_loss_cifar10.json

The second line is the paper's own setting (on a GPU). ``--max-minutes`` stops both runs
at the same iteration, and ``--save-every N --checkpoint FILE`` rewrites the JSON and a
checkpoint every N iterations (a rerun with the same checkpoint resumes exactly).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from ncsn_edu.images.resnet_score import PAPER_WIDTHS, ResNetScore
from ncsn_edu.progress import progress_bar
from ncsn_edu.toy.losses import sliced_score_matching_loss

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


def load_images_with_source(dataset: str, root=None, limit: int | None = None, image_size=None,
                             crop=None) -> tuple[torch.Tensor, str]:
    """All training images of ``dataset`` as one ``uint8`` tensor ``(N, C, H, W)`` (the
    first ``limit`` when given) and the data set's ``.source`` line, loaded with
    :func:`ncsn_edu.images.data.image_dataset` (``"folder"`` reads the image folder ``root``,
    optionally cropped and resized). ``"bars"`` gives 4096 (or ``limit``) float images
    of :func:`bar_images` with a fixed seed instead."""
    from ncsn_edu.images.data import image_dataset

    if dataset == "bars":
        n = limit or 4096
        return bar_images(n, 16, torch.Generator().manual_seed(0)), f"bars: {n} synthetic 16x16 bar images, seed 0"
    ds = image_dataset(dataset, train=True, root=root, image_size=image_size, crop=crop)
    raw = torch.as_tensor(ds.data[:limit])
    if raw.ndim == 3:  # MNIST-like: (N, H, W)
        raw = raw.unsqueeze(1)
    else:  # (N, H, W, C)
        raw = raw.permute(0, 3, 1, 2)
    return raw.contiguous(), ds.source


def load_images(dataset: str, root=None, limit: int | None = None) -> torch.Tensor:
    """All training images of ``dataset`` (``"mnist"``, ``"cifar10"``, ``"bars"``, ...)
    as one float tensor ``(N, C, H, W)`` in ``[0, 1]`` (see :func:`load_images_with_source`)."""
    x, _ = load_images_with_source(dataset, root, limit)
    return x.float().div(255) if x.dtype == torch.uint8 else x


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


def _as_float(x: torch.Tensor) -> torch.Tensor:
    return x.float().div(255) if x.dtype == torch.uint8 else x


class SSMRun:
    """One of Figure 1's training runs, advanced one iteration at a time: a fresh
    :class:`ResNetScore` trained with variance-reduced sliced score matching (Adam) on
    random batches of the data plus ``N(0, noise_std^2)`` noise drawn anew for every
    batch. Its own generators pick the batches (``seed + 1``: the same images for the
    clean and the noisy run) and draw projections and noise (``seed + 2``), so runs
    advanced in lockstep give the same curves as runs trained one after the other, and
    :meth:`state_dict` / :meth:`load_state_dict` resume a run exactly."""

    def __init__(self, channels: int, noise_std: float = 0.0, widths=CPU_WIDTHS, batch_size: int = 128,
                 lr: float = 1e-3, seed: int = 0, device: str = "cpu"):
        if noise_std < 0 or batch_size < 1:
            raise ValueError("noise_std must be >= 0 and batch_size >= 1")
        self.noise_std, self.batch_size, self.device = noise_std, batch_size, device
        with torch.random.fork_rng(devices=[]):  # the network's initialisation; global RNG untouched
            torch.manual_seed(seed)
            self.model = ResNetScore(channels, widths).to(device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.g_batch = torch.Generator().manual_seed(seed + 1)
        self.g_noise = torch.Generator(device=device).manual_seed(seed + 2)
        self.losses: list[float] = []

    @property
    def finished(self) -> bool:
        """True once a loss overflowed (the run stops there)."""
        return bool(self.losses) and not math.isfinite(self.losses[-1])

    def step(self, data: torch.Tensor) -> float:
        """One iteration on ``data`` (float in ``[0, 1]`` or ``uint8``, ``(N, C, H, W)``);
        returns its loss (the loss before the update, as the authors' code logs it)."""
        idx = torch.randint(0, data.shape[0], (self.batch_size,), generator=self.g_batch)
        x = _as_float(data[idx]).to(self.device)
        if self.noise_std > 0:
            x = x + self.noise_std * torch.randn(x.shape, generator=self.g_noise, device=self.device)
        loss = sliced_score_matching_loss(self.model, x, variance_reduced=True, generator=self.g_noise)
        self.losses.append(loss.item())
        if torch.isfinite(loss):
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        return self.losses[-1]

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "opt": self.opt.state_dict(), "losses": list(self.losses),
                "g_batch": self.g_batch.get_state(), "g_noise": self.g_noise.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.losses = list(state["losses"])
        self.g_batch.set_state(state["g_batch"])
        self.g_noise.set_state(state["g_noise"])


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
    """Train one :class:`SSMRun` for ``n_iters`` iterations and return the loss of every
    iteration. Training stops early, with the last loss recorded as non-finite, if the
    loss overflows."""
    if data.ndim != 4:
        raise ValueError(f"data must have shape (N, C, H, W), got {tuple(data.shape)}")
    if n_iters < 1:
        raise ValueError("n_iters must be >= 1")
    run = SSMRun(data.shape[1], noise_std, widths, batch_size, lr, seed, device)
    bar = progress_bar(range(n_iters), enabled=progress, desc=desc)
    for _ in bar:
        run.step(data)
        if run.finished:
            break
        if len(run.losses) % 50 == 0:
            bar.set_postfix(loss=f"{run.losses[-1]:.4g}")
    return run.losses


def _fluctuations(clean, noisy) -> tuple[dict | None, dict | None]:
    if min(len(clean), len(noisy)) < 5:
        return None, None
    return ({"clean": loss_fluctuation(clean), "noisy": loss_fluctuation(noisy)},
            {"clean": loss_fluctuation(clean, detrend=True), "noisy": loss_fluctuation(noisy, detrend=True)})


def _save_atomic(obj, path: Path, as_json: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if as_json:
        tmp.write_text(json.dumps(obj))
    else:
        torch.save(obj, tmp)
    tmp.replace(path)


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
    max_seconds: float | None = None,
    checkpoint=None,
    save_every: int = 0,
    on_save=None,
) -> dict:
    """Both runs of Figure 1 (clean data and data + ``N(0, noise_std^2)``) from the same
    start, advanced in lockstep; returns a dict with the settings, both loss curves and
    their :func:`loss_fluctuation` (``None`` with fewer than 5 iterations).

    ``max_seconds`` stops both runs after the iteration that passes it (wall time of this
    call). ``checkpoint`` (a path) is resumed from when it exists and, with
    ``save_every``, rewritten every ``save_every`` iterations and at the end;
    ``on_save(result)`` is then called with the partial result (to write it out)."""
    if data.ndim != 4:
        raise ValueError(f"data must have shape (N, C, H, W), got {tuple(data.shape)}")
    if n_iters < 1:
        raise ValueError("n_iters must be >= 1")
    runs = {name: SSMRun(data.shape[1], std, widths, batch_size, lr, seed, device)
            for name, std in (("clean", 0.0), ("noisy", noise_std))}
    seconds_before = 0.0
    checkpoint = Path(checkpoint) if checkpoint else None
    if checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, weights_only=False)
        for name, run in runs.items():
            run.load_state_dict(state[name])
        seconds_before = state["seconds"]
    n_params = sum(p.numel() for p in runs["clean"].model.parameters())
    t0 = time.time()
    stopped_by = "running"  # what partial results written during the run say

    def result() -> dict:
        clean, noisy = runs["clean"].losses, runs["noisy"].losses
        fl, fd = _fluctuations(clean, noisy)
        return {
            "settings": {
                "noise_std": noise_std, "widths": list(widths), "n_iters": n_iters, "batch_size": batch_size,
                "lr": lr, "seed": seed, "device": device, "n_images": int(data.shape[0]),
                "image_shape": list(data.shape[1:]), "n_params": n_params,
                "loss": "sliced score matching, variance-reduced, one Gaussian projection per image",
            },
            "n_iters_done": max(len(clean), len(noisy)),
            "stopped_by": stopped_by,
            "seconds": round(seconds_before + time.time() - t0, 1),
            "clean": clean,
            "noisy": noisy,
            "fluctuation": fl,
            "fluctuation_detrended": fd,
        }

    def save() -> None:
        if checkpoint is not None:
            state = {name: run.state_dict() for name, run in runs.items()}
            state["seconds"] = seconds_before + time.time() - t0
            _save_atomic(state, checkpoint, as_json=False)
        if on_save is not None:
            on_save(result())

    start = len(runs["clean"].losses)
    bar = progress_bar(range(start, n_iters), enabled=progress, desc=f"clean and noisy ({noise_std}) data")
    for it in bar:
        for run in runs.values():
            if not run.finished:
                run.step(data)
        if all(run.finished for run in runs.values()):
            stopped_by = "overflow"
            break
        if save_every and (it + 1) % save_every == 0:
            save()
        if (it + 1) % 10 == 0:
            bar.set_postfix(clean=f"{runs['clean'].losses[-1]:.4g}", noisy=f"{runs['noisy'].losses[-1]:.4g}")
        if max_seconds is not None and time.time() - t0 >= max_seconds and it + 1 < n_iters:
            stopped_by = "max_seconds"
            break
    if stopped_by == "running":
        stopped_by = "n_iters"
    if save_every or checkpoint is not None:
        save()
    return result()


def machine() -> dict:
    """A short description of the machine a run is made on (recorded with its result)."""
    import os
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads()}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], prog="python -m ncsn_edu.experiments.manifold")
    p.add_argument("--dataset", choices=["mnist", "fashion_mnist", "cifar10", "folder", "bars"], default="mnist",
                   help="bars: small synthetic images on a 3-dimensional manifold (for tests); "
                        "folder: the image folder given as --root")
    p.add_argument("--root", default=None, help="data root (default: ncsn_edu.resources.data_root()); "
                                                "for --dataset folder the image folder")
    p.add_argument("--image-size", type=int, default=None, help="resize the images to this side")
    p.add_argument("--crop", type=int, default=None, help="centre crop before resizing")
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
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop both runs after this many minutes (the JSON records how far they got)")
    p.add_argument("--save-every", type=int, default=0,
                   help="every this many iterations rewrite --out with the partial curves and --checkpoint")
    p.add_argument("--checkpoint", default=None,
                   help="checkpoint of both runs (networks, optimisers, generators, losses); resumed when it exists")
    p.add_argument("--out", required=True, help="JSON file for the two loss curves")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    widths = tuple(int(w) for w in args.widths.split(","))
    data, source = load_images_with_source(args.dataset, args.root, args.limit, args.image_size, args.crop)
    command = "python -m ncsn_edu.experiments.manifold " + " ".join(sys.argv[1:] if argv is None else list(argv))
    out = Path(args.out)

    def finish(result: dict) -> dict:
        result["settings"].update(dataset=args.dataset, data_source=source)
        result["command"] = command
        result["machine"] = machine()
        _save_atomic(result, out, as_json=True)
        return result

    result = run_experiment(data, args.noise_std, widths, args.n_iters, args.batch_size, args.lr, args.seed,
                            args.device, not args.no_progress,
                            max_seconds=None if args.max_minutes is None else 60 * args.max_minutes,
                            checkpoint=args.checkpoint, save_every=args.save_every, on_save=finish)
    finish(result)
    f = result["fluctuation"]
    msg = f"wrote {out}: {result['n_iters_done']} iterations in {result['seconds']:.0f} s"
    if f:
        msg += f"; fluctuation (std/|mean|, last 20%) clean {f['clean']:.4g}, noisy {f['noisy']:.4g}"
    print(msg)
    return result


if __name__ == "__main__":
    main()
