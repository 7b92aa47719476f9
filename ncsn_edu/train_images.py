"""The image trainer: a noise-conditional score network on MNIST or CIFAR-10.

    python -m ncsn_edu.train_images --dataset mnist --out runs/mnist
    python -m ncsn_edu.train_images --dataset cifar10 --out runs/cifar10
    torchrun --nproc_per_node=4 -m ncsn_edu.train_images --dataset cifar10 --out runs/cifar10

Defaults are the paper's (appendix B): ten noise levels geometric from 1 to 0.01, the
annealed denoising score matching loss with ``lambda(sigma) = sigma^2``, Adam with lr
1e-3, batch 128, 200,000 iterations, a checkpoint every 5,000; ngf 64 and no flips for
MNIST, ngf 128 and random horizontal flips for CIFAR-10.

What the engine does, and why:

* **Resume.** Rerunning the same command continues from ``OUT/checkpoint.pt`` (model,
  optimiser, step, random-number states). Every random draw of step ``k`` (which images,
  which flips, which noise levels, which noise) comes from generators seeded by
  ``(seed, k)``, so a resumed run repeats an uninterrupted one exactly.
* **Atomic checkpoints.** A checkpoint is written to a temporary file, flushed to disk
  and renamed over the old one, so a run killed at any moment leaves the last complete
  checkpoint. Loading uses ``torch.load(weights_only=True)``.
* **Logs.** A progress bar with iterations per second and the loss; ``OUT/metrics.csv``
  (``wall_time,step,tag,value``: loss, loss per noise level, held-out test loss) that any
  plain tool reads, also written as TensorBoard events when ``tensorboard`` is
  installed; sample grids ``OUT/samples/step_XXXXXXX.png``.
* **Speed on a GPU.** bf16 autocast, channels-last memory and ``torch.compile`` are on by
  default on CUDA (``auto``) and off on CPU; each can be forced on or off.
* **Non-finite losses** stop the run with a message; the last checkpoint stays intact.
* **Several GPUs.** Under ``torchrun`` the model is wrapped in DistributedDataParallel;
  the global batch stays ``--batch-size`` (each of N processes takes 1/N of it) and only
  rank 0 writes files.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from .progress import progress_bar
from .schedules import geometric_sigmas

#: The paper's per-data-set settings (appendix B): channels, size, ngf, flips.
DATASET_DEFAULTS = {
    "mnist": dict(channels=1, image_size=28, ngf=64, flip=False),
    "fashion_mnist": dict(channels=1, image_size=28, ngf=64, flip=False),
    "cifar10": dict(channels=3, image_size=32, ngf=128, flip=True),
}

CHECKPOINT = "checkpoint.pt"
# Settings that fix the model and the meaning of a step: a resumed run must agree on them.
_ARCH_KEYS = ("dataset", "ngf", "n_sigmas", "sigma_begin", "sigma_end", "batch_size", "seed", "flip", "dequantize")


@dataclass
class TrainConfig:
    """Every setting of a training run (the command-line options, one to one)."""

    dataset: str = "mnist"
    out: str = "runs/ncsn"
    data_root: str | None = None
    ngf: int | None = None  # None: the data set's paper value
    flip: bool | None = None  # None: the data set's paper value
    n_sigmas: int = 10
    sigma_begin: float = 1.0
    sigma_end: float = 0.01
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    batch_size: int = 128
    n_iters: int = 200_000
    ckpt_every: int = 5_000
    keep_snapshots: bool = True
    log_every: int = 10
    test_every: int = 1_000
    test_batches: int = 4
    sample_every: int = 5_000
    sample_n: int = 64
    sample_steps_each: int = 100
    sample_eps: float = 2e-5
    dequantize: bool = False
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    channels_last: str = "auto"
    compile: str = "auto"
    progress: bool = True
    tensorboard: str = "auto"
    max_steps_this_run: int | None = None  # stop early (for tests and time-boxed runs)
    max_minutes: float | None = None  # stop (with a checkpoint) after this much wall time
    extra: dict = field(default_factory=dict)

    def resolved(self) -> "TrainConfig":
        d = DATASET_DEFAULTS[self.dataset]
        c = TrainConfig(**asdict(self))
        if c.ngf is None:
            c.ngf = d["ngf"]
        if c.flip is None:
            c.flip = d["flip"]
        return c


def validate(cfg: TrainConfig) -> None:
    """Raise ``ValueError`` with a clear message for settings that cannot work."""
    if cfg.dataset not in DATASET_DEFAULTS:
        raise ValueError(f"unknown data set {cfg.dataset!r}; choose one of {', '.join(DATASET_DEFAULTS)}")
    if not (cfg.sigma_begin > 0 and cfg.sigma_end > 0):
        raise ValueError("--sigma-begin and --sigma-end must be positive")
    if cfg.sigma_begin < cfg.sigma_end:
        raise ValueError(f"--sigma-begin ({cfg.sigma_begin}) is below --sigma-end ({cfg.sigma_end}); "
                         f"the levels fall from sigma_begin to sigma_end")
    for name in ("n_sigmas", "batch_size", "n_iters", "ckpt_every", "log_every", "test_every", "sample_every",
                 "sample_n", "sample_steps_each"):
        if getattr(cfg, name) <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be positive, got {getattr(cfg, name)}")
    if cfg.ngf is not None and cfg.ngf <= 0:
        raise ValueError(f"--ngf must be positive, got {cfg.ngf}")
    if cfg.max_minutes is not None and cfg.max_minutes <= 0:
        raise ValueError("--max-minutes must be positive")
    if cfg.test_batches < 0:
        raise ValueError("--test-batches must be non-negative")
    if not (cfg.lr > 0 and cfg.sample_eps > 0):
        raise ValueError("--lr and --sample-eps must be positive")
    for name in ("amp", "channels_last", "compile", "tensorboard"):
        allowed = ("auto", "on", "off") if name != "amp" else ("auto", "bf16", "off")
        if getattr(cfg, name) not in allowed:
            raise ValueError(f"--{name.replace('_', '-')} must be one of {', '.join(allowed)}")


# ----------------------------------------------------------------------------- model

def build_model(dataset: str, ngf: int, n_sigmas: int) -> torch.nn.Module:
    """The paper's CondRefineNetDilated for ``dataset``."""
    from .refinenet import CondRefineNetDilated

    d = DATASET_DEFAULTS[dataset]
    return CondRefineNetDilated(in_channels=d["channels"], ngf=ngf, num_classes=n_sigmas, image_size=d["image_size"])


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside DistributedDataParallel and ``torch.compile`` wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def load_checkpoint(path, device="cpu", model_factory=None):
    """Load a checkpoint written by the trainer: returns ``(model, sigmas, config)``.

    ``model`` is in eval mode on ``device``; ``sigmas`` is the run's noise levels and
    ``config`` its settings (a dict). ``model_factory(dataset, ngf, n_sigmas)`` builds the
    network (default: :func:`build_model`).
    """
    state = read_checkpoint(path)
    cfg = state["config"]
    model = (model_factory or build_model)(cfg["dataset"], cfg["ngf"], cfg["n_sigmas"])
    model.load_state_dict(state["model"])
    model.to(device).eval()
    return model, state["sigmas"].to(device), cfg


