"""NCSNv2's noise design from the data: sigma_1, the ratio gamma, the number of levels L and the
last level's step, for MNIST and CIFAR-10 (Song & Ermon 2020, Techniques 1, 2 and 4).

* Technique 1: ``sigma_1`` = the largest Euclidean distance between two training images
  (:func:`ncsn_edu.schedules.largest_pairwise_distance`, exact, over the whole training split,
  pixels in ``[0, 1]`` as everywhere in the book).
* Technique 2: ``gamma`` at which the shell overlap is 0.5 in ``D`` dimensions, and the ``L`` it
  needs from ``sigma_1`` down to ``sigma_L = 0.01`` (:func:`ncsn_edu.schedules.levels_for_ratio`);
  also at 0.567, the overlap at which the official configs' ratios sit.
* Technique 4: for each ``T`` the step ``eps`` that brings Proposition 3's variance ratio closest
  to 1 (:func:`ncsn_edu.schedules.step_from_variance_criterion`), at the ladder's actual ratio.
* What a too-small ``sigma_1`` does (:func:`sigma1_sweep`): annealed Langevin with the *exact* score
  of the perturbed empirical distribution of 1,000 MNIST training digits (a mixture of Gaussians
  centred at the digits, :func:`empirical_score_fn`), from uniform noise, with ``sigma_1`` from 1 (the
  NCSN paper's) up to those digits' largest distance; every chain ends at one of the digits, and
  the classes of the digits reached are compared with the classes of the 1,000.

CIFAR-10 is read as the book reads it: from the offline JPEG copy (a quality-75 re-encoding, not
the original pixels) when that is what the data root holds; the file records the source.

Commands (the distances cost ``N^2 D / 2`` multiply-adds, about 1.5 and 4 CPU-minutes for MNIST
and CIFAR-10; the sweep's four chains some 20 CPU-minutes)::

    python -m ncsn_edu.experiments.ncsnv2_design --out data/ncsnv2_design.json
    python -m ncsn_edu.experiments.ncsnv2_design --parts sweep --out data/ncsnv2_sigma1_sweep.json

``--parts`` names what is computed (``design``, ``sweep`` or both); what ``--out`` already holds
of the other part is kept.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from ncsn_edu.schedules import (
    largest_pairwise_distance,
    last_level_variance_ratio,
    levels_for_ratio,
    step_from_variance_criterion,
)
from ncsn_edu.toy.noise_scales import ratio_for_shell_overlap, shell_overlap

#: The book's smallest level (the NCSN paper's and NCSNv2's).
SIGMA_END = 0.01
#: Steps per level for which the step table is made.
T_VALUES = (1, 2, 3, 4, 5, 10, 20, 50, 100)
#: The overlap at which all four regular official configs (CIFAR-10, CelebA, LSUN bedroom, FFHQ) sit.
OFFICIAL_OVERLAP = 0.567
#: configs/cifar10.yml of ermongroup/ncsnv2.
OFFICIAL_CIFAR10 = {"sigma_begin": 50.0, "sigma_end": 0.01, "num_classes": 232, "n_steps_each": 5, "step_lr": 6.2e-6}


def training_pixels(name: str, root=None) -> tuple[torch.Tensor, str]:
    """The training split of ``name`` ("mnist" or "cifar10") as a ``uint8`` tensor ``(N, D)``
    (pixels 0..255, channels last for CIFAR-10: distances do not depend on the order of the
    coordinates), with the data set's ``source`` line."""
    from ncsn_edu.images.data import image_dataset

    ds = image_dataset(name, train=True, root=root)
    data = torch.as_tensor(ds.data) if not isinstance(ds.data, torch.Tensor) else ds.data
    if data.dtype != torch.uint8:
        raise ValueError(f"{name}: expected uint8 pixels, got {data.dtype}")
    return data.reshape(data.shape[0], -1), ds.source


def step_table(gamma: float, sigma_end: float = SIGMA_END, t_values=T_VALUES) -> list[dict]:
    """For every ``T``: the criterion's ``eps`` (the code's ``step_lr``), ``eps / sigma_L^2`` and the
    variance ratio ``s_T^2 / sigma_i^2`` it leaves (Proposition 3)."""
    rows = []
    for T in t_values:
        eps = step_from_variance_criterion(gamma, T, sigma_end)
        rows.append({"T": T, "eps": eps, "eps_over_sigma_end_sq": eps / sigma_end**2,
                     "variance_ratio": last_level_variance_ratio(eps, gamma, T, sigma_end)})
    return rows


def ladder(sigma_1: float, dim: int, overlap: float, sigma_end: float = SIGMA_END) -> dict:
    """Technique 2 for one overlap: the criterion's ``gamma``, the ``L`` it needs, the ratio of that
    ladder (at most ``gamma``) and the overlap it actually has."""
    gamma = ratio_for_shell_overlap(dim, overlap)
    L = levels_for_ratio(sigma_1, sigma_end, gamma)
    ratio = (sigma_1 / sigma_end) ** (1 / (L - 1))
    return {"overlap": overlap, "gamma": gamma, "L": L, "ladder_ratio": ratio,
            "ladder_overlap": shell_overlap(ratio, dim)}


