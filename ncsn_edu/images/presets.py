"""The settings of an image training run (:class:`TrainConfig`) and named presets.

A chapter or a script trains with a preset and a few changes::

    from ncsn_edu.images.presets import BOOK_CPU_MNIST, PAPER_CIFAR10
    from ncsn_edu.images.trainer import train

    train(BOOK_CPU_MNIST.replace(out="runs/mine", n_iters=200))
    train(PAPER_CIFAR10, out="runs/cifar10")          # the same, as keyword overrides

* :data:`PAPER_MNIST`, :data:`PAPER_CIFAR10`: the paper's settings (appendix B) as the
  official code runs them (``configs/anneal.yml``, ``runners/anneal_runner.py``), which
  includes the uniform dequantisation of every batch.
* :data:`BOOK_CPU_MNIST`: the settings of the book's shipped CPU model
  ``data/mnist_ncsn_ngf16.pt`` (chapters 10-12; ``data/README.md``): width 16, batch 32,
  no dequantisation, 7,560 iterations. A test checks that every shipped checkpoint
  matches its preset.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import torch

#: The paper's per-data-set settings (appendix B): channels, size, ngf, flips.
DATASET_DEFAULTS = {
    "mnist": dict(channels=1, image_size=28, ngf=64, flip=False),
    "fashion_mnist": dict(channels=1, image_size=28, ngf=64, flip=False),
    "cifar10": dict(channels=3, image_size=32, ngf=128, flip=True),
}
#: A folder of the reader's own images: channels and size come from the images; the
#: paper's width for 32x32 colour images (CIFAR-10, CelebA) and no flips (flips are not
#: harmless for every kind of image, e.g. text).
FOLDER_DEFAULTS = dict(ngf=128, flip=False)
DATASETS = (*DATASET_DEFAULTS, "folder")

#: Settings that fix the model and the meaning of a step: a resumed run must agree on them,
#: and a shipped checkpoint must agree with its preset on them.
MODEL_KEYS = ("dataset", "ngf", "n_sigmas", "sigma_begin", "sigma_end", "batch_size", "seed", "flip", "dequantize",
              "ema", "divide_by_sigma")
#: The value of a model key that checkpoints older than the key did not record (they were
#: made without it).
KEY_DEFAULTS = {"ema": None, "divide_by_sigma": False}
#: What the data fixes, recorded in a checkpoint's settings by the trainer (older
#: checkpoints lack them): a resume must agree on those that are recorded.
DATA_KEYS = ("crop", "channels", "image_size", "data_source")


@dataclass
class TrainConfig:
    """Every setting of a training run (the command-line options, one to one).

    ``cfg.replace(**changes)`` is a copy with some settings changed.
    Used by the training command (chapter 10, NCSN on MNIST).
    """

    dataset: str = "mnist"
    out: str = "runs/ncsn"
    data_root: str | None = None
    image_size: int | None = None  # resize to this size (folder data sets; None: as stored)
    crop: int | None = None  # centre crop to this size before resizing (e.g. CelebA's 140)
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
    dequantize: bool = True  # (255 x + U(0, 1)) / 256 on every batch, as the official code
    ema: float | None = None  # rate of the weights' exponential moving average (NCSNv2: 0.999); None: none
    divide_by_sigma: bool = False  # NCSNv2's conditioning: an unconditional network whose output is divided by sigma
    sample_denoise: bool = False  # the sample grids end with x + sigma_L^2 s(x, sigma_L) (NCSNv2's denoising)
    original_cifar10: bool = False  # torchvision's original CIFAR-10 files (downloaded if missing), not a JPEG copy
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

    def replace(self, **changes) -> "TrainConfig":
        return replace(self, **changes)

    def resolved(self) -> "TrainConfig":
        """A copy with the data set's paper values filled in for ``ngf`` and ``flip``."""
        d = DATASET_DEFAULTS.get(self.dataset, FOLDER_DEFAULTS)
        c = TrainConfig(**asdict(self))
        if c.ngf is None:
            c.ngf = d["ngf"]
        if c.flip is None:
            c.flip = d["flip"]
        return c


