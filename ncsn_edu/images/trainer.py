"""The image trainer: a noise-conditional score network on MNIST, CIFAR-10 or a folder of
images (chapter 12). Its command line is :mod:`ncsn_edu.train_images`:

    python -m ncsn_edu.train_images --dataset mnist --out runs/mnist
    python -m ncsn_edu.train_images --dataset cifar10 --out runs/cifar10
    python -m ncsn_edu.train_images --dataset folder --data-root my_images --image-size 32 --out runs/mine
    torchrun --nproc_per_node=4 -m ncsn_edu.train_images --dataset cifar10 --out runs/cifar10

From Python, with a named preset (:mod:`ncsn_edu.images.presets`)::

    train(PAPER_MNIST.replace(out="runs/mnist", n_iters=1_000))
    train(BOOK_CPU_MNIST, out="runs/small")

Defaults are the paper's (appendix B) as the official code runs them: ten noise levels
geometric from 1 to 0.01, the annealed denoising score matching loss with
``lambda(sigma) = sigma^2``, Adam with lr 1e-3, batch 128, 200,000 iterations, a
checkpoint every 5,000; ngf 64 and no flips for MNIST, ngf 128 and random horizontal
flips for CIFAR-10; and every batch dequantised, ``x * 255/256 + U(0, 1)/256``, as the
official training loop does unconditionally (``--no-dequantize`` turns it off; the
book's shipped CPU model was trained without it).

:func:`train` reads top to bottom: the data source (:mod:`ncsn_edu.images.batches`), the
training state and one step (:mod:`ncsn_edu.images.train_step`), then the loop, which logs,
tests, samples and checkpoints (:mod:`ncsn_edu.images.checkpoints`) every so often.

What the engine does, and why:

* **Resume.** Rerunning the same command continues from ``OUT/checkpoint.pt`` (model,
  optimiser, step, the gradient scaler under fp16, the EMA of the weights under ``--ema``).
  Every random draw of step ``k`` (which images, which flips, which noise levels, which noise) comes from generators
  seeded by ``(seed, k)`` (:mod:`ncsn_edu.images.seeding`), so a resumed run repeats an
  uninterrupted one exactly. Nothing draws from torch's global random state, so none is
  saved or restored (a test checks that training leaves it alone). A resume under
  settings that change the model or a step is refused.
* **Atomic checkpoints.** A checkpoint is written to a temporary file, flushed to disk
  and renamed over the old one, so a run killed at any moment leaves the last complete
  checkpoint. Loading uses ``torch.load(weights_only=True)``.
* **What was read.** The run prints ``Data: <source>`` and records the source (e.g. the
  original CIFAR-10 or its JPEG copy), the channels and the image size in the
  checkpoint's settings, so a result made on one cannot pass for one made on the other.
* **Logs.** A progress bar with iterations per second and the loss; ``OUT/metrics.csv``
  (``wall_time,step,tag,value``: loss, loss per noise level, held-out test loss) that any
  plain tool reads, also written as TensorBoard events when ``tensorboard`` is
  installed; sample grids ``OUT/samples/step_XXXXXXX.png``.
* **Precision and speed on a GPU.** ``--amp auto`` chooses per device
  (:mod:`ncsn_edu.images.precision`): bf16 autocast and ``torch.compile`` on compute capability
  8.0 and above, fp16 autocast with a gradient scaler on 7.x (T4, V100), fp32 on older
  GPUs and on the CPU. The choice is printed and stored in the checkpoint, with the
  scaler's state; a resume keeps it unless ``--amp`` names another. Channels-last memory
  is on for CUDA (``auto``); each option can be forced.
* **NCSNv2's options** (Song & Ermon 2020): ``--ema RATE`` keeps an exponential moving
  average of the weights (0.999 in NCSNv2); sample grids and the held-out test loss
  (``test_loss``; ``test_loss_raw`` is the raw weights') use it, and checkpoints carry it.
  ``--divide-by-sigma`` trains the unconditional network whose output is divided by
  sigma; ``--final-denoise`` ends the sample grids with ``x + sigma_L^2 s(x, sigma_L)``.
  ``--preset ncsnv2`` sets them with NCSNv2's CIFAR-10 noise levels (sigma_1 = 50, L = 232)
  and sampler (T = 5, step 6.2e-6).
* **Non-finite losses** stop the run with a message; the last checkpoint stays intact.
* **Several GPUs.** Under ``torchrun`` the model is wrapped in DistributedDataParallel;
  the global batch stays ``--batch-size`` (each of N processes takes 1/N of it) and only
  rank 0 writes files.
"""

