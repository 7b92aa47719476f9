"""Samples and inpaintings from a trained image checkpoint.

    python -m ncsn_edu.sample_images sample runs/cifar10/checkpoint.pt --n 64 --grid samples.png
    python -m ncsn_edu.sample_images sample runs/cifar10/checkpoint.pt --n 50000 --shards runs/cifar10/fid50k
    python -m ncsn_edu.sample_images inpaint runs/cifar10/checkpoint.pt --n-images 8 --completions 5 --grid inpaint.png
    python -m ncsn_edu.sample_images sample run/logs/cifar10/checkpoint.pth --official cifar10 --grid samples.png

``--official DATASET`` reads one of the authors' checkpoints (ermongroup/ncsn: a list
``[model, optimizer]`` saved from DataParallel) with :mod:`ncsn_edu.images.official`, at the
paper's sigmas; a checkpoint of that layout given without the flag is recognised and
the error says which flag to add.

Sampling is annealed Langevin dynamics (Algorithm 1) with the checkpoint's own sampler
settings, which for the paper's runs (and the authors' checkpoints) are the paper's: 100
steps per level, starting from uniform noise, in the official code's step convention
with step 2e-5 (which is eps = 4e-5 in the paper's notation; the paper states 2e-5; see
:func:`ncsn_edu.sampling.annealed_langevin_dynamics`); for NCSNv2's settings (``--preset
ncsnv2``) T = 5, step 6.2e-6 and the final denoising step. A run that kept an EMA of its
weights samples from it (``--weights raw`` takes the weights themselves).
Large sample sets are written in shards of ``--batch`` images (``shard_XXXXX.npz``,
uint8); each shard is seeded by its index, so an interrupted run continues where it
stopped and gives the same images. Inpainting is Algorithm 2 on held-out test images:
the left half of each image is kept and the right half generated.
"""
from __future__ import annotations

import argparse
import sys

import torch

from ncsn_edu.images.checkpoints import load_checkpoint
from ncsn_edu.images.devices import resolve_device
from ncsn_edu.images.inpainting import left_half_mask
from ncsn_edu.images.samples import generate, inpaint, read_shards, write_shards
from ncsn_edu.images.seeding import mix_seeds
from ncsn_edu.images.trainer import save_grid

# ----------------------------------------------------------------------------- command line

def _test_images(args, cfg) -> tuple[torch.Tensor, str]:
    """The held-out images to inpaint, ``uint8`` ``(N, C, H, W)``, and their source line:
    ``--dataset`` (default: the checkpoint's data set) read with
    :func:`ncsn_edu.images.data.image_dataset` (``folder``: the images under ``--data-root``,
    optionally centre-cropped and resized)."""
    from ncsn_edu.images.data import image_dataset

    name = args.dataset or cfg["dataset"]
    root, size, crop = args.data_root, args.image_size, args.crop
    if name == "folder" and cfg["dataset"] == "folder":  # defaults from a checkpoint trained on a folder
        root = root or cfg.get("data_root")
        size = size or cfg.get("image_size")
        crop = crop if crop is not None else cfg.get("crop")
    ds = image_dataset(name, train=False, root=root, image_size=size, crop=crop)
    data = torch.as_tensor(ds.data)
    data = data.unsqueeze(1) if data.ndim == 3 else data.permute(0, 3, 1, 2)
    return data.contiguous(), ds.source


