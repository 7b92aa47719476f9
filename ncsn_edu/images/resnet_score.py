"""The residual score network of the paper's Figure 1 (appendix B.1; ``ResScore`` in the
authors' code, ``models/scorenet.py``).

An encoder of five residual blocks with 32, 64, 64, 128 and 128 filters, the second and
fourth halving the resolution, then a decoder that mirrors it with transposed
convolutions, ELU activations and GroupNorm with 8 groups. Each block computes
``act(F(x) + skip(x))`` with ``F`` = 3x3 conv, norm, ELU, 3x3 conv, norm: the activation
comes after the sum ("post-activation"), and the skip path is the identity, or a 3x3
(transposed) convolution with stride 2 where the resolution changes. The last layer is a
plain 3x3 convolution back to the image channels. Inputs in ``[0, 1]`` are rescaled to
``[-1, 1]`` first. With 3 channels and the paper's widths it has 1,379,651 parameters,
the authors' count; :func:`load_official_state_dict` loads the authors' weights.

:class:`ResNetScore` takes any five widths of the same pattern (``w1 == w2`` and
``w3 == w4``, because blocks that keep the resolution add their input unchanged), so
that a narrow copy such as ``(8, 16, 16, 32, 32)`` trains on a CPU with the same
structure; for widths not divisible by 8 the number of norm groups is reduced.
"""

from __future__ import annotations

import re

import torch
from torch import nn

PAPER_WIDTHS = (32, 64, 64, 128, 128)
#: Parameters of the authors' ResScore at CIFAR-10 size (3 channels, nef = ndf = 32).
PAPER_N_PARAMS = 1_379_651


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    g = min(groups, channels)
    while channels % g:
        g -= 1
    return nn.GroupNorm(g, channels)


class ResidualBlock(nn.Module):
    """``ELU(F(x) + skip(x))`` with ``F`` = 3x3 conv, norm, ELU, 3x3 conv, norm.

    ``resample`` is ``None`` (identity skip; needs ``in_ch == out_ch``), ``"down"`` (the
    first conv and the skip conv have stride 2) or ``"up"`` (transposed convolutions; the
    second conv and the skip conv double the resolution). Decoder blocks (``"up"`` or
    ``transposed=True``) use transposed convolutions throughout, as the authors' code.
    """

    def __init__(self, in_ch: int, out_ch: int, resample: str | None = None, groups: int = 8,
                 transposed: bool = False):
        super().__init__()
        if resample not in (None, "down", "up"):
            raise ValueError(f"resample must be None, 'down' or 'up', got {resample!r}")
        if resample is None and in_ch != out_ch:
            raise ValueError(f"a block that keeps the resolution adds its input: in_ch {in_ch} != out_ch {out_ch}")
        self.resample = resample
        self.transposed = transposed = transposed or resample == "up"
        if transposed:
            up = dict(stride=2, padding=1, output_padding=1) if resample == "up" else dict(stride=1, padding=1)
            self.conv1 = nn.ConvTranspose2d(in_ch, out_ch, 3, stride=1, padding=1)
            self.conv2 = nn.ConvTranspose2d(out_ch, out_ch, 3, **up)
            self.skip = nn.ConvTranspose2d(in_ch, out_ch, 3, **up) if resample == "up" else None
        else:
            stride = 2 if resample == "down" else 1
            self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1)
            self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
            self.skip = nn.Conv2d(in_ch, out_ch, 3, stride=2, padding=1) if resample == "down" else None
        self.norm1 = _norm(out_ch, groups)
        self.norm2 = _norm(out_ch, groups)
        self.act = nn.ELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm2(self.conv2(self.act(self.norm1(self.conv1(x)))))
        return self.act(h + (x if self.skip is None else self.skip(x)))


