"""The paper's sampler, recorded: the chains behind Figures 4 and 6 on MNIST.

The paper's image sampler runs ``T = 100`` Langevin steps at each of the ten levels,
1,000 network evaluations per image, which is too slow to run for a page of images while
a chapter executes on a CPU. This module runs it once, outside the book build, and
stores what the chapters show:

* ``fig4``: ``n_chains`` chains of Algorithm 1 from uniform noise (the start, then the
  state at the end of every level, unclamped, as float16), with the official code's step
  ``a_i = eps_code sigma_i^2 / sigma_L^2``, ``eps_code = 2e-5``;
* ``fig6``: Algorithm 2 (inpainting, left half kept) with the same chain on chosen test
  digits, ``completions`` completions each (unclamped, float16);
* ``fig78``: the appendix's Figures 7-8: 1,000 plain Langevin steps at sigma = 0.01 from
  uniform noise, with the single-level baseline (``--baseline``) and with the NCSN's own
  last level, the same start and noise for both (float32, every 250 steps).

Commands (the files the MNIST chapters load)::

    python -m ncsn_edu.experiments.paper_chains data/mnist_ncsn_ngf16.pt fig4 --out data/mnist_paper_chain_fig4.pt
    python -m ncsn_edu.experiments.paper_chains data/mnist_ncsn_ngf16.pt fig6 --out data/mnist_paper_chain_fig6.pt
    python -m ncsn_edu.experiments.paper_chains data/mnist_ncsn_ngf16.pt fig78 \
        --baseline data/mnist_baseline_sigma001.pt --out data/mnist_single_level_chains.pt
    python -m ncsn_edu.experiments.paper_chains data/mnist_ncsnv2_ngf16.pt fig4 --own-sampler \
        --levels-per-state 8 --out data/mnist_ncsnv2_chain_fig4.pt

    python -m ncsn_edu.experiments.paper_chains data/mnist_ncsnv2_ngf16.pt fig6 --own-sampler \
        --out data/mnist_ncsnv2_chain_fig6.pt

The last two are NCSNv2's chains (its run's sampler: 96 levels, 10 steps each, the EMA weights,
and for Figure 4 the final denoising step).

Read it with :func:`load_chains`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from ncsn_edu.images.inpainting import annealed_langevin_inpainting, left_half_mask
from ncsn_edu.sampling import annealed_langevin_dynamics, langevin_dynamics

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
                progress: bool = False, final_denoise: bool = False, levels_per_state: int = 1) -> dict:
    """Figure 4: ``n_chains`` chains of Algorithm 1 (official step convention) from uniform
    noise. The start is ``torch.rand`` of a generator seeded ``seed`` (the same start as
    chapter 10's shortened live chain), and the chain continues with that generator.
    Keeps the start and the state at the end of every ``levels_per_state``-th level,
    unclamped, as float16; with ``final_denoise`` (NCSNv2's sampler) also the denoised
    output as ``"denoised"``.
    Belongs to chapter 10 (NCSN on MNIST)."""
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(n_chains, 1, 28, 28, generator=g)
    t0 = time.perf_counter()
    x, states = annealed_langevin_dynamics(model, x0, sigmas, eps_code, n_steps_each, g, progress=progress,
                                           keep_every=n_steps_each * levels_per_state, convention="code",
                                           final_denoise=final_denoise)
    out = {"states": torch.stack(states).half(), "seconds": time.perf_counter() - t0}
    if final_denoise:
        out["denoised"] = x.half()
    return out


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


def record_fig78(model, last_level: int, base_model, n_chains: int = 2, n_steps: int = 1000, step_code: float = 2e-5,
                 seed: int = 1, noise_seed: int = 2, keep_every: int = 250, progress: bool = False) -> dict:
    """The appendix's Figures 7-8: plain Langevin dynamics at sigma = 0.01 from uniform noise
    (``torch.rand`` of a generator seeded ``seed``), ``n_steps`` steps of the code's size
    ``step_code`` (``x + a s + sqrt(2a) z``, the paper's form with step ``2 step_code``), once
    with ``base_model`` (trained at sigma = 0.01 only, label 0) and once with ``model``'s level
    ``last_level`` (an NCSN's sigma = 0.01), both with noise from a generator seeded ``noise_seed``. Keeps the start and
    every ``keep_every``-th state (float32): ``{"start", "states": {name: (K, N, 1, 28, 28)},
    "seconds": {name: s}}``.
    Belongs to chapter 10 (NCSN on MNIST)."""
    start = torch.rand(n_chains, 1, 28, 28, generator=torch.Generator().manual_seed(seed))
    out = {"start": start, "states": {}, "seconds": {}}
    for name, net, level in [("baseline (sigma = 0.01 only)", base_model, 0), ("NCSN, last level only", model,
                                                                              last_level)]:
        lab = torch.full((n_chains,), level, dtype=torch.long)
        t0 = time.perf_counter()
        with torch.no_grad():
            _, states = langevin_dynamics(lambda x, net=net, lab=lab: net(x, lab), start, step_size=2 * step_code,
                                          n_steps=n_steps, generator=torch.Generator().manual_seed(noise_seed),
                                          progress=progress, keep_every=keep_every)
        out["states"][name] = torch.stack(states)
        out["seconds"][name] = time.perf_counter() - t0
    return out


def load_chains(path) -> dict:
    """The dict written by :func:`main` (float16 tensors turned back to float32).
    Introduced in chapter 10 (NCSN on MNIST)."""
    d = torch.load(path, map_location="cpu", weights_only=True)
    for k in ("states", "completions", "denoised"):
        if isinstance(d.get(k), dict):  # fig78: one tensor per network
            d[k] = {name: v.float() for name, v in d[k].items()}
        elif k in d:
            d[k] = d[k].float()
    return d


def main(argv=None) -> int:
    """The command line. Introduced in chapter 10 (NCSN on MNIST)."""
    p = argparse.ArgumentParser(prog="python -m ncsn_edu.experiments.paper_chains",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="an MNIST checkpoint of ncsn_edu.train_images")
    p.add_argument("figure", choices=["fig4", "fig6", "fig78"],
                   help="fig4: sampling chains; fig6: inpainting; fig78: one noise level (needs --baseline)")
    p.add_argument("--baseline", default=None, help="fig78: the checkpoint trained at sigma = 0.01 only")
    p.add_argument("--out", required=True)
    p.add_argument("--n-chains", type=int, default=8, help="fig4: number of chains")
    p.add_argument("--completions", type=int, default=2, help="fig6: completions per test digit")
    p.add_argument("--eps-code", type=float, default=2e-5,
                   help="the official code's step (the paper's eps is twice it)")
    p.add_argument("--steps-each", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--own-sampler", action="store_true",
                   help="fig4, fig6: the checkpoint's own sampler (its step, steps per level and, for fig4, final "
                        "denoising, as NCSNv2's run records them) instead of --eps-code and --steps-each")
    p.add_argument("--levels-per-state", type=int, default=1,
                   help="fig4: keep the state at the end of every k-th level (default 1: every level)")
    args = p.parse_args(argv)
    from ncsn_edu.images.checkpoints import load_checkpoint

    torch.set_num_threads(args.threads)
    model, sigmas, cfg = load_checkpoint(args.checkpoint)
    if cfg["dataset"] != "mnist":
        print("error: this records MNIST chains", file=sys.stderr)
        return 1
    denoise = False
    if args.own_sampler:
        if args.figure == "fig78":
            print("error: --own-sampler is for fig4 and fig6", file=sys.stderr)
            return 1
        args.eps_code = cfg.get("sample_eps", args.eps_code)
        args.steps_each = cfg.get("sample_steps_each", args.steps_each)
        # Algorithm 2 keeps the known pixels at each level's noise and has no final denoising step
        denoise = args.figure == "fig4" and bool(cfg.get("sample_denoise", False))
    if args.figure == "fig4":
        out = record_fig4(model, sigmas, args.n_chains, args.eps_code, args.steps_each, args.seed, progress=True,
                          final_denoise=denoise, levels_per_state=args.levels_per_state)
    elif args.figure == "fig78":
        if args.baseline is None:
            print("error: fig78 needs --baseline (the sigma = 0.01 checkpoint)", file=sys.stderr)
            return 1
        base_model, _, _ = load_checkpoint(args.baseline)
        if abs(sigmas[-1].item() - 0.01) > 1e-6:
            print("error: fig78 runs the NCSN at its last level, which must be sigma = 0.01", file=sys.stderr)
            return 1
        out = record_fig78(model, len(sigmas) - 1, base_model, step_code=args.eps_code, progress=True)
        out["baseline_step"] = int(torch.load(args.baseline, map_location="cpu", weights_only=True)["step"])
    else:
        from ncsn_edu.images.data import image_dataset

        test = image_dataset("mnist", train=False)
        digits = torch.stack([test[i][0] for i in FIG6_TEST_INDICES])
        out = record_fig6(model, sigmas, digits, args.completions, args.eps_code, args.steps_each, args.seed,
                          progress=True)
        out["test_indices"] = torch.tensor(FIG6_TEST_INDICES)
    if args.figure == "fig78":  # its own fixed seeds and length (record_fig78's defaults)
        out.update(n_steps=1000, start_seed=1, noise_seed=2)
    else:
        out.update(n_steps_each=args.steps_each, seed=args.seed, final_denoise=denoise,
                   levels_per_state=args.levels_per_state)
    out.update(eps_code=args.eps_code, sigmas=sigmas.float().cpu(),
               threads=args.threads, checkpoint_step=int(torch.load(args.checkpoint, map_location="cpu",
                                                                    weights_only=True)["step"]),
               command="python -m ncsn_edu.experiments.paper_chains "
                       + " ".join(argv if argv is not None else sys.argv[1:]))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, args.out)
    seconds = sum(out["seconds"].values()) if isinstance(out["seconds"], dict) else out["seconds"]
    print(f"wrote {args.out} ({args.figure}): {seconds:.0f} s of sampling on {args.threads} thread(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
