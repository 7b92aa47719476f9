"""Gaussian mixtures with exact log-densities, scores and noise-perturbed versions.

The paper's toy distribution (sections 3.2 and 4.3) is
``p = 1/5 N((-5,-5), I) + 4/5 N((5,5), I)``; :meth:`GaussianMixture.paper_toy` builds it.
"""

from __future__ import annotations

import math

import torch


class GaussianMixture:
    """A mixture of isotropic Gaussians ``sum_k w_k N(mu_k, s_k^2 I)`` in ``D`` dimensions.

    Parameters
    ----------
    means: ``(K, D)`` component means.
    stds: ``(K,)`` component standard deviations (a float is used for all components).
    weights: ``(K,)`` mixing weights; normalised to sum to one.
    Introduced in chapter 1 (scores and Langevin dynamics).
    """

    def __init__(self, means, stds=1.0, weights=None, dtype=torch.float32):
        self.means = torch.as_tensor(means, dtype=dtype)
        if self.means.ndim != 2:
            raise ValueError(f"means must have shape (K, D), got {tuple(self.means.shape)}")
        k = self.means.shape[0]
        stds = torch.as_tensor(stds, dtype=dtype)
        self.stds = stds.expand(k).clone() if stds.ndim == 0 else stds.clone()
        if weights is None:
            weights = torch.full((k,), 1.0 / k)
        weights = torch.as_tensor(weights, dtype=dtype)
        if self.stds.shape != (k,) or weights.shape != (k,):
            raise ValueError("stds and weights must have one entry per component")
        if (self.stds <= 0).any() or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError("stds must be positive and weights non-negative")
        self.weights = weights / weights.sum()

    @classmethod
    def paper_toy(cls, dtype=torch.float32) -> "GaussianMixture":
        """The paper's mixture ``1/5 N((-5,-5), I) + 4/5 N((5,5), I)``."""
        return cls([[-5.0, -5.0], [5.0, 5.0]], 1.0, [0.2, 0.8], dtype=dtype)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def to(self, device=None, dtype=None) -> "GaussianMixture":
        """A copy on another device or dtype."""
        dtype = dtype or self.means.dtype
        out = GaussianMixture.__new__(GaussianMixture)
        out.means = self.means.to(device=device, dtype=dtype)
        out.stds = self.stds.to(device=device, dtype=dtype)
        out.weights = self.weights.to(device=device, dtype=dtype)
        return out

    def perturbed(self, sigma: float) -> "GaussianMixture":
        """The exact density of ``x + sigma z``, ``z ~ N(0, I)``: each component's
        variance grows from ``s_k^2`` to ``s_k^2 + sigma^2``."""
        if sigma < 0:
            raise ValueError("sigma must be non-negative")
        out = self.to()
        out.stds = torch.sqrt(self.stds**2 + sigma**2)
        return out

    def sample(self, n: int, generator: torch.Generator | None = None, return_labels=False):
        """``n`` exact i.i.d. samples (and optionally the component of each)."""
        labels = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, self.dim, generator=generator, dtype=self.means.dtype)
        x = self.means[labels] + self.stds[labels, None] * noise
        return (x, labels) if return_labels else x

    def _component_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.means.dtype)
        d = self.dim
        sq = ((x[:, None, :] - self.means[None]) ** 2).sum(-1)  # (N, K)
        var = self.stds**2
        return (
            torch.log(self.weights)[None]
            - 0.5 * sq / var[None]
            - 0.5 * d * torch.log(2 * math.pi * var)[None]
        )

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x)`` for ``x`` of shape ``(N, D)``."""
        return torch.logsumexp(self._component_log_probs(x), dim=1)

    def responsibilities(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior component probabilities ``p(k | x)``, shape ``(N, K)``."""
        return torch.softmax(self._component_log_probs(x), dim=1)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """The exact score ``grad_x log p(x) = sum_k p(k|x) (mu_k - x) / s_k^2``."""
        x = x.to(self.means.dtype)
        r = self.responsibilities(x)  # (N, K)
        per_comp = (self.means[None] - x[:, None, :]) / (self.stds**2)[None, :, None]
        return (r[:, :, None] * per_comp).sum(1)


def nearest_component(mixture: GaussianMixture, x: torch.Tensor) -> torch.Tensor:
    """The index of the component mean nearest to each point of ``x`` (shape ``(N,)``).

    Used to count how many samples landed in each mode; for the paper's toy mixture,
    index 1 is the mode at ``(5, 5)``.
    Introduced in chapter 1 (scores and Langevin dynamics).
    """
    d = ((x.to(mixture.means.dtype)[:, None, :] - mixture.means[None]) ** 2).sum(-1)
    return d.argmin(1)


