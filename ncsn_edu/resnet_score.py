"""A residual score network for images (appendix B.1 of the paper, used for Figure 1).

The paper's network for the manifold experiment is an encoder of five residual blocks
with 32, 64, 64, 128 and 128 filters, the second and fourth halving the resolution,
followed by a mirrored decoder; ELU activations and group normalisation. It outputs a
score with the shape of its input. :class:`ResNetScore` builds that shape for any list
of five widths, so that a narrow copy (for example ``(8, 16, 16, 32, 32)``) can be
trained on a CPU with the same structure.
"""

from __future__ import annotations

import torch
from torch import nn

PAPER_WIDTHS = (32, 64, 64, 128, 128)


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    g = min(groups, channels)
    while channels % g:
        g -= 1
    return nn.GroupNorm(g, channels)


class ResidualBlock(nn.Module):
    """``x + F(x)`` with ``F`` = norm, ELU, 3x3 conv, norm, ELU, 3x3 conv.

    ``resample`` is ``None``, ``"down"`` (the first conv has stride 2) or ``"up"``
    (nearest-neighbour upsampling by 2 before the first conv). When the width or the
    resolution changes, the skip path is a 1x1 conv with the same resampling.
    """

    def __init__(self, in_ch: int, out_ch: int, resample: str | None = None, groups: int = 8):
        super().__init__()
        if resample not in (None, "down", "up"):
            raise ValueError(f"resample must be None, 'down' or 'up', got {resample!r}")
        self.resample = resample
        stride = 2 if resample == "down" else 1
        self.norm1 = _norm(in_ch, groups)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1)
        self.norm2 = _norm(out_ch, groups)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.act = nn.ELU()
        self.skip = None
        if in_ch != out_ch or resample is not None:
            self.skip = nn.Conv2d(in_ch, out_ch, 1, stride=stride)

    def _up(self, x):
        return nn.functional.interpolate(x, scale_factor=2, mode="nearest") if self.resample == "up" else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self._up(self.act(self.norm1(x))))
        h = self.conv2(self.act(self.norm2(h)))
        skip = x if self.skip is None else self.skip(self._up(x))
        return skip + h


class ResNetScore(nn.Module):
    """Score network ``s(x)`` of the paper's Figure 1 experiment.

    Parameters
    ----------
    channels: image channels (1 for MNIST, 3 for CIFAR-10).
    widths: five filter counts for the encoder blocks; blocks 2 and 4 downsample, and the
        decoder mirrors them (blocks 2 and 4 from the end upsample). The paper uses
        :data:`PAPER_WIDTHS`. Image sides must be divisible by 4.
    groups: groups of each GroupNorm (reduced where a width is not divisible).

    Inputs are pixels in ``[0, 1]``; the network rescales them to ``[-1, 1]`` itself.
    """

    def __init__(self, channels: int = 1, widths=PAPER_WIDTHS, groups: int = 8):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if len(widths) != 5 or min(widths) < 1:
            raise ValueError(f"widths must be five positive filter counts, got {widths}")
        self.channels, self.widths = channels, widths
        self.stem = nn.Conv2d(channels, widths[0], 3, padding=1)
        enc, prev = [], widths[0]
        for i, w in enumerate(widths):
            enc.append(ResidualBlock(prev, w, "down" if i in (1, 3) else None, groups))
            prev = w
        dec_widths = list(reversed(widths))  # 128, 128, 64, 64, 32 for the paper
        dec = []
        for i, w in enumerate(dec_widths):
            dec.append(ResidualBlock(prev, w, "up" if i in (1, 3) else None, groups))
            prev = w
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)
        self.head = nn.Sequential(_norm(prev, groups), nn.ELU(), nn.Conv2d(prev, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(f"expected images of shape (N, {self.channels}, H, W), got {tuple(x.shape)}")
        if x.shape[2] % 4 or x.shape[3] % 4:
            raise ValueError(f"image sides must be divisible by 4, got {tuple(x.shape[2:])}")
        h = self.stem(2 * x - 1)
        return self.head(self.decoder(self.encoder(h)))
