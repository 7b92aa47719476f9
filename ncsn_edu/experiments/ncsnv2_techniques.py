"""NCSNv2's Techniques 3 and 5 measured where the answer is known (Song & Ermon 2020; chapter 11b).

* Technique 3, noise conditioning by division (:func:`conditioning_comparison`): on the paper's
  two-dimensional toy mixture, three networks of (nearly) equal size trained with the same anneal DSM
  objective, ladder, steps, batch, learning rate and seeds: the level-conditioned MLP of the NCSN
  paper (``label``: :class:`~ncsn_edu.toy.nets.ConditionalScoreMLP`, hidden 64, 7,042 parameters),
  NCSNv2's unconditional MLP divided by sigma (``division``: :class:`~ncsn_edu.toy.nets.DividedScoreMLP`,
  hidden 81, 7,049 parameters) and the two together (``label_division``: chapter 8's network,
  7,042 parameters). Each is compared with the exact perturbed score at every level and at the
  geometric midpoints between levels.
* The floor of division (:func:`division_oracle`, :func:`division_floor`, :func:`floor_by_dimension`):
  the best any unconditional ``f(x)`` can do, ``f*(x) = sum_i p(i | x) sigma_i s_i(x)`` in closed form,
  in ``D`` = 2 to 784 dimensions (the toy's two modes in the first two coordinates).
* Technique 5, an exponential moving average of the weights (:func:`ema_comparison`): the exact score
  error of the raw weights and of their EMA (rate 0.999), from the same run, along training at a
  constant learning rate; and the MNIST run's held-out losses of both (:func:`ema_curves`, read from
  the trainer's ``metrics.csv``).
* On MNIST (:func:`mnist_level_losses`): the held-out DSM loss per level of two short equal-budget runs
  of the trainer, CIN++ (the default) against ``--divide-by-sigma``.

Commands (about 4 CPU-minutes for the toy part; the MNIST part needs the two runs of
``data/README.md`` first)::

    python -m ncsn_edu.experiments.ncsnv2_techniques --out data/ncsnv2_toy_techniques.json
    python -m ncsn_edu.experiments.ncsnv2_techniques --parts mnist \\
        --runs cin=RUN_CIN division=RUN_DIVISION --out data/ncsnv2_mnist_conditioning.json
"""

from __future__ import annotations

import argparse
import copy
import csv
import datetime
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch

from ncsn_edu.schedules import geometric_sigmas
from ncsn_edu.toy.distributions import GaussianMixture
from ncsn_edu.toy.nets import ConditionalScoreMLP, DividedScoreMLP
from ncsn_edu.toy.noise_scales import ratio_for_shell_overlap

#: The toy's ladder (chapter 8's, the toy appendix's): ten levels geometric from 20 to 1.
TOY_SIGMAS = (20.0, 1.0, 10)
#: The three networks of the comparison and their hidden widths (7,042, 7,049 and 7,042 parameters).
KINDS = {"label": 64, "division": 81, "label_division": 64}
SEEDS = (0, 1, 2, 3, 4)
EMA_RATE = 0.999


def toy_sigmas() -> torch.Tensor:
    return geometric_sigmas(*TOY_SIGMAS)


