"""Score models whose Jacobian is known in closed form: the Gaussian family.

A Gaussian ``N(mu, P^{-1})`` has the score ``s(x) = -P (x - mu)``, a linear function of
``x`` whose Jacobian is ``-P`` everywhere. That makes it the textbook example for score
matching (Hyvarinen 2005): the objective ``E[tr(grad_x s) + 1/2 ||s||^2]`` becomes
``-tr(P) + 1/2 E[(x - mu)^T P^2 (x - mu)]``, whose minimiser is the sample mean and the
inverse of the ``1/N`` sample covariance, i.e. the maximum-likelihood estimate.

* :class:`GaussianScoreModel`: free mean and precision; ``P = L L^T`` with ``L`` lower
  triangular with a positive diagonal, so ``P`` is symmetric positive definite for every
  parameter value.
* :class:`LinearScore`: an unconstrained ``s(x) = A x + b`` (Jacobian ``A``, trace
  ``tr(A)``), used to check estimators of the Jacobian trace.
* :func:`gaussian_ml_estimate` and :func:`fit_score_matching`: the two ways of fitting
  the Gaussian, side by side.
"""

from __future__ import annotations

import torch
from torch import nn


def _check_points(x: torch.Tensor, dim: int | None = None) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 2:
        raise ValueError("x must be a tensor of shape (N, D)")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"x has {x.shape[1]} features, the model has dim={dim}")


class GaussianScoreModel(nn.Module):
    """The score of ``N(mu, P^{-1})``: ``s(x) = -(x - mu) P`` for a batch ``x`` of shape ``(N, D)``.

    Parameters are the mean ``mu`` and a lower-triangular factor ``L`` of the precision,
    ``P = L L^T``; the diagonal of ``L`` is stored as its logarithm so that ``P`` stays
    positive definite during any unconstrained optimisation. Starts at ``N(0, I)``
    unless ``mean`` and ``precision`` are given.
    Introduced in chapter 2 (score matching).
    """

    def __init__(self, dim: int, mean=None, precision=None, dtype=torch.float32):
        super().__init__()
        if int(dim) != dim or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        self.dim = int(dim)
        mean = torch.zeros(dim, dtype=dtype) if mean is None else torch.as_tensor(mean, dtype=dtype).clone()
        precision = torch.eye(dim, dtype=dtype) if precision is None else torch.as_tensor(precision, dtype=dtype)
        if mean.shape != (dim,) or precision.shape != (dim, dim):
            raise ValueError(f"mean must have shape ({dim},) and precision ({dim}, {dim})")
        chol = torch.linalg.cholesky(0.5 * (precision + precision.T))  # raises if not SPD
        self.mu = nn.Parameter(mean)
        self.log_diag = nn.Parameter(torch.log(torch.diagonal(chol)).clone())
        self.offdiag = nn.Parameter(torch.tril(chol, -1).clone())

    @property
    def factor(self) -> torch.Tensor:
        """The lower-triangular ``L`` with ``P = L L^T``."""
        return torch.tril(self.offdiag, -1) + torch.diag(torch.exp(self.log_diag))

    @property
    def precision(self) -> torch.Tensor:
        """The precision matrix ``P`` (symmetric positive definite)."""
        L = self.factor
        return L @ L.T

    @property
    def covariance(self) -> torch.Tensor:
        return torch.linalg.inv(self.precision)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_points(x, self.dim)
        return -(x - self.mu) @ self.precision  # P is symmetric: row-wise -P (x - mu)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """The normalised log-density (for comparison; score matching never needs it)."""
        _check_points(x, self.dim)
        d = x - self.mu
        logdet_p = 2 * self.log_diag.sum()
        quad = ((d @ self.precision) * d).sum(1)
        return 0.5 * logdet_p - 0.5 * quad - 0.5 * self.dim * torch.log(torch.tensor(2 * torch.pi, dtype=x.dtype))


class LinearScore(nn.Module):
    """An unconstrained linear score ``s(x) = x A^T + b`` (row-wise ``A x + b``).

    Its Jacobian is ``A`` at every point, so the exact score-matching objective is
    ``tr(A) + 1/2 mean ||A x + b||^2``: see :meth:`exact_objective`.
    Introduced in chapter 3 (sliced score matching).
    """

    def __init__(self, A, b):
        super().__init__()
        A, b = torch.as_tensor(A), torch.as_tensor(b)
        if A.ndim != 2 or A.shape[0] != A.shape[1] or b.shape != (A.shape[0],):
            raise ValueError("A must be square (D, D) and b of shape (D,)")
        self.A = nn.Parameter(A.clone())
        self.b = nn.Parameter(b.to(A.dtype).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_points(x, self.A.shape[0])
        return x @ self.A.T + self.b

    def exact_objective(self, x: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """``tr(A) + 1/2 ||A x + b||^2`` per sample, with the trace in closed form."""
        per = torch.trace(self.A) + 0.5 * (self(x) ** 2).sum(1)
        return per.mean() if reduction == "mean" else per


def gaussian_ml_estimate(x: torch.Tensor):
    """Maximum likelihood for ``N(mu, Sigma)``: the sample mean and the inverse of the
    ``1/N`` (biased) sample covariance. Returns ``(mean, precision)``.
    Introduced in chapter 2 (score matching)."""
    _check_points(x)
    if x.shape[0] <= x.shape[1]:
        raise ValueError("need more samples than dimensions for an invertible covariance")
    mean = x.mean(0)
    centred = x - mean
    cov = centred.T @ centred / x.shape[0]
    return mean, torch.linalg.inv(cov)


def fit_score_matching(model: nn.Module, x: torch.Tensor, max_iter: int = 200, tol: float = 1e-12,
                       warmup_steps: int = 500, warmup_lr: float = 0.02) -> list[float]:
    """Minimise the exact score-matching loss of ``model`` on the fixed data ``x``: full
    batch and deterministic, ``warmup_steps`` of Adam and then L-BFGS to convergence.
    Returns the objective after each L-BFGS round.

    The Adam warm-up matters for badly conditioned data: started far away, L-BFGS alone
    can stall on a plateau where one eigenvalue of the precision has collapsed (the
    gradients through ``P = L L^T`` vanish there). Suited to models with few parameters,
    like :class:`GaussianScoreModel`; use float64 for tight agreement with the
    closed-form answer.
    Introduced in chapter 2 (score matching).
    """
    from ncsn_edu.toy.losses import score_matching_loss

    if warmup_steps > 0:
        adam = torch.optim.Adam(model.parameters(), lr=warmup_lr)
        for _ in range(warmup_steps):
            adam.zero_grad()
            score_matching_loss(model, x).backward()
            adam.step()

    opt = torch.optim.LBFGS(
        model.parameters(), lr=1.0, max_iter=max_iter, tolerance_grad=tol, tolerance_change=tol,
        history_size=50, line_search_fn="strong_wolfe",
    )
    history: list[float] = []

    def closure():
        opt.zero_grad()
        loss = score_matching_loss(model, x)
        loss.backward()
        return loss

    for _ in range(5):  # a few restarts of the inner loop; each stops at convergence
        opt.step(closure)
        with torch.no_grad():
            history.append(score_matching_loss(model, x).item())
        if len(history) > 1 and abs(history[-1] - history[-2]) <= tol * max(1.0, abs(history[-1])):
            break
    return history