from __future__ import annotations

import copy
import csv
import math
import os
import time
from dataclasses import asdict
from pathlib import Path

import torch

from ncsn_edu.images import seeding
from ncsn_edu.images.batches import ImageSet, StepBatches, held_out_batch, read_image_set
from ncsn_edu.images.checkpoints import (
    CHECKPOINT,
    check_resume,
    model_kwargs,
    read_checkpoint,
    remove_stale_temporaries,
    restore,
    unwrap,
)
from ncsn_edu.images.checkpoints import save as save_checkpoint
from ncsn_edu.images.devices import Processes, auto_on, start_processes
from ncsn_edu.images.precision import Precision, choose_precision, device_capability, resume_precision
from ncsn_edu.images.presets import TrainConfig, build_model, validate
from ncsn_edu.images.train_step import EMA, StepResult, dsm_per_sample, make_step_fn, step_noise
from ncsn_edu.progress import progress_bar
from ncsn_edu.schedules import geometric_sigmas

# ----------------------------------------------------------------------------- logging

class MetricsLog:
    """``metrics.csv`` (``wall_time,step,tag,value``) plus TensorBoard events if wanted.
    Used by the training command (chapter 10, NCSN on MNIST)."""

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
    """``metrics.csv`` as ``{tag: (steps, values)}`` lists.
    Introduced in chapter 4 (denoising score matching)."""
    out: dict = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            s, v = out.setdefault(r["tag"], ([], []))
            s.append(int(r["step"]))
            v.append(float(r["value"]))
    return out


class NonFiniteLoss(RuntimeError):
    """The loss or the weights stopped being finite (the last checkpoint stays intact).
    Used by the training command (chapter 10, NCSN on MNIST)."""


class LossTracker:
    """The losses of the steps since the last log row: their mean over the global batch
    and the mean per noise level, checked for non-finite values.
    Used by the training command (chapter 10, NCSN on MNIST)."""

    def __init__(self, n_sigmas: int, device, procs: Processes):
        self.procs = procs
        self.losses = []  # a device tensor per step, read at log time (no sync per step)
        self.level_sum = torch.zeros(n_sigmas, device=device)
        self.level_cnt = torch.zeros(n_sigmas, device=device)
        self.last_time = time.time()

    def add(self, result: StepResult) -> None:
        with torch.no_grad():
            self.level_sum.index_add_(0, result.labels, result.per_sample)
            self.level_cnt.index_add_(0, result.labels, torch.ones_like(result.per_sample))
            self.losses.append(result.loss)

    def flush(self, step: int, ckpt_path) -> tuple[list, dict]:
        """``(losses of the recent steps, {level: mean loss})``; raises :class:`NonFiniteLoss`."""
        recent = torch.stack(self.losses)
        if self.procs.distributed:  # the global batch's loss: mean of the ranks' means
            torch.distributed.all_reduce(recent)
            recent /= self.procs.world
            torch.distributed.all_reduce(self.level_sum)
            torch.distributed.all_reduce(self.level_cnt)
        recent = recent.tolist()
        self.losses.clear()
        bad = [i for i, v in enumerate(recent) if not math.isfinite(v)]
        if bad:
            at = step - len(recent) + bad[0] + 1
            raise NonFiniteLoss(
                f"the loss became {recent[bad[0]]} at step {at}. Training stopped; the last good "
                f"checkpoint ({ckpt_path}) is intact. Try a lower --lr, --amp off, or rerun to "
                f"resume from it.")
        levels = {i: s / c for i, (s, c) in enumerate(zip(self.level_sum.tolist(), self.level_cnt.tolist())) if c}
        self.level_sum.zero_()
        self.level_cnt.zero_()
        return recent, levels

    def row(self, recent: list, levels: dict, sigmas: torch.Tensor) -> dict:
        """The values of a ``metrics.csv`` row."""
        now = time.time()
        vals = {"loss": recent[-1], "loss_mean": sum(recent) / len(recent),
                "it_per_s": len(recent) / max(now - self.last_time, 1e-9)}
        self.last_time = now
        for i, v in levels.items():
            vals[f"loss_level/{i}_sigma{sigmas[i].item():.4g}"] = v
        return vals


