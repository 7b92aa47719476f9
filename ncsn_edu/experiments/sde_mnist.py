"""Chapter 13's MNIST samples: the shipped ngf-16 NCSN sampled with cheap samplers.

The network is level-conditioned on its 10 noise levels (1 to 0.01), so every sampler
works on that ladder: annealed Langevin with 10 steps per level (the paper's step rule)
and predictor-corrector
(reverse diffusion between levels plus Langevin correctors with the ``snr`` rule), at
about 100 and 200 score evaluations, against the paper's 1,000-evaluation chain whose
samples are stored in ``data/mnist_ncsn_samples``. All start from uniform noise, as that
chain does, and are clamped to [0, 1] at the end. Command::

    python -m ncsn_edu.experiments.sde_mnist --n 128 --threads 1 --out data/mnist_pc_samples.npz
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ncsn_edu.images.checkpoints import load_checkpoint
from ncsn_edu.images.samples import to_uint8
from ncsn_edu.resources import resource_path
from ncsn_edu.score_sde import CountingScore, ladder_score_fn, pc_sampler

#: name -> pc_sampler keyword arguments. ``eps=4e-5`` is the paper's eps for the official
#: code's 2e-5 (chapter 9), as in the stored 1,000-evaluation chain.
SAMPLERS = {
    "annealed Langevin, T = 10 per level": dict(predictor=False, n_corrector=10, eps=4e-5),
    "PC: predictor + 9 correctors (snr 0.16)": dict(predictor=True, n_corrector=9, snr=0.16),
    "PC: predictor + 19 correctors (snr 0.16)": dict(predictor=True, n_corrector=19, snr=0.16),
    "PC: predictor + 9 correctors (snr 0.316)": dict(predictor=True, n_corrector=9, snr=0.316),
}


def run(n: int = 128, batch: int = 64, seed: int = 0, checkpoint=None, log=print, names=None) -> dict:
    """Sample ``n`` images with every sampler of :data:`SAMPLERS` (or those in ``names``);
    returns ``{name: {"images": uint8 (n, 1, 28, 28), "evaluations": int, "seconds": float}}``.
    A sampler's seeds depend on its place in :data:`SAMPLERS` only, so running a subset gives
    the same images as running all of them.
    Introduced in chapter 13 (score SDEs)."""
    model, sigmas, cfg = load_checkpoint(checkpoint or resource_path("mnist_ncsn_ngf16.pt"))
    out = {}
    for k, (name, kw) in enumerate(SAMPLERS.items()):
        if names is not None and name not in names:
            continue
        t0, images, calls = time.time(), [], 0
        for b in range(0, n, batch):
            g = torch.Generator().manual_seed(seed * 1000 + 100 * k + b // batch)
            x0 = torch.rand((min(batch, n - b), 1, 28, 28), generator=g)
            score = CountingScore(ladder_score_fn(model, sigmas))
            images.append(to_uint8(pc_sampler(score, x0, sigmas, generator=g, **kw)))
            calls = score.calls
        out[name] = {"images": torch.cat(images).numpy(), "evaluations": calls, "seconds": round(time.time() - t0, 1)}
        log(f"{name}: {calls} score evaluations per sample, {out[name]['seconds']} s for {n} samples")
    return out


def _raw(path) -> dict:
    """The stored uint8 images and meta of a file written by :func:`save`, as :func:`run` returns them."""
    with np.load(path) as f:
        meta = json.loads(str(f["meta"]))
        return meta, {k: {"images": f[f"images_{i}"], "evaluations": meta["evaluations"][i],
                          "seconds": meta["seconds"][i]} for i, k in enumerate(meta["samplers"])}


def save(result: dict, path, meta: dict) -> None:
    """Write :func:`run`'s result to one compressed ``.npz``: ``images_<k>`` per sampler,
    and ``meta`` (JSON: sampler names, settings, evaluations, seconds, machine, command)."""
    names = list(result)
    meta = dict(meta, samplers=names, settings={k: SAMPLERS[k] for k in names},
                evaluations=[result[k]["evaluations"] for k in names], seconds=[result[k]["seconds"] for k in names])
    arrays = {f"images_{i}": result[k]["images"] for i, k in enumerate(names)}
    np.savez_compressed(path, meta=np.array(json.dumps(meta)), **arrays)


def load(path) -> dict:
    """Read a file written by :func:`save`: ``{"meta": dict, "samples": {name: float
    images in [0, 1]}}``.
    Introduced in chapter 13 (score SDEs)."""
    with np.load(path) as f:
        meta = json.loads(str(f["meta"]))
        samples = {k: torch.from_numpy(f[f"images_{i}"]).float() / 255 for i, k in enumerate(meta["samplers"])}
    return {"meta": meta, "samples": samples}


def main(argv=None) -> dict:
    """The command line. Introduced in chapter 13 (score SDEs)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], prog="python -m ncsn_edu.experiments.sde_mnist")
    p.add_argument("--n", type=int, default=128)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--out", required=True, help="output .npz file")
    p.add_argument("--add-to", default=None,
                   help="an earlier result file: keep its samplers' images, run only the missing samplers")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.time()
    earlier, earlier_meta = {}, None
    if args.add_to:
        earlier_meta, earlier = _raw(args.add_to)
        if earlier_meta["n"] != args.n or earlier_meta["seed"] != args.seed:
            raise SystemExit("--add-to needs the earlier run's --n and --seed")
    result = run(args.n, args.batch, args.seed, names=[k for k in SAMPLERS if k not in earlier])
    result = {k: (earlier.get(k) or result[k]) for k in SAMPLERS if k in earlier or k in result}
    meta = {"earlier_run": earlier_meta and {k: earlier_meta[k] for k in ("started", "command", "wall_seconds")},
            "n": args.n, "seed": args.seed, "threads": torch.get_num_threads(),
            "wall_seconds": round(time.time() - t0, 1), "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(),
            "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t0)),
            "command": "python -m ncsn_edu.experiments.sde_mnist "
                       + " ".join(sys.argv[1:] if argv is None else list(argv))}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save(result, out, meta)
    print(f"wrote {out} ({out.stat().st_size / 1e3:.0f} kB) in {meta['wall_seconds']} s")
    return result


if __name__ == "__main__":
    main()
