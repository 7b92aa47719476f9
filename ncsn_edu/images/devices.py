"""Where a run computes: the device, the ``auto`` speed options, and the processes of a
``torchrun`` launch (chapter 12)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` is CUDA when there is one (GPU ``local_rank``) and the CPU otherwise;
    ``cuda`` without an index is GPU ``local_rank``.
    Used by the capstone commands (chapter 12)."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device(f"cuda:{local_rank}")
    return dev


def auto_on(option: str, device: torch.device) -> bool:
    """Whether a speed option (``auto``, ``on``/``bf16``, ``off``) is on: ``auto`` means on
    for CUDA and off for the CPU.
    Used by the capstone commands (chapter 12)."""
    return option in ("on", "bf16") or (option == "auto" and device.type == "cuda")


@dataclass(frozen=True)
class Processes:
    """This process's place in a (possibly one-process) run.
    Used by the capstone commands (chapter 12)."""

    world: int
    rank: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and prints."""
        return self.rank == 0

    def share(self, global_batch: int) -> slice:
        """This process's rows of a global batch (each takes ``1/world`` of it)."""
        n = global_batch // self.world
        return slice(self.rank * n, (self.rank + 1) * n)


def start_processes(device: str, global_batch: int) -> Processes:
    """Read ``torchrun``'s variables (one process when they are absent), pick the device
    and join the process group (NCCL on CUDA, Gloo on the CPU).
    Used by the capstone commands (chapter 12)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if global_batch % world:
        raise ValueError(f"--batch-size {global_batch} is not divisible by the {world} processes")
    dev = resolve_device(device, local_rank)
    if world > 1 and not torch.distributed.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        torch.distributed.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Processes(world, rank, dev)