def save_grid(images: torch.Tensor, path, nrow: int | None = None) -> None:
    """Images in [0, 1] as one PNG grid (written atomically).
    Used by the training command (chapter 10, NCSN on MNIST)."""
    from torchvision.utils import save_image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nrow = nrow or max(1, int(math.sqrt(len(images))))
    tmp = path.with_name(f".{path.stem}.tmp.png")
    save_image(images.clamp(0, 1).float().cpu(), str(tmp), nrow=nrow, padding=2)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- the pieces of a run

def data_notice(cfg: TrainConfig) -> list[str]:
    """What reading the data will do, when it is not the obvious: CIFAR-10 read from image files
    (the offline JPEG copy) rather than torchvision's original files, whose first read decodes
    60,000 files and caches the decoded arrays under the data root's ``cache/``.
    Used by the training command (chapter 12, the capstone)."""
    if cfg.dataset != "cifar10" or cfg.original_cifar10:
        return []
    from ncsn_edu.images.data import CIFAR10_FOLDERS
    from ncsn_edu.resources import data_root

    root = Path(cfg.data_root).expanduser() if cfg.data_root else data_root()
    if (root / "cifar-10-batches-py").is_dir():
        return []
    for sub in CIFAR10_FOLDERS:
        if (root / sub / "train").is_dir():
            return [f"reading CIFAR-10 from the image files in {root / sub}, not torchvision's original files "
                    f"(--original-cifar10 reads those, downloading them if needed)",
                    f"a first read decodes the 60,000 files (25-45 s on a 2-core CPU) and caches the arrays "
                    f"in {data_root() / 'cache'} (184 MB; delete it to free the space); later reads take seconds"]
    return []


def ensure_original_cifar10(root) -> None:
    """Make sure torchvision's original CIFAR-10 files are under ``root`` (default: the data
    root), downloading them (170 MB) if needed, so that they, and not a JPEG copy, are read.
    Used by the training command (chapter 12, the capstone)."""
    import torchvision

    from ncsn_edu.resources import data_root

    root = Path(root).expanduser() if root else data_root()
    try:
        torchvision.datasets.CIFAR10(str(root), train=True, download=True)
    except Exception as err:  # offline, or a damaged download
        raise FileNotFoundError(
            f"--original-cifar10: torchvision's CIFAR-10 files (cifar-10-batches-py/) are not under {root} and "
            f"could not be downloaded ({type(err).__name__}: {err}). Unpack cifar-10-python.tar.gz there, or "
            f"leave --original-cifar10 out to train on the image files that are there. Nothing was written."
        ) from err


