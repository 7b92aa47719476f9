"""Time the official trainer's training step (ermongroup/ncsn), the anchor of issue 12.

    python gpu/official_step.py --official gpu_carry/official_ncsn --dataset cifar10 --out official.json

Imports the official ``CondRefineNetDilated`` and ``anneal_dsm_score_estimation`` from a
checkout given by ``--official`` (gathered by gpu/prepare.sh; never committed) and times
what its runner does per iteration (runners/anneal_runner.py): DataParallel model,
dequantise the batch, a random level per image, the annealed DSM loss, Adam step; fp32,
eager. Batches are random images already on the device: the official loader's JPEG
decoding and host-to-device copies are left out, so this is the step's best case.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from types import SimpleNamespace

import torch

SIZES = {"cifar10": (3, 32, 128), "mnist": (1, 28, 64)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--official", required=True, help="folder holding the official models/ and losses/")
    p.add_argument("--dataset", default="cifar10", choices=sorted(SIZES))
    p.add_argument("--ngf", type=int, default=None)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--device", default="cuda")
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    sys.path.insert(0, a.official)
    from losses.dsm import anneal_dsm_score_estimation  # noqa: E402  (official code)
    from models.cond_refinenet_dilated import CondRefineNetDilated  # noqa: E402

    channels, size, ngf = SIZES[a.dataset]
    ngf = a.ngf or ngf
    cfg = SimpleNamespace(data=SimpleNamespace(channels=channels, image_size=size, logit_transform=False),
                          model=SimpleNamespace(ngf=ngf, num_classes=10))
    dev = torch.device(a.device)
    torch.manual_seed(0)
    model = CondRefineNetDilated(cfg)
    if dev.type == "cuda":
        model = torch.nn.DataParallel(model.to(dev))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999))
    sigmas = torch.logspace(0, -2, 10, device=dev)  # geometric 1 -> 0.01, as the runner's exp(linspace(log))
    x_all = torch.rand(a.steps + a.warmup, a.batch, channels, size, size, device=dev)
    losses = []

    def step(x):
        x = x / 256.0 * 255.0 + torch.rand_like(x) / 256.0
        labels = torch.randint(0, 10, (x.shape[0],), device=dev)
        loss = anneal_dsm_score_estimation(model, x, labels, sigmas, 2.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    for i in range(a.warmup):
        step(x_all[i])
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for i in range(a.steps):
        losses.append(step(x_all[a.warmup + i]))
    if dev.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    res = dict(what="official ermongroup/ncsn training step (fp32 eager, DataParallel on one device)",
               dataset=a.dataset, ngf=ngf, batch=a.batch, steps=a.steps, warmup=a.warmup, seconds=dt,
               it_per_s=a.steps / dt, images_per_s=a.steps * a.batch / dt,
               mean_loss=float(torch.stack(losses).mean()),
               peak_mem_gib=(torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else None),
               device=(torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"), torch=torch.__version__)
    print(json.dumps(res, indent=2))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
