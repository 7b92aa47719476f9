"""The geometric noise schedule against the paper's ten values (PAPER.md, section 5), and NCSNv2's rules for
sigma_1, the ratio between levels and the last level's step (Song & Ermon 2020) against closed forms and the
official configs (ermongroup/ncsnv2, configs/*.yml)."""

import math

import pytest
import torch

from ncsn_edu.schedules import (
    geometric_sigmas,
    largest_pairwise_distance,
    last_level_variance_ratio,
    levels_for_ratio,
    ncsnv2_sigma_begin,
    ncsnv2_sigmas,
    step_from_variance_criterion,
)
from ncsn_edu.score_sde import gaussian_chain_variance
from ncsn_edu.toy.noise_scales import ratio_for_shell_overlap, shell_overlap

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


# ----------------------------------------------------------------------------- NCSNv2 (Song & Ermon 2020)
# The official configs (ermongroup/ncsnv2, configs/*.yml): data dimension D, sigma_begin, num_classes L,
# n_steps_each T and step_lr eps, all with sigma_end 0.01. (LSUN church, sigma_begin 140 with L 788 at
# D = 12288, does not follow the rule the other four share, and is left out.)
OFFICIAL = {
    "cifar10": (3 * 32 * 32, 50.0, 232, 5, 6.2e-6),
    "celeba": (3 * 64 * 64, 90.0, 500, 5, 3.3e-6),
    "bedroom": (3 * 128 * 128, 190.0, 1086, 3, 1.8e-6),
    "ffhq": (3 * 256 * 256, 348.0, 2311, 3, 9e-7),
}


def _official_ratio(name):
    _, s1, L, _, _ = OFFICIAL[name]
    return (s1 / 0.01) ** (1 / (L - 1))


def _brute_distances(x):
    # Differences first (torch.cdist itself uses |a|^2 + |b|^2 - 2ab for large inputs).
    return ((x[:, None] - x[None]) ** 2).sum(-1).sqrt()


def test_largest_pairwise_distance_is_the_brute_force_maximum():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(301, 7, generator=g) * 3  # 301: blocks of 64 leave a ragged last block
    x[123] += 10.0  # one far point: its pair must win, whichever block holds it
    d = _brute_distances(x.double())
    best = float(d.max())
    got, i, j = largest_pairwise_distance(x, block=64)
    assert got == pytest.approx(best, rel=1e-12)
    assert float(d[i, j]) == pytest.approx(best, rel=1e-12) and i != j
    assert 123 in (i, j)
    assert ncsnv2_sigma_begin(x.view(301, 1, 7), block=1000) == pytest.approx(best, rel=1e-12)


def test_largest_pairwise_distance_on_a_simplex_and_a_segment():
    # The D + 1 vertices of a scaled simplex e_k * s are all sqrt(2) s apart; a point set on a segment
    # [0, 5] e_1 has its two ends as the farthest pair.
    s = 3.0
    x = torch.eye(6) * s
    assert largest_pairwise_distance(x, block=2)[0] == pytest.approx(math.sqrt(2) * s, rel=1e-12)
    t = torch.linspace(0, 5, 1000)
    seg = torch.stack([t, torch.zeros_like(t)], 1)[torch.randperm(1000, generator=torch.Generator().manual_seed(1))]
    d, i, j = largest_pairwise_distance(seg, block=128)
    assert d == pytest.approx(5.0, rel=1e-7) and {float(seg[i, 0]), float(seg[j, 0])} == {0.0, 5.0}


def test_largest_pairwise_distance_does_not_trust_float32():
    # Points with a large common offset: float32's |a|^2 + |b|^2 - 2ab loses the small differences
    # (1e4^2 * 6e-8 = 6 in squared distance), the exact float64 recheck does not.
    g = torch.Generator().manual_seed(2)
    x = 1e4 + torch.rand(200, 3, generator=g, dtype=torch.float64)
    best = float(_brute_distances(x).max())
    assert largest_pairwise_distance(x, block=50)[0] == pytest.approx(best, rel=1e-9)


def test_ratio_at_one_half_is_the_closed_form():
    # With overlap 1/2 the upper term is 1 to within Phi(-6): gamma = sqrt(2D) / (sqrt(2D) - 3).
    for dim in (784, 3072, 49152):
        r = math.sqrt(2 * dim)
        assert ratio_for_shell_overlap(dim, 0.5) == pytest.approx(r / (r - 3), abs=1e-8)


def test_levels_count_the_steps_between_levels():
    # The official code's L levels have ratio (s1/sL)^(1/(L-1)): L - 1 steps.
    for L in (2, 10, 232):
        ratio = (50 / 0.01) ** (1 / (L - 1))
        assert levels_for_ratio(50, 0.01, ratio * (1 + 1e-12)) == L
        assert levels_for_ratio(50, 0.01, ratio * (1 - 1e-6)) == L + 1  # a smaller ratio needs one more level
    assert levels_for_ratio(1.0, 0.01, 10 ** (2 / 9)) == 10  # the NCSN image ladder's ratio
    s = ncsnv2_sigmas(50.0, 0.01, 3072)
    assert float(s[0]) == pytest.approx(50.0, rel=1e-6) and float(s[-1]) == pytest.approx(0.01, rel=1e-5)
    assert float(s[0] / s[1]) <= ratio_for_shell_overlap(3072) * (1 + 1e-6)