def open_data(cfg: TrainConfig) -> tuple[ImageSet, ImageSet | None]:
    """The training split and (when test losses are wanted) the test split; with
    ``cfg.original_cifar10``, torchvision's original CIFAR-10 files (:func:`ensure_original_cifar10`).
    Used by the training command (chapter 10, NCSN on MNIST)."""
    if cfg.dataset == "cifar10" and cfg.original_cifar10:
        ensure_original_cifar10(cfg.data_root)
    kw = dict(root=cfg.data_root, image_size=cfg.image_size, crop=cfg.crop)
    train_set = read_image_set(cfg.dataset, train=True, **kw)
    test_set = read_image_set(cfg.dataset, train=False, **kw) if cfg.test_batches else None
    return train_set, test_set


def run_settings(cfg: TrainConfig, data: ImageSet) -> dict:
    """What a checkpoint records: every setting, and what the data fixed (channels, image
    size and which files were read).
    Used by the training command (chapter 10, NCSN on MNIST)."""
    c, h, _ = data.shape
    return dict(asdict(cfg), channels=c, image_size=h, data_source=data.source)


def new_state(cfg: TrainConfig, model_factory, settings: dict, device, sigmas: torch.Tensor | None = None) -> dict:
    """The training state at step 0: the seeded network, its Adam optimiser and (with
    ``cfg.ema``) the EMA of its weights. A network that divides by sigma
    (``cfg.divide_by_sigma``) gets the levels ``sigmas``.
    Used by the training command (chapter 10, NCSN on MNIST)."""
    if cfg.divide_by_sigma and sigmas is None:
        raise ValueError("a network that divides by sigma needs the sigmas")
    kw = model_kwargs(settings, sigmas)
    model = seeding.seeded_model(model_factory, cfg.seed, cfg.dataset, cfg.ngf, cfg.n_sigmas, **kw).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    ema = EMA(model, cfg.ema) if cfg.ema is not None else None
    return {"model": model, "optimizer": opt, "step": 0, "ema": ema}


def eval_model(state: dict) -> torch.nn.Module:
    """The network that samples and held-out losses use: the EMA of the weights when the run
    keeps one (as NCSNv2 does), else the network itself (unwrapped).
    Used by the training command (chapter 10, NCSN on MNIST)."""
    return state["ema"].averaged_model() if state.get("ema") is not None else unwrap(state["model"])


class Speed:
    """The precision and ``torch.compile`` (:func:`ncsn_edu.images.precision.choose_precision`)
    and channels-last memory (``auto``: on for CUDA).
    Used by the training command (chapter 10, NCSN on MNIST)."""

    def __init__(self, cfg: TrainConfig, device: torch.device, precision: Precision | None = None):
        self.device = device
        self.precision = precision or choose_precision(cfg.amp, device.type, device_capability(device), cfg.compile)
        self.channels_last = auto_on(cfg.channels_last, device)
        self.compile = self.precision.compile
        self.autocast = self.precision.autocast(device)

    def prepare(self, t: torch.Tensor) -> torch.Tensor:
        """A batch on the device in the network's memory format."""
        t = t.to(self.device, non_blocking=True)
        return t.contiguous(memory_format=torch.channels_last) if self.channels_last else t

    def wrap(self, model: torch.nn.Module, procs: Processes) -> torch.nn.Module:
        """The module the steps run: channels-last, in DDP, compiled, as chosen."""
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if procs.distributed:
            model = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        return torch.compile(model) if self.compile else model


def skipped_steps(state: dict) -> int:
    """Steps since step 0 whose optimiser update the gradient scaler skipped (fp16 gradients
    that overflowed): the steps taken less the updates Adam counted.
    Used by the training command (chapter 10, NCSN on MNIST)."""
    opt = state["optimizer"]
    counts = [int(st["step"]) for st in opt.state.values() if "step" in st]
    return state["step"] - (max(counts) if counts else 0)