def validate(cfg: TrainConfig) -> None:
    """Raise ``ValueError`` with a clear message for settings that cannot work.
    Used by the training command (chapter 10, NCSN on MNIST)."""
    if cfg.dataset not in DATASETS:
        raise ValueError(f"unknown data set {cfg.dataset!r}; choose one of {', '.join(DATASETS)}")
    if cfg.dataset == "folder" and cfg.data_root is None:
        raise ValueError("--dataset folder needs --data-root: the folder of images (class folders or flat)")
    if not (cfg.sigma_begin > 0 and cfg.sigma_end > 0):
        raise ValueError("--sigma-begin and --sigma-end must be positive")
    if cfg.sigma_begin < cfg.sigma_end:
        raise ValueError(f"--sigma-begin ({cfg.sigma_begin}) is below --sigma-end ({cfg.sigma_end}); "
                         f"the levels fall from sigma_begin to sigma_end")
    for name in ("n_sigmas", "batch_size", "n_iters", "ckpt_every", "log_every", "test_every", "sample_every",
                 "sample_n", "sample_steps_each"):
        if getattr(cfg, name) <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be positive, got {getattr(cfg, name)}")
    for name in ("ngf", "image_size", "crop"):
        if getattr(cfg, name) is not None and getattr(cfg, name) <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be positive, got {getattr(cfg, name)}")
    if cfg.max_minutes is not None and cfg.max_minutes <= 0:
        raise ValueError("--max-minutes must be positive")
    if cfg.test_batches < 0:
        raise ValueError("--test-batches must be non-negative")
    if not (cfg.lr > 0 and cfg.sample_eps > 0):
        raise ValueError("--lr and --sample-eps must be positive")
    if cfg.ema is not None and not 0 <= cfg.ema < 1:
        raise ValueError(f"--ema must lie in [0, 1) (0.999 in NCSNv2), got {cfg.ema}")
    for name in ("amp", "channels_last", "compile", "tensorboard"):
        allowed = ("auto", "on", "off") if name != "amp" else ("auto", "bf16", "fp16", "fp32", "off")
        if getattr(cfg, name) not in allowed:
            raise ValueError(f"--{name.replace('_', '-')} must be one of {', '.join(allowed)}")


# ----------------------------------------------------------------------------- the network

def build_model(dataset: str, ngf: int, n_sigmas: int, channels: int | None = None,
                image_size: int | None = None, sigmas=None) -> torch.nn.Module:
    """The paper's CondRefineNetDilated for ``dataset`` (``channels`` and ``image_size``
    default to the data set's; a folder data set gives them). With ``sigmas`` (the levels,
    largest first) it is NCSNv2's variant: unconditional normalisations and the output
    divided by sigma (``conditioning="division"``).
    Used by the training command (chapter 10, NCSN on MNIST)."""
    from ncsn_edu.images.refinenet import CondRefineNetDilated

    d = DATASET_DEFAULTS.get(dataset, {})
    kw = {} if sigmas is None else dict(conditioning="division", sigmas=sigmas)
    return CondRefineNetDilated(in_channels=channels or d["channels"], ngf=ngf, num_classes=n_sigmas,
                                image_size=image_size or d["image_size"], **kw)


def shape_kwargs(dataset: str, channels: int | None, image_size: int | None) -> dict:
    """The keyword arguments a model factory ``factory(dataset, ngf, n_sigmas, **kw)``
    needs for images of this shape: none when it is the data set's own shape (so a
    factory of three arguments serves MNIST and CIFAR-10), else ``channels`` and
    ``image_size``.
    Used by the training command (chapter 10, NCSN on MNIST)."""
    d = DATASET_DEFAULTS.get(dataset)
    if d is not None and channels in (None, d["channels"]) and image_size in (None, d["image_size"]):
        return {}
    return dict(channels=channels, image_size=image_size)


def image_shape(config: dict) -> tuple[int, int, int]:
    """``(C, H, W)`` of a run's images from its stored settings (a checkpoint's
    ``config``); checkpoints older than the recorded shape use the data set's.
    Used by the training command (chapter 10, NCSN on MNIST)."""
    d = DATASET_DEFAULTS.get(config["dataset"], {})
    c = config.get("channels") or d["channels"]
    s = config.get("image_size") or d["image_size"]
    return (c, s, s)


# ----------------------------------------------------------------------------- presets

#: The paper's MNIST run: ngf 64, no flips, 200,000 iterations of batch 128, dequantised.
PAPER_MNIST = TrainConfig(dataset="mnist", out="runs/mnist", ngf=64, flip=False, dequantize=True)
#: The paper's CIFAR-10 run: ngf 128, random horizontal flips, otherwise as MNIST.
PAPER_CIFAR10 = TrainConfig(dataset="cifar10", out="runs/cifar10", ngf=128, flip=True, dequantize=True)
#: The book's CPU model ``data/mnist_ncsn_ngf16.pt`` (``data/README.md`` gives its command).
BOOK_CPU_MNIST = TrainConfig(dataset="mnist", out="runs/mnist_ngf16", ngf=16, flip=False, dequantize=False,
                             batch_size=32, n_iters=7_560, ckpt_every=200, test_every=200, test_batches=2,
                             sample_every=1_000_000, device="cpu")