def make_net(kind: str, sigmas, seed: int, dim: int = 2) -> torch.nn.Module:
    """One of :data:`KINDS`, its weights drawn from ``seed`` without touching the global random state."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind == "division":
            return DividedScoreMLP(sigmas, dim=dim, hidden=KINDS[kind])
        return ConditionalScoreMLP(sigmas, dim=dim, hidden=KINDS[kind], scale_output=kind == "label_division")


def n_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def embedded_toy(dim: int = 2) -> GaussianMixture:
    """The paper's toy mixture ``1/5 N((-5,-5), I) + 4/5 N((5,5), I)`` with its two modes in the first two
    of ``dim`` coordinates (``dim = 2``: the toy itself), in float64."""
    if dim < 2:
        raise ValueError("dim must be at least 2")
    means = torch.zeros(2, dim, dtype=torch.float64)
    means[0, :2], means[1, :2] = -5.0, 5.0
    return GaussianMixture(means, 1.0, [0.2, 0.8], dtype=torch.float64)


def division_oracle(mixture: GaussianMixture, sigmas):
    """The best unconditional network for division, in closed form: ``f*(x) = sum_i p(i | x) sigma_i s_i(x)``.

    Training ``f(x) / sigma_i`` with the anneal DSM objective (``lambda = sigma^2``, levels drawn
    uniformly) minimises ``mean_i E_{x ~ q_i} |f(x) - sigma_i s_i(x)|^2`` up to a constant, with ``q_i``
    the data perturbed at ``sigma_i`` and ``s_i`` its score; pointwise the minimiser is the posterior
    mean of ``sigma_I s_I(x)`` over the level ``I``, whose posterior is ``p(i | x) = q_i(x) / sum_j q_j(x)``.
    Returns ``f*`` as a function of points ``(N, D)``.
    """
    sig = [float(s) for s in torch.as_tensor(sigmas).flatten().tolist()]
    levels = [mixture.perturbed(s) for s in sig]

    def f(x: torch.Tensor) -> torch.Tensor:
        x = x.to(mixture.means.dtype)
        post = torch.softmax(torch.stack([q.log_prob(x) for q in levels], 1), 1)  # (N, L): p(i | x)
        return sum(post[:, i : i + 1] * s * q.score(x) for i, (s, q) in enumerate(zip(sig, levels)))

    return f


def _relative_error(s: torch.Tensor, t: torch.Tensor) -> float:
    s, t = s.double(), t.double()
    return ((s - t).pow(2).sum() / t.pow(2).sum()).sqrt().item()


def eval_points(mixture: GaussianMixture, sigmas, n: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``n`` points of the mixture perturbed at each sigma and the exact score there (one pair a level),
    the same for every network compared."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for s in torch.as_tensor(sigmas).flatten().tolist():
        q = mixture.perturbed(s)
        x = q.sample(n, generator=g)
        out.append((x, q.score(x)))
    return out


def division_floor(mixture: GaussianMixture, train_sigmas, eval_sigmas=None, n: int = 4000,
                   seed: int = 0) -> list[float]:
    """The relative error of :func:`division_oracle` (trained on ``train_sigmas``) divided by each of
    ``eval_sigmas`` (default: the training levels) against the exact score there, at ``n`` points of
    each perturbed mixture. ``f*`` minimises the training objective, the sum over the levels of
    ``sigma_i^2`` times the squared error, so no network of the form ``f(x) / sigma`` has a smaller
    objective; one level's error alone could be lower at the others' expense. Between levels this is
    what ``f*`` gives."""
    eval_sigmas = train_sigmas if eval_sigmas is None else eval_sigmas
    f = division_oracle(mixture, train_sigmas)
    sig = torch.as_tensor(eval_sigmas).flatten().tolist()
    return [_relative_error(f(x) / s, t) for s, (x, t) in zip(sig, eval_points(mixture, sig, n, seed))]


def midpoints(sigmas) -> torch.Tensor:
    """The geometric midpoints ``sqrt(sigma_i sigma_{i+1})`` between neighbouring levels."""
    s = torch.as_tensor(sigmas, dtype=torch.float64).flatten()
    return (s[:-1] * s[1:]).sqrt()


def net_errors(model, points, levels=None) -> list[float]:
    """Relative errors of ``model(x, labels)`` at each level's ``points`` (:func:`eval_points`)."""
    levels = range(len(points)) if levels is None else levels
    out = []
    with torch.no_grad():
        for i, (x, t) in zip(levels, points):
            out.append(_relative_error(model(x.float(), torch.full((len(x),), i, dtype=torch.long)), t))
    return out


