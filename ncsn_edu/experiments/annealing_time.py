"""How many steps per level annealed Langevin dynamics needs on the paper's toy (chapters 7 and 9).

    python -m ncsn_edu.experiments.annealing_time --out data/annealing_time.json

The paper's Figure 3(c) sampler with exact scores: the mixture 1/5 N((-5,-5), I) + 4/5 N((5,5), I),
ten levels geometric from 20 to 1, eps = 0.1 (the paper's step), chains started uniformly on
[-8, 8]^2, for several numbers T of steps per level (one seed for each T, ``seed + T``). For every T
and every level it records the fraction of chains nearest to (5, 5) at the end of the level, beside
the level's equilibrium (:func:`ncsn_edu.toy.annealing_theory.equilibrium_side_fraction`) and the
binomial standard error ``sqrt(f (1 - f) / n)``. With 40,000 chains that standard error is 0.002,
small enough to see whether the chains keep up with each level's equilibrium.
The scores are those of :func:`ncsn_edu.toy.distributions.annealed_score_fn`, written in closed form for
two components of equal width (:func:`two_mode_score_fn`, ten times faster; the tests check that the
two agree): about 10 ms per step for 40,000 chains on one CPU thread, so the default runs take a few
minutes. The file is rewritten after each run, so an interrupted run keeps what it finished.
Introduced in chapter 7 (slow mixing).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import sys
import time
from pathlib import Path

import torch

from ncsn_edu.sampling import annealed_langevin_dynamics
from ncsn_edu.schedules import geometric_sigmas
from ncsn_edu.toy.annealing_theory import equilibrium_side_fraction
from ncsn_edu.toy.distributions import GaussianMixture, mode_fractions
from ncsn_edu.toy.domain import uniform_starts


def two_mode_score_fn(mixture: GaussianMixture, sigmas, convention: str = "code"):
    """:func:`ncsn_edu.toy.distributions.annealed_score_fn` for a mixture of two components of equal
    standard deviation ``s``, in closed form: at level ``sigma`` both components have variance ``v``
    (``sigma^2`` for ``"code"``, ``s^2 + sigma^2`` for ``"perturbed"``), the posterior of component 1 is
    ``r = sigmoid(x . (mu_1 - mu_0) / v + c)`` with ``c = log(w_1 / w_0) - (|mu_1|^2 - |mu_0|^2) / (2 v)``,
    and the score is ``(mu_0 + r (mu_1 - mu_0) - x) / v``."""
    if mixture.means.shape[0] != 2 or not torch.allclose(mixture.stds[0], mixture.stds[1]):
        raise ValueError("two_mode_score_fn needs two components of equal standard deviation")
    if convention not in ("code", "perturbed"):
        raise ValueError(f"convention must be 'perturbed' or 'code', got {convention!r}")
    mu0, mu1 = mixture.means[0], mixture.means[1]
    d, logw = mu1 - mu0, (mixture.weights[1] / mixture.weights[0]).log()
    s2 = mixture.stds[0].item() ** 2
    variances = [sg**2 + (s2 if convention == "perturbed" else 0.0)
                 for sg in torch.as_tensor(sigmas, dtype=torch.float64).flatten().tolist()]

    def score_fn(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        v = variances[int(labels[0])]
        r = torch.sigmoid(x @ (d / v) + logw - 0.5 * (mu1.dot(mu1) - mu0.dot(mu0)) / v)[:, None]
        return ((mu0 + r * d - x) / v).to(x.dtype)

    return score_fn


def run(n_steps_each, convention: str = "code", n: int = 40_000, seed: int = 0, eps: float = 0.1,
        lim: float = 8.0, done=None) -> dict:
    """One annealed run of ``n`` chains per value of ``n_steps_each`` (an iterable of T) with the exact
    annealed scores of ``convention`` (``"code"`` or ``"perturbed"``); returns, for each T, the fraction
    nearest to (5, 5) at the end of every level, its standard error and the levels' equilibria.
    ``done(result)``, when given, hears the result after each T."""
    mixture = GaussianMixture.paper_toy()
    sigmas = geometric_sigmas(20.0, 1.0, 10)
    eq = equilibrium_side_fraction(mixture, sigmas, convention).tolist()
    rows = []
    result = {"convention": convention, "n": n, "eps": eps, "lim": lim, "sigmas": sigmas.tolist(), "equilibrium": eq,
              "runs": rows}
    for T in n_steps_each:
        gen = torch.Generator().manual_seed(seed + int(T))
        start = uniform_starts(n, lim, generator=gen)
        t0 = time.perf_counter()
        _, states = annealed_langevin_dynamics(two_mode_score_fn(mixture, sigmas, convention), start, sigmas, eps,
                                               int(T), gen, keep_every=int(T))
        frac = [mode_fractions(mixture, s)[1].item() for s in states[1:]]  # the end of each level
        rows.append({"T": int(T), "seed": seed + int(T), "fraction": frac,
                     "se": [math.sqrt(f * (1 - f) / n) for f in frac], "seconds": round(time.perf_counter() - t0, 1)})
        if done:
            done(result)
    return result


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", default="10,30,100,300,1000", help="values of T (steps per level), comma-separated")
    p.add_argument("--perturbed-steps", default="100,1000",
                   help="values of T also run with the perturbed scores N(mu, (1 + sigma^2) I)")
    p.add_argument("--n", type=int, default=40_000, help="chains per run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="data/annealing_time.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    argv = sys.argv[1:] if argv is None else list(argv)
    out = {"command": " ".join(["python -m ncsn_edu.experiments.annealing_time", *argv]),
           "date": datetime.date.today().isoformat(), "machine": platform.platform(), "torch": torch.__version__,
           "threads": args.threads, "seconds": 0.0, "results": []}

    def save(result):
        out["results"] = [r for r in out["results"] if r is not result] + [result]
        out["seconds"] = round(time.perf_counter() - t0, 1)
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")

    results = [run([int(t) for t in args.steps.split(",")], "code", args.n, args.seed, done=save)]
    if args.perturbed_steps:
        results.append(run([int(t) for t in args.perturbed_steps.split(",")], "perturbed", args.n, args.seed,
                           done=save))
    for r in results:
        for row in r["runs"]:
            print(f"{r['convention']:9s} T = {row['T']:4d}: final fraction {row['fraction'][-1]:.4f} "
                  f"± {row['se'][-1]:.4f} ({row['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