#: The book's single-level baseline of the appendix's Figures 7-8 (chapter 10): the same
#: small network trained at sigma = 0.01 only (``data/mnist_baseline_sigma001.pt``).
BOOK_CPU_MNIST_SIGMA001 = BOOK_CPU_MNIST.replace(out="runs/mnist_baseline_sigma001", n_sigmas=1, sigma_begin=0.01,
                                                 sigma_end=0.01, n_iters=200_000, keep_snapshots=False)

#: NCSNv2's CIFAR-10 settings (Song & Ermon 2020; the official ermongroup/ncsnv2 ``configs/cifar10.yml``)
#: on this book's RefineNet: sigma_1 = 50 (the largest pairwise distance of the training images),
#: L = 232 levels down to 0.01 (neighbouring shells overlapping by about a half in D = 3072),
#: noise conditioning by division, an EMA of the weights at rate 0.999 (samples come from it),
#: Adam at lr 1e-4, 300,000 iterations of batch 128, flips and no dequantisation as in that config;
#: sampling with T = 5 steps per level at step 6.2e-6 (the official code's convention) and the final
#: denoising step. (NCSNv2's own network is a deeper RefineNet; this is the paper run's network.)
NCSNV2_CIFAR10 = PAPER_CIFAR10.replace(out="runs/cifar10_ncsnv2", sigma_begin=50.0, sigma_end=0.01, n_sigmas=232,
                                       lr=1e-4, n_iters=300_000, dequantize=False, ema=0.999,
                                       divide_by_sigma=True, sample_steps_each=5, sample_eps=6.2e-6,
                                       sample_denoise=True)

#: The book's NCSNv2 model on MNIST, trained on a CPU (``data/mnist_ncsnv2_ngf16*.pt``, ``data/README.md``):
#: the v1 CPU model's width, batch, learning rate and number of images seen (7,560 steps of 32), with
#: NCSNv2's techniques. sigma_1 = 16.88: the largest distance between two of the 60,000 training digits
#: is 16.8758 (pixels in [0, 1]; digits 59452 and 26785), rounded up. L = 96 levels down to 0.01: the
#: ratio gamma = 1.0820 that makes neighbouring shells overlap by 0.5 in D = 784 needs 96 (the ladder's
#: ratio is 1.0814). Sampling: T = 10 steps per level (960 network evaluations, about the v1 sampler's
#: 1,000) at Technique 4's step 8.6e-6 (8.565e-6, rounded as the official configs round theirs), then the
#: final denoising step. EMA at 0.999 and division by sigma.
BOOK_CPU_MNIST_V2 = BOOK_CPU_MNIST.replace(out="runs/mnist_ncsnv2_ngf16", sigma_begin=16.88, sigma_end=0.01,
                                           n_sigmas=96, ema=0.999, divide_by_sigma=True, sample_steps_each=10,
                                           sample_eps=8.6e-6, sample_denoise=True)

PRESETS = {"PAPER_MNIST": PAPER_MNIST, "PAPER_CIFAR10": PAPER_CIFAR10, "BOOK_CPU_MNIST": BOOK_CPU_MNIST,
           "BOOK_CPU_MNIST_SIGMA001": BOOK_CPU_MNIST_SIGMA001, "NCSNV2_CIFAR10": NCSNV2_CIFAR10,
           "ncsnv2": NCSNV2_CIFAR10, "BOOK_CPU_MNIST_V2": BOOK_CPU_MNIST_V2}

#: Which preset made each image checkpoint shipped under ``data/``.
SHIPPED_CHECKPOINTS = {"mnist_ncsn_ngf16.pt": "BOOK_CPU_MNIST", "mnist_baseline_sigma001.pt": "BOOK_CPU_MNIST_SIGMA001",
                       "mnist_ncsnv2_ngf16.pt": "BOOK_CPU_MNIST_V2"}


def settings_differ(recorded: dict, cfg: TrainConfig | dict, keys=MODEL_KEYS) -> dict:
    """``{key: (recorded value, cfg's value)}`` for the ``keys`` on which a run's
    recorded settings and ``cfg`` disagree (``cfg`` resolved first).
    Used by the training command (chapter 10, NCSN on MNIST)."""
    now = asdict(cfg.resolved()) if isinstance(cfg, TrainConfig) else cfg
    then = {k: recorded.get(k, KEY_DEFAULTS.get(k)) for k in keys}
    return {k: (then[k], now.get(k, KEY_DEFAULTS.get(k))) for k in keys if then[k] != now.get(k, KEY_DEFAULTS.get(k))}