class ResNetScore(nn.Module):
    """Score network ``s(x)`` of the paper's Figure 1 experiment (the authors' ResScore).

    Parameters
    ----------
    channels: image channels (1 for MNIST, 3 for CIFAR-10; the authors' code fixes 3).
    widths: the five encoder blocks' filter counts ``(w0, w1, w2, w3, w4)`` with
        ``w1 == w2`` and ``w3 == w4``; blocks 2 and 4 downsample. Decoder block ``j``
        mirrors encoder block ``4 - j`` (its output width is that block's input width).
        The paper uses :data:`PAPER_WIDTHS`. Image sides must be divisible by 4.
    groups: groups of each GroupNorm (reduced where a width is not divisible).

    Inputs are pixels in ``[0, 1]``; the network rescales them to ``[-1, 1]`` itself.
    """

    def __init__(self, channels: int = 1, widths=PAPER_WIDTHS, groups: int = 8):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if len(widths) != 5 or min(widths) < 1:
            raise ValueError(f"widths must be five positive filter counts, got {widths}")
        if widths[1] != widths[2] or widths[3] != widths[4]:
            raise ValueError(f"widths must have w1 == w2 and w3 == w4 (like 32, 64, 64, 128, 128), got {widths}")
        self.channels, self.widths = channels, widths
        self.stem = nn.Conv2d(channels, widths[0], 3, padding=1)
        ins = (widths[0],) + widths[:4]  # each encoder block's input width
        down = (None, "down", None, "down", None)
        self.encoder = nn.Sequential(*[ResidualBlock(ins[i], widths[i], down[i], groups) for i in range(5)])
        self.decoder = nn.Sequential(*[
            ResidualBlock(widths[i], ins[i], "up" if down[i] else None, groups, transposed=True)
            for i in reversed(range(5))])
        self.head = nn.Conv2d(widths[0], channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(f"expected images of shape (N, {self.channels}, H, W), got {tuple(x.shape)}")
        if x.shape[2] % 4 or x.shape[3] % 4:
            raise ValueError(f"image sides must be divisible by 4, got {tuple(x.shape[2:])}")
        return self.head(self.decoder(self.encoder(self.stem(2 * x - 1))))


# Where the authors' parameter names (a Sequential ``convs`` of the stem conv and five
# blocks, a Sequential ``deconvs`` of five blocks and the last conv; inside a block a
# Sequential ``main`` of conv, norm, act, conv, norm and a ``residual`` conv) land here.
_BLOCK_PARTS = {"main.0": "conv1", "main.1": "norm1", "main.3": "conv2", "main.4": "norm2", "residual": "skip"}


def official_key(name: str) -> str:
    """Our parameter name for the authors' ResScore parameter ``name`` (a leading
    ``module.`` from DataParallel is dropped). Raises ``KeyError`` for unknown names."""
    name = name[len("module."):] if name.startswith("module.") else name
    m = re.fullmatch(r"(convs|deconvs)\.(\d+)\.(?:(main\.\d|residual)\.)?(weight|bias)", name)
    if m:
        seq, i, part, leaf = m.group(1), int(m.group(2)), m.group(3), m.group(4)
        if part is None and seq == "convs" and i == 0:
            return f"stem.{leaf}"
        if part is None and seq == "deconvs" and i == 5:
            return f"head.{leaf}"
        if part in _BLOCK_PARTS:
            if seq == "convs" and 1 <= i <= 5:
                return f"encoder.{i - 1}.{_BLOCK_PARTS[part]}.{leaf}"
            if seq == "deconvs" and 0 <= i <= 4:
                return f"decoder.{i}.{_BLOCK_PARTS[part]}.{leaf}"
    raise KeyError(f"{name!r} is not a parameter of the authors' ResScore")


def load_official_state_dict(model: ResNetScore, state: dict) -> ResNetScore:
    """Load the authors' ResScore weights (their parameter names, with or without
    DataParallel's ``module.`` prefix) into ``model``; every parameter must be matched."""
    mapped = {official_key(k): v for k, v in state.items()}
    model.load_state_dict(mapped, strict=True)
    return model