def design(name: str, root=None, block: int = 2048, progress: bool = False) -> dict:
    """Techniques 1, 2 and 4 for the training split of ``name``."""
    x, source = training_pixels(name, root)
    n, dim = x.shape
    t0 = time.perf_counter()
    d, i, j = largest_pairwise_distance(x, block)
    seconds = time.perf_counter() - t0
    sigma_1 = d / 255.0
    if progress:
        print(f"{name}: largest distance {sigma_1:.4f} between images {i} and {j} ({seconds:.0f} s)", file=sys.stderr)
    half = ladder(sigma_1, dim, 0.5)
    return {
        "source": source, "n_images": n, "dim": dim, "sigma_1": sigma_1, "pair": [i, j], "seconds": seconds,
        "sigma_end": SIGMA_END,
        "ladder": half, "ladder_official_overlap": ladder(sigma_1, dim, OFFICIAL_OVERLAP),
        "steps": step_table(half["ladder_ratio"]),
    }


def empirical_score_fn(data: torch.Tensor, sigmas):
    """The exact noise-conditional score ``score_fn(x, labels)`` of the empirical distribution of
    ``data`` (``(N, D)``) perturbed at each level: ``q_sigma = (1/N) sum_k N(x_k, sigma^2 I)``, whose
    score is ``(sum_k w_k(x) x_k - x) / sigma^2`` with ``w = softmax_k(-|x - x_k|^2 / 2 sigma^2)``, the
    posterior weights of the data points. Float64.
    Introduced in chapter 11b (NCSNv2's techniques)."""
    X = torch.as_tensor(data, dtype=torch.float64).flatten(1)
    n2 = (X * X).sum(1)
    sig = torch.as_tensor(sigmas, dtype=torch.float64).flatten()

    def score_fn(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        s = sig[int(labels[0])]
        flat = x.reshape(x.shape[0], -1).double()
        d2 = (flat * flat).sum(1, keepdim=True) + n2[None] - 2 * flat @ X.T
        w = torch.softmax(-d2 / (2 * s * s), dim=1)
        return ((w @ X - flat) / s**2).reshape(x.shape).to(x.dtype)

    return score_fn


def _class_tv(labels: torch.Tensor, reference: torch.Tensor) -> float:
    """Total variation between the class histograms of ``labels`` and ``reference`` (10 classes)."""
    a = torch.bincount(labels, minlength=10).double() / len(labels)
    b = torch.bincount(reference, minlength=10).double() / len(reference)
    return 0.5 * float((a - b).abs().sum())


def sigma1_sweep(sigma_1_values=(1.0, 2.0, 5.0, None), n_data: int = 1000, n_chains: int = 256, n_steps: int = 5,
                 seed: int = 0, root=None, n_reference: int = 2000, progress: bool = False) -> dict:
    """Technique 1 on a closed-form score: ``n_data`` MNIST training digits (drawn with ``seed``),
    annealed Langevin with :func:`empirical_score_fn` from ``n_chains`` uniform starts (official step
    convention), ``T = n_steps``, ``sigma_L = 0.01``, ``L`` from the shell criterion at 0.5 and ``eps``
    from Technique 4, for each ``sigma_1`` (``None``: the digits' largest distance). The same starts
    and noise (seed ``seed + 1``) for every ``sigma_1``.

    Each chain's end is assigned to its nearest digit. Returned per ``sigma_1``: the levels, the
    step, the class histogram of the digits reached, its total variation from the 1,000 digits'
    histogram, the number of distinct digits reached, the median distance to the nearest digit,
    and the seconds. ``reference``: the same two numbers for ``n_reference`` sets of ``n_chains``
    exact draws from the 1,000 digits (what a perfect sampler gives: mean and standard deviation).
    Belongs to chapter 11b (NCSNv2's techniques)."""
    from ncsn_edu.images.data import image_dataset
    from ncsn_edu.sampling import annealed_langevin_dynamics
    from ncsn_edu.schedules import geometric_sigmas

    ds = image_dataset("mnist", train=True, root=root)
    if n_data > len(ds.data):
        raise ValueError(f"n_data = {n_data} but the training split holds {len(ds.data)} digits")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(ds.data), generator=g)[:n_data]
    X = torch.as_tensor(ds.data)[idx].reshape(n_data, -1).double() / 255
    y = torch.as_tensor(ds.targets)[idx]
    dim = X.shape[1]
    largest = largest_pairwise_distance(X)[0]
    gamma = ratio_for_shell_overlap(dim, 0.5)
    runs = []
    for s1 in sigma_1_values:
        s1 = largest if s1 is None else float(s1)
        L = levels_for_ratio(s1, SIGMA_END, gamma)
        sigmas = geometric_sigmas(s1, SIGMA_END, L)
        ratio = (s1 / SIGMA_END) ** (1 / (L - 1))
        eps = step_from_variance_criterion(ratio, n_steps, SIGMA_END)
        gen = torch.Generator().manual_seed(seed + 1)
        x0 = torch.rand(n_chains, dim, generator=gen, dtype=torch.float64)
        t0 = time.perf_counter()
        x = annealed_langevin_dynamics(empirical_score_fn(X, sigmas), x0, sigmas, eps, n_steps, gen,
                                       convention="code")
        seconds = time.perf_counter() - t0
        d = torch.cdist(x, X)
        near = d.argmin(1)
        hist = torch.bincount(y[near], minlength=10)
        runs.append({"sigma_1": s1, "L": L, "ratio": ratio, "eps": eps, "class_counts": hist.tolist(),
                     "class_tv": _class_tv(y[near], y), "distinct": len(set(near.tolist())),
                     "median_nearest_distance": float(d.min(1).values.median()), "seconds": seconds})
        if progress:
            print(f"sigma_1 = {s1:.2f}: L = {L}, class TV {runs[-1]['class_tv']:.3f}, {runs[-1]['distinct']} distinct "
                  f"({seconds:.0f} s)", file=sys.stderr)
    gref = torch.Generator().manual_seed(seed + 2)
    tvs, distinct = [], []
    for _ in range(n_reference):
        pick = torch.randint(n_data, (n_chains,), generator=gref)
        tvs.append(_class_tv(y[pick], y))
        distinct.append(len(set(pick.tolist())))
    tvs, distinct = torch.tensor(tvs, dtype=torch.float64), torch.tensor(distinct, dtype=torch.float64)
    return {"n_data": n_data, "n_chains": n_chains, "n_steps": n_steps, "seed": seed, "dim": dim,
            "largest_distance": largest, "data_class_counts": torch.bincount(y, minlength=10).tolist(),
            "runs": runs,
            "reference": {"n_sets": n_reference, "class_tv_mean": float(tvs.mean()), "class_tv_std": float(tvs.std()),
                          "class_tv_q99": float(tvs.quantile(0.99)),
                          "distinct_mean": float(distinct.mean()), "distinct_std": float(distinct.std())}}


