"""Closed-form results that the Part I chapters measure against.

* :func:`langevin_stationary_variance`: the variance at which *unadjusted* Langevin
  dynamics with a finite step settles on a Gaussian (chapter 1's discretisation bias).
* :func:`sliced_estimator_variances` and :func:`vr_variance_gain`: the variance, over the
  projection, of the one-projection sliced score matching estimator at one point, in its
  plain and variance-reduced forms (chapter 3).
* :func:`sliced_gradient_variances`: the variance, over the projection, of the *gradient with
  respect to the parameters* of that estimator for a linear score (chapter 3).
"""

from __future__ import annotations

import torch


def langevin_stationary_variance(step_size, variance=1.0):
    """Stationary variance of ``x <- x + eps/2 * s(x) + sqrt(eps) z`` per coordinate when
    ``s`` is the exact score of ``N(mu, variance I)``.

    The update is ``x - mu <- (1 - eps / (2 v)) (x - mu) + sqrt(eps) z``, an AR(1) process
    whose variance ``V`` solves ``V = (1 - eps/(2v))^2 V + eps``, so
    ``V = eps / (1 - (1 - eps/(2v))^2) = v / (1 - eps / (4 v))``: larger than ``v`` for every
    ``eps > 0`` (for ``v = 1`` and ``eps = 1`` it is 4/3). The chain diverges for
    ``eps >= 4 v``. Works elementwise on tensors.
    Introduced in chapter 1 (scores and Langevin dynamics).
    """
    eps = torch.as_tensor(step_size, dtype=torch.float64)
    v = torch.as_tensor(variance, dtype=torch.float64)
    if bool((eps <= 0).any()) or bool((v <= 0).any()):
        raise ValueError("step_size and variance must be positive")
    if bool((eps >= 4 * v).any()):
        raise ValueError("unadjusted Langevin diverges on a Gaussian of variance v when step_size >= 4 v")
    return v / (1 - eps / (4 * v))


def _batch(score, jacobian):
    s = torch.as_tensor(score)
    J = torch.as_tensor(jacobian, dtype=s.dtype)
    if s.ndim == 1:
        s = s[None]
    if J.ndim == 2:
        J = J.expand(s.shape[0], *J.shape)
    if s.ndim != 2 or J.shape != (s.shape[0], s.shape[1], s.shape[1]):
        raise ValueError("score must be (N, D) or (D,) and jacobian (N, D, D) or (D, D); "
                         f"got {tuple(s.shape)}, {tuple(J.shape)}")
    return s, J


def vr_variance_gain(score, jacobian) -> torch.Tensor:
    """``Var(plain) - Var(VR)`` of the one-projection sliced score matching estimator at a
    point with score ``s`` and Jacobian ``J = grad_x s``, for a standard normal projection:
    ``1/2 ||s||^4 + 2 s^T J s``.

    Derivation: the two estimators are ``t + 1/2 (v^T s)^2`` and ``t + 1/2 ||s||^2`` with
    ``t = v^T J v``. For ``v ~ N(0, I)``, ``Var((v^T s)^2) = 2 ||s||^4`` and
    ``Cov(v^T J v, (v^T s)^2) = 2 s^T J s``, so the difference of the variances is
    ``1/4 * 2 ||s||^4 + 2 * 1/2 * 2 s^T J s``. It is negative wherever ``s^T J s < -||s||^4/4``,
    for instance near a mode, where the score is small and the Jacobian negative definite.
    ``score``: ``(N, D)`` or ``(D,)``; ``jacobian``: ``(N, D, D)`` or one ``(D, D)`` for all.
    Returns shape ``(N,)``.
    Belongs to chapter 3 (sliced score matching).
    """
    s, J = _batch(score, jacobian)
    sq = (s**2).sum(1)
    return 0.5 * sq**2 + 2 * torch.einsum("ni,nij,nj->n", s, J, s)


def sliced_estimator_variances(score, jacobian):
    """The variances ``(plain, vr)`` over ``v ~ N(0, I)`` of the one-projection sliced score
    matching estimators ``v^T J v + 1/2 (v^T s)^2`` (plain) and ``v^T J v + 1/2 ||s||^2``
    (variance-reduced) at points with score ``s`` and Jacobian ``J``.

    ``Var(v^T J v) = 2 tr(S^2)`` with ``S = (J + J^T) / 2`` (only the symmetric part enters a
    quadratic form); ``plain = vr + vr_variance_gain``. Shapes as in :func:`vr_variance_gain`.
    Introduced in chapter 3 (sliced score matching).
    """
    s, J = _batch(score, jacobian)
    sym = 0.5 * (J + J.transpose(1, 2))
    vr = 2 * (sym**2).sum((1, 2))
    return vr + vr_variance_gain(s, J), vr


def sliced_gradient_variances(A, b, x):
    """Total variances ``(plain, vr)`` over ``v ~ N(0, I)`` of the gradient with respect to the
    parameters ``(A, b)`` of the one-projection sliced score matching estimator, at each point
    ``x``, for the linear score ``s(x) = A x + b`` (:class:`~ncsn_edu.toy.gaussian_models.LinearScore`).
    "Total" is the sum of the variances of all ``D^2 + D`` gradient entries (the trace of
    their covariance).

    The plain estimator ``v^T A v + 1/2 (v^T s)^2`` has the gradients ``v v^T + (v^T s) v x^T``
    (for ``A``) and ``(v^T s) v`` (for ``b``); the VR one, ``v^T A v + 1/2 ||s||^2``, has
    ``v v^T + s x^T`` and ``s``, whose only randomness is ``v v^T``. With Isserlis' theorem,
    ``E ||v||^4 = D (D + 2)``, ``E[(v^T s)(v^T x) ||v||^2] = (D + 2) s^T x`` and
    ``E[(v^T s)^2 ||v||^2] = (D + 2) ||s||^2``, which give

    ``vr = D (D + 1)`` and ``plain = D (D + 1) + (D + 1) (2 s^T x + ||s||^2 (1 + ||x||^2))``.

    ``x``: ``(N, D)`` or ``(D,)``. Returns two tensors of shape ``(N,)``.
    Belongs to chapter 3 (sliced score matching).
    """
    A = torch.as_tensor(A)
    b = torch.as_tensor(b, dtype=A.dtype)
    x = torch.as_tensor(x, dtype=A.dtype)
    if x.ndim == 1:
        x = x[None]
    D = A.shape[0]
    if A.shape != (D, D) or b.shape != (D,) or x.ndim != 2 or x.shape[1] != D:
        raise ValueError(f"need A (D, D), b (D,) and x (N, D); got {tuple(A.shape)}, {tuple(b.shape)}, "
                         f"{tuple(x.shape)}")
    s = x @ A.T + b
    vr = torch.full((x.shape[0],), float(D * (D + 1)), dtype=A.dtype)
    plain = vr + (D + 1) * (2 * (s * x).sum(1) + (s**2).sum(1) * (1 + (x**2).sum(1)))
    return plain, vr
