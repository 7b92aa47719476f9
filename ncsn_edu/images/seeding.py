"""Seeds of the image trainer and sampler: every random draw is a pure function of
``(seed, stream, step)``.

Training step ``k`` draws its images, flips, dequantisation noise, noise levels and
Gaussian noise from generators seeded by ``mix_seeds(seed, stream, k)``, never from a
global random state. That is what makes a resumed run repeat an uninterrupted one bit
for bit (chapter 12), and what lets every process of a multi-GPU run draw the same
global batch and take its share.
"""

from __future__ import annotations

import torch

# The streams: one per kind of draw, so that no two kinds ever share a generator.
INIT = 0  #: the network's initial weights
ORDER = 1  #: the order of the training images in an epoch
BATCH = 2  #: flips and dequantisation noise of a training batch
NOISE = 3  #: noise levels and Gaussian noise of a training step
TEST_IMAGES = 4  #: which test images a held-out loss uses
TEST_NOISE = 5  #: their noise levels and noise
GRID = 6  #: the sample grids written during training
SHARD = 7  #: the sample shards of ``ncsn_edu.sample_images``
INPAINT = 8  #: the test images ``ncsn_edu.sample_images inpaint`` occludes
SYNTHETIC = 9  #: the synthetic images of ``ncsn_edu.benchmark``


def mix_seeds(*ints: int) -> int:
    """A 63-bit seed from several integers (distinct streams for distinct tuples).
    Used by the training command (chapter 10, NCSN on MNIST)."""
    h = 0x9E3779B97F4A7C15
    for i in ints:
        h = (h ^ (int(i) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


def generator(*ints: int, device="cpu") -> torch.Generator:
    """A generator on ``device`` seeded by ``mix_seeds(*ints)``, e.g.
    ``generator(seed, NOISE, step)``.
    Used by the training command (chapter 10, NCSN on MNIST)."""
    return torch.Generator(device=device).manual_seed(mix_seeds(*ints))


def seeded_model(factory, seed: int, *args, **kwargs) -> torch.nn.Module:
    """``factory(*args, **kwargs)`` with its parameters initialised from ``(seed, INIT)``;
    the global random state is left as it was.
    Used by the training command (chapter 10, NCSN on MNIST)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(mix_seeds(seed, INIT))
        return factory(*args, **kwargs)
