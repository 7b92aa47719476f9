"""The paper's Figure 2: a score model is accurate only where the data density is high.

The MLP 2-128-128-2 with softplus (:class:`ncsn_edu.toy.nets.ScoreMLP`) is trained with
variance-reduced sliced score matching on fresh samples of the paper's mixture
``1/5 N((-5,-5), I) + 4/5 N((5,5), I)`` (10,000 steps, Adam 1e-3, batches of 128).
:func:`ncsn_edu.toy.metrics.score_error_stats` then compares the learned and the exact score on the paper's
100 x 100 grid over ``[-8, 8]^2``.

Command (writes the trained weights, snapshots during training and the loss curve)::

    python -m ncsn_edu.experiments.low_density --out data/low_density_ssm.pt
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from ncsn_edu.toy.distributions import GaussianMixture
from ncsn_edu.toy.losses import dsm_loss, sliced_score_matching_loss
from ncsn_edu.toy.metrics import score_error_stats
from ncsn_edu.toy.nets import ScoreMLP
from ncsn_edu.toy.training import fit

#: Training steps at which the chapter's slider shows the learned field.
SNAPSHOT_STEPS = (0, 100, 250, 500, 1000, 2000, 3500, 5000, 7500, 10000)


def train_toy_ssm(
    mixture: GaussianMixture | None = None,
    n_steps: int = 10_000,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    snapshot_steps=SNAPSHOT_STEPS,
    progress: bool = True,
) -> dict:
    """Train :class:`ScoreMLP` with variance-reduced sliced score matching on fresh
    samples of ``mixture`` (default: the paper's toy).

    Returns a dict with ``model`` (the trained network), ``losses`` (one per step) and
    ``snapshots`` (``{step: state_dict}`` at the ``snapshot_steps`` that are reached and
    at the last step).
    Introduced in chapter 6 (low-density scores).
    """
    mixture = mixture or GaussianMixture.paper_toy()
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # the network's initialisation; global RNG untouched
        torch.manual_seed(seed)
        model = ScoreMLP(dim=mixture.dim)
    wanted = {int(s) for s in snapshot_steps if 0 <= int(s) <= n_steps} | {n_steps}
    snapshots = {}

    def keep(step, m):
        if step in wanted:
            snapshots[step] = {k: v.detach().clone() for k, v in m.state_dict().items()}

    def loss_fn(m, x):
        return sliced_score_matching_loss(m, x, variance_reduced=True, generator=g)

    losses = fit(model, loss_fn, lambda b: mixture.sample(b, g), n_steps, batch_size, lr,
                 progress=progress, callback=keep, callback_every=1)
    return {"model": model, "losses": losses, "snapshots": snapshots}


def train_toy_dsm(
    mixture: GaussianMixture | None = None,
    sigma: float = 1.0,
    n_steps: int = 2000,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool = False,
):
    """Train :class:`ScoreMLP` with denoising score matching at one noise level ``sigma``
    on fresh samples of ``mixture`` (default: the paper's toy); return ``(model, losses)``.

    The objective ``E 1/2 ||s(x + sigma z) + z / sigma||^2`` equals, up to a constant, the
    Fisher divergence to the *perturbed* density ``q_sigma`` (``mixture.perturbed(sigma)``),
    so the network learns ``grad log q_sigma``, not ``grad log p``. ``seed`` seeds the
    weights (without touching the global random state), the data and the noise.
    Introduced in chapter 6 (low-density scores).
    """
    mixture = mixture or GaussianMixture.paper_toy()
    if sigma <= 0:
        raise ValueError("sigma must be positive")
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ScoreMLP(dim=mixture.dim)
    losses = fit(model, lambda m, x: dsm_loss(m, x, sigma, generator=g), lambda b: mixture.sample(b, g),
                 n_steps, batch_size, lr, progress=progress)
    return model.eval(), losses



def load_result(path) -> dict:
    """Read a file written by this module's command: returns the dict saved by
    :func:`main` with ``model`` rebuilt from the final weights.
    Introduced in chapter 6 (low-density scores)."""
    result = torch.load(path, map_location="cpu", weights_only=True)
    model = ScoreMLP()
    model.load_state_dict(result["snapshots"][max(result["snapshots"])])
    result["model"] = model.eval()
    return result



def main(argv=None) -> dict:
    """The command line. Introduced in chapter 6 (low-density scores)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], prog="python -m ncsn_edu.experiments.low_density")
    p.add_argument("--n-steps", type=int, default=10_000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--out", required=True, help="output .pt file")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.time()
    run = train_toy_ssm(None, args.n_steps, args.batch_size, args.lr, args.seed, progress=not args.no_progress)
    stats = score_error_stats(run["model"])
    result = {
        "snapshots": run["snapshots"],
        "losses": torch.tensor(run["losses"]),
        "settings": {"n_steps": args.n_steps, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed},
        "seconds": round(time.time() - t0, 1),
        "command": "python -m ncsn_edu.experiments.low_density "
                   + " ".join(sys.argv[1:] if argv is None else list(argv)),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(result, out)
    print(f"wrote {out}: weighted error {stats['weighted_error']:.3g}, low-density error "
          f"{stats['low_density_error']:.3g}, ratio {stats['ratio']:.3g}")
    return result


if __name__ == "__main__":
    main()
