"""The paper's sampler, recorded: the chains behind Figures 4 and 6 on MNIST.

The paper's image sampler runs ``T = 100`` Langevin steps at each of the ten levels,
1,000 network evaluations per image, which is too slow to run for a page of images while
a chapter executes on a CPU. This module runs it once, outside the book build, and
stores what the chapters show:

* ``fig4``: ``n_chains`` chains of Algorithm 1 from uniform noise (the start, then the
  state at the end of every level, unclamped, as float16), with the official code's step
  ``a_i = eps_code sigma_i^2 / sigma_L^2``, ``eps_code = 2e-5``;
* ``fig6``: Algorithm 2 (inpainting, left half kept) with the same chain on chosen test
  digits, ``completions`` completions each (unclamped, float16).

Commands (the files the MNIST chapters load)::

    python -m ncsn_edu.experiments.paper_chains data/mnist_ncsn_ngf16.pt fig4 --out data/mnist_paper_chain_fig4.pt
    python -m ncsn_edu.experiments.paper_chains data/mnist_ncsn_ngf16.pt fig6 --out data/mnist_paper_chain_fig6.pt

Read it with :func:`load_chains`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from ncsn_edu.images.inpainting import annealed_langevin_inpainting, left_half_mask
from ncsn_edu.sampling import annealed_langevin_dynamics

#: Test digits completed for Figure 6 in chapter 11 (a 0, 1, 2 and 3 of the MNIST test
#: set, fixed before any result was seen).
FIG6_TEST_INDICES = (3, 2, 1, 18)


def stationary_spread_factor(eps_code: float, sigma_last: float) -> float:
    """How much wider than its target the official-convention Langevin chain is at
    equilibrium on a Gaussian level ``N(m, sigma_i^2 I)``.

    The update ``x + a s + sqrt(2a) z`` with ``s = -(x - m)/sigma_i^2`` is an AR(1)
    process with factor ``1 - a/sigma_i^2``; its stationary variance is
    ``sigma_i^2 / (1 - a/(2 sigma_i^2))``. With ``a_i = eps_code sigma_i^2/sigma_L^2`` the
    ratio ``a_i/sigma_i^2 = eps_code/sigma_L^2`` is the same at every level, so the
    standard deviation is inflated by the same factor everywhere: this returns it.
    Introduced in chapter 10 (NCSN on MNIST).
    """
    r = eps_code / sigma_last**2
    if not 0 < r < 2:
        raise ValueError(f"a_i/sigma_i^2 = {r:g}: the chain is unstable unless 0 < a_i/sigma_i^2 < 2")
    return (1 / (1 - r / 2)) ** 0.5


def record_fig4(model, sigmas, n_chains: int = 8, eps_code: float = 2e-5, n_steps_each: int = 100, seed: int = 0,
                progress: bool = False) -> dict:
    """Figure 4: ``n_chains`` chains of Algorithm 1 (official step convention) from uniform
    noise. The start is ``torch.rand`` of a generator seeded ``seed`` (the same start as
    chapter 10's shortened live chain), and the chain continues with that generator.
    Keeps the start and the state at the end of every level, unclamped, as float16.
    Belongs to chapter 10 (NCSN on MNIST)."""
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(n_chains, 1, 28, 28, generator=g)
    t0 = time.perf_counter()
    _, states = annealed_langevin_dynamics(model, x0, sigmas, eps_code, n_steps_each, g, progress=progress,
                                           keep_every=n_steps_each, convention="code")
    return {"states": torch.stack(states).half(), "seconds": time.perf_counter() - t0}


def record_fig6(model, sigmas, test_images: torch.Tensor, completions: int = 2, eps_code: float = 2e-5,
                n_steps_each: int = 100, seed: int = 0, progress: bool = False) -> dict:
    """Figure 6: Algorithm 2 with the same chain, left half of ``test_images`` kept
    (``(N, 1, 28, 28)`` in [0, 1]), ``completions`` completions each, generator seeded
    ``seed``. Keeps the unclamped result as float16.
    Belongs to chapter 11 (MNIST inpainting and sample quality)."""
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    done = annealed_langevin_inpainting(model, test_images, left_half_mask((1, 28, 28)), sigmas, eps_code,
                                        n_steps_each, n_completions=completions, generator=g, progress=progress,
                                        convention="code")
    return {"completions": done.half(), "originals": test_images.clone(), "seconds": time.perf_counter() - t0}


def load_chains(path) -> dict:
    """The dict written by :func:`main` (float16 tensors turned back to float32).
    Introduced in chapter 10 (NCSN on MNIST)."""
    d = torch.load(path, map_location="cpu", weights_only=True)
    for k in ("states", "completions"):
        if k in d:
            d[k] = d[k].float()
    return d


def main(argv=None) -> int:
    """The command line. Introduced in chapter 10 (NCSN on MNIST)."""
    p = argparse.ArgumentParser(prog="python -m ncsn_edu.experiments.paper_chains",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="an MNIST checkpoint of ncsn_edu.train_images")
    p.add_argument("figure", choices=["fig4", "fig6"], help="fig4: sampling chains; fig6: inpainting")
    p.add_argument("--out", required=True)
    p.add_argument("--n-chains", type=int, default=8, help="fig4: number of chains")
    p.add_argument("--completions", type=int, default=2, help="fig6: completions per test digit")
    p.add_argument("--eps-code", type=float, default=2e-5,
                   help="the official code's step (the paper's eps is twice it)")
    p.add_argument("--steps-each", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    from ncsn_edu.images.checkpoints import load_checkpoint

    torch.set_num_threads(args.threads)
    model, sigmas, cfg = load_checkpoint(args.checkpoint)
    if cfg["dataset"] != "mnist":
        print("error: this records MNIST chains", file=sys.stderr)
        return 1
    if args.figure == "fig4":
        out = record_fig4(model, sigmas, args.n_chains, args.eps_code, args.steps_each, args.seed, progress=True)
    else:
        from ncsn_edu.images.data import image_dataset

        test = image_dataset("mnist", train=False)
        digits = torch.stack([test[i][0] for i in FIG6_TEST_INDICES])
        out = record_fig6(model, sigmas, digits, args.completions, args.eps_code, args.steps_each, args.seed,
                          progress=True)
        out["test_indices"] = torch.tensor(FIG6_TEST_INDICES)
    out.update(eps_code=args.eps_code, n_steps_each=args.steps_each, seed=args.seed, sigmas=sigmas.float().cpu(),
               threads=args.threads, checkpoint_step=int(torch.load(args.checkpoint, map_location="cpu",
                                                                    weights_only=True)["step"]),
               command="python -m ncsn_edu.experiments.paper_chains "
                       + " ".join(argv if argv is not None else sys.argv[1:]))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, args.out)
    print(f"wrote {args.out} ({args.figure}): {out['seconds']:.0f} s of sampling on {args.threads} thread(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
