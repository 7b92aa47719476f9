"""A quality number for MNIST samples that passes a sanity check (chapters 11 and 13).

The number is the **confident share**: the fraction of images that the book's digit
classifier reads with confidence (largest class probability) at least a threshold, 0.99
by default, reported with the **class balance** (the largest deviation of a predicted
class's share from 10%). A per-image number has a spread over the generated images that
a bootstrap over them measures (:func:`bootstrap`), and two sets of the *same* images
before and after a change (noise, blur) are compared image by image (:func:`paired_difference`).

Before it ranks samplers, a quality number must order sets as a person would: real test
digits above the same digits with Gaussian noise of standard deviation 0.05, 0.1 and 0.2
(in that order) and above the same digits blurred, and blotchy samples well below all of
them. :func:`degraded_copies` makes those sets; chapter 11 prints the table and
``tests/images/test_quality.py`` checks the ordering.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

#: the noise levels and the blur of the sanity check
NOISE_LEVELS = (0.05, 0.1, 0.2)
BLUR_PIXELS = 1.0


def gaussian_noise(images: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """``images + sigma z`` with ``z ~ N(0, I)``, clamped to ``[0, 1]`` like every sample shown.
    Introduced in chapter 11 (MNIST inpainting and sample quality)."""
    if sigma < 0:
        raise ValueError("sigma must be non-negative")
    return (images + sigma * torch.randn(images.shape, generator=generator)).clamp(0, 1)


def gaussian_blur(images: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Images ``(N, C, H, W)`` convolved with a Gaussian of standard deviation ``sigma_px``
    pixels (separable, truncated at 3 standard deviations, normalised to sum 1, zeros
    outside the image, which is MNIST's background).
    Introduced in chapter 11 (MNIST inpainting and sample quality)."""
    if sigma_px <= 0:
        raise ValueError("sigma_px must be positive")
    r = max(1, int(np.ceil(3 * sigma_px)))
    k = torch.exp(-torch.arange(-r, r + 1, dtype=images.dtype) ** 2 / (2 * sigma_px**2))
    k = k / k.sum()
    c = images.shape[1]
    x = F.conv2d(F.pad(images, (r, r, 0, 0)), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r)), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def degraded_copies(real: torch.Tensor, generator: torch.Generator | None = None) -> dict:
    """``{name: images}``: ``real`` itself, with noise of each of :data:`NOISE_LEVELS`, and
    blurred by :data:`BLUR_PIXELS`: the sets that a quality number must order, in the order
    a person would rank them (real first; the blur is ranked only below real).
    Introduced in chapter 11 (MNIST inpainting and sample quality)."""
    out = {"real test digits": real}
    for s in NOISE_LEVELS:
        out[f"+ noise sigma = {s:g}"] = gaussian_noise(real, s, generator)
    out[f"blurred ({BLUR_PIXELS:g} pixel)"] = gaussian_blur(real, BLUR_PIXELS)
    return out


@torch.no_grad()
def readings(classifier, images: torch.Tensor, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """``(confidence, predicted class)`` of each image: the classifier's largest class
    probability and its class.
    Introduced in chapter 11 (MNIST inpainting and sample quality)."""
    classifier.eval()
    probs = torch.cat([torch.softmax(classifier(images[i : i + batch_size].float()), dim=1)
                       for i in range(0, len(images), batch_size)])
    conf, pred = probs.max(1)
    return conf, pred


def confident_share(confidence, threshold: float = 0.99) -> float:
    """Fraction of images read with confidence at least ``threshold``.
    Introduced in chapter 11 (MNIST inpainting and sample quality)."""
    return float((torch.as_tensor(confidence) >= threshold).double().mean())


def class_deviation(predictions, num_classes: int = 10) -> float:
    """Largest ``|share of a class - 1/num_classes|`` over the predicted classes.
    Introduced in chapter 11 (MNIST inpainting and sample quality)."""
    p = torch.as_tensor(predictions).long()
    share = torch.bincount(p, minlength=num_classes)[:num_classes].double() / len(p)
    return float((share - 1 / num_classes).abs().max())


def bootstrap(statistic, *per_image, n_boot: int = 200, generator: torch.Generator | None = None) -> np.ndarray:
    """``statistic`` of ``n_boot`` resamples (with replacement) of the images: each argument
    in ``per_image`` is a per-image tensor of the same length, resampled with the same indices.
    The standard deviation of the result is the spread of ``statistic`` over generated sets
    of the same size from the same sampler.
    Introduced in chapter 11 (MNIST inpainting and sample quality)."""
    n = len(per_image[0])
    if any(len(v) != n for v in per_image) or n < 2:
        raise ValueError("per-image arguments must have one common length of at least 2")
    out = []
    for _ in range(n_boot):
        idx = torch.randint(n, (n,), generator=generator)
        out.append(statistic(*(torch.as_tensor(v)[idx] for v in per_image)))
    return np.array(out)


def paired_difference(before, after, threshold: float = 0.99) -> tuple[float, float]:
    """Confident share of ``before`` minus that of ``after``, two confidence vectors of the
    *same* images (e.g. real digits and their noisy copies), with its standard error
    ``sd(d) / sqrt(n)`` over the per-image differences ``d`` (each -1, 0 or 1).
    Introduced in chapter 11 (MNIST inpainting and sample quality)."""
    a, b = torch.as_tensor(before), torch.as_tensor(after)
    if a.shape != b.shape or a.dim() != 1 or len(a) < 2:
        raise ValueError("before and after must be confidence vectors of the same images")
    d = (a >= threshold).double() - (b >= threshold).double()
    return float(d.mean()), float(d.std() / len(d) ** 0.5)


def quality(confidence, predictions, threshold: float = 0.99, n_boot: int = 200,
            generator: torch.Generator | None = None) -> dict:
    """The confident share and the class balance of a set of images from their
    :func:`readings` (``confidence`` and ``predictions``), each with its bootstrap spread
    over the images (standard deviation of ``n_boot`` resamples): ``{"n", "confident",
    "confident_sd", "deviation", "deviation_sd"}``.
    Introduced in chapter 11 (MNIST inpainting and sample quality)."""
    conf, pred = torch.as_tensor(confidence), torch.as_tensor(predictions)
    share = bootstrap(lambda c: confident_share(c, threshold), conf, n_boot=n_boot, generator=generator)
    dev = bootstrap(class_deviation, pred, n_boot=n_boot, generator=generator)
    return {"n": len(conf), "confident": confident_share(conf, threshold), "confident_sd": float(share.std(ddof=1)),
            "deviation": class_deviation(pred), "deviation_sd": float(dev.std(ddof=1))}
