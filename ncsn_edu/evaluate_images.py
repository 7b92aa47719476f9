"""Inception score and FID of samples, and the paper's checkpoint selection.

    python -m ncsn_edu.evaluate_images fetch-weights                 # once, with network
    python -m ncsn_edu.evaluate_images score runs/cifar10/fid50k --n 50000
    python -m ncsn_edu.evaluate_images select runs/cifar10 --n 1000  # lowest 1,000-sample FID

The metrics come from ``torch-fidelity`` (``pip install torch-fidelity``), a maintained
library that reproduces the reference TensorFlow Inception network's numbers; nothing
here is a hand-written Inception. Its Inception-v3 weights (about 95 MB) are downloaded
on first use into torch's hub cache, ``$TORCH_HOME/hub/checkpoints/`` (by default
``~/.cache/torch/hub/checkpoints/``), and read from there afterwards; offline, the
commands stop with a message saying where to put the file. ``--inception-weights PATH``
uses a copy elsewhere. FID is measured against the data set's training images (the
reference statistics are cached by torch-fidelity under its cache folder).

The paper's numbers (Table 1): 50,000 samples, Inception score 8.87 +- .12 and FID
25.32 on CIFAR-10, from the checkpoint with the lowest FID on 1,000 samples among the
checkpoints saved every 5,000 iterations.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import urllib.request
from pathlib import Path

import torch

#: The Inception-v3 weights torch-fidelity uses (its own download address and file name).
INCEPTION_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                 "weights-inception-2015-12-05-6726825d.pth")


def inception_weights_path() -> Path:
    """Where the Inception weights are cached: torch's hub checkpoint folder.
    Used by the capstone commands (the capstone page)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_URL.rsplit("/", 1)[-1]


def inception_weights(path=None, download: bool = True, timeout: float = 60.0) -> Path:
    """The path of the Inception weights, downloading them into the cache when missing.

    Raises ``RuntimeError`` with what to do when they are missing and cannot be fetched.
    Used by the capstone commands (the capstone page).
    """
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"--inception-weights {path} does not exist")
        return path
    path = inception_weights_path()
    if path.is_file():
        return path
    how = (f"Download {INCEPTION_URL} on a machine with network access (or run `python -m "
           f"ncsn_edu.evaluate_images fetch-weights` there) and copy it to {path}, or pass "
           f"--inception-weights PATH.")
    if not download:
        raise RuntimeError(f"the Inception weights are not in the cache ({path}). {how}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    try:
        with urllib.request.urlopen(INCEPTION_URL, timeout=timeout) as r, open(tmp, "wb") as f:
            while chunk := r.read(1 << 20):
                f.write(chunk)
        os.replace(tmp, path)
    except OSError as err:  # no network, refused, timed out
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"could not download the Inception weights ({type(err).__name__}: {err}); "
                           f"this machine seems to be offline. {how}") from err
    return path


class UInt8Images(torch.utils.data.Dataset):
    """A uint8 ``(N, C, H, W)`` tensor as the 3-channel uint8 images torch-fidelity reads
    (one-channel images are repeated to three).
    Used by the capstone commands (the capstone page)."""

    def __init__(self, images: torch.Tensor):
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError("expected uint8 images of shape (N, C, H, W)")
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        x = self.images[i]
        return x.expand(3, -1, -1).contiguous() if x.shape[0] == 1 else x


def fidelity_metrics(samples: torch.Tensor, reference: torch.Tensor | None, isc: bool = True, fid: bool = True,
                     weights=None, device="cpu", batch_size: int = 200, reference_cache_name: str | None = None,
                     progress: bool = False) -> dict:
    """Inception score (mean, std over 10 splits) and FID of uint8 ``samples`` against
    uint8 ``reference`` images, computed by torch-fidelity.
    Used by the capstone commands (the capstone page)."""
    try:
        import torch_fidelity
    except ImportError as err:
        raise RuntimeError("Inception score and FID need torch-fidelity: pip install torch-fidelity") from err
    kw = dict(input1=UInt8Images(samples), isc=isc, fid=fid, kid=False, verbose=progress,
              cuda=torch.device(device).type == "cuda", batch_size=batch_size,
              feature_extractor_weights_path=str(inception_weights(weights)))
    if fid:
        kw["input2"] = UInt8Images(reference)
        if reference_cache_name:
            kw.update(input2_cache_name=reference_cache_name, cache=True)
        else:
            kw["cache"] = False
    else:
        kw["cache"] = False
    m = torch_fidelity.calculate_metrics(**kw)
    out = {}
    if isc:
        out["inception_score"] = m["inception_score_mean"]
        out["inception_score_std"] = m["inception_score_std"]
    if fid:
        out["fid"] = m["frechet_inception_distance"]
    return out


