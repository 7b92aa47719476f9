"""Score networks for low-dimensional (toy) data."""

from __future__ import annotations

import torch
from torch import nn


class ScoreMLP(nn.Module):
    """The paper's toy score model (appendix B.1): an MLP ``D-128-128-D`` with softplus."""

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