def held_out_loss(state: dict, test: ImageSet | None, cfg: TrainConfig, sigmas: torch.Tensor, speed: Speed,
                  net: torch.nn.Module | None = None) -> float:
    """The loss on ``cfg.test_batches`` fixed batches of test images (the same batches,
    levels and noise at every evaluation) of ``net`` (default: the trained network itself).
    Used by the training command (chapter 10, NCSN on MNIST)."""
    if test is None:
        return float("nan")
    total, count = 0.0, 0
    net = net if net is not None else unwrap(state["model"])
    state["model"].eval()
    net.eval()
    with torch.no_grad():
        for b in range(cfg.test_batches):
            x = speed.prepare(held_out_batch(test.images, b, cfg.batch_size, cfg.seed, cfg.dequantize))
            labels, z = step_noise(b, x.shape, cfg.n_sigmas, cfg.seed, speed.device, stream=seeding.TEST_NOISE)
            per = dsm_per_sample(net, x, labels, speed.prepare(z), sigmas, speed.autocast)
            total += per.sum().item()
            count += len(per)
    state["model"].train()
    unwrap(state["model"]).train()
    return total / count


def sample_grid(state: dict, shape, sigmas: torch.Tensor, cfg: TrainConfig, speed: Speed, path) -> None:
    """``cfg.sample_n`` samples of the current network (annealed Langevin, the official
    step convention, the final denoising step when ``cfg.sample_denoise``) as a grid at
    ``path``; always from the same start and noise. A run that keeps an EMA samples from it.
    Used by the training command (chapter 10, NCSN on MNIST)."""
    from ncsn_edu.sampling import annealed_langevin_dynamics

    g = seeding.generator(cfg.seed, seeding.GRID, device=speed.device)
    x0 = torch.rand((cfg.sample_n, *shape), generator=g, device=speed.device)
    net = eval_model(state)
    net.eval()

    def score(x, labels):
        if speed.autocast is not None:
            with speed.autocast():
                return net(x, labels).float()
        return net(x, labels)

    x = annealed_langevin_dynamics(score, x0, sigmas, cfg.sample_eps, cfg.sample_steps_each,
                                   generator=g, convention="code", final_denoise=cfg.sample_denoise)
    net.train()
    save_grid(x, path)


def write_checkpoint(state: dict, sigmas: torch.Tensor, settings: dict, cfg: TrainConfig, procs: Processes) -> None:
    """Check the weights, then (rank 0) write ``OUT/checkpoint.pt``, and a snapshot of the
    model at every ``--ckpt-every`` and at the end; every process waits for it.
    Used by the training command (chapter 10, NCSN on MNIST)."""
    step, out = state["step"], Path(cfg.out)
    if not all(torch.isfinite(p).all() for p in unwrap(state["model"]).parameters()):
        raise NonFiniteLoss(f"the weights became non-finite at step {step}; the last good "
                            f"checkpoint ({out / CHECKPOINT}) is intact.")
    if procs.is_main:
        snapshot = cfg.keep_snapshots and (step % cfg.ckpt_every == 0 or step == cfg.n_iters)
        save_checkpoint(state, sigmas, settings, out, procs.device, snapshot)
    if procs.distributed:
        torch.distributed.barrier()


def cpu_time_estimate(model: torch.nn.Module, shape, batch_size: int, n_images: int = 4) -> float:
    """Seconds per training iteration on the CPU, estimated from one forward and backward pass
    of ``n_images`` random images through a copy of ``model`` (timed now) scaled to the batch.
    Used by the training command (chapter 12, the capstone)."""
    net = copy.deepcopy(unwrap(model)).train()
    n = min(batch_size, n_images)
    x = torch.rand((n, *shape), generator=torch.Generator().manual_seed(0))
    labels = torch.zeros(n, dtype=torch.long)
    start = time.perf_counter()
    net(x, labels).square().mean().backward()
    return (time.perf_counter() - start) / n * batch_size


