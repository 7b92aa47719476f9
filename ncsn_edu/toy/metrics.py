"""Numbers that judge samples and learned scores on a toy mixture with known answers."""

from __future__ import annotations

import math

import torch

from ncsn_edu.toy.distributions import GaussianMixture
from ncsn_edu.toy.domain import grid


def relative_score_error(score_fn, exact_score_fn, x: torch.Tensor) -> float:
    """``sqrt(sum ||s - s*||^2 / sum ||s*||^2)`` over the points ``x``: 0 is perfect, 1 is
    as bad as answering zero everywhere.
    Introduced in chapter 8 (noise-conditional networks)."""
    with torch.no_grad():
        s, t = score_fn(x).double(), exact_score_fn(x).double()
    return ((s - t).pow(2).sum() / t.pow(2).sum()).sqrt().item()


def per_level_score_errors(model, mixture, sigmas, n: int = 2000, generator=None) -> list[float]:
    """The relative error of a conditional score ``model(x, labels)`` at each level
    ``i``, against the exact score of the perturbed mixture, at ``n`` points drawn from
    that perturbed mixture (where annealed Langevin meets them).
    Introduced in chapter 8 (noise-conditional networks)."""
    errors = []
    for i, sigma in enumerate(torch.as_tensor(sigmas).tolist()):
        noisy = mixture.perturbed(sigma)
        x = noisy.sample(n, generator=generator)
        labels = torch.full((n,), i, dtype=torch.long)
        errors.append(relative_score_error(lambda y: model(y, labels), noisy.score, x))
    return errors


def score_error_by_band(score_fn, exact_score_fn, x: torch.Tensor, band_value: torch.Tensor, edges) -> list[dict]:
    """Split the points ``x`` into bands ``edges[k] <= band_value < edges[k + 1]`` and
    compare ``score_fn`` with ``exact_score_fn`` in each. Returns one dict per band with
    ``lo``, ``hi``, ``n`` (points in the band), ``relative_error``
    (``sqrt(sum ||s - s*||^2 / sum ||s*||^2)`` over the band, as :func:`relative_score_error`),
    ``mean_error`` (mean of ``||s - s*||``) and ``mean_cosine`` (mean cosine between ``s``
    and ``s*``); the numbers are ``nan`` for an empty band.
    Introduced in chapter 6 (low-density scores), to split the error by ``|x1 + x2|``."""
    band_value = torch.as_tensor(band_value).flatten()
    if band_value.shape[0] != x.shape[0]:
        raise ValueError("band_value needs one value per point of x")
    edges = [float(e) for e in edges]
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError("edges must be increasing, at least two of them")
    with torch.no_grad():
        s, t = score_fn(x).double(), exact_score_fn(x).double()
    rows = []
    for lo, hi in zip(edges, edges[1:]):
        k = (band_value >= lo) & (band_value < hi)
        n = int(k.sum())
        if n == 0:
            rows.append({"lo": lo, "hi": hi, "n": 0, "relative_error": math.nan, "mean_error": math.nan,
                         "mean_cosine": math.nan})
            continue
        d = s[k] - t[k]
        rows.append({
            "lo": lo, "hi": hi, "n": n,
            "relative_error": (d.pow(2).sum() / t[k].pow(2).sum()).sqrt().item(),
            "mean_error": d.norm(dim=1).mean().item(),
            "mean_cosine": torch.nn.functional.cosine_similarity(s[k], t[k], dim=1).mean().item(),
        })
    return rows


def distance_to_nearest_mean(mixture: GaussianMixture, x: torch.Tensor) -> torch.Tensor:
    """The Euclidean distance from each point of ``x`` (shape ``(N, D)``) to the nearest
    component mean of ``mixture``, shape ``(N,)``.
    Introduced in chapter 3 (sliced score matching), to split a score's error by distance from the modes."""
    means = mixture.means.to(dtype=x.dtype, device=x.device)
    return torch.cdist(x, means).min(dim=1).values


def score_error_by_distance(score_fn, mixture: GaussianMixture, x: torch.Tensor, edges) -> list[dict]:
    """:func:`score_error_by_band` with the bands set by the distance from each point to the
    nearest component mean of ``mixture`` (:func:`distance_to_nearest_mean`), against the
    mixture's exact score. ``edges`` may end with ``math.inf``.
    Introduced in chapter 3 (sliced score matching)."""
    return score_error_by_band(score_fn, mixture.score, x, distance_to_nearest_mean(mixture, x), edges)


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """The (squared) energy distance ``2 E|X - Y| - E|X - X'| - E|Y - Y'|`` between the
    samples ``x`` and ``y`` (shapes ``(N, D)`` and ``(M, D)``): zero exactly when the two
    distributions are equal. The within-sample means leave out the zero diagonal
    (U-statistics), so it is unbiased and two samples of one distribution give values
    scattered around zero, slightly negative about half of the time.
    Introduced in chapter 13 (score SDEs)."""
    x, y = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or len(x) < 2 or len(y) < 2:
        raise ValueError("x and y must be (N, D) and (M, D) with N, M >= 2")
    n, m = len(x), len(y)
    xy = torch.cdist(x, y).mean()
    xx = torch.cdist(x, x).sum() / (n * (n - 1))
    yy = torch.cdist(y, y).sum() / (m * (m - 1))
    return (2 * xy - xx - yy).item()

def score_error_stats(score_fn, mixture: GaussianMixture | None = None, lim: float = 8.0, n: int = 100,
                      low_fraction: float = 1e-3) -> dict:
    """Compare ``score_fn`` with the exact score of ``mixture`` on an ``n x n`` grid.

    The error at each point is ``||s(x) - grad log p(x)||``. Returns a dict with
    ``error`` (``(n, n)`` map), ``density`` (``(n, n)``), ``high_mask`` (points where
    ``p >= low_fraction * max p``), ``weighted_error`` (mean error weighted by ``p``, the
    error where the data are), ``high_density_error`` and ``low_density_error`` (plain
    means over the two regions) and ``ratio`` = low-density error / weighted error.
    Introduced in chapter 6 (low-density scores).
    """
    mixture = mixture or GaussianMixture.paper_toy()
    if not 0 < low_fraction < 1:
        raise ValueError("low_fraction must be in (0, 1)")
    _, _, pts = grid(lim, n)
    with torch.no_grad():
        err = (score_fn(pts).float() - mixture.score(pts).float()).norm(dim=1)
        p = mixture.log_prob(pts).exp()
    high = p >= low_fraction * p.max()
    weighted = (p * err).sum() / p.sum()
    return {
        "error": err.reshape(n, n),
        "density": p.reshape(n, n),
        "high_mask": high.reshape(n, n),
        "weighted_error": weighted.item(),
        "high_density_error": err[high].mean().item(),
        "low_density_error": err[~high].mean().item(),
        "ratio": (err[~high].mean() / weighted).item(),
        "low_fraction": low_fraction,
    }