def test_cifar10_levels_at_one_half():
    # sqrt(6144) = 78.384, gamma = 78.384 / 75.384 = 1.03980, log(5000) / log(gamma) = 218.25 steps:
    # overlap exactly 1/2 asks for 220 levels on CIFAR-10, not the config's 232.
    g = ratio_for_shell_overlap(3072, 0.5)
    assert g == pytest.approx(1.039796, abs=1e-6)
    assert levels_for_ratio(50.0, 0.01, g) == 220


def test_the_official_configs_share_one_overlap():
    # The four configs' ratios span D = 3072 to 196608 and sigma_1 = 50 to 348, yet give the same value of
    # the criterion, 0.567 (the paper's "about 0.5"; exactly 0.5 would give CIFAR-10 220 levels, see above).
    # The same value at every D checks that gamma - 1 shrinks like 1/sqrt(D); the value itself checks the
    # constants: with sqrt(D) in place of sqrt(2D) all four give 0.84.
    vals = {k: shell_overlap(_official_ratio(k), OFFICIAL[k][0]) for k in OFFICIAL}
    assert all(abs(v - 0.567) < 0.002 for v in vals.values()), vals
    # CIFAR-10's value predicts the other three configs' L to within one level (rounding of the step count).
    c = vals["cifar10"]
    for k, (dim, s1, L, _, _) in OFFICIAL.items():
        assert abs(levels_for_ratio(s1, 0.01, ratio_for_shell_overlap(dim, c)) - L) <= 1, k


def test_proposition3_is_the_chain_variance_recursion():
    # The book's closed-form chain (score_sde.gaussian_chain_variance) on data N(0, 0) with one level sigma_L,
    # no predictor and T corrector steps of the NCSN rule, whose step eps_book sigma^2 / (2 sigma_L^2) is the
    # code's a = eps sigma^2 / sigma_L^2 when eps_book = 2 eps.
    sL = 0.01
    for gamma, T, eps in [(1.0376, 5, 6.2e-6), (1.09, 1, 2e-5), (1.5, 20, 1e-6), (1.2, 0, 3e-5)]:
        want = gaussian_chain_variance(0.0, [sL], gamma**2 * sL**2, predictor=False, n_corrector=T,
                                       eps=2 * eps) / sL**2
        assert last_level_variance_ratio(eps, gamma, T, sL) == pytest.approx(want, rel=1e-12)
    # T = 0 leaves the start; T -> infinity the fixed point c = 2r / (1 - (1 - r)^2) = 2 / (2 - r).
    assert last_level_variance_ratio(1e-5, 1.3, 0, sL) == pytest.approx(1.69, rel=1e-12)
    assert last_level_variance_ratio(1e-5, 1.3, 10_000, sL) == pytest.approx(2 / (2 - 0.1), rel=1e-12)


def test_proposition3_against_a_simulated_chain():
    # 20,000 independent one-dimensional chains at the level sigma_i = 0.3 (the ratio is level-free), started
    # from N(0, (gamma sigma_i)^2) and run T = 5 official steps. The sample variance of n = 20,000 Gaussian
    # values has relative standard error sqrt(2/n) = 1.0%; 4 standard errors = 4%.
    sL, si, gamma, T, eps = 0.01, 0.3, 1.2, 5, 1.5e-5
    g = torch.Generator().manual_seed(0)
    a = eps * si**2 / sL**2
    x = torch.randn(20_000, generator=g, dtype=torch.float64) * gamma * si
    for _ in range(T):
        x = x + a * (-x / si**2) + math.sqrt(2 * a) * torch.randn(x.shape, generator=g, dtype=torch.float64)
    measured = float(x.var()) / si**2
    assert measured == pytest.approx(last_level_variance_ratio(eps, gamma, T, sL), rel=0.04)


def test_step_minimises_the_variance_ratio():
    sL = 0.01
    for gamma, T in [(1.0376, 5), (1.2, 3), (1.01, 50)]:
        eps = step_from_variance_criterion(gamma, T, sL)
        best = last_level_variance_ratio(eps, gamma, T, sL)
        assert best > 1
        for f in (0.9, 0.99, 1.01, 1.1):
            assert last_level_variance_ratio(eps * f, gamma, T, sL) > best
        # More steps allow a ratio closer to 1.
        assert last_level_variance_ratio(step_from_variance_criterion(gamma, 2 * T, sL), gamma, 2 * T, sL) < best


@pytest.mark.parametrize("name", list(OFFICIAL))
def test_step_reproduces_the_official_step_lr(name):
    # Each config prints eps to seven decimals (0.0000062): the criterion's eps, from the config's gamma
    # and T, rounds to it (CIFAR-10: 6.184e-6 -> 6.2e-6; FFHQ: 8.93e-7 -> 9e-7).
    _, _, _, T, eps = OFFICIAL[name]
    got = step_from_variance_criterion(_official_ratio(name), T, 0.01)
    assert round(got, 7) == pytest.approx(eps, rel=1e-9), got
