"""Noise schedules."""

from __future__ import annotations

import math

import torch

from ncsn_edu.toy.noise_scales import ratio_for_shell_overlap


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


# ----------------------------------------------------------------------------- NCSNv2's rules (Song & Ermon 2020)
# "Improved Techniques for Training Score-Based Generative Models" (arXiv 2006.09011) chooses the noise
# levels and the sampler's step from the data: the largest level from the data's spread (Technique 1), the
# ratio between levels from the overlap of Gaussian shells (Technique 2: the criterion and its inverse are
# ncsn_edu.toy.noise_scales.shell_overlap and ratio_for_shell_overlap, from chapter 8), and the step of the
# last level from a Gaussian analysis of Langevin dynamics (Technique 4).


def largest_pairwise_distance(x, block: int = 2048) -> tuple[float, int, int]:
    """The largest Euclidean distance between two rows of ``x`` (``(N, ...)``, flattened to
    ``(N, D)``), with the pair ``(i, j)`` that attains it.

    Exact and blocked: squared distances ``|a|^2 + |b|^2 - 2 a.b`` are computed in float32
    blocks of ``block x block`` pairs by matrix products; their rounding error is below
    ``tol = 1e-4 max_k |x_k|^2`` (float32's relative precision is 6e-8). Every pair within
    ``2 tol`` of its block's largest value, and within ``tol`` of the best exact value so far,
    is then recomputed exactly in float64 as ``sum((a - b)^2)``, so the pair that wins is the
    true largest, not an artefact of rounding. Cost ``N^2 D / 2`` multiply-adds.
    NCSNv2's Technique 1 sets ``sigma_1`` to this distance (:func:`ncsnv2_sigma_begin`).
    Introduced in chapter 11b (NCSNv2's techniques).
    """
    x = torch.as_tensor(x)
    if x.ndim < 2 or x.shape[0] < 2:
        raise ValueError("x must hold at least two points, shape (N, ...)")
    x = x.reshape(x.shape[0], -1)  # any dtype (uint8 pixels stay exact): rows are cast where they are used
    x32 = x.float()
    norms = torch.cat([(x[k:k + block].double() ** 2).sum(1) for k in range(0, x.shape[0], block)])
    n32 = norms.float()
    tol = 1e-4 * float(norms.max()) + 1e-30
    n = x.shape[0]
    best, pair = -1.0, (0, 1)
    for i0 in range(0, n, block):
        a = x32[i0:i0 + block]
        for j0 in range(i0, n, block):
            d2 = n32[i0:i0 + block, None] + n32[None, j0:j0 + block] - 2.0 * (a @ x32[j0:j0 + block].T)
            if j0 == i0:  # the diagonal block: each pair once, no self-pairs
                d2 = torch.triu(d2, diagonal=1) - torch.tril(torch.full_like(d2, float("inf")))
            top = float(d2.max())
            if top < best - tol:
                continue
            rows, cols = torch.nonzero(d2 >= max(top - 2 * tol, best - tol), as_tuple=True)
            ii, jj = rows + i0, cols + j0
            exact = ((x[ii].double() - x[jj].double()) ** 2).sum(1)
            k = int(exact.argmax())
            if float(exact[k]) > best:
                best, pair = float(exact[k]), (int(ii[k]), int(jj[k]))
    return math.sqrt(best), pair[0], pair[1]


def ncsnv2_sigma_begin(x, block: int = 2048) -> float:
    """NCSNv2's Technique 1: ``sigma_1`` as large as the largest Euclidean distance between
    two training points (:func:`largest_pairwise_distance`), so that the noisiest level can
    carry a sample from any training point to any other.
    Introduced in chapter 11b (NCSNv2's techniques)."""
    return largest_pairwise_distance(x, block)[0]


def levels_for_ratio(sigma_begin: float, sigma_end: float, gamma: float) -> int:
    """The number of geometric levels ``L`` from ``sigma_begin`` down to ``sigma_end`` whose
    ratio is at most ``gamma``: ``L - 1`` steps of ratio ``(sigma_begin/sigma_end)^(1/(L-1))``,
    so ``L = 1 + ceil(log(sigma_begin/sigma_end) / log(gamma))``. (The official code builds the
    levels as ``geometric_sigmas(sigma_begin, sigma_end, L)``, whose ratio is that power.)
    Introduced in chapter 11b (NCSNv2's techniques)."""
    if not (sigma_begin > sigma_end > 0) or gamma <= 1:
        raise ValueError("need sigma_begin > sigma_end > 0 and gamma > 1")
    steps = math.log(sigma_begin / sigma_end) / math.log(gamma)
    return 1 + math.ceil(steps - 1e-9)