def build_parser() -> argparse.ArgumentParser:
    """The command's argument parser. Used by the capstone commands (chapter 12)."""
    p = argparse.ArgumentParser(prog="python -m ncsn_edu.sample_images", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    def common(q):
        q.add_argument("checkpoint", help="checkpoint.pt or a snapshot written by ncsn_edu.train_images")
        q.add_argument("--eps", type=float, default=None,
                       help="Langevin step in the official code's convention (default: the checkpoint's sampler "
                            "setting; 2e-5 for the paper's runs and the authors' checkpoints, which is eps = 4e-5 "
                            "in the paper's notation; the paper states 2e-5)")
        q.add_argument("--steps-each", type=int, default=None,
                       help="Langevin steps per noise level T (default: the checkpoint's sampler setting; 100 for "
                            "the paper's runs)")
        q.add_argument("--weights", default="ema", choices=["ema", "raw"],
                       help="ema: the exponential moving average of the weights when the run kept one (--ema), "
                            "else the weights; raw: the weights themselves")
        q.add_argument("--seed", type=int, default=0, help="seed of the sampler")
        q.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
        q.add_argument("--amp", default="off", choices=["off", "bf16"], help="run the network under bf16 autocast")
        q.add_argument("--grid", default=None, help="save an image grid to this PNG")
        q.add_argument("--no-progress", dest="progress", action="store_false")
        q.add_argument("--official", default=None, choices=["mnist", "cifar10", "celeba"],
                       help="the checkpoint is the authors' (ermongroup/ncsn) for this data set")
        q.add_argument("--official-ngf", type=int, default=None,
                       help="width of an official-layout network (default: 64 for mnist, 128 otherwise)")

    s = sub.add_parser("sample", help="generate samples (Algorithm 1)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    common(s)
    s.add_argument("--n", type=int, default=64, help="number of samples")
    s.add_argument("--batch", type=int, default=1000, help="samples per batch (and per shard)")
    s.add_argument("--shards", default=None, help="folder for shard_XXXXX.npz files (resumable; for FID)")
    s.add_argument("--final-denoise", action="store_true", default=None,
                   help="one extra denoising step x + sigma_L^2 s(x, sigma_L) at the end (off in the paper; "
                        "without the flag, as the checkpoint's run sampled: on for NCSNv2's settings)")
    s.add_argument("--convention", default="code", choices=["code", "paper"],
                   help="step convention: the official code's (default) or the paper's Algorithm 1 as written")

    q = sub.add_parser("inpaint", help="complete the right half of held-out test images (Algorithm 2)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    common(q)
    q.add_argument("--n-images", type=int, default=8, help="number of held-out test images")
    q.add_argument("--completions", type=int, default=5, help="completions per image")
    q.add_argument("--data-root", default=None,
                   help="data folder (default: $NCSN_EDU_DATA or data/); with --dataset folder the image folder")
    q.add_argument("--dataset", default=None, choices=["mnist", "fashion_mnist", "cifar10", "folder"],
                   help="data set of the test images (default: the checkpoint's)")
    q.add_argument("--image-size", type=int, default=None, help="resize the test images to this side (folder)")
    q.add_argument("--crop", type=int, default=None, help="centre crop before resizing (folder)")
    return p


def _load_trainer_checkpoint(path, device, model_factory, weights="ema"):
    """:func:`load_checkpoint`, whose error names ``--official`` for an official-layout file."""
    try:
        return load_checkpoint(path, device, model_factory=model_factory, weights=weights)
    except RuntimeError as err:
        from ncsn_edu.images.official import official_hint

        hint = official_hint(path)
        if hint is None:
            raise
        raise RuntimeError(hint) from err


def main(argv=None, model_factory=None) -> int:
    """The command line. Introduced in chapter 12 (the capstone)."""
    args = build_parser().parse_args(argv)
    try:
        if args.eps is not None and args.eps <= 0:
            raise ValueError("--eps must be positive")
        for name in ("steps_each", "n", "batch", "n_images", "completions"):
            if (getattr(args, name, 1) or 1) <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be positive")
        device = resolve_device(args.device, 0)
        if args.official:
            from ncsn_edu.images.official import load_official_checkpoint

            model, sigmas, cfg = load_official_checkpoint(args.checkpoint, args.official, args.official_ngf, device)
            shape = (model.in_channels, model.image_size, model.image_size)
            if args.command == "inpaint" and cfg["dataset"] == "celeba":
                raise ValueError("inpainting takes held-out test images, and ncsn_edu does not read CelebA; "
                                 "sample from the CelebA checkpoint, or inpaint with the MNIST or CIFAR-10 one")
        else:
            model, sigmas, cfg = _load_trainer_checkpoint(args.checkpoint, device, model_factory, args.weights)
            from ncsn_edu.images.presets import DATASET_DEFAULTS, image_shape

            known = cfg["dataset"] in DATASET_DEFAULTS or cfg.get("image_size")
            shape = image_shape(cfg) if known else None
        # The sampler: as given, else as the checkpoint's run sampled (the paper's for the authors' files).
        eps = args.eps if args.eps is not None else cfg.get("sample_eps", 2e-5)
        steps = args.steps_each if args.steps_each is not None else cfg.get("sample_steps_each", 100)
        denoise = getattr(args, "final_denoise", None)  # (sample only)
        denoise = denoise if denoise is not None else bool(cfg.get("sample_denoise", False))
        ema = cfg.get("ema") is not None and args.weights == "ema" and not args.official
        print(f"sampler: {len(sigmas)} levels {float(sigmas[0]):g} -> {float(sigmas[-1]):g}, {steps} steps each, "
              f"step {eps:g}{', final denoising' if denoise and args.command == 'sample' else ''}"
              f"{'; the EMA weights' if ema else ''}")
        kw = dict(eps=eps, n_steps_each=steps, amp=args.amp == "bf16")
        if args.command == "sample":
            kw.update(convention=args.convention, final_denoise=denoise)
            if args.shards:
                write_shards(model, sigmas, args.n, shape, args.shards, args.batch, args.seed, args.progress, **kw)
                x = read_shards(args.shards, args.n)[:256].float() / 255
                print(f"{args.n} samples in {args.shards}")
            else:
                x = generate(model, sigmas, args.n, shape, seed=args.seed, progress=args.progress, **kw)
            if args.grid:
                save_grid(x[:256], args.grid)
                print(f"grid of {min(len(x), 256)} samples: {args.grid}")
        else:
            test, source = _test_images(args, cfg)
            print(f"test images: {source}")
            if shape is not None and tuple(test.shape[1:]) != shape:
                raise ValueError(f"the test images have shape {tuple(test.shape[1:])}, the model {shape}: "
                                 f"pass --image-size (and --crop) to match")
            shape = tuple(test.shape[1:])
            g = torch.Generator().manual_seed(mix_seeds(args.seed, 8))
            idx = torch.randperm(len(test), generator=g)[: args.n_images]
            images = test[idx].float() / 255
            mask = left_half_mask(shape)
            done = inpaint(model, sigmas, images, mask, args.completions, seed=args.seed, progress=args.progress, **kw)
            # One row per image: occluded, completions, original (as the paper's figure 6).
            rows = torch.cat([(images * mask).unsqueeze(1), done.cpu(), images.unsqueeze(1)], dim=1)
            grid = args.grid or "inpainting.png"
            save_grid(rows.flatten(0, 1), grid, nrow=args.completions + 2)
            print(f"inpainting of {args.n_images} test images ({args.completions} completions each): {grid}")
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
