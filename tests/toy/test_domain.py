"""The toy chapters' square [-lim, lim]^2: its grid and the uniform starts of their samplers."""

import math

import pytest
import torch

from ncsn_edu.toy.domain import grid, uniform_starts


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_uniform_starts_are_the_chapters_inline_draw_to_the_bit(dtype):
    # the chapters drew their starts as torch.rand(n, 2, ...) * 16 - 8 before uniform_starts
    x = uniform_starts(5000, generator=torch.Generator().manual_seed(3), dtype=dtype)
    inline = torch.rand(5000, 2, generator=torch.Generator().manual_seed(3), dtype=dtype) * 16 - 8
    assert x.dtype == dtype and x.shape == (5000, 2)
    assert torch.equal(x, inline)
    other = uniform_starts(5000, 2.5, generator=torch.Generator().manual_seed(3), dtype=dtype)
    u = torch.rand(5000, 2, generator=torch.Generator().manual_seed(3), dtype=dtype)
    assert torch.equal(other, (u * 2 - 1) * 2.5)


@pytest.mark.parametrize("lim", [8.0, 30.0])
def test_uniform_starts_are_uniform_on_the_square(lim):
    n = 100_000
    x = uniform_starts(n, lim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert x.min() >= -lim and x.max() < lim
    # Uniform(-lim, lim): mean 0, variance lim^2 / 3, fourth moment lim^4 / 5
    var = lim**2 / 3
    se_mean = math.sqrt(var / n)
    se_var = math.sqrt((lim**4 / 5 - var**2) / n)
    assert (x.mean(0).abs() < 4 * se_mean).all()
    assert ((x.pow(2).mean(0) - var).abs() < 4 * se_var).all()
    # each quarter of the square holds a quarter of the points, and the two coordinates are independent
    quarter = ((x[:, 0] > 0) & (x[:, 1] > 0)).double().mean().item()
    assert abs(quarter - 0.25) < 4 * math.sqrt(0.25 * 0.75 / n)


def test_uniform_starts_follow_the_generator_and_reject_bad_arguments():
    a = uniform_starts(10, generator=torch.Generator().manual_seed(1))
    b = uniform_starts(10, generator=torch.Generator().manual_seed(1))
    c = uniform_starts(10, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.dtype == torch.float32
    assert uniform_starts(0).shape == (0, 2)
    with pytest.raises(ValueError):
        uniform_starts(-1)
    with pytest.raises(ValueError):
        uniform_starts(10, lim=0.0)


def test_grid_covers_the_square_in_row_major_order():
    X, Y, pts = grid(8.0, 5)
    assert pts.shape == (25, 2)
    assert torch.equal(pts[:5, 0], torch.linspace(-8, 8, 5)) and (pts[:5, 1] == -8).all()
    assert torch.equal(pts[:, 0].reshape(5, 5), X) and torch.equal(pts[:, 1].reshape(5, 5), Y)
