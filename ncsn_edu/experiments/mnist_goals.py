"""How recognisable a set of generated MNIST digits is, measured as issue 27 asks: NCSN v1
against NCSN v2, each beside real test digits.

    python -m ncsn_edu.experiments.mnist_goals --set v1=data/mnist_ncsn_samples \\
        --set v2=data/mnist_ncsnv2_samples --out data/mnist_goals.json

For each set of samples (a folder of ``shard_XXXXX.npz`` as ``python -m ncsn_edu.sample_images
sample --shards`` writes them) and for the same number of real test digits:

* the confident share: the fraction the book's classifier reads with confidence at least 0.9
  (and at least 0.99), with its bootstrap spread over the images (the spread of the share over
  generated sets of that size from the same sampler), and its ratio to the real digits' share;
* the share of each class among the classifier's readings, with the smallest and largest;
* the share of images whose strokes enclose a closed loop (:func:`has_closed_loop`), beside the
  real digits' share.

The real digits are the first ``n`` of a fixed random permutation of the 10,000 test digits
(``--seed``), so two sets of the same size are compared with the same real digits.
Introduced in chapter 11b (NCSNv2's techniques).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from ncsn_edu.images.data import image_dataset
from ncsn_edu.images.metrics import has_closed_loop
from ncsn_edu.images.mnist_classifier import load_classifier
from ncsn_edu.images.quality import bootstrap, confident_share, readings
from ncsn_edu.images.samples import read_shards


def real_test_digits(n: int, seed: int = 0, root=None) -> torch.Tensor:
    """``n`` MNIST test digits in ``[0, 1]``, ``(n, 1, 28, 28)``: the first ``n`` of a permutation
    of the test set drawn with ``seed``."""
    ds = image_dataset("mnist", train=False, root=root, download=False)
    x = ds.data if hasattr(ds, "data") else None
    if x is None:
        raise ValueError("the MNIST test set has no .data tensor")
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
    return x[idx].float().div(255).unsqueeze(1)


def summary(images: torch.Tensor, classifier, n_boot: int = 400, seed: int = 0) -> dict:
    """The measures of the module docstring for images ``(N, 1, 28, 28)`` in ``[0, 1]``."""
    if images.dim() != 4 or images.shape[1:] != (1, 28, 28):
        raise ValueError(f"expected MNIST images of shape (N, 1, 28, 28), got {tuple(images.shape)}")
    if images.min() < 0 or images.max() > 1:
        raise ValueError("expected pixels in [0, 1]")
    conf, pred = readings(classifier, images)
    loops = has_closed_loop(images)
    g = torch.Generator().manual_seed(seed)
    out = {"n": len(images)}
    for t in (0.9, 0.99):
        spread = bootstrap(lambda c, t=t: confident_share(c, t), conf, n_boot=n_boot, generator=g)
        out[f"confident_{t}"] = confident_share(conf, t)
        out[f"confident_{t}_sd"] = float(spread.std(ddof=1))
    shares = torch.bincount(pred, minlength=10)[:10].double() / len(pred)
    out["class_shares"] = [float(s) for s in shares]
    out["class_min"], out["class_max"] = float(shares.min()), float(shares.max())
    loop_sd = bootstrap(lambda v: float(v.double().mean()), loops, n_boot=n_boot, generator=g)
    out["loops"], out["loops_sd"] = float(loops.double().mean()), float(loop_sd.std(ddof=1))
    return out


def goals(samples: dict, classifier, real: torch.Tensor | None = None, seed: int = 0, root=None,
          n_boot: int = 400) -> dict:
    """:func:`summary` of each named set in ``samples`` and of real test digits of the same
    size, with each set's confident share (0.9) as a fraction of the real digits' and its loop
    share minus theirs, and the issue's four goals checked where they apply."""
    out = {}
    for name, images in samples.items():
        n = len(images)
        ref = real[:n] if real is not None else real_test_digits(n, seed, root)
        s, r = summary(images, classifier, n_boot, seed), summary(ref, classifier, n_boot, seed)
        s["real"] = r
        s["confident_0.9_ratio"] = s["confident_0.9"] / r["confident_0.9"]
        s["loops_minus_real"] = s["loops"] - r["loops"]
        s["goals"] = {
            "confident_0.9 at least 85% of real": s["confident_0.9_ratio"] >= 0.85,
            "every class 5-15%": s["class_min"] >= 0.05 and s["class_max"] <= 0.15,
            "loops within 10 points of real": abs(s["loops_minus_real"]) <= 0.10,
        }
        out[name] = s
    return out


def main(argv=None) -> dict:
    """The command line of the module docstring."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                prog="python -m ncsn_edu.experiments.mnist_goals")
    p.add_argument("--set", action="append", required=True, metavar="NAME=FOLDER",
                   help="a name and a folder of sample shards (repeat for each set)")
    p.add_argument("--n", type=int, default=None, help="use the first n samples of each set")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--classifier", default=None, help="default: data/mnist_classifier.pt")
    p.add_argument("--out", required=True, help="output .json file")
    args = p.parse_args(argv)
    sets = {}
    for item in args.set:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            p.error(f"--set takes NAME=FOLDER, got {item!r}")
        sets[name] = read_shards(folder, args.n).float().div(255)
    classifier, _ = load_classifier(args.classifier)
    t0 = time.time()
    result = goals(sets, classifier, seed=args.seed)
    words = argv if argv is not None else sys.argv[1:]
    meta = {"command": "python -m ncsn_edu.experiments.mnist_goals " + " ".join(words),
            "sets": dict(s.split("=", 1) for s in args.set), "seed": args.seed,
            "seconds": round(time.time() - t0, 1), "machine": platform.processor() or platform.machine(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    Path(args.out).write_text(json.dumps({"meta": meta, "results": result}, indent=1) + "\n")
    for name, s in result.items():
        r = s["real"]
        print(f"{name}: n={s['n']} confident>=0.9 {s['confident_0.9']:.3f}±{s['confident_0.9_sd']:.3f} "
              f"(real {r['confident_0.9']:.3f}; ratio {s['confident_0.9_ratio']:.2f}); classes "
              f"{s['class_min']:.3f}-{s['class_max']:.3f}; loops {s['loops']:.3f} (real {r['loops']:.3f})")
    return result


if __name__ == "__main__":
    main()
