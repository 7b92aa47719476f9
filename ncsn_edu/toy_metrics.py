"""Numbers that judge samples and learned scores on a toy mixture with known answers."""

from __future__ import annotations

import torch


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
