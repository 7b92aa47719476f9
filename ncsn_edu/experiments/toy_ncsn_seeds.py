"""Chapter 9's seed table: toy NCSNs trained with several seeds, each sampled with annealed Langevin.

    python -m ncsn_edu.experiments.toy_ncsn_seeds --out data/toy_ncsn_seeds.json

For each training seed ``s`` (default 0, 1, 2): the chapter's toy NCSN
(:func:`ncsn_edu.toy.training.train_toy_ncsn` with ten levels geometric from 20 to 1, its default
recipe, seed ``s``), then annealed Langevin dynamics (the paper's step, eps = 0.1, T = 100 steps per
level) on 1280 chains started uniformly on [-8, 8]^2 with the generator seeded ``sampling_seed(s)``
(0 for network 0, as the chapter's first run; ``10 + s`` for the others). It records the fraction of
samples nearest to (5, 5) and their mean log-density under the mixture. Training is seeded, so the
chapter's own run of network 0 reproduces its row. About 10 s per seed on one CPU thread.
Introduced in chapter 9 (annealed Langevin dynamics).
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

from ncsn_edu.sampling import annealed_langevin_dynamics
from ncsn_edu.schedules import geometric_sigmas
from ncsn_edu.toy.distributions import GaussianMixture, mode_fractions
from ncsn_edu.toy.domain import uniform_starts
from ncsn_edu.toy.training import train_toy_ncsn


def sampling_seed(train_seed: int) -> int:
    """The sampling seed of network ``train_seed``: 0 for network 0 (the chapter's first run), else 10 + seed."""
    return 0 if train_seed == 0 else 10 + train_seed


def seed_row(train_seed: int, n: int = 1280, lim: float = 8.0, n_steps: int = 1500) -> dict:
    """Train network ``train_seed`` and sample it; returns its row of the table."""
    mixture, sigmas = GaussianMixture.paper_toy(), geometric_sigmas(20.0, 1.0, 10)
    t0 = time.perf_counter()
    model, losses = train_toy_ncsn(sigmas, seed=train_seed, n_steps=n_steps)
    g = torch.Generator().manual_seed(sampling_seed(train_seed))
    x = annealed_langevin_dynamics(model, uniform_starts(n, lim, generator=g), sigmas, 0.1, 100, g)
    return {"train_seed": train_seed, "sampling_seed": sampling_seed(train_seed),
            "fraction": mode_fractions(mixture, x)[1].item(), "mean_log_p": mixture.log_prob(x).mean().item(),
            "final_loss": float(sum(losses[-100:]) / len(losses[-100:])), "seconds": round(time.perf_counter() - t0, 1)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0,1,2", help="training seeds, comma-separated")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="data/toy_ncsn_seeds.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    argv = sys.argv[1:] if argv is None else list(argv)
    rows = [seed_row(int(s)) for s in args.seeds.split(",")]
    out = {"command": " ".join(["python -m ncsn_edu.experiments.toy_ncsn_seeds", *argv]),
           "date": datetime.date.today().isoformat(), "machine": platform.platform(), "torch": torch.__version__,
           "threads": args.threads, "n": 1280, "eps": 0.1, "n_steps_each": 100, "rows": rows}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    for r in rows:
        print(f"network {r['train_seed']}: fraction {r['fraction']:.3f}, mean log p {r['mean_log_p']:.2f}")


if __name__ == "__main__":
    main()