def read_checkpoint(path) -> dict:
    """``torch.load(path, weights_only=True)`` with a clear error for a missing or
    unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, corrupted or not a checkpoint at all
        raise RuntimeError(
            f"cannot read checkpoint {path}: {type(err).__name__}: {err}. The file is damaged or "
            f"is not a checkpoint of this trainer; move it away to start afresh, or point to "
            f"another checkpoint. Nothing was overwritten."
        ) from err
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise RuntimeError(f"{path} is not a checkpoint written by ncsn_edu.train_images")
    return state


def atomic_save(obj, path) -> None:
    """Write ``obj`` with ``torch.save`` so that ``path`` is always either the old or the
    new complete file: temporary file, flush and fsync, then rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


# ----------------------------------------------------------------------------- data

def load_images(dataset: str, train: bool, root=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole split as ``uint8`` images ``(N, C, H, W)`` and labels, read with
    torchvision (which downloads into the data root when it can)."""
    from .data import image_dataset

    ds = image_dataset(dataset, train=train, root=root, download=True)
    data = torch.as_tensor(ds.data)
    if data.ndim == 3:  # MNIST-like (N, H, W)
        data = data.unsqueeze(1)
    else:  # CIFAR-10 (N, H, W, C)
        data = data.permute(0, 3, 1, 2)
    return data.contiguous(), torch.as_tensor(ds.targets)


def _mix(*ints: int) -> int:
    """A 63-bit seed from several integers (distinct streams for distinct tuples)."""
    h = 0x9E3779B97F4A7C15
    for i in ints:
        h = (h ^ (int(i) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


class StepBatches:
    """The batch of step ``k``, a pure function of ``(seed, k)``.

    Each epoch visits the training images in a fresh random order (the last incomplete
    batch is dropped); flips and uniform dequantisation are drawn from a generator seeded
    by ``(seed, k)``. ``batch(k, rank, world)`` returns rank's share of the global batch.
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
            g = torch.Generator().manual_seed(_mix(self.seed, 1, epoch))
            self._perm, self._perm_epoch = torch.randperm(len(self.images), generator=g), epoch
        return self._perm

    def batch(self, step: int, rank: int = 0, world: int = 1) -> torch.Tensor:
        epoch, j = divmod(step, self.per_epoch)
        idx = self._order(epoch)[j * self.batch_size:(j + 1) * self.batch_size]
        g = torch.Generator().manual_seed(_mix(self.seed, 2, step))
        flips = torch.rand(self.batch_size, generator=g) < 0.5
        deq = torch.rand((self.batch_size, *self.images.shape[1:]), generator=g) if self.dequantize else None
        share = self.batch_size // world
        sl = slice(rank * share, (rank + 1) * share)
        idx = idx[sl].to(self.images.device)
        x = self.images[idx].float()
        if deq is not None:  # the official code's optional dequantisation: (255 x + u) / 256
            x = x + deq[sl].to(x.device)
            x = x / 256.0
        else:
            x = x / 255.0
        if self.flip:
            f = flips[sl].to(x.device)
            x = torch.where(f.view(-1, 1, 1, 1), x.flip(-1), x)
        return x


def step_noise(step: int, shape, n_sigmas: int, seed: int, device, stream: int = 3):
    """The noise-level indices and standard normal noise of step ``step`` for the whole
    global batch (every process draws the same and takes its share)."""
    g = torch.Generator(device=device).manual_seed(_mix(seed, stream, step))
    labels = torch.randint(0, n_sigmas, (shape[0],), generator=g, device=device)
    z = torch.randn(shape, generator=g, device=device)
    return labels, z


def dsm_per_sample(model, x: torch.Tensor, labels: torch.Tensor, z: torch.Tensor, sigmas: torch.Tensor,
                   autocast=None) -> torch.Tensor:
    """Per-sample annealed DSM loss with given levels and noise: the same quantity as
    :func:`ncsn_edu.losses.anneal_dsm_loss` with ``reduction="none"`` (a test checks it),
    with the network optionally run under ``autocast``; the loss is formed in fp32."""
    used = sigmas[labels].view(-1, *([1] * (x.ndim - 1)))
    perturbed = x + used * z
    target = -z / used  # = -(perturbed - x) / sigma^2
    if autocast is not None:
        with autocast():
            s = model(perturbed, labels)
    else:
        s = model(perturbed, labels)
    s = s.float()
    return 0.5 * ((s - target) ** 2).flatten(1).sum(1) * used.flatten() ** 2


# ----------------------------------------------------------------------------- logging

class MetricsLog:
    """``metrics.csv`` (``wall_time,step,tag,value``) plus TensorBoard events if wanted."""

    def __init__(self, out: Path, resume_step: int, tensorboard: str):
        self.path = out / "metrics.csv"
        rows = []
        if self.path.exists() and resume_step > 0:
            with open(self.path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        # Drop rows of steps after the checkpoint (they are redone), atomically.
        tmp = self.path.with_name(".metrics.csv.tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["wall_time", "step", "tag", "value"])
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, self.path)
        self.file = open(self.path, "a", newline="")
        self.writer = csv.writer(self.file)
        self.tb = None
        if tensorboard != "off":
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out / "tensorboard"), purge_step=resume_step + 1 if resume_step else None)
            except ImportError:
                if tensorboard == "on":
                    raise RuntimeError("--tensorboard on needs the tensorboard package (pip install tensorboard)")

    def log(self, step: int, values: dict) -> None:
        now = time.time()
        for tag, v in values.items():
            self.writer.writerow([f"{now:.3f}", step, tag, f"{v:.6g}"])
            if self.tb is not None:
                self.tb.add_scalar(tag, v, step)
        self.file.flush()

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()


