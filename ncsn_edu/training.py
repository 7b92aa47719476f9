"""A small training loop for low-dimensional score models."""

from __future__ import annotations

import torch
from .progress import progress_bar


def fit(
    model: torch.nn.Module,
    loss_fn,
    sample_batch,
    n_steps: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    progress: bool = False,
    callback=None,
    callback_every: int = 0,
) -> list[float]:
    """Train ``model`` with Adam on fresh batches and return the loss of every step.

    ``sample_batch(batch_size)`` draws a batch of data; ``loss_fn(model, batch)`` returns
    a scalar. ``callback(step, model)`` is called before the first step and then every
    ``callback_every`` steps (for snapshots of the model during training).
    """
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    if callback is not None:
        callback(0, model)
    for step in progress_bar(range(1, n_steps + 1), enabled=progress, desc="training"):
        loss = loss_fn(model, sample_batch(batch_size))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append(loss.item())
        if callback is not None and callback_every and step % callback_every == 0:
            callback(step, model)
    return history
