"""The training batches (ncsn_edu.images.batches.StepBatches): every image once an epoch,
half of them flipped, a function of the step; dequantised pixels spread uniformly over
their bins. The held-out batches (held_out_batch): the stored images, never flipped."""

from __future__ import annotations

import math

import pytest
import torch
from image_train_helpers import asymmetric_images, nearest_stored

from ncsn_edu.images.batches import StepBatches, held_out_batch


def test_dequantised_pixels_spread_uniformly_over_their_bins():
    # v/255 in the data becomes (v + u)/256 with u ~ U(0, 1): the official x*255/256 + U/256.
    values = torch.arange(256, dtype=torch.uint8).view(256, 1, 1, 1).repeat(1, 1, 4, 4)
    b = StepBatches(values, batch_size=64, seed=3, flip=False, dequantize=True)
    u, n = [], 0
    for k in range(16):  # four epochs
        x = b.batch(k).double() * 256
        v = x.mean(dim=(1, 2, 3), keepdim=True).floor()  # the constant image's value: v + the mean of 16 u's
        # every pixel of image v lies in its bin [v, v + 1]; 1e-4 allows float32's rounding of
        # (v + u) / 256 (u just below 1 can round to v + 1), whatever the random stream draws
        assert ((x - v) >= -1e-4).all() and ((x - v) <= 1 + 1e-4).all()
        u.append(x - v)
        n += x.numel()
    u = torch.cat(u)
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


@pytest.mark.parametrize("dequantize", [False, True])
def test_held_out_batches_are_the_stored_images_unflipped(dequantize):
    """Every held-out image is one of the stored images as stored: not mirrored (random images, far
    from every image's mirror), and dequantised as the training batches are, (v + u) / 256 with u in
    [0, 1), so within half a grey level of v + 1/2; without dequantisation exactly v / 255. The bounds
    hold for any draw of the random stream (1e-3 grey levels: float32's rounding)."""
    images = asymmetric_images(10)
    assert nearest_stored(images.flip(-1), images)[0].min() > 2  # a mirrored batch cannot pass for a stored one
    seen = set()
    for b in range(4):
        x = held_out_batch(images, b, 32, seed=5, dequantize=dequantize)
        assert x.shape == (32, 3, 4, 6) and x.dtype == torch.float32
        grey, tol = (x.double() * 256 - 0.5, 0.5 + 1e-3) if dequantize else (x.double() * 255, 1e-3)
        dist, idx = nearest_stored(grey, images)
        assert (dist <= tol).all(), f"batch {b}: {dist.max().item():.3f} grey levels from any stored image"
        assert torch.equal(held_out_batch(images, b, 32, seed=5, dequantize=dequantize), x)  # fixed batches
        seen.update(idx.tolist())
    assert len(seen) >= 5  # drawn from the whole set (128 draws of 10 images)
