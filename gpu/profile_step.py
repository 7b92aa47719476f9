"""Where the fast path's training step spends its GPU time (issue 12): torch.profiler's
top kernels by device time, for bf16 autocast + channels-last + torch.compile.

    python gpu/profile_step.py --dataset cifar10 --out profile.txt

Self-contained on the package's public pieces (the network and the loss), so it profiles
the same computation as ``python -m ncsn_edu.benchmark``'s fast mode.
"""

from __future__ import annotations

import argparse
import sys

import torch
from torch.profiler import ProfilerActivity, profile

from ncsn_edu.images.refinenet import CondRefineNetDilated
from ncsn_edu.schedules import geometric_sigmas
from ncsn_edu.toy.losses import anneal_dsm_loss

SIZES = {"cifar10": (3, 32, 128), "mnist": (1, 28, 64)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="cifar10", choices=sorted(SIZES))
    p.add_argument("--ngf", type=int, default=None)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--compile", default="on", choices=["on", "off"])
    p.add_argument("--device", default="cuda")
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    channels, size, ngf = SIZES[a.dataset]
    dev = torch.device(a.device)
    torch.manual_seed(0)
    model = CondRefineNetDilated(channels, a.ngf or ngf, 10, size).to(dev).to(memory_format=torch.channels_last)
    fwd = torch.compile(model) if a.compile == "on" else model
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sigmas = geometric_sigmas(1.0, 0.01, 10).to(dev)
    x = torch.rand(a.batch, channels, size, size, device=dev).contiguous(memory_format=torch.channels_last)

    def step():
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            loss = anneal_dsm_loss(lambda y, lab: fwd(y, lab).float(), x, sigmas)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(5):  # compilation and autotuning happen here
        step()
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    with profile(activities=acts) as prof:
        for _ in range(a.steps):
            step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
    key = "self_cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=key, row_limit=30, max_name_column_width=80)
    print(table)
    if a.out:
        with open(a.out, "w") as f:
            f.write(f"fast path ({a.dataset}, ngf {a.ngf or ngf}, batch {a.batch}, compile {a.compile}), "
                    f"{a.steps} steps on {torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'cpu'}, "
                    f"torch {torch.__version__}\n{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
