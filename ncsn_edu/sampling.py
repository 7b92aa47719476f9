"""Langevin samplers: plain (section 2.2) and annealed (Algorithm 1).

A score function for :func:`langevin_dynamics` is ``score_fn(x)``; for
:func:`annealed_langevin_dynamics` it is ``score_fn(x, labels)`` with ``labels`` a
``LongTensor`` holding the noise-level index of each sample (the paper's network takes
the index, and exact scores can be wrapped the same way).
"""

from __future__ import annotations

import math

import torch

from ncsn_edu.progress import progress_bar


def langevin_dynamics(
    score_fn,
    x: torch.Tensor,
    step_size: float,
    n_steps: int,
    generator: torch.Generator | None = None,
    progress: bool = False,
    keep_every: int | None = None,
):
    """Run ``x <- x + eps/2 * score(x) + sqrt(eps) z`` for ``n_steps`` steps.

    ``x`` is a batch of starting points of any shape ``(N, ...)``. Returns the final batch,
    or ``(final, states)`` when ``keep_every`` is set, where ``states`` holds the start and
    every ``keep_every``-th state.
    Introduced in chapter 1 (scores and Langevin dynamics).
    """
    if step_size <= 0 or n_steps < 0:
        raise ValueError("step_size must be positive and n_steps non-negative")
    x = x.clone()
    states = [x.clone()] if keep_every else None
    with torch.no_grad():
        for t in progress_bar(range(n_steps), enabled=progress, desc="Langevin"):
            z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = x + 0.5 * step_size * score_fn(x) + math.sqrt(step_size) * z
            if keep_every and (t + 1) % keep_every == 0:
                states.append(x.clone())
    return (x, states) if keep_every else x


def step_coefficients(eps: float, sigma: float, sigma_last: float, convention: str = "paper"):
    """The drift and noise factors of one annealed Langevin step at level ``sigma``:
    ``x <- x + drift * s(x) + noise * z``. ``"paper"``: ``(alpha/2, sqrt(alpha))`` with
    ``alpha = eps sigma^2 / sigma_L^2``; ``"code"`` (the official code): ``(a, sqrt(2a))``
    with ``a = eps sigma^2 / sigma_L^2``.
    Belongs to chapter 9 (annealed Langevin dynamics)."""
    a = eps * sigma**2 / sigma_last**2
    return (a / 2, math.sqrt(a)) if convention == "paper" else (a, math.sqrt(2 * a))


def annealed_langevin_dynamics(
    score_fn,
    x: torch.Tensor,
    sigmas,
    eps: float,
    n_steps_each: int = 100,
    generator: torch.Generator | None = None,
    progress: bool = False,
    keep_every: int | None = None,
    final_denoise: bool = False,
    convention: str = "paper",
):
    """Annealed Langevin dynamics (Algorithm 1 of the paper).

    For each level ``i`` (largest sigma first) run ``n_steps_each`` steps of
    ``x <- x + alpha_i/2 * s(x, i) + sqrt(alpha_i) z`` with ``alpha_i = eps sigma_i^2 /
    sigma_L^2``. With ``convention="code"`` the official code's update
    ``x <- x + a_i s + sqrt(2 a_i) z`` with ``a_i = eps sigma_i^2 / sigma_L^2`` is used
    instead, which equals the paper's update with ``2 * eps``.

    ``final_denoise`` adds one step ``x + sigma_L^2 s(x, L)`` at the end (off, as in the
    paper; by Tweedie's formula it moves ``x`` to the posterior mean of the clean point
    under the smallest noise level). ``keep_every=k`` also returns the start and every
    ``k``-th Langevin state, counted over all levels (use ``keep_every=n_steps_each`` for
    the start and the state at the end of each level); the denoised output is not among
    them.
    Returns the final batch, or ``(final, states)``.
    Introduced in chapter 7 (slow mixing).
    """
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64)
    if sigmas.ndim != 1 or (sigmas <= 0).any() or (sigmas[1:] > sigmas[:-1]).any():
        raise ValueError("sigmas must be a 1-D list of positive levels, largest first (sigma_1 >= ... >= sigma_L)")
    if convention not in ("paper", "code"):
        raise ValueError("convention must be 'paper' or 'code'")
    if eps <= 0 or n_steps_each < 1 or len(sigmas) < 1:
        raise ValueError("eps must be positive, n_steps_each and len(sigmas) at least 1")
    x = x.clone()
    states = [x.clone()] if keep_every else None
    n = x.shape[0]
    bar = progress_bar(total=len(sigmas) * n_steps_each, enabled=progress, desc="annealed Langevin")
    step = 0
    with torch.no_grad():
        for i, sigma in enumerate(sigmas.tolist()):
            labels = torch.full((n,), i, dtype=torch.long, device=x.device)
            drift, noise = step_coefficients(eps, sigma, sigmas[-1].item(), convention)
            for _ in range(n_steps_each):
                z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
                x = x + drift * score_fn(x, labels) + noise * z
                step += 1
                if keep_every and step % keep_every == 0:
                    states.append(x.clone())
                bar.update(1)
        if final_denoise:
            labels = torch.full((n,), len(sigmas) - 1, dtype=torch.long, device=x.device)
            x = x + sigmas[-1].item() ** 2 * score_fn(x, labels)
    bar.close()
    return (x, states) if keep_every else x
