"""Samples and inpaintings from a trained image model, and the uint8 shards that hold large
sample sets (chapters 10-12). The command line is :mod:`ncsn_edu.sample_images`.

Sampling is annealed Langevin dynamics (Algorithm 1) with the paper's settings: 100
steps per level, starting from uniform noise, in the official code's step convention
with step 2e-5 (which is eps = 4e-5 in the paper's notation; the paper states 2e-5; see
:func:`ncsn_edu.sampling.annealed_langevin_dynamics`).
Large sample sets are written in shards (``shard_XXXXX.npz``, uint8); each shard is seeded
by its index, so an interrupted run continues where it stopped and gives the same images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ncsn_edu.images.inpainting import annealed_langevin_inpainting
from ncsn_edu.images.seeding import mix_seeds
from ncsn_edu.progress import progress_bar
from ncsn_edu.sampling import annealed_langevin_dynamics


def score_function(model, amp: bool):
    """``score(x, labels)`` of ``model``, under bf16 autocast when ``amp`` (result in fp32).
    Used by the capstone commands (chapter 12)."""
    device_type = next(model.parameters()).device.type

    def score(x, labels):
        if amp:
            with torch.autocast(device_type, dtype=torch.bfloat16):
                return model(x, labels).float()
        return model(x, labels)

    return score


def generate(model, sigmas, n: int, shape, eps: float = 2e-5, n_steps_each: int = 100, seed: int = 0,
             convention: str = "code", amp: bool = False, final_denoise: bool = False, keep_every=None,
             progress: bool = False):
    """``n`` samples of ``shape`` (C, H, W) by annealed Langevin from uniform noise, clamped
    to [0, 1]. With ``keep_every`` also returns the intermediate states.
    Introduced in chapter 12 (the capstone)."""
    device = next(model.parameters()).device
    g = torch.Generator(device=device).manual_seed(seed)
    x0 = torch.rand((n, *shape), generator=g, device=device)
    res = annealed_langevin_dynamics(score_function(model, amp), x0, sigmas, eps, n_steps_each, generator=g,
                                     progress=progress, keep_every=keep_every, final_denoise=final_denoise,
                                     convention=convention)
    if keep_every:
        x, states = res
        return x.clamp(0, 1), [s.clamp(0, 1) for s in states]
    return res.clamp(0, 1)


def write_shards(model, sigmas, n: int, shape, folder, batch: int, seed: int = 0, progress: bool = True, **kw) -> Path:
    """Write ``n`` samples to ``folder/shard_XXXXX.npz`` (uint8 ``(N, C, H, W)``), skipping
    shards that are already there (shard ``i`` is seeded by ``(seed, i)``).
    Used by the capstone commands (chapter 12)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n_shards = -(-n // batch)
    for i in progress_bar(range(n_shards), enabled=progress, desc="sample shards"):
        path = folder / f"shard_{i:05d}.npz"
        size = min(batch, n - i * batch)
        if path.exists():
            continue
        x = generate(model, sigmas, size, shape, seed=mix_seeds(seed, 7, i), **kw)
        tmp = folder / f".shard_{i:05d}.tmp.npz"
        np.savez(tmp, images=to_uint8(x).cpu().numpy())
        tmp.replace(path)
    return folder


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] to uint8 (round to nearest).
    Used by the capstone commands (chapter 12)."""
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def read_shards(folder, n: int | None = None) -> torch.Tensor:
    """The uint8 images of ``folder``'s shards, in order (the first ``n``).
    Introduced in chapter 10 (NCSN on MNIST)."""
    files = sorted(Path(folder).glob("shard_*.npz"))
    if not files:
        raise FileNotFoundError(f"no shard_*.npz files in {folder}; make them with "
                                f"python -m ncsn_edu.sample_images sample CHECKPOINT --n N --shards {folder}")
    x = torch.cat([torch.from_numpy(np.load(f)["images"]) for f in files])
    if n is not None:
        if len(x) < n:
            raise ValueError(f"{folder} holds {len(x)} samples, fewer than the {n} asked for")
        x = x[:n]
    return x


def inpaint(model, sigmas, images: torch.Tensor, mask: torch.Tensor, completions: int, eps: float = 2e-5,
            n_steps_each: int = 100, seed: int = 0, amp: bool = False, progress: bool = False) -> torch.Tensor:
    """Algorithm 2 (:func:`ncsn_edu.images.inpainting.annealed_langevin_inpainting`) with the
    official code's step convention: complete the pixels where ``mask`` is 0,
    ``completions`` times per image, from uniform noise. The known pixels of the result
    are the original ones. Returns ``(len(images), completions, C, H, W)`` in [0, 1].
    Used by the capstone commands (chapter 12).
    """
    device = next(model.parameters()).device
    g = torch.Generator(device=device).manual_seed(seed)
    images, mask = images.to(device), mask.to(device)
    x = annealed_langevin_inpainting(
        score_function(model, amp), images, mask, sigmas, eps, n_steps_each,
        n_completions=completions, generator=g, progress=progress, convention="code",
    )
    m = torch.broadcast_to(mask.to(x.dtype), images.shape)[:, None]
    return (x * (1 - m) + images[:, None] * m).clamp(0, 1)
