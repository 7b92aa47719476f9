"""Score matching objectives (paper section 2.1 and appendix B).

Every loss takes a score model and a batch and returns a scalar (or per-sample values
with ``reduction="none"``). Score models are callables: ``score_fn(x)`` for the
unconditional losses and ``score_fn(x, labels)`` for the noise-conditional one, where
``labels`` holds one noise-level index per sample.
"""

from __future__ import annotations

import math

import torch


def _randn(shape, generator, device, dtype) -> torch.Tensor:
    """Standard normal noise on ``device``. A generator lives on one device; when it is
    not the target device (a CPU generator with a CUDA batch) the noise is drawn where
    the generator lives and moved, so that seeded runs work on any device."""
    if generator is not None and device is not None and torch.device(generator.device) != torch.device(device):
        return torch.randn(shape, generator=generator, device=generator.device, dtype=dtype).to(device)
    return torch.randn(shape, generator=generator, device=device, dtype=dtype)


def _randint(high, n, generator, device) -> torch.Tensor:
    """``n`` integers uniform in ``0..high-1`` on ``device`` (same device rule as ``_randn``)."""
    if generator is not None and torch.device(generator.device) != torch.device(device):
        return torch.randint(0, high, (n,), generator=generator, device=generator.device).to(device)
    return torch.randint(0, high, (n,), generator=generator, device=device)


def _check_batch(x) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or x.shape[0] == 0:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a non-empty batch of shape (N, ...) with at least 2 dims, got {shape}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")


def _check_score(s, x) -> None:
    if not isinstance(s, torch.Tensor) or s.shape != x.shape:
        shape = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
        raise ValueError(f"the score model must return a tensor shaped like its input {tuple(x.shape)}, got {shape}")


def _reduce(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "none":
        return per_sample
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def score_matching_loss(score_fn, x: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Hyvarinen's implicit score matching, ``E[tr(grad_x s(x)) + 1/2 ||s(x)||^2]``.

    The trace of the Jacobian costs one backward pass per data dimension, which is why
    this objective does not scale to images. ``x`` has shape ``(N, D)`` (or ``(N, ...)``,
    with ``D`` the number of features per sample).
    Introduced in chapter 2 (score matching).
    """
    _check_batch(x)
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        s = score_fn(x)
        _check_score(s, x)
        s_flat = s.flatten(1)
        trace = torch.zeros(x.shape[0], dtype=s.dtype, device=s.device)
        for d in range(s_flat.shape[1]):
            (grad,) = torch.autograd.grad(s_flat[:, d].sum(), x, create_graph=True)
            trace = trace + grad.flatten(1)[:, d]
        return _reduce(trace + 0.5 * (s_flat**2).sum(1), reduction)


def sample_projections(n: int, dim: int, kind: str = "gaussian", generator=None, device=None, dtype=None):
    """``n`` random projection directions with ``E[v v^T] = I``.

    ``kind``: ``"gaussian"`` (standard normal), ``"rademacher"`` (entries +-1) or
    ``"sphere"`` (uniform on the sphere of radius ``sqrt(dim)``).
    Introduced in chapter 3 (sliced score matching).
    """
    if kind not in ("gaussian", "rademacher", "sphere"):
        raise ValueError(f"unknown projection kind {kind!r}: use 'gaussian', 'rademacher' or 'sphere'")
    if device is None and generator is not None:
        device = generator.device
    v = _randn((n, dim), generator, device, dtype)
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
    Introduced in chapter 3 (sliced score matching).
    """
    _check_batch(x)
    if int(n_projections) != n_projections or n_projections < 1:
        raise ValueError(f"n_projections must be a positive integer, got {n_projections!r}")
    n = x.shape[0]
    with torch.enable_grad():
        xr = x.detach().repeat_interleave(n_projections, dim=0).requires_grad_(True)
        flat_dim = xr[0].numel()
        v = sample_projections(xr.shape[0], flat_dim, projection, generator, xr.device, xr.dtype).view_as(xr)
        s = score_fn(xr)
        _check_score(s, xr)
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
    Introduced in chapter 4 (denoising score matching).
    """
    _check_batch(x)
    if not bool((torch.as_tensor(sigma) > 0).all()):  # a float, or a tensor broadcastable to x
        raise ValueError(f"sigma must be positive, got {sigma!r}")
    z = _randn(x.shape, generator, x.device, x.dtype)
    s = score_fn(x + sigma * z)
    _check_score(s, x)
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
    Introduced in chapter 4 (denoising score matching).
    """
    _check_batch(x)
    sigmas = torch.as_tensor(sigmas, device=x.device, dtype=x.dtype).flatten()
    if len(sigmas) == 0 or not bool((sigmas > 0).all()):
        raise ValueError("sigmas must be a non-empty list of positive noise levels")
    if labels is None:
        labels = _randint(len(sigmas), x.shape[0], generator, x.device)
    else:
        labels = torch.as_tensor(labels, device=x.device)
        if labels.shape != (x.shape[0],) or labels.is_floating_point():
            raise ValueError(f"labels must be {x.shape[0]} integer level indices, got shape {tuple(labels.shape)}")
        if bool(((labels < 0) | (labels >= len(sigmas))).any()):
            raise ValueError(f"labels must lie in 0..{len(sigmas) - 1}")
        labels = labels.long()
    used = sigmas[labels].view(x.shape[0], *([1] * (x.ndim - 1)))
    z = _randn(x.shape, generator, x.device, x.dtype)
    perturbed = x + used * z
    target = -(perturbed - x) / used**2
    s = score_fn(perturbed, labels)
    _check_score(s, x)
    per = 0.5 * ((s - target) ** 2).flatten(1).sum(1) * used.flatten() ** 2
    return _reduce(per, reduction)
