"""The paper's noise-conditional score network: a dilated RefineNet with CIN++.

Section 4.2 and appendix A of Song & Ermon (2019). The network ``s(x, i)`` takes a batch
of images with pixels in ``[0, 1]`` and the index ``i`` of a noise level, and returns an
estimate of the score of the data perturbed with ``N(0, sigma_i^2 I)``, with the shape
of the images. It is built from

* **conditional instance normalisation ++** (:class:`CondInstanceNormPlus`): every
  normalisation layer carries one row of learned ``(gamma, alpha, beta)`` per noise
  level, which is how the single network is told which sigma it works at;
* **pre-activation residual blocks** (:class:`CondResBlock`, norm -> ELU -> conv, twice)
  in four stages; stage 2 halves the resolution, stages 3 and 4 keep it and dilate
  their convolutions by 2 and 4 instead (a wider view without losing resolution);
* **four refine blocks** (:class:`CondRefineBlock`) that go back up, each made of
  residual conv units, multi-resolution fusion (bilinear upsampling) and chained
  residual pooling (5x5 average pooling);
* a final norm, ELU and 3x3 convolution back to the image's channels.

With ``ngf=64`` and one channel (MNIST) it has 7,638,657 parameters and with
``ngf=128`` and three channels (CIFAR-10, CelebA) 30,117,635, the counts of the
official model; ``tests/images/test_refinenet.py`` checks both. A smaller ``ngf`` gives the
same architecture, narrower, for training on a CPU. ``conditioning="division"`` gives NCSNv2's
noise conditioning (Song & Ermon 2020, Technique 3): the same network with unconditional
normalisations, its output divided by sigma.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class CondInstanceNormPlus(nn.Module):
    """Conditional instance normalisation ++ (appendix A of the paper).

    For the noise level ``i`` and channel ``k``, with ``mu_k`` the spatial mean of
    channel ``k`` and ``m``, ``v`` the mean and the unbiased variance of the ``mu_k``
    over the channels::

        h_k = (x_k - mu_k) / sqrt(var_k + 1e-5)                   (instance norm)
        h_k = h_k + alpha[i, k] (mu_k - m) / sqrt(v + 1e-5)
        out_k = gamma[i, k] h_k + beta[i, k]

    The alpha term puts back the information about the relative brightness of the
    channels that plain instance normalisation removes (the "++"). ``gamma`` and
    ``alpha`` start at ``N(1, 0.02)`` and ``beta`` at zero; the three live in one
    embedding table of shape ``(num_classes, 3 * num_features)``.
    Belongs to chapter 10 (NCSN on MNIST).
    """

    def __init__(self, num_features: int, num_classes: int, eps: float = 1e-5):
        super().__init__()
        if num_features < 2:
            raise ValueError("CIN++ needs at least two channels (it takes a variance over channels)")
        self.num_features = num_features
        self.eps = eps
        self.embed = nn.Embedding(num_classes, 3 * num_features)
        with torch.no_grad():
            self.embed.weight[:, : 2 * num_features].normal_(1.0, 0.02)
            self.embed.weight[:, 2 * num_features :].zero_()

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        mu = x.mean(dim=(2, 3))  # (N, C)
        var = x.var(dim=(2, 3), unbiased=False)
        h = (x - mu[..., None, None]) / torch.sqrt(var[..., None, None] + self.eps)
        m = mu.mean(dim=1, keepdim=True)
        v = mu.var(dim=1, keepdim=True, unbiased=True)
        mu_tilde = (mu - m) / torch.sqrt(v + self.eps)
        gamma, alpha, beta = self.embed(labels).chunk(3, dim=1)
        h = h + (alpha * mu_tilde)[..., None, None]
        return gamma[..., None, None] * h + beta[..., None, None]


class InstanceNormPlus(nn.Module):
    """Unconditional instance normalisation ++ (NCSNv2's ``InstanceNorm2dPlus``): the layer of
    :class:`CondInstanceNormPlus` with one row of ``(gamma, alpha, beta)`` shared by every
    noise level. It takes ``labels`` and ignores them, so the blocks below use either layer.
    With it the network is unconditional and the noise level enters only through the
    division of the output by sigma (:class:`CondRefineNetDilated` with
    ``conditioning="division"``).
    Belongs to chapter 11b (NCSNv2's techniques)."""

    def __init__(self, num_features: int, num_classes: int = 1, eps: float = 1e-5):
        super().__init__()
        if num_features < 2:
            raise ValueError("IN++ needs at least two channels (it takes a variance over channels)")
        self.num_features = num_features
        self.eps = eps
        self.gamma = nn.Parameter(torch.empty(num_features).normal_(1.0, 0.02))
        self.alpha = nn.Parameter(torch.empty(num_features).normal_(1.0, 0.02))
        self.beta = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        mu = x.mean(dim=(2, 3))
        var = x.var(dim=(2, 3), unbiased=False)
        h = (x - mu[..., None, None]) / torch.sqrt(var[..., None, None] + self.eps)
        m = mu.mean(dim=1, keepdim=True)
        v = mu.var(dim=1, keepdim=True, unbiased=True)
        mu_tilde = (mu - m) / torch.sqrt(v + self.eps)
        h = h + (self.alpha * mu_tilde)[..., None, None]
        return self.gamma[:, None, None] * h + self.beta[:, None, None]


#: The normalisation layer of each way of telling the network the noise level.
NORMS = {"cin++": CondInstanceNormPlus, "division": InstanceNormPlus}


def _conv3x3(cin: int, cout: int, dilation: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation, bias=bias)


class _ConvThenPool(nn.Module):
    """A convolution followed by 2x2 average pooling (halves the resolution)."""

    def __init__(self, cin: int, cout: int, kernel_size: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, padding=kernel_size // 2)

    def forward(self, x):
        return F.avg_pool2d(self.conv(x), 2)


class CondResBlock(nn.Module):
    """Pre-activation residual block: ``x + conv(ELU(norm(conv(ELU(norm(x))))))``.

    ``downsample=True`` halves the resolution (second conv and shortcut are followed by
    2x2 average pooling). ``dilation > 1`` dilates the convolutions. ``entry=True``
    marks the first block of a stage after the first: its first convolution keeps the
    input width, and it always has a learned shortcut (a 1x1 conv when downsampling, a
    dilated 3x3 conv otherwise) whether or not the width changes, as in the official
    model. Other blocks keep the width and add the input unchanged.
    Belongs to chapter 10 (NCSN on MNIST).
    """

    def __init__(self, cin: int, cout: int, num_classes: int, dilation: int = 1,
                 downsample: bool = False, entry: bool = False, act: nn.Module | None = None,
                 norm=CondInstanceNormPlus):
        super().__init__()
        if downsample and dilation != 1:
            raise ValueError("a block either downsamples or dilates, not both")
        if not entry and (downsample or cin != cout):
            raise ValueError("only the entry block of a stage downsamples or changes the width")
        self.act = act if act is not None else nn.ELU()
        mid = cin if entry else cout
        self.norm1 = norm(cin, num_classes)
        self.conv1 = _conv3x3(cin, mid, dilation)
        self.norm2 = norm(mid, num_classes)
        if downsample:
            self.conv2 = _ConvThenPool(mid, cout, 3)
            self.shortcut = _ConvThenPool(cin, cout, 1)
        else:
            self.conv2 = _conv3x3(mid, cout, dilation)
            self.shortcut = _conv3x3(cin, cout, dilation) if entry else None

    def forward(self, x, labels):
        h = self.conv1(self.act(self.norm1(x, labels)))
        h = self.conv2(self.act(self.norm2(h, labels)))
        skip = x if self.shortcut is None else self.shortcut(x)
        return skip + h


class CondRCU(nn.Module):
    """Residual conv units: ``n_blocks`` times ``x + (norm -> ELU -> conv) x n_stages``.

    The convolutions have no bias (the normalisation that follows carries one).
    Belongs to chapter 10 (NCSN on MNIST)."""

    def __init__(self, channels: int, num_classes: int, n_blocks: int, n_stages: int = 2, act=None,
                 norm=CondInstanceNormPlus):
        super().__init__()
        self.act = act if act is not None else nn.ELU()
        self.norms = nn.ModuleList(
            nn.ModuleList(norm(channels, num_classes) for _ in range(n_stages))
            for _ in range(n_blocks)
        )
        self.convs = nn.ModuleList(
            nn.ModuleList(_conv3x3(channels, channels, bias=False) for _ in range(n_stages))
            for _ in range(n_blocks)
        )

    def forward(self, x, labels):
        for norms, convs in zip(self.norms, self.convs):
            h = x
            for norm, conv in zip(norms, convs):
                h = conv(self.act(norm(h, labels)))
            x = x + h
        return x


class CondMultiResFusion(nn.Module):
    """Multi-resolution fusion: norm and 3x3 conv per input, bilinear upsampling to the
    largest resolution, sum.
    Belongs to chapter 10 (NCSN on MNIST)."""

    def __init__(self, in_channels: list[int], channels: int, num_classes: int, norm=CondInstanceNormPlus):
        super().__init__()
        self.norms = nn.ModuleList(norm(c, num_classes) for c in in_channels)
        self.convs = nn.ModuleList(_conv3x3(c, channels) for c in in_channels)

    def forward(self, xs, labels, size):
        out = 0
        for x, norm, conv in zip(xs, self.norms, self.convs):
            h = conv(norm(x, labels))
            out = out + F.interpolate(h, size=size, mode="bilinear", align_corners=True)
        return out


class CondChainedResPool(nn.Module):
    """Chained residual pooling: after an ELU, a chain of (norm -> 5x5 average pool ->
    conv) whose every output is added to the input.
    Belongs to chapter 10 (NCSN on MNIST)."""

    def __init__(self, channels: int, num_classes: int, n_stages: int = 2, act=None, norm=CondInstanceNormPlus):
        super().__init__()
        self.act = act if act is not None else nn.ELU()
        self.norms = nn.ModuleList(norm(channels, num_classes) for _ in range(n_stages))
        self.convs = nn.ModuleList(_conv3x3(channels, channels, bias=False) for _ in range(n_stages))

    def forward(self, x, labels):
        x = self.act(x)
        path = x
        for norm, conv in zip(self.norms, self.convs):
            path = conv(F.avg_pool2d(norm(path, labels), 5, stride=1, padding=2))
            x = x + path
        return x


class CondRefineBlock(nn.Module):
    """One refine block: an RCU pair on every input, fusion of the inputs (when there
    are several), chained residual pooling and output RCUs (three in the last block).
    Belongs to chapter 10 (NCSN on MNIST)."""

    def __init__(self, in_channels: list[int], channels: int, num_classes: int, last: bool = False, act=None,
                 norm=CondInstanceNormPlus):
        super().__init__()
        act = act if act is not None else nn.ELU()
        self.adapt = nn.ModuleList(CondRCU(c, num_classes, n_blocks=2, act=act, norm=norm) for c in in_channels)
        self.fuse = CondMultiResFusion(in_channels, channels, num_classes, norm) if len(in_channels) > 1 else None
        if self.fuse is None and in_channels[0] != channels:
            raise ValueError("a refine block with one input keeps its width")
        self.pool = CondChainedResPool(channels, num_classes, act=act, norm=norm)
        self.out = CondRCU(channels, num_classes, n_blocks=3 if last else 1, act=act, norm=norm)

    def forward(self, xs, labels, size):
        hs = [rcu(x, labels) for rcu, x in zip(self.adapt, xs)]
        h = hs[0] if self.fuse is None else self.fuse(hs, labels, size)
        return self.out(self.pool(h, labels), labels)


class CondRefineNetDilated(nn.Module):
    """The NCSN score network ``s(x, i)`` (see the module docstring).

    Parameters
    ----------
    in_channels: channels of the images (1 for MNIST, 3 for CIFAR-10 and CelebA).
    ngf: base width; the paper uses 64 for MNIST and 128 otherwise.
    num_classes: number of noise levels ``L`` (10 in the paper).
    image_size: side of the square images (28 or 32 in the paper; any even size works).
    conditioning: how the network is told the noise level. ``"cin++"`` (the paper's): every
        normalisation carries a row of parameters per level (:class:`CondInstanceNormPlus`).
        ``"division"`` (NCSNv2's Technique 3): the normalisations are unconditional
        (:class:`InstanceNormPlus`) and the output of the unconditional network is divided by
        the level's sigma, ``s(x, sigma_i) = s(x) / sigma_i``; it needs ``sigmas``, which the
        network keeps as a buffer (saved with its weights).

    ``forward(x, labels)`` takes ``x`` of shape ``(N, in_channels, image_size,
    image_size)`` with pixels in ``[0, 1]`` (it rescales them to ``[-1, 1]`` itself)
    and ``labels``, a ``LongTensor`` of shape ``(N,)`` with noise-level indices in
    ``[0, num_classes)``; it returns the estimated scores, of the shape of ``x``.
    Introduced in chapter 10 (NCSN on MNIST).
    """

    def __init__(self, in_channels: int = 1, ngf: int = 64, num_classes: int = 10, image_size: int = 28,
                 conditioning: str = "cin++", sigmas=None):
        super().__init__()
        if in_channels < 1 or ngf < 2 or num_classes < 1:
            raise ValueError("in_channels >= 1, ngf >= 2 and num_classes >= 1 are required")
        if image_size < 4 or image_size % 2:
            raise ValueError(f"image_size must be even (the network halves it once), got {image_size}")
        if conditioning not in NORMS:
            raise ValueError(f"conditioning must be one of {', '.join(NORMS)}, got {conditioning!r}")
        if conditioning == "division":
            if sigmas is None or len(sigmas) != num_classes:
                raise ValueError(f"conditioning='division' needs the {num_classes} sigmas of the levels")
            self.register_buffer("sigmas", torch.as_tensor(sigmas, dtype=torch.float32).clone())
        elif sigmas is not None:
            raise ValueError("sigmas are only used with conditioning='division'")
        self.in_channels, self.ngf = in_channels, ngf
        self.num_classes, self.image_size, self.conditioning = num_classes, image_size, conditioning
        self.act = act = nn.ELU()
        norm = NORMS[conditioning]
        L, w, w2 = num_classes, ngf, 2 * ngf
        self.begin_conv = nn.Conv2d(in_channels, w, 3, padding=1)
        # Encoder: four stages of two residual blocks.
        self.stage1 = nn.ModuleList([CondResBlock(w, w, L, act=act, norm=norm),
                                     CondResBlock(w, w, L, act=act, norm=norm)])
        self.stage2 = nn.ModuleList([CondResBlock(w, w2, L, downsample=True, entry=True, act=act, norm=norm),
                                     CondResBlock(w2, w2, L, act=act, norm=norm)])
        self.stage3 = nn.ModuleList([CondResBlock(w2, w2, L, dilation=2, entry=True, act=act, norm=norm),
                                     CondResBlock(w2, w2, L, dilation=2, act=act, norm=norm)])
        self.stage4 = nn.ModuleList([CondResBlock(w2, w2, L, dilation=4, entry=True, act=act, norm=norm),
                                     CondResBlock(w2, w2, L, dilation=4, act=act, norm=norm)])
        # Decoder: refine blocks from the deepest stage back to the first.
        self.refine1 = CondRefineBlock([w2], w2, L, act=act, norm=norm)
        self.refine2 = CondRefineBlock([w2, w2], w2, L, act=act, norm=norm)
        self.refine3 = CondRefineBlock([w2, w2], w, L, act=act, norm=norm)
        self.refine4 = CondRefineBlock([w, w], w, L, last=True, act=act, norm=norm)
        self.end_norm = norm(w, L)
        self.end_conv = nn.Conv2d(w, in_channels, 3, padding=1)

    def _check(self, x, labels):
        if x.dim() != 4 or x.shape[1] != self.in_channels or tuple(x.shape[2:]) != (self.image_size,) * 2:
            raise ValueError(
                f"expected images of shape (N, {self.in_channels}, {self.image_size}, {self.image_size}), "
                f"got {tuple(x.shape)}"
            )
        if not isinstance(labels, torch.Tensor) or labels.dtype != torch.long or labels.shape != (x.shape[0],):
            raise ValueError(f"labels must be a LongTensor of shape ({x.shape[0]},) with noise-level indices")
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(f"labels must lie in [0, {self.num_classes})")

    def first_conv(self, x: torch.Tensor) -> torch.Tensor:
        """The input convolution of ``2x - 1``, in fp32 even under autocast: at sigma = 0.01 the
        noise is a few thousandths of a pixel, about the rounding step of bf16 near 1, so a bf16
        input loses much of what the smallest level must see (on the book's MNIST model the
        sigma = 0.01 loss rose by 6%; precision.level_agreement measures it)."""
        with torch.autocast(x.device.type, enabled=False):
            return self.begin_conv((2.0 * x - 1.0).to(self.begin_conv.weight.dtype))

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self._check(x, labels)
        h = self.first_conv(x)
        feats = []
        for stage in (self.stage1, self.stage2, self.stage3, self.stage4):
            for block in stage:
                h = block(h, labels)
            feats.append(h)
        f1, f2, f3, f4 = feats
        r = self.refine1([f4], labels, f4.shape[2:])
        r = self.refine2([f3, r], labels, f3.shape[2:])
        r = self.refine3([f2, r], labels, f2.shape[2:])
        r = self.refine4([f1, r], labels, f1.shape[2:])
        out = self.end_conv(self.act(self.end_norm(r, labels)))
        if self.conditioning == "division":  # s(x, sigma_i) = s(x) / sigma_i
            out = out / self.sigmas[labels].view(-1, 1, 1, 1).to(out.dtype)
        return out


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters of ``model``.
    Introduced in chapter 10 (NCSN on MNIST)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