def _reference(dataset: str, root=None) -> torch.Tensor:
    from ncsn_edu.images.batches import load_images

    return load_images(dataset, train=True, root=root)[0]


def build_parser() -> argparse.ArgumentParser:
    """The command's argument parser. Used by the capstone commands (the capstone page)."""
    p = argparse.ArgumentParser(prog="python -m ncsn_edu.evaluate_images", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch-weights", help="download the Inception weights into the cache (needs network)")

    def common(q):
        q.add_argument("--inception-weights", default=None, help="a local copy of the Inception weights")
        q.add_argument("--data-root", default=None, help="data folder for the reference images")
        q.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
        q.add_argument("--batch-size", type=int, default=200, help="Inception batch size")
        q.add_argument("--no-progress", dest="progress", action="store_false")

    s = sub.add_parser("score", help="Inception score and FID of a folder of sample shards",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    s.add_argument("samples", help="folder of shard_XXXXX.npz written by ncsn_edu.sample_images sample --shards")
    s.add_argument("--dataset", default="cifar10", help="the data set whose training images are the FID reference")
    s.add_argument("--n", type=int, default=50_000, help="number of samples to score")
    s.add_argument("--out", default=None, help="also write the scores to this JSON file")
    common(s)

    q = sub.add_parser("select", help="FID of every snapshot of a run on N samples; the lowest is the paper's choice",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    q.add_argument("run", help="a run folder of ncsn_edu.train_images (with snapshots/)")
    q.add_argument("--n", type=int, default=1000, help="samples per snapshot")
    q.add_argument("--batch", type=int, default=500, help="sampling batch")
    q.add_argument("--steps-each", type=int, default=100, help="Langevin steps per level")
    q.add_argument("--eps", type=float, default=2e-5, help="Langevin step, official code's convention")
    q.add_argument("--amp", default="off", choices=["off", "bf16"], help="sample under bf16 autocast")
    q.add_argument("--seed", type=int, default=0)
    common(q)
    return p


def main(argv=None, model_factory=None) -> int:
    """The command line. Introduced on the capstone page."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "fetch-weights":
            print(f"Inception weights: {inception_weights()}")
            return 0
        from ncsn_edu.images.devices import resolve_device

        device = resolve_device(args.device, 0)
        if args.n <= 1:
            raise ValueError("--n must be at least 2")
        weights = inception_weights(args.inception_weights)  # fail early, before any long work
        if args.command == "score":
            from ncsn_edu.images.samples import read_shards

            samples = read_shards(args.samples, args.n)
            ref = _reference(args.dataset, args.data_root)
            res = fidelity_metrics(samples, ref, weights=weights, device=device, batch_size=args.batch_size,
                                   reference_cache_name=f"ncsn-edu-{args.dataset}-train", progress=args.progress)
            res.update(n=len(samples), samples=str(args.samples), dataset=args.dataset)
            print(f"Inception score {res['inception_score']:.3f} +- {res['inception_score_std']:.3f}, "
                  f"FID {res['fid']:.2f} ({len(samples)} samples, reference: {args.dataset} training set)")
            if args.out:
                Path(args.out).write_text(json.dumps(res, indent=2))
        else:
            from ncsn_edu.images.checkpoints import load_checkpoint
            from ncsn_edu.images.presets import DATASET_DEFAULTS
            from ncsn_edu.images.samples import read_shards, write_shards

            run = Path(args.run)
            snaps = sorted((run / "snapshots").glob("model_*.pt"))
            if not snaps:
                raise FileNotFoundError(f"no snapshots in {run / 'snapshots'}; train with snapshots kept (the default)")
            rows, ref = [], None
            for snap in snaps:
                model, sigmas, cfg = load_checkpoint(snap, device, model_factory=model_factory)
                d = DATASET_DEFAULTS[cfg["dataset"]]
                if ref is None:
                    ref = _reference(cfg["dataset"], args.data_root)
                folder = run / "selection" / snap.stem
                write_shards(model, sigmas, args.n, (d["channels"], d["image_size"], d["image_size"]), folder,
                             args.batch, args.seed, args.progress, eps=args.eps, n_steps_each=args.steps_each,
                             amp=args.amp == "bf16")
                fid = fidelity_metrics(read_shards(folder, args.n), ref, isc=False, weights=weights, device=device,
                                       batch_size=args.batch_size,
                                       reference_cache_name=f"ncsn-edu-{cfg['dataset']}-train")["fid"]
                step = int(snap.stem.split("_")[1])
                rows.append((step, fid))
                print(f"step {step}: FID {fid:.2f} ({args.n} samples)")
            with open(run / "selection.csv", "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["step", f"fid_{args.n}"])
                w.writerows(rows)
            best = min(rows, key=lambda r: r[1])
            print(f"lowest FID: step {best[0]} ({best[1]:.2f}); table in {run / 'selection.csv'}")
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