def conditioning_comparison(seeds=SEEDS, n_steps: int = 1500, batch_size: int = 256, lr: float = 3e-3,
                            n_eval: int = 2000, eval_seed: int = 1000, progress: bool = False) -> dict:
    """Technique 3 on the toy: the three :data:`KINDS` trained with the same budget (``train_toy_ncsn``'s
    anneal DSM, fresh batches, one random level a sample, Adam at ``lr`` with a cosine decay) and seeds.

    For every kind and seed: the relative error at each level and at each midpoint between levels
    (``division`` is evaluated at the midpoint's sigma, ``f(x) / sigma``; the level-conditioned kinds have
    no such sigma, and are given the better of their two neighbouring levels' outputs), the training's
    CPU seconds, and the parameter count. Beside them: :func:`division_floor` at the levels and midpoints.
    """
    from ncsn_edu.toy.training import train_toy_ncsn

    sigmas = toy_sigmas()
    mid = midpoints(sigmas)
    mixture = embedded_toy(2)
    mixture32 = GaussianMixture.paper_toy()
    at_levels = eval_points(mixture, sigmas, n_eval, eval_seed)
    at_mid = eval_points(mixture, mid, n_eval, eval_seed + 1)
    runs = {k: [] for k in KINDS}
    for kind in KINDS:
        for seed in seeds:
            model = make_net(kind, sigmas, seed)
            t0 = time.process_time()
            model, losses = train_toy_ncsn(model=model, distribution=mixture32, n_steps=n_steps,
                                           batch_size=batch_size, lr=lr, seed=seed)
            cpu = time.process_time() - t0
            model.eval()
            if kind == "division":
                with torch.no_grad():
                    between = [_relative_error(model.score_at(x.float(), s), t)
                               for s, (x, t) in zip(mid.tolist(), at_mid)]
            else:
                upper = net_errors(model, at_mid, range(len(mid)))
                lower = net_errors(model, at_mid, range(1, len(sigmas)))
                between = [min(a, b) for a, b in zip(upper, lower)]
            runs[kind].append({"seed": seed, "levels": net_errors(model, at_levels), "midpoints": between,
                               "cpu_s": cpu, "final_loss_mean_100": sum(losses[-100:]) / 100})
            if progress:
                print(f"{kind:15s} seed {seed}: {cpu:5.1f} CPU-s, mean error {sum(runs[kind][-1]['levels']) / 10:.3f}",
                      flush=True)
    return {
        "sigmas": sigmas.tolist(), "midpoints": mid.tolist(), "seeds": list(seeds), "n_steps": n_steps,
        "batch_size": batch_size, "lr": lr, "lr_decay": "cosine", "n_eval": n_eval,
        "parameters": {k: n_parameters(make_net(k, sigmas, 0)) for k in KINDS},
        "runs": runs,
        "floor_levels": division_floor(mixture, sigmas, n=n_eval, seed=eval_seed),
        "floor_midpoints": division_floor(mixture, sigmas, mid, n=n_eval, seed=eval_seed + 1),
    }


def floor_by_dimension(dims=(2, 8, 32, 128, 784), n: int = 2000, seed: int = 0) -> list[dict]:
    """:func:`division_floor` for :func:`embedded_toy` in ``D`` dimensions, on the toy's ten-level ladder
    and (for ``D >= 8``, where it exists) on Technique 2's ladder from 20 to 1 (overlap 0.5, ``L`` levels)."""
    rows = []
    for d in dims:
        mixture = embedded_toy(d)
        ten = division_floor(mixture, toy_sigmas(), n=n, seed=seed)
        row = {"dim": d, "ten_levels": ten}
        gamma = ratio_for_shell_overlap(d, 0.5)
        if math.isfinite(gamma):
            n_levels = 1 + math.ceil(math.log(20.0) / math.log(gamma))
            t2 = division_floor(mixture, geometric_sigmas(20.0, 1.0, n_levels), n=n, seed=seed)
            row.update({"gamma": gamma, "technique2_L": n_levels, "technique2": t2})
        rows.append(row)
    return rows


