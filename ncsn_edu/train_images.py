"""The training command: a noise-conditional score network on MNIST, CIFAR-10 or a folder of
images (chapter 12). The training itself is :func:`ncsn_edu.images.trainer.train`.

    python -m ncsn_edu.train_images --dataset mnist --out runs/mnist
    python -m ncsn_edu.train_images --dataset cifar10 --out runs/cifar10
    python -m ncsn_edu.train_images --dataset folder --data-root my_images --image-size 32 --out runs/mine
    torchrun --nproc_per_node=4 -m ncsn_edu.train_images --dataset cifar10 --out runs/cifar10

``python -m ncsn_edu.train_cifar`` is this command with CIFAR-10 as the default data set.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, fields
from pathlib import Path

import torch

from ncsn_edu.images.presets import DATASETS, PRESETS, TrainConfig
from ncsn_edu.images.trainer import train

# ----------------------------------------------------------------------------- command line

class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults appended to the help of options that take a value; an on/off switch's help
    says itself what happens without it (``--no-flip (default: True)`` would read as if
    flips were off), and so does an option whose default is None (decided at run time)."""

    def _get_help_string(self, action):
        if action.nargs == 0 or action.default is None:
            return action.help
        return super()._get_help_string(action)


def build_parser(dataset_default: str = "mnist", prog: str = "python -m ncsn_edu.train_images",
                 preset: str | None = None) -> argparse.ArgumentParser:
    """The command line; with ``preset`` (a name in :data:`ncsn_edu.images.presets.PRESETS`) its
    settings are the defaults.
    Used by the training command (chapter 10, NCSN on MNIST)."""
    d = TrainConfig()
    p = argparse.ArgumentParser(
        prog=prog,
        description="Train the paper's noise-conditional score network (CondRefineNetDilated) on images. "
                    "Defaults are the paper's (Song & Ermon 2019, appendix B) as the official code runs them, "
                    "including the dequantisation of every batch (--no-dequantize turns it off). Rerunning the "
                    "same command resumes from OUT/checkpoint.pt.",
        formatter_class=_HelpFormatter)
    a = p.add_argument
    a("--preset", default=preset, choices=sorted(PRESETS),
      help="start from these named settings (ncsn_edu.images.presets), e.g. BOOK_CPU_MNIST for the book's shipped "
           "CPU model, or ncsnv2 for NCSNv2's CIFAR-10 settings (EMA 0.999, division by sigma, sigma_1 = 50, "
           "L = 232, T = 5, step 6.2e-6, final denoising); the other options change them")
    a("--dataset", default=dataset_default, help=f"{', '.join(DATASETS)} (folder: a folder of images, "
                                                  f"class folders or flat, given by --data-root)")
    a("--out", default=None, help="run folder for checkpoints, metrics.csv and sample grids "
                                   "(default runs/<dataset>)")
    a("--data-root", default=None, help="folder with the data set in torchvision's layout (downloaded there "
                                         "when missing), or the folder of images for --dataset folder; default: "
                                         "$NCSN_EDU_DATA or the checkout's data/")
    a("--original-cifar10", dest="original_cifar10", action="store_true", default=d.original_cifar10,
      help="read torchvision's original CIFAR-10 files (downloaded into the data folder if missing; without it an "
           "image-file copy such as the offline JPEG copy in data/cifar10-jpeg is read when the original is absent)")
    a("--image-size", type=int, default=None, help="resize the images to this size (a folder's images; default: "
                                                    "as stored); the network is built for the data's size")
    a("--crop", type=int, default=None, help="centre crop to this size before resizing (the paper's CelebA: "
                                              "--crop 140 --image-size 32)")
    a("--ngf", type=int, default=None, help="network width; default the paper's: 64 for MNIST, 128 for CIFAR-10")
    a("--flip", dest="flip", action="store_true", default=None,
      help="random horizontal flips (without --flip or --no-flip: the data set's paper setting, flips on for "
           "CIFAR-10 and off for MNIST and image folders)")
    a("--no-flip", dest="flip", action="store_false",
      help="no random flips (without it, CIFAR-10 images are flipped at random, as in the paper, and MNIST "
           "and image folders are not)")
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
      help="keep only the latest checkpoint (without it, a snapshot of the model is also kept at every "
           "checkpoint, OUT/snapshots/model_XXXXXXX.pt: what the paper's FID-based checkpoint selection needs)")
    a("--log-every", type=int, default=d.log_every, help="iterations between rows of metrics.csv")
    a("--test-every", type=int, default=d.test_every, help="iterations between held-out test losses")
    a("--test-batches", type=int, default=d.test_batches, help="test batches per test loss (0: none)")
    a("--sample-every", type=int, default=d.sample_every, help="iterations between sample grids")
    a("--sample-n", type=int, default=d.sample_n, help="images per sample grid")
    a("--sample-steps-each", type=int, default=d.sample_steps_each, help="Langevin steps per level for the grids")
    a("--sample-eps", type=float, default=d.sample_eps,
      help="Langevin step size in the official code's convention (2e-5 here is eps = 4e-5 "
           "in the paper's notation; the paper states 2e-5)")
    a("--dequantize", dest="dequantize", action="store_true", default=d.dequantize,
      help="uniform dequantisation of every batch, x*255/256 + U(0,1)/256, as the official training loop "
           "(runners/anneal_runner.py) does unconditionally; on unless --no-dequantize")
    a("--no-dequantize", dest="dequantize", action="store_false", default=argparse.SUPPRESS,
      help="no dequantisation: pixels x/255 as stored (how the book's CPU model data/mnist_ncsn_ngf16.pt "
           "was trained; a run resumes only under its own setting)")
    a("--ema", type=float, default=d.ema, metavar="RATE",
      help="keep an exponential moving average of the weights at this rate (NCSNv2: 0.999); sample grids, "
           "test losses and the sampling commands use it (without it: no average, as in the paper run)")
    a("--divide-by-sigma", dest="divide_by_sigma", action="store_true", default=d.divide_by_sigma,
      help="NCSNv2's noise conditioning: an unconditional network whose output is divided by sigma "
           "(without it: the paper's conditional CIN++ network)")
    a("--no-divide-by-sigma", dest="divide_by_sigma", action="store_false",
      help="the paper's CIN++ network conditioned on the level, also under a preset that divides (BOOK_CPU_MNIST_V2, "
           "ncsnv2): chapter 11b's Technique 3 on MNIST")
    a("--final-denoise", dest="sample_denoise", action="store_true", default=d.sample_denoise,
      help="end the sample grids with NCSNv2's denoising step x + sigma_L^2 s(x, sigma_L) (without it: none, "
           "as in the paper)")
    a("--seed", type=int, default=d.seed, help="seed of every random draw")
    a("--device", default=d.device, help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
    a("--amp", default=d.amp, choices=["auto", "bf16", "fp16", "fp32", "off"],
      help="the precision: bf16 autocast, fp16 autocast with a gradient scaler, or fp32 (off = fp32). auto: "
           "bf16 on CUDA compute capability >= 8.0, fp16 on 7.x (T4, V100), fp32 on older GPUs and the CPU; a "
           "resumed run keeps its checkpoint's precision unless --amp names another")
    a("--channels-last", default=d.channels_last, choices=["auto", "on", "off"],
      help="channels-last memory format (auto: on for CUDA)")
    a("--compile", default=d.compile, choices=["auto", "on", "off"],
      help="torch.compile (auto: on with bf16 on CUDA compute capability >= 8.0, the checked fast path)")
    a("--tensorboard", default=d.tensorboard, choices=["auto", "on", "off"],
      help="also write TensorBoard events to OUT/tensorboard (auto: when tensorboard is installed)")
    a("--no-progress", dest="progress", action="store_false",
      help="no progress bar (without it, a bar shows the iterations per second and the loss)")
    a("--max-steps-this-run", type=int, default=None,
      help="stop after this many iterations of this invocation (rerun to continue)")
    a("--max-minutes", type=float, default=None,
      help="stop with a checkpoint after this many minutes of training (rerun to continue), "
           "e.g. to fit a Colab session")
    if preset is not None:
        p.set_defaults(**{k: v for k, v in asdict(PRESETS[preset]).items() if k != "extra"})
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Used by the training command (chapter 10, NCSN on MNIST)."""
    kw = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    kw["dataset"] = kw["dataset"].lower().replace("-", "_")
    if kw.get("out") is None:
        kw["out"] = str(Path("runs") / kw["dataset"])
    return TrainConfig(**kw)


def main(argv=None, dataset_default: str = "mnist", prog: str = "python -m ncsn_edu.train_images",
         model_factory=None) -> int:
    """The command line. Introduced in chapter 10 (NCSN on MNIST)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", default=None, choices=sorted(PRESETS))
    preset = pre.parse_known_args(argv)[0].preset
    args = build_parser(dataset_default, prog, preset).parse_args(argv)
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