def cpu_warning(seconds_per_iter: float, remaining: int, cfg: TrainConfig) -> list[str]:
    """The lines printed before a CPU run that would take more than an hour.
    Used by the training command (chapter 12, the capstone)."""
    total = seconds_per_iter * remaining
    if total <= 3600:
        return []
    return [f"ESTIMATE for the CPU: about {seconds_per_iter:.3g} s per iteration at batch {cfg.batch_size} (one "
            f"pass of a few images timed just now), so the {remaining:,} iterations left would take about "
            f"{total / 3600:,.0f} hours ({total / 86400:,.1f} days).",
            "This run is meant for a GPU. On a CPU, try the small run of the book's capstone page: --dataset mnist "
            "--ngf 16 --batch-size 32 --max-minutes 30. Ctrl-C stops; rerunning resumes from the last checkpoint."]


def out_of_time(cfg: TrainConfig, start_time: float, procs: Processes) -> bool:
    """Whether ``--max-minutes`` have passed (rank 0's clock decides for all).
    Used by the training command (chapter 10, NCSN on MNIST)."""
    late = torch.tensor(float(time.time() - start_time > 60 * cfg.max_minutes), device=procs.device)
    if procs.distributed:
        torch.distributed.broadcast(late, 0)
    return bool(late.item())


# ----------------------------------------------------------------------------- training

