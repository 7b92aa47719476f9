"""Score networks for low-dimensional (toy) data."""

from __future__ import annotations

import torch
from torch import nn


class ScoreMLP(nn.Module):
    """The paper's toy score model (appendix B.1): an MLP ``D-128-128-D`` with softplus.
    Introduced in chapter 2 (score matching)."""

    def __init__(self, dim: int = 2, hidden: int = 128, n_hidden: int = 2):
        super().__init__()
        layers, width = [], dim
        for _ in range(n_hidden):
            layers += [nn.Linear(width, hidden), nn.Softplus()]
            width = hidden
        layers.append(nn.Linear(width, dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConditionalScoreMLP(nn.Module):
    """A noise-conditional score network ``s_theta(x, sigma_i)`` for low-dimensional data.

    The same softplus MLP as :class:`ScoreMLP`, with every hidden layer modulated by the
    noise level: ``h <- softplus(gamma_i * (W h + b) + beta_i)``, one scale ``gamma`` and
    one shift ``beta`` per hidden unit and level (a one-dimensional cousin of the
    conditional normalisation in the paper's image network). Call it as
    ``model(x, labels)`` with ``labels`` a ``LongTensor`` of level indices into
    ``sigmas``, exactly like the sampler and :func:`ncsn_edu.toy.losses.anneal_dsm_loss` do.

    ``condition`` chooses where ``gamma, beta`` come from:

    * ``"level"`` (the paper's code): a learned table with one row per level, so the
      network knows nothing about levels it was not trained on.
    * ``"sigma"``: a small MLP of ``log sigma``, so the network is a smooth function of
      sigma and can be evaluated between (or beyond) the training levels with
      :meth:`score_at`.

    ``scale_output=True`` divides the MLP's output by ``sigma``: the MLP then only has
    to predict ``sigma * score``, which is of order one at every level (it estimates
    ``-E[z | x~]``), instead of spanning the factor ``sigma_1^2 / sigma_L^2`` between
    the scores' sizes at the top and at the bottom. This is *not* in the NCSN paper (its
    networks are conditioned by level only; the follow-up paper, Song & Ermon 2020,
    introduced the rescaling); it makes toy training several times faster and more
    accurate. ``scale_output=False`` gives the paper's purely level-conditioned network.
    Introduced in chapter 8 (noise-conditional networks).
    """

    def __init__(
        self,
        sigmas,
        dim: int = 2,
        hidden: int = 128,
        n_hidden: int = 2,
        condition: str = "level",
        scale_output: bool = False,
    ):
        super().__init__()
        sigmas = torch.as_tensor(sigmas, dtype=torch.float32).flatten()
        if sigmas.numel() < 1 or (sigmas <= 0).any():
            raise ValueError("sigmas must be a non-empty list of positive noise levels")
        if condition not in ("level", "sigma"):
            raise ValueError(f"condition must be 'level' or 'sigma', got {condition!r}")
        if n_hidden < 1 or hidden < 1 or dim < 1:
            raise ValueError("dim, hidden and n_hidden must be at least 1")
        self.register_buffer("sigmas", sigmas)
        self.condition, self.hidden, self.n_hidden = condition, hidden, n_hidden
        self.scale_output = bool(scale_output)
        widths = [dim] + [hidden] * n_hidden
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.out = nn.Linear(hidden, dim)
        n_mod = 2 * hidden * n_hidden  # gamma and beta for every hidden unit
        if condition == "level":
            self.embed = nn.Embedding(len(sigmas), n_mod)
            with torch.no_grad():  # start as the unconditional MLP: gamma = 1, beta = 0
                self.embed.weight.zero_()
                self.embed.weight[:, : hidden * n_hidden] = 1.0
        else:
            self.embed = nn.Sequential(nn.Linear(1, hidden), nn.Softplus(), nn.Linear(hidden, n_mod))
            with torch.no_grad():
                self.embed[2].weight.mul_(0.1)
                self.embed[2].bias.zero_()
                self.embed[2].bias[: hidden * n_hidden] = 1.0

    @property
    def n_levels(self) -> int:
        return len(self.sigmas)

    def _modulation(self, labels=None, sigma=None):
        if self.condition == "level":
            return self.embed(labels)
        if sigma is None:
            sigma = self.sigmas[labels]
        return self.embed(torch.log(sigma).view(-1, 1))

    def _forward(self, x: torch.Tensor, mod: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        k = self.hidden * self.n_hidden
        gamma = mod[:, :k].view(-1, self.n_hidden, self.hidden)
        beta = mod[:, k:].view(-1, self.n_hidden, self.hidden)
        h = x
        for j, lin in enumerate(self.linears):
            h = nn.functional.softplus(gamma[:, j] * lin(h) + beta[:, j])
        out = self.out(h)
        return out / sigma.view(-1, 1).to(out.dtype) if self.scale_output else out

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        labels = torch.as_tensor(labels, dtype=torch.long, device=x.device)
        if labels.ndim == 0:
            labels = labels.expand(x.shape[0])
        if labels.shape != (x.shape[0],):
            raise ValueError(f"need one level index per sample: x has {x.shape[0]}, labels {tuple(labels.shape)}")
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.n_levels):
            raise ValueError(f"level indices must lie in 0..{self.n_levels - 1}")
        return self._forward(x, self._modulation(labels=labels), self.sigmas[labels])

    def score_at(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """The score at any noise level ``sigma`` (a float or one value per sample).

        Only for ``condition="sigma"``; a level-indexed network has no notion of a sigma
        between its levels (use ``model(x, labels)``).
        """
        if self.condition != "sigma":
            raise ValueError("score_at needs condition='sigma'; a level-conditioned net only knows its levels")
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        if (sigma <= 0).any():
            raise ValueError("sigma must be positive")
        sigma = sigma.expand(x.shape[0]) if sigma.ndim == 0 else sigma
        return self._forward(x, self._modulation(sigma=sigma), sigma)

    def level_score(self, level: int):
        """The score function ``x -> s_theta(x, sigma_level)`` at one fixed level
        (for plotting the field or for plain Langevin at a single level)."""
        if not 0 <= level < self.n_levels:
            raise ValueError(f"level must lie in 0..{self.n_levels - 1}")
        return lambda x: self(x, torch.full((x.shape[0],), level, dtype=torch.long, device=x.device))


class DividedScoreMLP(nn.Module):
    """NCSNv2's noise conditioning by division (Song & Ermon 2020, Technique 3) for
    low-dimensional data: ``s_theta(x, sigma) = f_theta(x) / sigma`` with ``f_theta`` the
    *unconditional* softplus MLP :class:`ScoreMLP`. The network never sees the level; only the
    output is divided by it, so it can be evaluated at any ``sigma`` (:meth:`score_at`), between or
    beyond the levels it was trained on. Call it as ``model(x, labels)`` with one level index into
    ``sigmas`` per sample, like :class:`ConditionalScoreMLP` (the sampler and
    :func:`ncsn_edu.toy.losses.anneal_dsm_loss` call it so).

    With ``hidden=81`` it has 7,049 parameters, as many as the level-conditioned
    ``ConditionalScoreMLP(sigmas, hidden=64)`` on ten levels (7,042).
    Introduced in chapter 11b (NCSNv2's techniques).
    """

    def __init__(self, sigmas, dim: int = 2, hidden: int = 128, n_hidden: int = 2):
        super().__init__()
        sigmas = torch.as_tensor(sigmas, dtype=torch.float32).flatten()
        if sigmas.numel() < 1 or (sigmas <= 0).any():
            raise ValueError("sigmas must be a non-empty list of positive noise levels")
        self.register_buffer("sigmas", sigmas)
        self.net = ScoreMLP(dim=dim, hidden=hidden, n_hidden=n_hidden)

    @property
    def n_levels(self) -> int:
        return len(self.sigmas)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        labels = torch.as_tensor(labels, dtype=torch.long, device=x.device)
        if labels.ndim == 0:
            labels = labels.expand(x.shape[0])
        if labels.shape != (x.shape[0],):
            raise ValueError(f"need one level index per sample: x has {x.shape[0]}, labels {tuple(labels.shape)}")
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.n_levels):
            raise ValueError(f"level indices must lie in 0..{self.n_levels - 1}")
        return self.score_at(x, self.sigmas[labels])

    def score_at(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """The score at any noise level ``sigma`` (a float or one value per sample): ``f(x) / sigma``."""
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        if (sigma <= 0).any():
            raise ValueError("sigma must be positive")
        sigma = sigma.expand(x.shape[0]) if sigma.ndim == 0 else sigma
        out = self.net(x)
        return out / sigma.view(-1, 1).to(out.dtype)

    def level_score(self, level: int):
        """The score function ``x -> s_theta(x, sigma_level)`` at one fixed level."""
        if not 0 <= level < self.n_levels:
            raise ValueError(f"level must lie in 0..{self.n_levels - 1}")
        return lambda x: self(x, torch.full((x.shape[0],), level, dtype=torch.long, device=x.device))


def model_at(result: dict, step: int) -> ScoreMLP:
    """The network as it was at training step ``step`` (a key of ``result["snapshots"]``).
    Introduced in chapter 6 (low-density scores)."""
    if step not in result["snapshots"]:
        raise KeyError(f"no snapshot at step {step}; have {sorted(result['snapshots'])}")
    model = ScoreMLP()
    model.load_state_dict(result["snapshots"][step])
    return model.eval()
