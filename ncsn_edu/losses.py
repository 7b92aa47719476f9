"""Score matching objectives (paper section 2.1 and appendix B).

Every loss takes a score model and a batch and returns a scalar (or per-sample values
with ``reduction="none"``). Score models are callables: ``score_fn(x)`` for the
unconditional losses and ``score_fn(x, labels)`` for the noise-conditional one, where
``labels`` holds one noise-level index per sample.
"""

from __future__ import annotations

import math

import torch


def _reduce(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "none":
        return per_sample
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def score_matching_loss(score_fn, x: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Hyvarinen's implicit score matching, ``E[tr(grad_x s(x)) + 1/2 ||s(x)||^2]``.

    The trace of the Jacobian costs one backward pass per data dimension, which is why
    this objective does not scale to images. ``x`` has shape ``(N, D)``.
    """
    x = x.detach().requires_grad_(True)
    s = score_fn(x)
    trace = torch.zeros(x.shape[0], dtype=s.dtype, device=s.device)
    for d in range(x.shape[1]):
        (grad,) = torch.autograd.grad(s[:, d].sum(), x, create_graph=True)
        trace = trace + grad[:, d]
    return _reduce(trace + 0.5 * (s**2).sum(1), reduction)


def sample_projections(n: int, dim: int, kind: str = "gaussian", generator=None, device=None, dtype=None):
    """``n`` random projection directions with ``E[v v^T] = I``.

    ``kind``: ``"gaussian"`` (standard normal), ``"rademacher"`` (entries +-1) or
    ``"sphere"`` (uniform on the sphere of radius ``sqrt(dim)``).
    """
    v = torch.randn(n, dim, generator=generator, device=device, dtype=dtype)
    if kind == "gaussian":
        return v
    if kind == "rademacher":
        return torch.sign(v) + (v == 0).to(v.dtype)
    if kind == "sphere":
        return v / v.norm(dim=1, keepdim=True) * math.sqrt(dim)
    raise ValueError(f"unknown projection kind {kind!r}: use 'gaussian', 'rademacher' or 'sphere'")


def sliced_score_matching_loss(
    score_fn,
    x: torch.Tensor,
    n_projections: int = 1,
    projection: str = "gaussian",
    variance_reduced: bool = False,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Sliced score matching (Song et al. 2019), ``E[v^T grad_x(v^T s) + 1/2 (v^T s)^2]``.

    With ``variance_reduced=True`` the second term is replaced by its expectation over
    ``v``, ``1/2 ||s||^2`` (exact since ``E[v v^T] = I``). ``x`` may have any shape
    ``(N, ...)``; projections act on the flattened features. One backward pass is needed
    whatever the dimension. Returns the mean over samples and projections.
    """
    n = x.shape[0]
    xr = x.detach().repeat_interleave(n_projections, dim=0).requires_grad_(True)
    flat_dim = xr[0].numel()
    v = sample_projections(xr.shape[0], flat_dim, projection, generator, xr.device, xr.dtype).view_as(xr)
    s = score_fn(xr)
    vs = (v * s).flatten(1).sum(1)
    (grad_vs,) = torch.autograd.grad(vs.sum(), xr, create_graph=True)
    term1 = (grad_vs * v).flatten(1).sum(1)
    term2 = 0.5 * (s**2).flatten(1).sum(1) if variance_reduced else 0.5 * vs**2
    per = (term1 + term2).view(n, n_projections).mean(1)
    return _reduce(per, reduction)


def dsm_loss(
    score_fn,
    x: torch.Tensor,
    sigma: float,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Denoising score matching at one noise level (Vincent 2011).

    ``1/2 || s(x + sigma z) + z / sigma ||^2`` summed over features and averaged over the
    batch. Its minimiser is the score of the data convolved with ``N(0, sigma^2 I)``.
    """
    z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    s = score_fn(x + sigma * z)
    return _reduce(0.5 * ((s + z / sigma) ** 2).flatten(1).sum(1), reduction)


def anneal_dsm_loss(
    score_fn,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    labels: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """The paper's noise-conditional objective (equations 5-6).

    Each sample gets one random level ``i`` (or the given ``labels``), is perturbed to
    ``x~ = x + sigma_i z`` and the network ``score_fn(x~, labels)`` is regressed on
    ``-(x~ - x) / sigma_i^2``. The per-sample loss is half the squared error summed over
    features, weighted by ``lambda(sigma_i) = sigma_i^2``; the batch mean is returned.
    """
    sigmas = torch.as_tensor(sigmas, device=x.device, dtype=x.dtype)
    if labels is None:
        labels = torch.randint(0, len(sigmas), (x.shape[0],), generator=generator, device=x.device)
    used = sigmas[labels].view(x.shape[0], *([1] * (x.ndim - 1)))
    z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    perturbed = x + used * z
    target = -(perturbed - x) / used**2
    s = score_fn(perturbed, labels)
    per = 0.5 * ((s - target) ** 2).flatten(1).sum(1) * used.flatten() ** 2
    return _reduce(per, reduction)