def ema_comparison(seeds=SEEDS, n_steps: int = 8000, batch_size: int = 256, lr: float = 3e-3,
                   rate: float = EMA_RATE, every: int = 250, kind: str = "label_division",
                   n_eval: int = 2000, eval_seed: int = 1000, progress: bool = False) -> dict:
    """Technique 5 on the toy: one run per seed of ``kind`` at a constant learning rate, keeping the EMA
    of its weights (:class:`ncsn_edu.images.train_step.EMA`, updated after every Adam step); every
    ``every`` steps the exact per-level relative errors of the raw weights and of the EMA, on the same
    points."""
    from ncsn_edu.images.train_step import EMA
    from ncsn_edu.toy.losses import anneal_dsm_loss
    from ncsn_edu.toy.training import fit

    sigmas = toy_sigmas()
    mixture = GaussianMixture.paper_toy()
    points = eval_points(embedded_toy(2), sigmas, n_eval, eval_seed)
    runs = []
    for seed in seeds:
        model = make_net(kind, sigmas, seed)
        ema = EMA(model, rate)
        rows = []

        def callback(step, net):
            if step > 0:
                ema.update()
            if step % every == 0:
                net.eval()
                rows.append({"step": step, "raw": net_errors(net, points),
                             "ema": net_errors(ema.averaged_model().eval(), points)})
                net.train()

        gen = torch.Generator().manual_seed(seed + 1)
        t0 = time.process_time()
        fit(model, lambda m, x: anneal_dsm_loss(m, x, m.sigmas, generator=gen),
            lambda n: mixture.sample(n, generator=gen), n_steps=n_steps, batch_size=batch_size, lr=lr,
            callback=callback, callback_every=1)
        runs.append({"seed": seed, "rows": rows, "cpu_s": time.process_time() - t0})
        if progress:
            print(f"EMA seed {seed}: {runs[-1]['cpu_s']:.1f} CPU-s; last raw {sum(rows[-1]['raw']) / 10:.4f}, "
                  f"EMA {sum(rows[-1]['ema']) / 10:.4f}", flush=True)
    return {"kind": kind, "rate": rate, "sigmas": sigmas.tolist(), "seeds": list(seeds), "n_steps": n_steps,
            "batch_size": batch_size, "lr": lr, "lr_decay": None, "every": every, "n_eval": n_eval, "runs": runs}


def ema_curves(path) -> dict:
    """The held-out losses of a run that keeps an EMA, from the trainer's ``metrics.csv``: ``{"step",
    "ema", "raw"}``, lists over the steps where both were logged (tags ``test_loss``, the EMA's, and
    ``test_loss_raw``, the raw weights', on the same batches, levels and noise)."""
    ema, raw = {}, {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            if row["tag"] == "test_loss":
                ema[int(row["step"])] = float(row["value"])
            elif row["tag"] == "test_loss_raw":
                raw[int(row["step"])] = float(row["value"])
    steps = sorted(set(ema) & set(raw))
    return {"step": steps, "ema": [ema[s] for s in steps], "raw": [raw[s] for s in steps]}


def raw_step_matching(curves: dict) -> list[int | None]:
    """For each logged step ``k``, the first logged step up to ``k`` at which the raw weights' loss was at
    most the EMA's loss at ``k`` (``None`` if none): how far, in steps, the average trails the weights.
    Later steps are not searched: a raw loss reached only after ``k`` says nothing about a lag at ``k``."""
    out = []
    for k, e in zip(curves["step"], curves["ema"]):
        out.append(next((s for s, r in zip(curves["step"], curves["raw"]) if s <= k and r <= e), None))
    return out


def mnist_level_losses(runs: dict, every: int = 8, n_images: int = 128, seed: int = 0, root=None,
                       weights: str = "raw", time_steps: int = 0) -> dict:
    """Held-out DSM loss (``lambda = sigma^2``) per level of trained MNIST runs (``{name: run folder
    with the trainer's checkpoint.pt, or a checkpoint or snapshot file}``), on the same ``n_images``
    test digits and the same noise for every run, at every ``every``-th level (and the last), with the
    ``weights`` of :func:`~ncsn_edu.images.checkpoints.load_checkpoint` (raw by default).
    Each run also gets ``image_means``, every image's loss averaged over those levels, for paired
    comparisons (:func:`paired_loss_difference`). With ``time_steps`` > 0 each run also gets
    ``cpu_seconds_per_step``: the median CPU seconds of one training step of its network (a batch of
    its run's size, loss, backward, Adam; one thread) over ``time_steps`` steps, timed after its losses
    on a copy of the network (:func:`~ncsn_edu.experiments.timing.seconds_per_step`)."""
    from ncsn_edu.images.batches import read_image_set
    from ncsn_edu.images.checkpoints import load_checkpoint, read_checkpoint
    from ncsn_edu.images.train_step import dsm_per_sample

    test = read_image_set("mnist", train=False, root=root)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(test.images), generator=g)[:n_images]
    x = test.images[idx].float() / 255.0
    out = {"runs": {}, "n_images": n_images, "seed": seed, "weights": weights}
    for name, where in runs.items():
        path = Path(where)
        if path.is_dir():
            path = path / "checkpoint.pt"
        model, sigmas, cfg = load_checkpoint(path, weights=weights)
        state = read_checkpoint(path)
        levels = list(range(0, len(sigmas), every))
        if levels[-1] != len(sigmas) - 1:
            levels.append(len(sigmas) - 1)
        zg = torch.Generator().manual_seed(seed + 1)
        z = torch.randn(x.shape, generator=zg)  # the same noise at every level and for every run
        per_level = []
        with torch.no_grad():
            for i in levels:
                labels = torch.full((n_images,), i, dtype=torch.long)
                per_level.append(dsm_per_sample(model, x, labels, z, sigmas))
        table = torch.stack(per_level)  # (levels, images)
        out["runs"][name] = {"levels": levels, "sigmas": [sigmas[i].item() for i in levels],
                             "loss": table.mean(1).tolist(), "image_means": table.mean(0).tolist(),
                             "step": int(state["step"]), "parameters": n_parameters(model),
                             "ngf": cfg["ngf"], "divide_by_sigma": bool(cfg.get("divide_by_sigma")),
                             "n_sigmas": cfg["n_sigmas"], "batch_size": cfg["batch_size"], "lr": cfg["lr"],
                             "seed": cfg["seed"]}
        if time_steps > 0:
            out["runs"][name]["cpu_seconds_per_step"] = _train_step_cpu_seconds(
                copy.deepcopy(model), sigmas, x, cfg["batch_size"], time_steps, seed)
    return out