def read_metrics(path) -> dict:
    """``metrics.csv`` as ``{tag: (steps, values)}`` lists."""
    out: dict = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            s, v = out.setdefault(r["tag"], ([], []))
            s.append(int(r["step"]))
            v.append(float(r["value"]))
    return out


# ----------------------------------------------------------------------------- training

class NonFiniteLoss(RuntimeError):
    pass


def _resolve_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device(f"cuda:{local_rank}")
    return dev


def _on(option: str, device: torch.device) -> bool:
    """``auto`` means on for CUDA and off for CPU."""
    return option in ("on", "bf16") or (option == "auto" and device.type == "cuda")


def save_grid(images: torch.Tensor, path, nrow: int | None = None) -> None:
    from torchvision.utils import save_image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nrow = nrow or max(1, int(math.sqrt(len(images))))
    tmp = path.with_name(f".{path.stem}.tmp.png")
    save_image(images.clamp(0, 1).float().cpu(), str(tmp), nrow=nrow, padding=2)
    os.replace(tmp, path)


def train(cfg: TrainConfig, model_factory=None, log=print) -> dict:
    """Train (or resume) the run described by ``cfg``; return a summary dict.

    ``model_factory(dataset, ngf, n_sigmas)`` builds the network (default: the paper's
    CondRefineNetDilated, :func:`build_model`).
    """
    validate(cfg)
    cfg = cfg.resolved()
    model_factory = model_factory or build_model

    # Distributed set-up (torchrun sets these variables).
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if cfg.batch_size % world:
        raise ValueError(f"--batch-size {cfg.batch_size} is not divisible by the {world} processes")
    device = _resolve_device(cfg.device, local_rank)
    distributed = world > 1
    if distributed and not torch.distributed.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    is_main = rank == 0
    out = Path(cfg.out)

    # Resume: the checkpoint is read before anything is written.
    ckpt_path = out / CHECKPOINT
    state = read_checkpoint(ckpt_path) if ckpt_path.exists() else None
    if state is not None:
        old = state["config"]
        diff = {k: (old.get(k), getattr(cfg, k)) for k in _ARCH_KEYS if old.get(k) != getattr(cfg, k)}
        if diff:
            raise ValueError(
                f"{ckpt_path} was made with different settings {diff} (checkpoint, now); use another "
                f"--out to start a new run, or the same settings to resume. Nothing was overwritten.")

    # Data (read before any file is written, so a data error leaves OUT untouched).
    if cfg.data_root is not None and not Path(cfg.data_root).is_dir():
        raise FileNotFoundError(
            f"--data-root {cfg.data_root} is not a folder. Give the folder that holds the data set in "
            f"torchvision's layout (MNIST/raw/ or cifar-10-batches-py/), or leave --data-root out to use "
            f"the default data folder, where torchvision downloads the data set when it can.")
    images, _ = load_images(cfg.dataset, train=True, root=cfg.data_root)
    test_images = load_images(cfg.dataset, train=False, root=cfg.data_root)[0] if cfg.test_batches else None
    if device.type == "cuda":
        images = images.to(device)  # uint8 on the GPU: no loader in the loop
    batches = StepBatches(images, cfg.batch_size, cfg.seed, cfg.flip, cfg.dequantize)

    sigmas = geometric_sigmas(cfg.sigma_begin, cfg.sigma_end, cfg.n_sigmas).float()
    sigmas_dev = sigmas.to(device)
    with torch.random.fork_rng(devices=[]):  # parameter initialisation, global RNG left as it was
        torch.manual_seed(_mix(cfg.seed, 0))
        model = model_factory(cfg.dataset, cfg.ngf, cfg.n_sigmas)
    model = model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    step = 0
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        for group in opt.param_groups:  # the command line's optimiser settings win
            group["lr"], group["betas"] = cfg.lr, (cfg.beta1, cfg.beta2)
        step = int(state["step"])
        torch.set_rng_state(state["rng"]["torch"])
        if device.type == "cuda" and state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(state["rng"]["cuda"], device)

    use_bf16 = _on(cfg.amp, device)
    use_cl = _on(cfg.channels_last, device)
    use_compile = _on(cfg.compile, device)
    if use_cl:
        model = model.to(memory_format=torch.channels_last)
    train_model = model
    if distributed:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if use_compile:
        train_model = torch.compile(train_model)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if use_bf16 else None

    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        for stale in out.glob(".*.tmp*"):  # leftovers of a save that was killed
            stale.unlink()
        metrics = MetricsLog(out, step, cfg.tensorboard)
        log(f"{'resuming from step ' + str(step) if step else 'starting'}: {cfg.dataset}, ngf {cfg.ngf}, "
            f"{cfg.n_sigmas} sigmas {cfg.sigma_begin:g}->{cfg.sigma_end:g}, batch {cfg.batch_size} on "
            f"{world} x {device.type}, bf16 {use_bf16}, channels-last {use_cl}, compile {use_compile}; "
            f"writing to {out}")

    def prepare(x):
        x = x.to(device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if use_cl else x

    def checkpoint(at: int) -> None:
        if not is_main:
            return
        payload = {
            "model": _unwrap(model).state_dict(),
            "optimizer": opt.state_dict(),
            "step": at,
            "sigmas": sigmas,
            "config": asdict(cfg),
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None},
        }
        atomic_save(payload, out / CHECKPOINT)
        if cfg.keep_snapshots and (at % cfg.ckpt_every == 0 or at == cfg.n_iters):
            snap = {k: payload[k] for k in ("model", "step", "sigmas", "config")}
            (out / "snapshots").mkdir(exist_ok=True)
            atomic_save(snap, out / "snapshots" / f"model_{at:07d}.pt")

    def test_loss() -> float:
        if test_images is None:
            return float("nan")
        total, count = 0.0, 0
        train_model.eval()
        with torch.no_grad():
            for b in range(cfg.test_batches):
                g = torch.Generator().manual_seed(_mix(cfg.seed, 4, b))
                idx = torch.randint(0, len(test_images), (cfg.batch_size,), generator=g)
                x = prepare(test_images[idx].float() / 255.0)
                labels, z = step_noise(b, x.shape, cfg.n_sigmas, cfg.seed, device, stream=5)
                per = dsm_per_sample(model, x, labels, prepare(z), sigmas_dev, autocast)
                total += per.sum().item()
                count += len(per)
        train_model.train()
        return total / count

    def sample_grid(at: int) -> None:
        from .sampling import annealed_langevin_dynamics

        g = torch.Generator(device=device).manual_seed(_mix(cfg.seed, 6))
        x0 = torch.rand((cfg.sample_n, *images.shape[1:]), generator=g, device=device)
        net = _unwrap(model)
        net.eval()

        def score(x, labels):
            if autocast is not None:
                with autocast():
                    return net(x, labels).float()
            return net(x, labels)

        x = annealed_langevin_dynamics(score, x0, sigmas, cfg.sample_eps, cfg.sample_steps_each,
                                       generator=g, convention="code")
        net.train()
        save_grid(x, out / "samples" / f"step_{at:07d}.png")

    end = cfg.n_iters if cfg.max_steps_this_run is None else min(cfg.n_iters, step + cfg.max_steps_this_run)
    bar = progress_bar(total=cfg.n_iters, initial=step, enabled=cfg.progress and is_main, desc="training",
                       dynamic_ncols=True, smoothing=0.05)
    losses = []  # loss of every step of this process (a device tensor per step, read at log time)
    level_sum = torch.zeros(cfg.n_sigmas, device=device)
    level_cnt = torch.zeros(cfg.n_sigmas, device=device)
    share = cfg.batch_size // world
    start_time, start_step = time.time(), step
    last_log = [start_time]
    history = []
    train_model.train()
    try:
        while step < end:
            x = prepare(batches.batch(step, rank, world))
            labels, z = step_noise(step, (cfg.batch_size, *x.shape[1:]), cfg.n_sigmas, cfg.seed, device)
            sl = slice(rank * share, (rank + 1) * share)
            labels, z = labels[sl], prepare(z[sl])
            per = dsm_per_sample(train_model, x, labels, z, sigmas_dev, autocast)
            loss = per.mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            with torch.no_grad():
                level_sum.index_add_(0, labels, per.detach())
                level_cnt.index_add_(0, labels, torch.ones_like(per))
                losses.append(loss.detach())
            bar.update(1)
            if cfg.max_minutes is not None and step % cfg.log_every == 0 and step < end:
                late = torch.tensor(float(time.time() - start_time > 60 * cfg.max_minutes), device=device)
                if distributed:  # rank 0's clock decides for all
                    torch.distributed.broadcast(late, 0)
                if late.item():
                    end = step  # checkpoint now and stop
            due_ckpt = step % cfg.ckpt_every == 0 or step == end
            if step % cfg.log_every == 0 or due_ckpt or step == end:
                recent = torch.stack(losses)
                if distributed:  # the global batch's loss: mean of the ranks' means
                    torch.distributed.all_reduce(recent)
                    recent /= world
                    torch.distributed.all_reduce(level_sum)
                    torch.distributed.all_reduce(level_cnt)
                recent = recent.tolist()
                losses.clear()
                bad = [i for i, v in enumerate(recent) if not math.isfinite(v)]
                if bad:
                    at = step - len(recent) + bad[0] + 1
                    raise NonFiniteLoss(
                        f"the loss became {recent[bad[0]]} at step {at}. Training stopped; the last good "
                        f"checkpoint ({ckpt_path}) is intact. Try a lower --lr, --amp off, or rerun to "
                        f"resume from it.")
                history.extend(recent)
                if is_main:
                    now = time.time()
                    vals = {"loss": recent[-1], "loss_mean": sum(recent) / len(recent),
                            "it_per_s": len(recent) / max(now - last_log[0], 1e-9)}
                    last_log[0] = now
                    cnt = level_cnt.tolist()
                    for i, (s_, c_) in enumerate(zip(level_sum.tolist(), cnt)):
                        if c_:
                            vals[f"loss_level/{i}_sigma{sigmas[i].item():.4g}"] = s_ / c_
                    metrics.log(step, vals)
                    bar.set_postfix(loss=f"{recent[-1]:.4g}")
                level_sum.zero_()
                level_cnt.zero_()
            if is_main and (step % cfg.test_every == 0 or step == cfg.n_iters) and cfg.test_batches:
                metrics.log(step, {"test_loss": test_loss()})
            if is_main and (step % cfg.sample_every == 0 or step == cfg.n_iters):
                sample_grid(step)
            if due_ckpt:
                if not all(torch.isfinite(p).all() for p in model.parameters()):
                    raise NonFiniteLoss(f"the weights became non-finite at step {step}; the last good "
                                        f"checkpoint ({ckpt_path}) is intact.")
                checkpoint(step)
            if distributed and due_ckpt:
                torch.distributed.barrier()
    finally:
        bar.close()
        if is_main:
            metrics.close()
    wall = time.time() - start_time
    if is_main:
        log(f"stopped at step {step} of {cfg.n_iters}; {step - start_step} steps in {wall:.1f} s")
    return {"step": step, "losses": history, "wall_s": wall, "steps_run": step - start_step}


