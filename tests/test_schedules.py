"""The geometric noise schedule against the paper's ten values (PAPER.md, section 5)."""

import math

import pytest
import torch

from ncsn_edu.schedules import geometric_sigmas

PAPER_IMAGE_SIGMAS = [1.0, 0.5995, 0.3594, 0.2154, 0.1292, 0.0774, 0.0464, 0.0278, 0.0167, 0.01]


def test_paper_image_schedule_matches_the_printed_values():
    s = geometric_sigmas(1.0, 0.01, 10)
    assert s.shape == (10,)
    # The paper prints four decimals: agree to rounding.
    assert torch.allclose(s, torch.tensor(PAPER_IMAGE_SIGMAS), atol=5e-5)
    assert s[0].item() == pytest.approx(1.0, abs=1e-7) and s[-1].item() == pytest.approx(0.01, rel=1e-6)


def test_defaults_are_the_paper_image_setting():
    assert torch.allclose(geometric_sigmas(), geometric_sigmas(1.0, 0.01, 10))


@pytest.mark.parametrize("begin,end,n", [(20.0, 1.0, 10), (1.0, 0.01, 10), (50.0, 0.01, 232), (3.0, 3.0, 4)])
def test_constant_ratio_and_endpoints(begin, end, n):
    s = geometric_sigmas(begin, end, n).double()
    ratios = s[1:] / s[:-1]
    expected = (end / begin) ** (1.0 / (n - 1))
    assert torch.allclose(ratios, torch.full_like(ratios, expected), rtol=1e-5)
    assert s[0].item() == pytest.approx(begin, rel=1e-5) and s[-1].item() == pytest.approx(end, rel=1e-5)
    assert bool((s[1:] <= s[:-1]).all())


def test_toy_schedule_from_20_to_1():
    # Appendix B.1: ten levels from 20 to 1; the ratio is 20^(-1/9).
    s = geometric_sigmas(20.0, 1.0, 10)
    assert s[1].item() == pytest.approx(20 * 20 ** (-1 / 9), rel=1e-5)
    assert math.isclose(float(s.prod()), math.sqrt(20.0) ** 10, rel_tol=1e-4)  # geometric mean sqrt(20)


def test_single_level():
    assert geometric_sigmas(0.5, 0.5, 1).tolist() == [0.5]


@pytest.mark.parametrize("args", [(1.0, 0.01, 0), (0.0, 0.01, 10), (1.0, -1.0, 10), (0.01, 1.0, 10)])
def test_bad_input_raises(args):
    with pytest.raises(ValueError):
        geometric_sigmas(*args)
