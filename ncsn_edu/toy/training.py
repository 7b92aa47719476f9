"""A small training loop for low-dimensional score models."""

from __future__ import annotations

import torch

from ncsn_edu.progress import progress_bar


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
    lr_decay: str | None = None,
) -> list[float]:
    """Train ``model`` with Adam on fresh batches and return the loss of every step.

    ``sample_batch(batch_size)`` draws a batch of data; ``loss_fn(model, batch)`` returns
    a scalar. ``callback(step, model)`` is called before the first step and then every
    ``callback_every`` steps (for snapshots of the model during training).
    ``lr_decay="cosine"`` lowers the learning rate from ``lr`` to zero along a cosine
    over the ``n_steps`` (default ``None``: constant, as in the paper).
    Introduced in chapter 3 (sliced score matching).
    """
    if lr_decay not in (None, "cosine"):
        raise ValueError(f"lr_decay must be None or 'cosine', got {lr_decay!r}")
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(n_steps, 1)) if lr_decay else None
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
        if sched is not None:
            sched.step()
        history.append(loss.item())
        if callback is not None and callback_every and step % callback_every == 0:
            callback(step, model)
    return history


def train_toy_ncsn(
    sigmas=None,
    distribution=None,
    n_steps: int = 1500,
    batch_size: int = 256,
    lr: float = 3e-3,
    hidden: int = 64,
    condition: str = "level",
    scale_output: bool = True,
    lr_decay: str | None = "cosine",
    seed: int = 0,
    progress: bool = False,
    model=None,
):
    """Train a :class:`~ncsn_edu.toy.nets.ConditionalScoreMLP` with the paper's anneal DSM
    objective on a low-dimensional distribution; return ``(model, losses)``.

    ``distribution`` (default: the paper's toy mixture) needs ``sample(n, generator)``;
    ``sigmas`` defaults to ten levels geometric from 20 to 1 (the toy appendix). Every
    step draws a fresh batch, one random level per sample and fresh noise; ``losses`` is
    the loss of every Adam step. ``scale_output`` (on by default here, see
    :class:`~ncsn_edu.toy.nets.ConditionalScoreMLP`) makes the network predict
    ``sigma * score``; ``scale_output=False`` trains the paper's plain level-conditioned
    network. The learning rate decays to zero along a cosine by default
    (``lr_decay=None`` keeps it constant, as the paper does on images). ``seed`` seeds the
    weights (drawn without touching the global random state), the data and the noise, so a run is reproducible. Pass
    ``model`` to continue training an existing network.
    Introduced in chapter 8 (noise-conditional networks).
    """
    from ncsn_edu.schedules import geometric_sigmas
    from ncsn_edu.toy.distributions import GaussianMixture
    from ncsn_edu.toy.losses import anneal_dsm_loss
    from ncsn_edu.toy.nets import ConditionalScoreMLP

    if distribution is None:
        distribution = GaussianMixture.paper_toy()
    if model is None:
        sigmas = geometric_sigmas(20.0, 1.0, 10) if sigmas is None else torch.as_tensor(sigmas, dtype=torch.float32)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = ConditionalScoreMLP(
                sigmas, dim=distribution.dim, hidden=hidden, condition=condition, scale_output=scale_output
            )
    elif sigmas is not None and not torch.allclose(torch.as_tensor(sigmas, dtype=torch.float32), model.sigmas.cpu()):
        raise ValueError("sigmas differ from the model's own levels")
    gen = torch.Generator().manual_seed(seed + 1)
    losses = fit(
        model,
        lambda m, x: anneal_dsm_loss(m, x, m.sigmas, generator=gen),
        lambda n: distribution.sample(n, generator=gen),
        n_steps=n_steps,
        batch_size=batch_size,
        lr=lr,
        progress=progress,
        lr_decay=lr_decay,
    )
    return model, losses