# ----------------------------------------------------------------------------- command line

def build_parser(dataset_default: str = "mnist", prog: str = "python -m ncsn_edu.train_images") -> argparse.ArgumentParser:
    d = TrainConfig()
    p = argparse.ArgumentParser(
        prog=prog,
        description="Train the paper's noise-conditional score network (CondRefineNetDilated) on images. "
                    "Defaults are the paper's (Song & Ermon 2019, appendix B). Rerunning the same command "
                    "resumes from OUT/checkpoint.pt.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    a = p.add_argument
    a("--dataset", default=dataset_default, help="mnist, fashion_mnist or cifar10")
    a("--out", default=None, help="run folder for checkpoints, metrics.csv and sample grids "
                                   "(default runs/<dataset>)")
    a("--data-root", default=None, help="folder with the data set in torchvision's layout (downloaded there "
                                         "when missing); default: $NCSN_EDU_DATA or the checkout's data/")
    a("--ngf", type=int, default=None, help="network width; default the paper's: 64 for MNIST, 128 for CIFAR-10")
    a("--flip", dest="flip", action="store_true", default=None,
      help="random horizontal flips (default: on for CIFAR-10, off for MNIST)")
    a("--no-flip", dest="flip", action="store_false", help="no random flips")
    a("--n-sigmas", type=int, default=d.n_sigmas, help="number of noise levels L")
    a("--sigma-begin", type=float, default=d.sigma_begin, help="largest noise level sigma_1")
    a("--sigma-end", type=float, default=d.sigma_end, help="smallest noise level sigma_L")
    a("--lr", type=float, default=d.lr, help="Adam learning rate")
    a("--beta1", type=float, default=d.beta1, help="Adam beta1")
    a("--beta2", type=float, default=d.beta2, help="Adam beta2")
    a("--batch-size", type=int, default=d.batch_size, help="global batch size (shared by all processes)")
    a("--n-iters", type=int, default=d.n_iters, help="training iterations in all")
    a("--ckpt-every", type=int, default=d.ckpt_every, help="iterations between checkpoints")
    a("--no-snapshots", dest="keep_snapshots", action="store_false",
      help="keep only the latest checkpoint, not a model snapshot per checkpoint (snapshots are what "
           "the paper's FID-based checkpoint selection needs)")
    a("--log-every", type=int, default=d.log_every, help="iterations between rows of metrics.csv")
    a("--test-every", type=int, default=d.test_every, help="iterations between held-out test losses")
    a("--test-batches", type=int, default=d.test_batches, help="test batches per test loss (0: none)")
    a("--sample-every", type=int, default=d.sample_every, help="iterations between sample grids")
    a("--sample-n", type=int, default=d.sample_n, help="images per sample grid")
    a("--sample-steps-each", type=int, default=d.sample_steps_each, help="Langevin steps per level for the grids")
    a("--sample-eps", type=float, default=d.sample_eps,
      help="Langevin step size in the official code's convention (2e-5 = the paper's eps 4e-5)")
    a("--dequantize", action="store_true", help="uniform dequantisation (x*255 + U(0,1))/256 (optional in the paper)")
    a("--seed", type=int, default=d.seed, help="seed of every random draw")
    a("--device", default=d.device, help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
    a("--amp", default=d.amp, choices=["auto", "bf16", "off"], help="bf16 autocast (auto: on for CUDA)")
    a("--channels-last", default=d.channels_last, choices=["auto", "on", "off"],
      help="channels-last memory format (auto: on for CUDA)")
    a("--compile", default=d.compile, choices=["auto", "on", "off"], help="torch.compile (auto: on for CUDA)")
    a("--tensorboard", default=d.tensorboard, choices=["auto", "on", "off"],
      help="also write TensorBoard events to OUT/tensorboard (auto: when tensorboard is installed)")
    a("--no-progress", dest="progress", action="store_false", help="no progress bar")
    a("--max-steps-this-run", type=int, default=None,
      help="stop after this many iterations of this invocation (rerun to continue)")
    a("--max-minutes", type=float, default=None,
      help="stop with a checkpoint after this many minutes of training (rerun to continue), "
           "e.g. to fit a Colab session")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    kw = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    kw["dataset"] = kw["dataset"].lower().replace("-", "_")
    if kw.get("out") is None:
        kw["out"] = str(Path("runs") / kw["dataset"])
    return TrainConfig(**kw)


def main(argv=None, dataset_default: str = "mnist", prog: str = "python -m ncsn_edu.train_images",
         model_factory=None) -> int:
    args = build_parser(dataset_default, prog).parse_args(argv)
    cfg = config_from_args(args)
    try:
        train(cfg, model_factory=model_factory)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
