"""How noisy a stochastic loss's gradient with respect to the parameters is.

Training follows the gradient of the loss with respect to the parameters, not the loss's
value, so the variance that matters for an estimator such as sliced score matching is that
of the gradient. :func:`gradient_draws` collects the flattened gradient of repeated
evaluations of a random loss; :func:`gradient_variance` summarises them by the trace of
their covariance (the sum of the per-parameter variances) with its standard error.
Introduced in chapter 3 (sliced score matching).
"""

from __future__ import annotations

import math

import torch


def gradient_draws(model: torch.nn.Module, loss_fn, n_draws: int) -> torch.Tensor:
    """The gradient of ``loss_fn(model)`` with respect to ``model``'s parameters, flattened,
    for ``n_draws`` independent evaluations: shape ``(n_draws, n_parameters)``.

    ``loss_fn`` carries its own randomness (its projections, its noise, its minibatch), for
    instance through a ``generator`` it closes over; what varies between the draws is exactly
    what the caller lets vary. The model's stored gradients are left untouched.
    Introduced in chapter 3 (sliced score matching).
    """
    if int(n_draws) != n_draws or n_draws < 2:
        raise ValueError(f"n_draws must be an integer of at least 2, got {n_draws!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    rows = []
    for _ in range(int(n_draws)):
        grads = torch.autograd.grad(loss_fn(model), params, allow_unused=True)
        rows.append(torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads)]))
    return torch.stack(rows)


def gradient_variance(model: torch.nn.Module, loss_fn, n_draws: int) -> dict:
    """Summary of ``n_draws`` gradients of ``loss_fn(model)`` (see :func:`gradient_draws`):

    * ``total``: the trace of the gradients' covariance, ``E ||g - E g||^2`` (unbiased,
      the sum over parameters of each gradient entry's variance);
    * ``se``: its standard error, from the spread of the per-draw squared deviations;
    * ``mean_norm``: the length of the mean gradient, ``||mean g||``, the signal that the
      noise is to be compared with.

    Introduced in chapter 3 (sliced score matching).
    """
    g = gradient_draws(model, loss_fn, n_draws).to(torch.float64)
    n = g.shape[0]
    mean = g.mean(0)
    dev2 = ((g - mean) ** 2).sum(1) * n / (n - 1)
    return {"total": dev2.mean().item(), "se": dev2.std().item() / math.sqrt(n), "mean_norm": mean.norm().item()}
