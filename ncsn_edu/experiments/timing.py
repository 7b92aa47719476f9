"""Measured cost of a training step, for comparing score-matching objectives.

Exact score matching needs one backward pass per data dimension for the trace of the
Jacobian; sliced score matching needs one per projection. :func:`cost_curve` measures
the wall-clock time of a full optimisation step (loss, backward, Adam update) for each
objective at several dimensions, so chapters can plot cost against dimension from a
real run instead of drawing it.
"""

from __future__ import annotations

import statistics
import time

import torch

from ncsn_edu.progress import progress_bar


def seconds_per_step(model: torch.nn.Module, loss_fn, batch: torch.Tensor, repeats: int = 3, warmup: int = 1,
                     num_threads: int | None = 1, clock: str = "wall") -> float:
    """Median seconds of one training step ``loss_fn(model, batch)`` + backward + Adam
    update, over ``repeats`` timed steps after ``warmup`` untimed ones.

    ``num_threads`` sets torch's CPU thread count for the measurement only (restored
    afterwards); one thread gives steadier timings on a shared machine. ``None`` keeps it.
    ``clock="wall"`` times elapsed (wall-clock) seconds; ``clock="cpu"`` the CPU seconds of
    this process (``time.process_time``, all its threads), which leave out the time the
    process waits while the scheduler runs other processes. On a busy shared machine a
    millisecond-sized step is held up for a whole time slice often enough to move the median
    wall time several-fold; its CPU time stays the step's own cost. ``"cpu"`` is for CPU
    models only (a GPU step's time is not CPU time). Belongs to chapter 2 (score matching);
    ``clock`` to chapter 4.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError("repeats must be positive and warmup non-negative")
    if clock not in ("wall", "cpu"):
        raise ValueError("clock must be 'wall' or 'cpu'")
    now = time.perf_counter if clock == "wall" else time.process_time
    previous = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        times = []
        for i in range(warmup + repeats):
            t0 = now()
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model, batch)
            loss.backward()
            opt.step()
            if batch.is_cuda:
                torch.cuda.synchronize()
            if i >= warmup:
                times.append(now() - t0)
    finally:
        torch.set_num_threads(previous)
    return statistics.median(times)


def cost_curve(dims, make_model, loss_fns: dict, batch_size: int = 128, repeats: int = 3, warmup: int = 1,
               generator: torch.Generator | None = None, progress: bool = False, num_threads: int | None = 1,
               clock: str = "wall") -> dict:
    """Seconds per training step of every objective in ``loss_fns`` (name -> ``loss_fn(model,
    batch)``) for each dimension in ``dims``. ``make_model(dim)`` builds a fresh model; the
    batch is standard normal of shape ``(batch_size, dim)``; ``num_threads`` and ``clock`` as
    in :func:`seconds_per_step`. Returns ``{name: [seconds, ...]}``
    in the order of ``dims``.
    Introduced in chapter 2 (score matching)."""
    dims = list(dims)
    if not dims or not loss_fns:
        raise ValueError("need at least one dimension and one objective")
    out = {name: [] for name in loss_fns}
    for dim in progress_bar(dims, enabled=progress, desc="dimensions"):
        batch = torch.randn(batch_size, dim, generator=generator)
        for name, loss_fn in loss_fns.items():
            out[name].append(seconds_per_step(make_model(dim), loss_fn, batch, repeats, warmup, num_threads, clock))
    return out
