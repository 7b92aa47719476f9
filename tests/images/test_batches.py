"""The training batches (ncsn_edu.images.batches.StepBatches): every image once an epoch,
half of them flipped, a function of the step; dequantised pixels spread uniformly over
their bins."""

from __future__ import annotations

import math

import torch

from ncsn_edu.images.batches import StepBatches


def test_dequantised_pixels_spread_uniformly_over_their_bins():
    # v/255 in the data becomes (v + u)/256 with u ~ U(0, 1): the official x*255/256 + U/256.
    values = torch.arange(256, dtype=torch.uint8).view(256, 1, 1, 1).repeat(1, 1, 4, 4)
    b = StepBatches(values, batch_size=64, seed=3, flip=False, dequantize=True)
    u, n = [], 0
    for k in range(16):  # four epochs
        x = b.batch(k)
        v = (x * 256).floor()  # the bin a pixel fell in
        assert ((v == v[:, :, :1, :1]).all())  # every pixel of image v stays in bin v
        u.append(x * 256 - v)
        n += x.numel()
    u = torch.cat(u)
    assert u.min() >= 0 and u.max() < 1
    se = math.sqrt(1 / 12 / n)  # standard error of the mean of U(0, 1)
    assert abs(u.mean().item() - 0.5) < 5 * se
    assert abs(u.var().item() - 1 / 12) < 0.01
    plain = StepBatches(values, batch_size=64, seed=3, flip=False, dequantize=False).batch(0)
    assert torch.equal(plain * 255, (plain * 255).round())  # without it: exactly v/255


def test_step_batches_visit_every_image_once_per_epoch_and_flip_half():
    images = torch.arange(20, dtype=torch.uint8).view(20, 1, 1, 1).repeat(1, 1, 2, 3)
    images[:, :, :, 0] = 0  # a left column of zeros makes a flip visible
    b = StepBatches(images, batch_size=5, seed=1, flip=True, dequantize=False)
    seen = torch.cat([b.batch(k) for k in range(4)])  # one epoch
    ids = (seen.amax(dim=(1, 2, 3)) * 255).round().long()
    assert sorted(ids.tolist()) == list(range(20))
    assert torch.equal(b.batch(2), StepBatches(images, 5, 1, True, False).batch(2))  # a function of the step
    assert torch.equal(torch.cat([b.batch(7, 0, 1)]), torch.cat([b.batch(7, r, 5) for r in range(5)]))
    flipped = [(b.batch(k)[:, 0, 0, 0] > 0) for k in range(400)]
    frac = torch.cat(flipped).float().mean().item()
    assert 0.45 < frac < 0.55  # about half the images are mirrored (2000 draws)
    b0 = StepBatches(images, batch_size=5, seed=1, flip=False, dequantize=False)
    assert all((b0.batch(k)[:, 0, 0, 0] == 0).all() for k in range(10))
