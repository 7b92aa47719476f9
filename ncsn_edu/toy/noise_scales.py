"""The geometry of Gaussian noise in ``D`` dimensions: the numbers behind a noise ladder.

In ``D`` dimensions the noise ``sigma z`` (``z ~ N(0, I)``) lies on a thin shell: its
length has mean about ``sigma sqrt(D)`` and standard deviation about ``sigma / sqrt(2)``.
Two neighbouring levels of a geometric ladder, ``sigma`` and ``gamma sigma``, therefore
hand samples from one to the other only if their shells overlap. Song & Ermon (2020,
"Improved Techniques for Training Score-Based Generative Models", technique 2) measure
this with :func:`shell_overlap` and choose ``gamma`` so that it is about one half
(:func:`ratio_for_shell_overlap`).
"""

from __future__ import annotations

import math


def _phi(x: float) -> float:
    """The standard normal distribution function."""
    return 0.5 * math.erfc(-x / math.sqrt(2))


def noise_norm_moments(sigma: float, dim: int) -> tuple[float, float]:
    """Exact mean and standard deviation of ``||sigma z||`` for ``z ~ N(0, I_dim)``
    (the chi distribution with ``dim`` degrees of freedom, scaled by ``sigma``).
    For large ``dim`` they are about ``sigma sqrt(dim)`` and ``sigma / sqrt(2)``.
    Introduced in chapter 8 (noise-conditional networks)."""
    if sigma <= 0 or int(dim) != dim or dim < 1:
        raise ValueError("sigma must be positive and dim a positive integer")
    mean = math.sqrt(2) * math.exp(math.lgamma((dim + 1) / 2) - math.lgamma(dim / 2))
    return sigma * mean, sigma * math.sqrt(max(dim - mean**2, 0.0))


def shell_overlap(ratio: float, dim: int) -> float:
    """Song & Ermon (2020)'s overlap of neighbouring noise levels with ratio
    ``gamma = sigma_{i-1} / sigma_i >= 1`` in ``dim`` dimensions:
    ``Phi(sqrt(2D)(gamma - 1) + 3 gamma) - Phi(sqrt(2D)(gamma - 1) - 3 gamma)``.

    It is the probability (normal approximation of the chi distribution: mean
    ``sigma_i sqrt(D)``, standard deviation ``sigma_i / sqrt(2)``) that the noise of the
    smaller level, ``sigma_i z``, has a length within three of the larger level's
    standard deviations (``3 sigma_{i-1} / sqrt(2)``) of the larger level's typical
    length ``sigma_{i-1} sqrt(D)``. Their technique 2 asks for about 0.5.
    Introduced in chapter 8 (noise-conditional networks).
    """
    if ratio < 1 or int(dim) != dim or dim < 1:
        raise ValueError("ratio must be at least 1 and dim a positive integer")
    centre = math.sqrt(2 * dim) * (ratio - 1)
    return _phi(centre + 3 * ratio) - _phi(centre - 3 * ratio)


def ratio_for_shell_overlap(dim: int, target: float = 0.5) -> float:
    """The ratio ``gamma > 1`` at which :func:`shell_overlap` falls to ``target`` (the
    largest geometric step that keeps neighbouring levels overlapping that much).

    Returns ``math.inf`` when no ratio brings the criterion down to ``target`` (in very
    few dimensions, where its normal approximation is rough, it never falls that low).
    Introduced in chapter 8 (noise-conditional networks).
    """
    if not 0 < target < shell_overlap(1.0, dim):
        raise ValueError(f"target must lie in (0, {shell_overlap(1.0, dim):.4f})")
    lo, hi = 1.0, 1.0 + 1.0 / math.sqrt(dim)
    while shell_overlap(hi, dim) >= target:  # find a ratio past the crossing
        lo, hi = hi, 1.0 + 2 * (hi - 1.0)
        if hi > 1e6:
            return math.inf
    for _ in range(100):  # bisection: overlap(lo) >= target > overlap(hi)
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if shell_overlap(mid, dim) >= target else (lo, mid)
    return 0.5 * (lo + hi)
