"""Noise schedules."""

from __future__ import annotations

import math

import torch


def geometric_sigmas(sigma_begin: float = 1.0, sigma_end: float = 0.01, n: int = 10) -> torch.Tensor:
    """``n`` noise levels falling geometrically from ``sigma_begin`` to ``sigma_end``.

    The paper's image setting, ``geometric_sigmas(1, 0.01, 10)``, gives
    1, .5995, .3594, .2154, .1292, .0774, .0464, .0278, .0167, .01.
    Introduced in chapter 4 (denoising score matching).
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    if not (sigma_begin > 0 and sigma_end > 0):
        raise ValueError("sigmas must be positive")
    if sigma_begin < sigma_end:
        raise ValueError(f"sigma_begin ({sigma_begin}) must not be below sigma_end ({sigma_end})")
    if n == 1:
        return torch.tensor([float(sigma_begin)])
    return torch.exp(torch.linspace(math.log(sigma_begin), math.log(sigma_end), n))