def _train_step_cpu_seconds(model, sigmas, images, batch_size: int, repeats: int, seed: int) -> float:
    """Median CPU seconds of one DSM training step (``lambda = sigma^2``, random levels) of ``model``."""
    from ncsn_edu.experiments.timing import seconds_per_step
    from ncsn_edu.images.train_step import dsm_per_sample

    g = torch.Generator().manual_seed(seed + 2)
    idx = torch.randint(len(images), (batch_size,), generator=g)
    batch = images[idx]

    def loss_fn(net, x):
        labels = torch.randint(len(sigmas), (len(x),), generator=g)
        return dsm_per_sample(net, x, labels, torch.randn(x.shape, generator=g), sigmas).mean()

    model.train()
    return seconds_per_step(model, loss_fn, batch, repeats=repeats, warmup=1, num_threads=1, clock="cpu")


def paired_loss_difference(result: dict, a: str, b: str) -> tuple[float, float]:
    """Run ``a``'s held-out loss minus run ``b``'s, averaged over the levels and the images of
    :func:`mnist_level_losses`, with its standard error over the images (the same images and noise
    for both, so the difference is paired: ``sd(d_j) / sqrt(n)``)."""
    d = torch.tensor(result["runs"][a]["image_means"], dtype=torch.float64) - torch.tensor(
        result["runs"][b]["image_means"], dtype=torch.float64)
    return d.mean().item(), (d.std(unbiased=True) / math.sqrt(len(d))).item()


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m ncsn_edu.experiments.ncsnv2_techniques",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", default="toy", help="toy (Techniques 3 and 5 on the toy) or mnist")
    p.add_argument("--runs", nargs="+", metavar="NAME=PATH", default=None,
                   help="for --parts mnist: runs to compare, each a name and a run folder or checkpoint file")
    p.add_argument("--time-steps", type=int, default=0,
                   help="for --parts mnist: also time this many training steps of each run's network (CPU seconds)")
    p.add_argument("--seeds", type=int, default=len(SEEDS), help="seeds 0..N-1 (toy)")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--out", default="data/ncsnv2_toy_techniques.json")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    stamp = {
        "command": "python -m ncsn_edu.experiments.ncsnv2_techniques "
                   + " ".join(sys.argv[1:] if argv is None else argv),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpu": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__},
    }
    if a.parts == "toy":
        seeds = tuple(range(a.seeds))
        result = {**stamp, "conditioning": conditioning_comparison(seeds, progress=True),
                  "floor_by_dimension": floor_by_dimension(), "ema": ema_comparison(seeds, progress=True)}
    elif a.parts == "mnist":
        if not a.runs:
            p.error("--parts mnist needs --runs NAME=PATH ...")
        bad = [r for r in a.runs if "=" not in r]
        if bad:
            p.error(f"--runs takes NAME=PATH, got {bad[0]!r}")
        result = {**stamp, **mnist_level_losses(dict(r.split("=", 1) for r in a.runs),
                                                        time_steps=a.time_steps)}
    else:
        p.error(f"--parts must be toy or mnist, got {a.parts!r}")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {a.out}")
    return result


if __name__ == "__main__":
    main()