def official_cifar10() -> dict:
    """The official CIFAR-10 config's ladder through the same formulas: its ratio, overlap and the
    criterion's step for its ``T``."""
    c = OFFICIAL_CIFAR10
    ratio = (c["sigma_begin"] / c["sigma_end"]) ** (1 / (c["num_classes"] - 1))
    return {**c, "ratio": ratio, "overlap": shell_overlap(ratio, 3072),
            "criterion_eps": step_from_variance_criterion(ratio, c["n_steps_each"], c["sigma_end"]),
            "variance_ratio_at_step_lr": last_level_variance_ratio(c["step_lr"], ratio, c["n_steps_each"],
                                                                   c["sigma_end"]),
            "ladder_at_one_half": ladder(c["sigma_begin"], 3072, 0.5, c["sigma_end"])}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m ncsn_edu.experiments.ncsnv2_design",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default="mnist,cifar10", help="comma-separated: mnist, cifar10")
    p.add_argument("--data-root", default=None, help="data root (default: ncsn_edu.resources.data_root())")
    p.add_argument("--block", type=int, default=2048, help="images per block of the distance computation")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--parts", default="design",
                   help="design (sigma_1, gamma, L, eps of the data sets) and/or sweep (sigma1_sweep)")
    p.add_argument("--sweep-data", type=int, default=1000, help="training digits of the sweep's mixture")
    p.add_argument("--sweep-chains", type=int, default=256, help="chains per sigma_1 in the sweep")
    p.add_argument("--out", default="data/ncsnv2_design.json")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    parts = a.parts.split(",")
    out = Path(a.out)
    result = {}
    stamp = {
        "command": "python -m ncsn_edu.experiments.ncsnv2_design " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpu": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__},
    }
    if "design" in parts:  # at the top of the file; the sweep has its own stamp
        result.update({**stamp, "datasets": {name: design(name, a.data_root, a.block, progress=True)
                                             for name in a.datasets.split(",")},
                       "official_cifar10": official_cifar10()})
    if "sweep" in parts:
        result["sweep"] = {**stamp, **sigma1_sweep(n_data=a.sweep_data, n_chains=a.sweep_chains, root=a.data_root,
                                                  progress=True)}
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():  # keep the part not recomputed (read now, not at the start: the parts may run apart)
        kept = json.loads(out.read_text())
        if "design" not in parts:
            kept.pop("sweep", None)
            result = {**kept, **result}
        else:
            result = {**result, **({"sweep": kept["sweep"]} if "sweep" in kept and "sweep" not in parts else {})}
    out.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