def ncsnv2_sigmas(sigma_begin: float, sigma_end: float, dim: int, overlap: float = 0.5) -> torch.Tensor:
    """NCSNv2's levels: geometric from ``sigma_begin`` to ``sigma_end``, as many as
    :func:`levels_for_ratio` needs for the ratio at which Technique 2's criterion equals ``overlap``
    (:func:`ncsn_edu.toy.noise_scales.ratio_for_shell_overlap`; for ``overlap = 0.5`` and large ``D`` it is
    ``sqrt(2D)/(sqrt(2D) - 3)``). The official configs' ratios all sit at an overlap of 0.567, not 0.5.
    Introduced in chapter 11b (NCSNv2's techniques)."""
    gamma = ratio_for_shell_overlap(dim, overlap)
    return geometric_sigmas(sigma_begin, sigma_end, levels_for_ratio(sigma_begin, sigma_end, gamma))


def last_level_variance_ratio(eps: float, gamma: float, n_steps: int, sigma_end: float) -> float:
    """NCSNv2's Proposition 3: ``s_T^2 / sigma_i^2`` after ``T = n_steps`` Langevin steps at a level.

    The setting: the data are one point (the origin), so level ``i`` is ``N(0, sigma_i^2 I)``
    with score ``-x/sigma_i^2``; the chain starts at equilibrium of the level above,
    ``x_0 ~ N(0, gamma^2 sigma_i^2 I)``, and runs the official update
    ``x <- x + a s(x) + sqrt(2a) z`` with ``a = eps sigma_i^2/sigma_L^2`` (``eps`` is the code's
    ``step_lr``). With ``r = eps/sigma_L^2`` each step maps the variance ``V`` to
    ``(1 - r)^2 V + 2 a``, whose fixed point is ``c sigma_i^2``, ``c = 2r / (1 - (1 - r)^2)``, so
    ``s_T^2/sigma_i^2 = (1 - r)^(2T) (gamma^2 - c) + c``, the same at every level.
    Introduced in chapter 11b (NCSNv2's techniques)."""
    r = eps / sigma_end**2
    if not 0 < r < 2:
        raise ValueError(f"eps/sigma_end^2 = {r:g}: the chain is unstable unless it lies in (0, 2)")
    if n_steps < 0:
        raise ValueError("n_steps must be non-negative")
    c = 2 * r / (1 - (1 - r) ** 2)
    return (1 - r) ** (2 * n_steps) * (gamma**2 - c) + c


def step_from_variance_criterion(gamma: float, n_steps: int, sigma_end: float) -> float:
    """NCSNv2's Technique 4: the step ``eps`` (the code's ``step_lr``) that brings
    :func:`last_level_variance_ratio` closest to 1 for ``T = n_steps``.

    For ``gamma > 1`` the ratio exceeds 1 for every ``eps`` (it is ``gamma^2`` at ``eps = 0`` and
    at least ``c > 1`` otherwise), so the closest point is its minimum over ``r = eps/sigma_L^2``
    in ``(0, 1)``; found by golden-section search on ``log r`` after a grid brackets it.
    Introduced in chapter 11b (NCSNv2's techniques)."""
    if gamma <= 1 or n_steps < 1:
        raise ValueError("need gamma > 1 and n_steps >= 1")

    def f(log_r):
        return last_level_variance_ratio(math.exp(log_r) * sigma_end**2, gamma, n_steps, sigma_end)

    grid = [math.log(1e-8) + k * (math.log(1.0 - 1e-9) - math.log(1e-8)) / 400 for k in range(401)]
    k = min(range(len(grid)), key=lambda m: f(grid[m]))
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
    g = (math.sqrt(5) - 1) / 2
    while hi - lo > 1e-12:
        m1, m2 = hi - g * (hi - lo), lo + g * (hi - lo)
        if f(m1) < f(m2):
            hi = m2
        else:
            lo = m1
    return math.exp(0.5 * (lo + hi)) * sigma_end**2
