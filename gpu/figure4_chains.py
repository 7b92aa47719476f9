"""Figure 4's intermediate states of annealed Langevin, from a trainer checkpoint, saved as
uint8 (issue 13): ``chains`` has shape (states, n, C, H, W), the start and the state after
every ``--keep-every`` steps of the paper's sampler (T = 100 per level, code step 2e-5).

    python gpu/figure4_chains.py RUN/checkpoint.pt --n 10 --keep-every 50 --out chains.npz
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from ncsn_edu.images.checkpoints import load_checkpoint
from ncsn_edu.images.devices import resolve_device
from ncsn_edu.images.presets import image_shape
from ncsn_edu.images.samples import generate, to_uint8


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("--n", type=int, default=10)
    p.add_argument("--keep-every", type=int, default=50)
    p.add_argument("--steps-each", type=int, default=100)
    p.add_argument("--eps", type=float, default=2e-5, help="step in the official code's convention")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    device = resolve_device(a.device, 0)
    model, sigmas, cfg = load_checkpoint(a.checkpoint, device)
    _, states = generate(model, sigmas, a.n, image_shape(cfg), eps=a.eps, n_steps_each=a.steps_each, seed=a.seed,
                         keep_every=a.keep_every)
    chains = torch.stack([to_uint8(s) for s in states]).cpu().numpy()
    np.savez_compressed(a.out, chains=chains, keep_every=a.keep_every, steps_each=a.steps_each, eps=a.eps,
                        sigmas=sigmas.cpu().numpy(), step=cfg.get("step", -1), checkpoint=str(a.checkpoint))
    print(f"{chains.shape[0]} states of {a.n} chains: {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
