"""How far apart MNIST's training digits are, against the top noise level sigma_1 = 1 (chapter 4).

* :func:`nearest_other`: for each of the 60,000 training digits, the distance to its nearest
  other training digit (pixels in ``[0, 1]``, ``D = 784``), exact: candidates from float32
  blocks, their distances recomputed in float64.
* :func:`nearer_other_rate`: for chosen training digits ``a``, the share of noisy copies
  ``a + sigma z`` that lie strictly nearer to some other training digit than to ``a``
  (a Monte Carlo estimate over ``n_draws`` noise draws per digit, against all 60,000).

Both compare every digit with every other (``N^2 D`` multiply-adds each: minutes on one core),
too slow for the book's build, so chapter 4 loads the committed result. Command::

    python -m ncsn_edu.experiments.mnist_neighbours --out data/mnist_neighbours.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

import torch

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _sq_norms(x: torch.Tensor) -> torch.Tensor:
    return (x.double() ** 2).sum(1)


def nearest_other(x: torch.Tensor, block: int = 2048, k: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """For each row of ``x`` (``(N, D)``), the Euclidean distance to the nearest *other* row and
    its index. Squared distances ``|a|^2 + |b|^2 - 2 a.b`` in float32 pick ``k`` candidates per
    row; their distances are recomputed exactly in float64 (float32's error on a squared
    distance of order 20 is of order 1e-5 relative, far below the gaps between the best
    ``k`` candidates)."""
    x32 = x.float()
    x64 = x.double()
    n = len(x)
    k = min(k, n - 1)
    sq = _sq_norms(x).float()
    dist = torch.empty(n, dtype=torch.float64)
    index = torch.empty(n, dtype=torch.long)
    for start in range(0, n, block):
        rows = slice(start, min(start + block, n))
        d2 = sq[rows, None] + sq[None, :] - 2 * x32[rows] @ x32.T
        d2[torch.arange(d2.shape[0]), torch.arange(start, rows.stop)] = float("inf")  # not itself
        cand = d2.topk(k, dim=1, largest=False).indices                           # (b, k)
        exact = (x64[rows, None, :] - x64[cand]).pow(2).sum(-1)                  # (b, k), float64
        best = exact.argmin(1)
        dist[rows] = exact.gather(1, best[:, None]).squeeze(1).sqrt()
        index[rows] = cand.gather(1, best[:, None]).squeeze(1)
    return dist, index


def nearer_other_rate(x: torch.Tensor, picks: torch.Tensor, n_draws: int, sigma: float,
                      generator: torch.Generator, k: int = 4) -> torch.Tensor:
    """For each training row ``a = x[i]``, ``i`` in ``picks``: the share of ``n_draws`` noisy copies
    ``a + sigma z`` that lie strictly nearer to some other row of ``x`` than to ``a`` (a tie, as
    with an exact duplicate of ``a``, is not nearer). The nearest other rows come from float32
    squared distances, with the ``k`` best of each copy recomputed in float64."""
    x32 = x.float()
    x64 = x.double()
    sq = _sq_norms(x).float()
    rates = torch.empty(len(picks), dtype=torch.float64)
    for j, i in enumerate(picks.tolist()):
        z = torch.randn(n_draws, x.shape[1], generator=generator, dtype=torch.float64)
        noisy = x64[i] + sigma * z                                              # (n_draws, D)
        d2 = _sq_norms(noisy).float()[:, None] + sq[None, :] - 2 * noisy.float() @ x32.T
        d2[:, i] = float("inf")                                                  # others only
        cand = d2.topk(k, dim=1, largest=False).indices
        other = (noisy[:, None, :] - x64[cand]).pow(2).sum(-1).min(1).values     # exact, float64
        own = (noisy - x64[i]).pow(2).sum(1)  # as the others' (an exact duplicate of a ties, and a tie is not nearer)
        rates[j] = (other < own).double().mean()
    return rates


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("data/mnist_neighbours.json"))
    p.add_argument("--data-root", default=None, help="folder holding MNIST/ (default: the data root)")
    p.add_argument("--n-images", type=int, default=60, help="training digits for the Monte Carlo estimate")
    p.add_argument("--n-draws", type=int, default=1000, help="noise draws per digit")
    p.add_argument("--sigma", type=float, default=1.0, help="noise level (the paper's sigma_1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="use only the first N training digits (tests)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    from ncsn_edu.images.data import image_dataset

    torch.set_num_threads(args.threads)
    t0 = time.time()
    ds = image_dataset("mnist", train=True, root=args.data_root)
    x = torch.as_tensor(ds.data).reshape(len(ds.data), -1)[: args.limit].double() / 255
    dist, index = nearest_other(x)
    t_nn = time.time() - t0
    gen = torch.Generator().manual_seed(args.seed)
    picks = torch.randperm(len(x), generator=gen)[: args.n_images]
    rates = nearer_other_rate(x, picks, args.n_draws, args.sigma, gen)
    result = {
        "what": "distances between MNIST training digits (pixels in [0, 1], D = 784) against sigma_1",
        "source": ds.source,
        "n_train": len(x),
        "nearest_other": {
            "median": dist.median().item(), "mean": dist.mean().item(), "min": dist.min().item(),
            "max": dist.max().item(), "quantiles": {str(q): dist.quantile(q).item() for q in QUANTILES},
            "exact_duplicates": int((dist == 0).sum()),
        },
        "nearer_other": {
            "sigma": args.sigma, "n_images": len(picks), "n_draws": args.n_draws, "seed": args.seed,
            "picks": picks.tolist(), "rate_per_image": rates.tolist(),
            "mean": rates.mean().item(),
            # s.e. of the mean over images (it includes the noise draws' own spread)
            "standard_error": (rates.std() / len(rates) ** 0.5).item(),
            "images_never_nearer_other": int((rates == 0).sum()),
            "nearest_distance_of_picks": dist[picks].tolist(),
        },
        "command": "python -m ncsn_edu.experiments.mnist_neighbours " + " ".join(argv if argv is not None
                                                                                   else sys.argv[1:]),
        "seconds": {"nearest": round(t_nn, 1), "total": round(time.time() - t0, 1)},
        "made": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    nn = result["nearest_other"]
    print(f"nearest other digit over {len(x)}: median {nn['median']:.3f}; a sigma = {args.sigma} copy is nearer "
          f"another digit in {rates.mean():.3f} +- {result['nearer_other']['standard_error']:.3f} of draws "
          f"({time.time() - t0:.0f} s) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