def train(cfg: TrainConfig | None = None, model_factory=None, log=print, **overrides) -> dict:
    """Train (or resume) the run described by ``cfg`` (default :class:`TrainConfig`, the
    paper's settings) with ``overrides`` applied; return a summary dict.

    ``model_factory(dataset, ngf, n_sigmas)`` builds the network (default: the paper's
    CondRefineNetDilated, :func:`ncsn_edu.images.presets.build_model`); for images of another
    shape than the data set's own (a folder) it also gets ``channels=`` and ``image_size=``.
    Used by the training command (chapter 10, NCSN on MNIST).
    """
    cfg = (cfg or TrainConfig()).replace(**overrides)
    validate(cfg)
    cfg = cfg.resolved()
    procs = start_processes(cfg.device, cfg.batch_size)
    device, out = procs.device, Path(cfg.out)
    ckpt_path = out / CHECKPOINT
    saved = read_checkpoint(ckpt_path) if ckpt_path.exists() else None  # read before anything is written

    # The data source (read before any file is written, so a data error leaves OUT untouched).
    if procs.is_main:
        for line in data_notice(cfg):
            log(line)
    train_set, test_set = open_data(cfg)
    settings = run_settings(cfg, train_set)
    speed, switched = Speed(cfg, device), None
    if saved is not None:
        check_resume(saved["config"], settings, ckpt_path)
        kept, switched = resume_precision(saved["config"].get("precision"), cfg.amp, speed.precision,
                                          int(saved["step"]))
        if kept.name != speed.precision.name:  # compile as --compile decides for the kept precision
            again = choose_precision(kept.name, device.type, device_capability(device), cfg.compile)
            kept = Precision(kept.name, again.compile, kept.reason)
        speed = Speed(cfg, device, kept)
    settings["precision"] = speed.precision.name
    images = train_set.images.to(device) if device.type == "cuda" else train_set.images  # no loader on a GPU
    batches = StepBatches(images, cfg.batch_size, cfg.seed, cfg.flip, cfg.dequantize)

    # The training state and one step.
    sigmas = geometric_sigmas(cfg.sigma_begin, cfg.sigma_end, cfg.n_sigmas).float()
    state = new_state(cfg, model_factory or build_model, settings, device, sigmas)
    state["scaler"] = speed.precision.scaler(device)
    if saved is not None:
        restore(state, saved, cfg.lr, (cfg.beta1, cfg.beta2), device)
    state["model"] = speed.wrap(state["model"], procs)
    step_fn = make_step_fn(sigmas.to(device), cfg.batch_size, procs.share(cfg.batch_size), speed.autocast,
                           speed.prepare)

    # Logging.
    if procs.is_main:
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(out)
        metrics = MetricsLog(out, state["step"], cfg.tensorboard)
        log(f"Data: {train_set.source}")
        log(f"{'resuming from step ' + str(state['step']) if state['step'] else 'starting'}: {cfg.dataset}, "
            f"ngf {cfg.ngf}, {cfg.n_sigmas} sigmas {cfg.sigma_begin:g}->{cfg.sigma_end:g}, flips {cfg.flip}, "
            f"dequantisation {cfg.dequantize}, batch {cfg.batch_size} on {procs.world} x {device.type}, "
            f"channels-last {speed.channels_last}; writing to {out}")
        if cfg.ema is not None or cfg.divide_by_sigma:
            log(f"NCSNv2: EMA of the weights {'off' if cfg.ema is None else f'at rate {cfg.ema:g}'}, noise "
                f"conditioning {'by division by sigma' if cfg.divide_by_sigma else 'by CIN++'}")
        log(speed.precision.describe())
        if switched:
            log(switched)
    tracker = LossTracker(cfg.n_sigmas, device, procs)
    end = cfg.n_iters if cfg.max_steps_this_run is None else min(cfg.n_iters, state["step"] + cfg.max_steps_this_run)
    # On a CPU, say first what a long run costs (from 1,000 iterations left: a shorter run is a test or a try).
    if procs.is_main and device.type == "cpu" and cfg.n_iters - state["step"] >= 1_000:
        for line in cpu_warning(cpu_time_estimate(state["model"], train_set.shape, cfg.batch_size),
                                cfg.n_iters - state["step"], cfg):
            log(line)
    bar = progress_bar(total=cfg.n_iters, initial=state["step"], enabled=cfg.progress and procs.is_main,
                       desc="training", dynamic_ncols=True, smoothing=0.05)
    start_time, start_step, history = time.time(), state["step"], []

    # The loop: one step, then whatever is due at the step reached.
    state["model"].train()
    try:
        while state["step"] < end:
            x = speed.prepare(batches.batch(state["step"], procs.rank, procs.world))
            tracker.add(step_fn(state, x, seeding.generator(cfg.seed, seeding.NOISE, state["step"], device=device)))
            step = state["step"]
            bar.update(1)
            if cfg.max_minutes is not None and step % cfg.log_every == 0 and step < end:
                if out_of_time(cfg, start_time, procs):
                    end = step  # checkpoint now and stop
            due_ckpt = step % cfg.ckpt_every == 0 or step == end
            if step % cfg.log_every == 0 or due_ckpt:
                recent, levels = tracker.flush(step, ckpt_path)
                history.extend(recent)
                if procs.is_main:
                    row = tracker.row(recent, levels, sigmas)
                    if state["scaler"] is not None:
                        row.update(amp_scale=state["scaler"].get_scale(), skipped_steps=skipped_steps(state))
                    metrics.log(step, row)
                    bar.set_postfix(loss=f"{recent[-1]:.4g}")
            if procs.is_main and cfg.test_batches and (step % cfg.test_every == 0 or step == cfg.n_iters):
                tests = {"test_loss": held_out_loss(state, test_set, cfg, sigmas.to(device), speed, eval_model(state))}
                if state.get("ema") is not None:  # the EMA's test loss, and the raw weights' beside it
                    tests["test_loss_raw"] = held_out_loss(state, test_set, cfg, sigmas.to(device), speed)
                metrics.log(step, tests)
            if procs.is_main and (step % cfg.sample_every == 0 or step == cfg.n_iters):
                sample_grid(state, train_set.shape, sigmas, cfg, speed, out / "samples" / f"step_{step:07d}.png")
            if due_ckpt:
                write_checkpoint(state, sigmas, settings, cfg, procs)
    finally:
        bar.close()
        if procs.is_main:
            metrics.close()
    wall = time.time() - start_time
    if procs.is_main:
        log(f"stopped at step {state['step']} of {cfg.n_iters}; {state['step'] - start_step} steps in {wall:.1f} s")
    return {"step": state["step"], "losses": history, "wall_s": wall, "steps_run": state["step"] - start_step,
            "data_source": train_set.source}
