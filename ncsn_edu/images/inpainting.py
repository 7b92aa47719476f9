"""Inpainting with annealed Langevin dynamics (Algorithm 2 of the paper).

Given images ``x`` of which only the pixels where ``mask == 1`` are known, the unknown
pixels are generated with the same annealed Langevin chain as unconditional sampling,
except that at every noise level ``sigma_i`` the known pixels are replaced by
``y = x + sigma_i z`` (one draw per level), before the level's first step and after
every step. The known pixels then always look like data perturbed at the current noise
level, which is what the score network at that level expects, and the chain fills in
the rest consistently with them.

The update rule and its two conventions are those of
:func:`ncsn_edu.sampling.annealed_langevin_dynamics`: ``convention="paper"`` runs
``x + alpha_i/2 s + sqrt(alpha_i) z`` with ``alpha_i = eps sigma_i^2 / sigma_L^2`` and
``convention="code"`` runs the official code's ``x + a_i s + sqrt(2 a_i) z`` with
``a_i = eps sigma_i^2 / sigma_L^2`` (the paper's update with ``2 eps``).
"""

from __future__ import annotations

import torch

from ncsn_edu.progress import progress_bar
from ncsn_edu.sampling import step_coefficients


def left_half_mask(shape) -> torch.Tensor:
    """Mask of shape ``shape`` (``(..., H, W)``) that keeps the left half of the columns
    (1 = known) and generates the right half (0), as in the official demo.
    Introduced in chapter 11 (MNIST inpainting and sample quality)."""
    shape = tuple(shape)
    if len(shape) < 2:
        raise ValueError("the mask needs at least two dimensions (rows and columns)")
    mask = torch.zeros(shape)
    mask[..., : shape[-1] // 2] = 1.0
    return mask


def annealed_langevin_inpainting(
    score_fn,
    images: torch.Tensor,
    mask: torch.Tensor,
    sigmas,
    eps: float,
    n_steps_each: int = 100,
    n_completions: int = 1,
    generator: torch.Generator | None = None,
    progress: bool = False,
    keep_every: int | None = None,
    convention: str = "paper",
    init: torch.Tensor | None = None,
):
    """Algorithm 2: complete ``images`` where ``mask`` is 0, ``n_completions`` times each.

    Parameters
    ----------
    score_fn: ``score_fn(x, labels)`` with ``labels`` the noise-level index of each sample.
    images: ``(N, ...)`` batch whose known entries are used (the others are ignored).
    mask: 1 for known entries, 0 for those to generate; broadcastable to one image
        (shape ``images.shape[1:]``) or to the batch.
    sigmas, eps, n_steps_each, convention: as for
        :func:`ncsn_edu.sampling.annealed_langevin_dynamics`.
    init: starting values of the unknown entries, shape ``(N * n_completions, ...)``;
        default uniform on ``[0, 1]`` (as for unconditional sampling of images).

    Returns ``(N, n_completions, ...)``, or ``(that, states)`` with ``keep_every``, where
    ``states`` holds the start and every ``keep_every``-th state, each of that shape.
    The known entries of the result are the last level's ``y = x + sigma_L z``, exactly
    as the algorithm leaves them.
    Introduced in chapter 11 (MNIST inpainting and sample quality).
    """
    if convention not in ("paper", "code"):
        raise ValueError("convention must be 'paper' or 'code'")
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64)
    if eps <= 0 or n_steps_each < 1 or len(sigmas) < 1 or n_completions < 1:
        raise ValueError("eps must be positive; n_steps_each, n_completions and len(sigmas) at least 1")
    n = images.shape[0]
    x_known = images.repeat_interleave(n_completions, dim=0)
    try:
        m = torch.broadcast_to(mask.to(device=images.device, dtype=images.dtype), x_known.shape)
    except RuntimeError as err:
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not fit images of shape "
                         f"{tuple(images.shape)}") from err
    if not torch.all((m == 0) | (m == 1)):
        raise ValueError("mask must hold only 0 (generate) and 1 (known)")
    if init is None:
        init = torch.rand(x_known.shape, generator=generator, device=images.device, dtype=images.dtype)
    elif init.shape != x_known.shape:
        raise ValueError(f"init must have shape {tuple(x_known.shape)}")
    x = init * (1 - m) + x_known * m
    out_shape = (n, n_completions, *images.shape[1:])
    states = [x.reshape(out_shape).clone()] if keep_every else None
    sigma_last = sigmas[-1].item()
    bar = progress_bar(total=len(sigmas) * n_steps_each, enabled=progress, desc="inpainting")
    step = 0
    with torch.no_grad():
        for i, sigma in enumerate(sigmas.tolist()):
            labels = torch.full((x.shape[0],), i, dtype=torch.long, device=x.device)
            noise_y = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            y = x_known + sigma * noise_y
            x = x * (1 - m) + y * m
            drift, noise = step_coefficients(eps, sigma, sigma_last, convention)
            for _ in range(n_steps_each):
                z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
                x = x + drift * score_fn(x, labels) + noise * z
                x = x * (1 - m) + y * m
                step += 1
                if keep_every and step % keep_every == 0:
                    states.append(x.reshape(out_shape).clone())
                bar.update(1)
    bar.close()
    x = x.reshape(out_shape)
    return (x, states) if keep_every else x
