"""The square ``[-lim, lim]^2`` on which the toy chapters draw and measure: its evaluation grid and
the uniform starts of their samplers.

The paper's toy figures evaluate densities, scores and score errors on a 100 x 100 grid over
``[-8, 8]^2`` (Figure 2).
"""

from __future__ import annotations

import torch


def grid(lim: float = 8.0, n: int = 100):
    """An ``n x n`` grid over ``[-lim, lim]^2``: returns ``(X, Y, points)`` with
    ``points`` of shape ``(n*n, 2)``."""
    t = torch.linspace(-lim, lim, n)
    Y, X = torch.meshgrid(t, t, indexing="ij")
    return X, Y, torch.stack([X.flatten(), Y.flatten()], 1)


def uniform_starts(n: int, lim: float = 8.0, generator: torch.Generator | None = None,
                   dtype: torch.dtype | None = None) -> torch.Tensor:
    """``n`` points drawn uniformly on ``[-lim, lim]^2``, shape ``(n, 2)``: where the paper's
    Figure 3 starts its Langevin chains (``lim = 8``). One draw of ``torch.rand`` from
    ``generator``, mapped by ``(u * 2 - 1) * lim`` (so a seeded run gives the same points as
    ``torch.rand(n, 2, generator=g) * 16 - 8`` at ``lim = 8``, to the bit).
    Introduced in chapter 1 (scores and Langevin dynamics).
    """
    if n < 0 or lim <= 0:
        raise ValueError("n must be non-negative and lim positive")
    return (torch.rand(n, 2, generator=generator, dtype=dtype) * 2 - 1) * lim