def mode_fractions(mixture: GaussianMixture, x: torch.Tensor) -> torch.Tensor:
    """The fraction of the points ``x`` nearest to each component mean, shape ``(K,)``
    (compare with ``mixture.weights``).
    Introduced in chapter 7 (slow mixing)."""
    k = mixture.means.shape[0]
    return torch.bincount(nearest_component(mixture, x), minlength=k).to(mixture.means.dtype) / x.shape[0]


def spread_around_modes(mixture: GaussianMixture, x: torch.Tensor) -> dict:
    """How widely the points ``x`` spread around the component mean nearest to each.

    Pools the coordinates of the offsets ``x - mu_k(x)`` of the finite points (``k(x)``:
    :func:`nearest_component`) and returns a dict with ``variance`` (their mean square, the
    per-coordinate variance around the modes), ``variance_se`` (its standard error,
    ``sqrt((m4 - variance^2) / count)`` with ``m4`` the mean fourth power), ``std`` (the square
    root of ``variance``), ``std_se`` (by the delta method, ``variance_se / (2 std)``) and
    ``count`` (the number of pooled coordinates). On ``N(mu, v I)`` the variance is ``v``; a
    Langevin chain with step ``eps`` settles at ``v / (1 - eps / (4 v))``
    (:func:`ncsn_edu.toy.closed_forms.langevin_stationary_variance`). The live figures compute the
    same numbers (``spreadAroundModes`` in ``live_js/core.js``).
    Introduced in chapter 1 (scores and Langevin dynamics).
    """
    x = x.to(mixture.means.dtype)
    x = x[torch.isfinite(x).all(1)]
    off = (x - mixture.means[nearest_component(mixture, x)]).flatten()
    count = off.numel()
    if count == 0:
        nan = float("nan")
        return {"variance": nan, "variance_se": nan, "std": nan, "std_se": nan, "count": 0}
    variance = off.pow(2).mean().item()
    m4 = off.pow(4).mean().item()
    variance_se = math.sqrt(max(m4 - variance**2, 0.0) / count)
    std = math.sqrt(variance)
    return {"variance": variance, "variance_se": variance_se, "std": std,
            "std_se": variance_se / (2 * std) if std > 0 else float("nan"), "count": count}


def in_score_band(mixture: GaussianMixture, x: torch.Tensor, threshold: float = 0.01) -> torch.Tensor:
    """Whether each point of ``x`` lies in the band between the two components of a two-component
    mixture where both responsibilities exceed ``threshold`` (``threshold < p(0 | x) < 1 - threshold``),
    shape ``(N,)``, boolean. See :func:`score_band`.
    Introduced in chapter 1 (scores and Langevin dynamics).
    """
    if mixture.means.shape[0] != 2:
        raise ValueError("the score band is defined for a mixture of two components")
    if not 0 < threshold < 0.5:
        raise ValueError("threshold must lie in (0, 0.5)")
    r = mixture.responsibilities(x)[:, 0]
    return (r > threshold) & (r < 1 - threshold)


