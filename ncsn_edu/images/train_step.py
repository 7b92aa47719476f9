"""One training step of the image trainer, as a function over explicit state (chapter 12).

The training state is a dict ``{"model", "optimizer", "step"}`` (and ``"ema"``, an
:class:`EMA` of the weights, when the run keeps one);
:func:`make_step_fn` returns ``step_fn(state, x, generator)``, which draws the noise
levels and the Gaussian noise of the global batch from ``generator``, takes this
process's share, computes the annealed denoising score matching loss (``lambda(sigma) =
sigma^2``), takes one optimiser step, updates the EMA and advances ``state["step"]``. The
trainer's loop does nothing else to the model (the pattern of score_sde's step functions).
"""

from __future__ import annotations

import copy
from typing import Callable, NamedTuple

import torch

from ncsn_edu.images import seeding


class EMA:
    """An exponential moving average of a network's parameters (NCSNv2's Technique 5; the
    official ``models/ema.py``): after every optimiser step each parameter's average becomes

        ema <- rate * ema + (1 - rate) * theta

    starting from the initial weights. ``rate = 0`` follows the weights exactly; NCSNv2 uses
    0.999 (an average over about the last 1,000 steps). Buffers (such as the sigmas of a
    division network) are not averaged: :meth:`state_dict` takes them from the network.
    The averages are float32 tensors beside the weights; :meth:`state_dict` and
    :meth:`load_state_dict` save and restore them bit for bit, so a resumed run continues the
    same average.
    Used by the training command (chapter 10, NCSN on MNIST)."""

    def __init__(self, model: torch.nn.Module, rate: float):
        if not 0 <= rate < 1:
            raise ValueError(f"the EMA rate must lie in [0, 1), got {rate}")
        self.rate = float(rate)
        self.model = model
        self.params = dict(model.named_parameters())
        self.shadow = {k: p.detach().clone() for k, p in self.params.items()}

    @torch.no_grad()
    def update(self) -> None:
        """One step of the average, from the network's current weights."""
        for k, p in self.params.items():
            self.shadow[k].mul_(self.rate).add_(p.detach(), alpha=1.0 - self.rate)

    def state_dict(self) -> dict:
        """The averaged network's state dict: the averages in place of the parameters, the
        network's own buffers beside them (it loads into a network of the same kind)."""
        out = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        out.update({k: v.clone() for k, v in self.shadow.items()})
        return out

    def load_state_dict(self, state: dict) -> None:
        for k in self.shadow:
            self.shadow[k].copy_(state[k])

    def averaged_model(self) -> torch.nn.Module:
        """A copy of the network carrying the averages (for sampling and evaluation)."""
        net = copy.deepcopy(self.model)
        net.load_state_dict(self.state_dict())
        return net


def draw_noise(generator: torch.Generator, n_sigmas: int, shape):
    """Noise-level indices and standard normal noise for a batch of ``shape``, in this
    order from ``generator`` (every process draws the whole global batch).
    Used by the training command (chapter 10, NCSN on MNIST)."""
    labels = torch.randint(0, n_sigmas, (shape[0],), generator=generator, device=generator.device)
    z = torch.randn(shape, generator=generator, device=generator.device)
    return labels, z


def step_noise(step: int, shape, n_sigmas: int, seed: int, device, stream: int = seeding.NOISE):
    """The noise-level indices and standard normal noise of step ``step`` for the whole
    global batch (every process draws the same and takes its share).
    Used by the training command (chapter 10, NCSN on MNIST)."""
    return draw_noise(seeding.generator(seed, stream, step, device=device), n_sigmas, shape)


def dsm_per_sample(model, x: torch.Tensor, labels: torch.Tensor, z: torch.Tensor, sigmas: torch.Tensor,
                   autocast=None) -> torch.Tensor:
    """Per-sample annealed DSM loss with given levels and noise: the same quantity as
    :func:`ncsn_edu.toy.losses.anneal_dsm_loss` with ``reduction="none"`` (a test checks it),
    with the network optionally run under ``autocast``; the loss is formed in fp32.
    Used by the training command (chapter 10, NCSN on MNIST)."""
    used = sigmas[labels].view(-1, *([1] * (x.ndim - 1)))
    perturbed = x + used * z
    target = -z / used  # = -(perturbed - x) / sigma^2
    if autocast is not None:
        with autocast():
            s = model(perturbed, labels)
    else:
        s = model(perturbed, labels)
    s = s.float()
    return 0.5 * ((s - target) ** 2).flatten(1).sum(1) * used.flatten() ** 2


class StepResult(NamedTuple):
    """What one step reports: the mean loss, each sample's loss and its noise level.
    Used by the training command (chapter 10, NCSN on MNIST)."""

    loss: torch.Tensor
    per_sample: torch.Tensor
    labels: torch.Tensor


def make_step_fn(sigmas: torch.Tensor, global_batch: int, share: slice = slice(None), autocast=None,
                 prepare: Callable = lambda t: t) -> Callable:
    """``step_fn(state, x, generator) -> StepResult`` for batches ``x`` that are this
    process's ``share`` of a global batch of ``global_batch`` images.

    ``autocast`` (a context factory or None) runs the network in low precision; a
    ``torch.amp.GradScaler`` in ``state["scaler"]`` (fp16) scales the backward pass;
    ``prepare`` puts the noise in the network's memory format. An :class:`EMA` in
    ``state["ema"]`` is updated after the optimiser step.
    Used by the training command (chapter 10, NCSN on MNIST).
    """

    def step_fn(state: dict, x: torch.Tensor, generator: torch.Generator) -> StepResult:
        labels, z = draw_noise(generator, len(sigmas), (global_batch, *x.shape[1:]))
        labels, z = labels[share], prepare(z[share])
        per = dsm_per_sample(state["model"], x, labels, z, sigmas, autocast)
        loss = per.mean()
        opt, scaler = state["optimizer"], state.get("scaler")
        opt.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            opt.step()
        else:  # fp16: scaled backward; the step is skipped when a gradient overflowed
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        if state.get("ema") is not None:
            state["ema"].update()
        state["step"] += 1
        return StepResult(loss.detach(), per.detach(), labels)

    return step_fn
