"""The geometry of Gaussian noise behind a noise ladder (ncsn_edu.toy.noise_scales, chapter 8)
against samples: the length of sigma z, and the overlap of neighbouring levels' shells."""

import math

import pytest
import torch

from ncsn_edu.toy.noise_scales import noise_norm_moments, ratio_for_shell_overlap, shell_overlap


def test_noise_norm_moments_match_samples():
    g = torch.Generator().manual_seed(3)
    for dim in (2, 784):
        r = (0.3 * torch.randn(20_000, dim, generator=g, dtype=torch.float64)).norm(dim=1)
        mean, std = noise_norm_moments(0.3, dim)
        assert abs(r.mean().item() - mean) < 4 * std / math.sqrt(20_000)
        assert r.std().item() == pytest.approx(std, rel=0.03)
    m, s = noise_norm_moments(1.0, 3072)
    assert m == pytest.approx(math.sqrt(3072), rel=1e-3) and s == pytest.approx(1 / math.sqrt(2), rel=1e-3)


def test_shell_overlap_is_the_chance_of_landing_in_the_larger_levels_shell():
    # CIFAR-10's dimension; the follow-up paper's ladder (50 -> 0.01 in 232 levels) and the NCSN one (1 -> 0.01 in 10)
    dim, n = 3072, 6000
    z_norm = torch.randn(n, dim, generator=torch.Generator().manual_seed(4)).norm(dim=1).double()
    for gamma in ((50 / 0.01) ** (1 / 231), 1 / 0.5995):
        lo, hi = math.sqrt(dim) * gamma - 3 * gamma / math.sqrt(2), math.sqrt(dim) * gamma + 3 * gamma / math.sqrt(2)
        measured = ((z_norm >= lo) & (z_norm <= hi)).double().mean().item()
        c = shell_overlap(gamma, dim)
        assert abs(measured - c) < 4 * math.sqrt(max(c * (1 - c), 1e-4) / n) + 1e-3, (gamma, measured, c)
    assert shell_overlap((50 / 0.01) ** (1 / 231), dim) == pytest.approx(0.567, abs=0.005)
    assert shell_overlap(1 / 0.5995, dim) < 1e-12


def test_ratio_for_shell_overlap_inverts_the_overlap():
    for dim in (784, 3072):
        gamma = ratio_for_shell_overlap(dim, 0.5)
        assert gamma > 1 and shell_overlap(gamma, dim) == pytest.approx(0.5, abs=1e-6)
    assert ratio_for_shell_overlap(784) > ratio_for_shell_overlap(3072)  # more dimensions, finer ladder
    assert ratio_for_shell_overlap(2) == math.inf  # in 2D the criterion never falls to 0.5