def score_band(mixture: GaussianMixture, threshold: float = 0.01, half_width: float = 3.0, n: int = 60_001) -> dict:
    """The band where the mixing weights shape the exact score of a two-component mixture: the points
    where both responsibilities exceed ``threshold`` (:func:`in_score_band`), measured across it.

    The band is measured on ``n`` points ``x(s) = m + s u`` of the line through the two means, ``s``
    from ``-half_width`` to ``half_width``, with ``m`` their midpoint and ``u`` the unit vector from
    ``mu_0`` to ``mu_1``: ``s`` is the signed distance from the perpendicular bisector of the means,
    negative towards ``mu_0``. For components of one standard deviation ``c`` the log-ratio of the
    responsibilities along the line is ``log(w_1 / w_0) + g s / c^2`` with ``g = |mu_1 - mu_0|``, so
    the band is a slab across the line centred at ``c^2 log(w_0 / w_1) / g``, of width
    ``2 c^2 log((1 - threshold) / threshold) / g`` (``2 log(99) / (10 sqrt 2) = 0.650`` for the paper's
    toy; its centre is ``log(1/4) / (10 sqrt 2) = -0.098``, towards the light mode).

    Returns a dict with

    * ``s`` and ``points``: the ``n`` signed distances and the points ``x(s)``, shape ``(n, D)``;
    * ``start``, ``end``, ``width``: the first and last ``s`` in the band, and ``end - start``;
    * ``centre``: the ``s`` where the two responsibilities are closest to equal;
    * ``width_closed``, ``centre_closed``: the closed forms above (``nan`` if the standard deviations
      differ, where the band is no slab);
    * ``saddle``: the last ``s`` before the score's component along ``u`` turns from negative to
      positive between the two means (where the density along the segment between them is lowest;
      ``nan`` if that is not on the line);
    * ``max_density_ratio``: the largest density in the band over the largest density at a mean;
    * ``mass``: the probability that a sample of the mixture lies between ``start`` and ``end``
      (along ``u`` component ``k`` is ``N(u . (mu_k - m), c_k^2)``);
    * ``gap``: ``g``.

    Raises ``ValueError`` unless the band lies within the line (neither end of it inside the band).

    Introduced in chapter 1 (scores and Langevin dynamics), to show that the weights enter the
    paper's toy score only where the density is about ``1e-11`` of its peak (section 3.2.2).
    """
    if mixture.means.shape[0] != 2:
        raise ValueError("the score band is defined for a mixture of two components")
    if half_width <= 0 or n < 3:
        raise ValueError("half_width must be positive and n at least 3")
    means, stds, weights = mixture.means, mixture.stds, mixture.weights
    diff = means[1] - means[0]
    gap = diff.norm()
    u = diff / gap
    mid = (means[0] + means[1]) / 2
    s = torch.linspace(-half_width, half_width, n, dtype=means.dtype)
    points = mid[None] + s[:, None] * u[None]
    inside = in_score_band(mixture, points, threshold)
    if not inside.any() or inside[0] or inside[-1]:
        raise ValueError("the band does not lie within the line: increase half_width (or n)")
    start, end = s[inside].min(), s[inside].max()
    r = mixture.responsibilities(points)[:, 0]
    centre = s[(r - 0.5).abs().argmin()].item()
    gap_f = gap.item()
    if torch.allclose(stds[0], stds[1]):
        var = stds[0].item() ** 2
        width_closed = 2 * var * math.log((1 - threshold) / threshold) / gap_f
        centre_closed = var * math.log(weights[0].item() / weights[1].item()) / gap_f
    else:
        width_closed = centre_closed = float("nan")
    # The lowest density between the means: where the score along u turns from pointing back to mu_0
    # (negative) to pointing on to mu_1 (positive), on the segment between them (a mean is a crossing too).
    along = mixture.score(points) @ u
    between = (s > -gap_f / 2) & (s < gap_f / 2)
    rising = (along[:-1] <= 0) & (along[1:] > 0) & between[:-1] & between[1:]
    saddle = s[:-1][rising][0].item() if rising.any() else float("nan")
    peak = mixture.log_prob(means).max()
    max_density_ratio = (mixture.log_prob(points[inside]) - peak).exp().max().item()
    c = (means - mid[None]) @ u  # each component's mean along the line
    mass = (weights * (torch.special.ndtr((end - c) / stds) - torch.special.ndtr((start - c) / stds))).sum().item()
    return {"s": s, "points": points, "start": start.item(), "end": end.item(), "width": (end - start).item(),
            "centre": centre, "width_closed": width_closed, "centre_closed": centre_closed, "saddle": saddle,
            "max_density_ratio": max_density_ratio, "mass": mass, "gap": gap_f}


def perturbed_score_fn(mixture: GaussianMixture):
    """The exact score ``score(x, sigma)`` of the mixture perturbed by ``N(0, sigma^2 I)`` at any
    noise level ``sigma`` (the score of ``mixture.perturbed(sigma)``, cast to ``x.dtype``): the score
    functions of :mod:`ncsn_edu.score_sde` take a continuous ``sigma``. For a fixed ladder of levels
    indexed by ``labels``, see :func:`annealed_score_fn`.
    Introduced in chapter 13 (score SDEs).
    """

    def score(x: torch.Tensor, sigma: float) -> torch.Tensor:
        return mixture.perturbed(sigma).score(x).to(x.dtype)

    return score


def annealed_score_fn(mixture: GaussianMixture, sigmas, convention: str = "perturbed"):
    """Exact noise-conditional scores ``score_fn(x, labels)`` for annealed Langevin.

    ``labels`` holds one noise-level index per sample (all equal within a batch, as
    :func:`ncsn_edu.sampling.annealed_langevin_dynamics` passes them).

    * ``convention="perturbed"``: the score of the data convolved with
      ``N(0, sigma_i^2 I)``, i.e. ``mixture.perturbed(sigma_i)``, whose components have
      standard deviation ``sqrt(s_k^2 + sigma_i^2)``. This is what a perfect network
      trained with denoising score matching at level ``sigma_i`` would learn.
    * ``convention="code"``: the official code's toy experiment, which replaces each
      component's standard deviation by ``sigma_i`` (same means and weights).
    Introduced in chapter 7 (slow mixing).
    """
    sigmas = [float(s) for s in torch.as_tensor(sigmas).flatten().tolist()]
    if convention == "perturbed":
        levels = [mixture.perturbed(s) for s in sigmas]
    elif convention == "code":
        levels = [GaussianMixture(mixture.means, s, mixture.weights, dtype=mixture.means.dtype) for s in sigmas]
    else:
        raise ValueError(f"convention must be 'perturbed' or 'code', got {convention!r}")

    def score_fn(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        i = int(labels[0])
        if not 0 <= i < len(levels):
            raise IndexError(f"noise level {i} is outside 0..{len(levels) - 1}")
        return levels[i].score(x).to(x.dtype)

    return score_fn
