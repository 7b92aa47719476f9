"""Chapter 1's reading of the paper's section 3.2.2 on its toy mixture
1/5 N((-5,-5), I) + 4/5 N((5,5), I): the mixing weights enter the exact score only in a thin
band around the anti-diagonal, moved towards the light mode by log(4) / |mu_2 - mu_1|, where
the density is about 1e-11 of its peak; everywhere else the score is the nearer component's
own, mu_k - x, to within 1% of |mu_2 - mu_1|. All exact (closed-form scores, float64).

The band is measured by ``ncsn_edu.toy.distributions.score_band``, the function chapter 1 calls;
the other tests here check it against its closed form and against sampling."""

from __future__ import annotations

import math

import pytest
import torch

from ncsn_edu.toy.distributions import GaussianMixture, in_score_band, nearest_component, score_band
from ncsn_edu.toy.domain import grid

STEP = 1e-4  # the grid step along the line of score_band(mix, half_width=2, n=40_001)


def test_the_weights_shape_the_toy_score_only_in_a_thin_band_of_negligible_density():
    mix = GaussianMixture.paper_toy(dtype=torch.float64)
    gap = (mix.means[1] - mix.means[0]).norm().item()  # 10 sqrt(2)
    band = score_band(mix, 0.01, half_width=2.0, n=40_001)  # crosses the band at right angles
    assert abs(band["s"][1] - band["s"][0] - STEP) < 1e-12

    # the band's centre (equal responsibilities) sits log(4) / gap towards the light mode
    assert abs(band["centre"] - (-math.log(4) / gap)) < 2 * STEP

    # its width (both responsibilities above 1%) is 2 log(99) / gap = 0.65
    assert abs(band["width"] - 2 * math.log(99) / gap) < 3 * STEP
    assert 0.64 < band["width"] < 0.66

    # its density is about 1e-11 of the peak: below 1e-10 everywhere in it
    assert 1e-12 < band["max_density_ratio"] < 1e-10

    # at (-0.05, -0.05), nearer the light mode, the score points towards the heavy one
    nearer_light = torch.tensor([[-0.05, -0.05]], dtype=torch.float64)
    assert nearest_component(mix, nearer_light).item() == 0
    assert (mix.score(nearer_light) > 0.9).all()

    # on a 400 x 400 grid over [-8, 8]^2: outside the band the score is the nearer
    # component's to within 1% of the gap; inside, the weights move it by far more
    _, _, pts = grid(8.0, 400)
    pts = pts.to(torch.float64)
    deviation = (mix.score(pts) - (mix.means[nearest_component(mix, pts)] - pts)).norm(dim=1)
    in_band = in_score_band(mix, pts)
    r = mix.responsibilities(pts)[:, 0]
    assert torch.equal(in_band, (r > 0.01) & (r < 0.99))
    assert deviation[~in_band].max().item() <= 0.01 * gap + 1e-12
    assert deviation[in_band].max().item() > 0.5 * gap


MIXTURES = {
    "paper toy": (GaussianMixture.paper_toy(dtype=torch.float64), 0.01),
    "equal weights": (GaussianMixture([[-5.0, -5.0], [5.0, 5.0]], 1.0, [0.5, 0.5], dtype=torch.float64), 0.01),
    "weights 1/1000": (GaussianMixture([[-5.0, -5.0], [5.0, 5.0]], 1.0, [0.001, 0.999], dtype=torch.float64), 0.01),
    "3-D, std 0.7, 5%": (GaussianMixture([[1.0, -2.0, 0.5], [-1.0, 1.0, 3.0]], 0.7, [0.6, 0.4], dtype=torch.float64),
                         0.05),
}


@pytest.mark.parametrize("name", list(MIXTURES))
def test_score_band_matches_its_closed_form(name):
    mix, threshold = MIXTURES[name]
    band = score_band(mix, threshold, half_width=2.0, n=40_001)
    gap = (mix.means[1] - mix.means[0]).norm().item()
    var = mix.stds[0].item() ** 2
    half = var * math.log((1 - threshold) / threshold) / gap
    centre = var * math.log(mix.weights[0].item() / mix.weights[1].item()) / gap
    assert band["gap"] == pytest.approx(gap, rel=1e-12)
    assert band["width_closed"] == pytest.approx(2 * half, rel=1e-12)
    assert band["centre_closed"] == pytest.approx(centre, rel=1e-12, abs=1e-15)
    # measured on a grid of step 1e-4: each end within one step inside the closed-form end
    assert -STEP <= band["start"] - (centre - half) <= 1e-12 + STEP
    assert -STEP <= (centre + half) - band["end"] <= 1e-12 + STEP
    assert abs(band["width"] - 2 * half) <= 2 * STEP
    assert abs(band["centre"] - centre) <= STEP
    # the points are on the line through the means, at signed distance s from their midpoint
    mid = mix.means.mean(0)
    assert torch.allclose((band["points"] - mid).norm(dim=1), band["s"].abs(), atol=1e-12)
    assert torch.allclose(band["points"][-1], mid + 2.0 * (mix.means[1] - mix.means[0]) / gap, atol=1e-12)
    # the saddle: the lowest density on the line between the band's ends
    s, logp = band["s"], mix.log_prob(band["points"])
    lowest = s[logp.argmin()].item()
    assert abs(band["saddle"] - lowest) <= STEP + 1e-12
    assert band["start"] <= band["saddle"] <= band["end"]


def test_score_band_mass_is_the_probability_of_the_band():
    """Two close components, a 20% threshold: the band holds a fair share of the samples."""
    mix = GaussianMixture([[0.0, 0.0], [1.5, 1.0]], 0.8, [0.3, 0.7], dtype=torch.float64)
    band = score_band(mix, 0.2, half_width=4.0, n=80_001)
    x = mix.sample(200_000, generator=torch.Generator().manual_seed(0))
    frac = in_score_band(mix, x, 0.2).double().mean().item()
    se = math.sqrt(frac * (1 - frac) / len(x))
    assert 0.2 < band["mass"] < 0.8
    assert abs(frac - band["mass"]) < 4 * se + 1e-4  # 1e-4: the measured ends lie within a grid step


def test_score_band_needs_two_components_and_has_no_closed_form_for_unequal_stds():
    unequal = GaussianMixture([[-2.0, 0.0], [2.0, 0.0]], [1.0, 1.5], dtype=torch.float64)
    band = score_band(unequal)
    assert math.isnan(band["width_closed"]) and math.isnan(band["centre_closed"])
    assert band["width"] > 0
    three = GaussianMixture([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    with pytest.raises(ValueError):
        score_band(three)
    with pytest.raises(ValueError):
        in_score_band(three, torch.zeros(1, 2))
    with pytest.raises(ValueError):
        in_score_band(unequal, torch.zeros(1, 2), threshold=0.5)
    with pytest.raises(ValueError):  # the line ends inside the band
        score_band(GaussianMixture.paper_toy(dtype=torch.float64), half_width=0.2, n=11)
    with pytest.raises(ValueError):  # the line misses the band
        score_band(GaussianMixture([[-5.0, -5.0], [5.0, 5.0]], 1.0, [1e-9, 1], dtype=torch.float64), half_width=1.0)


@pytest.mark.parametrize("means, std, half_width", [([[-5.0, -5.0], [5.0, 5.0]], 1.0, 10.0),
                                                    ([[-1.0, 0.0], [1.0, 0.0]], 0.5, 3.0)])
def test_the_saddle_is_the_lowest_density_between_the_means_when_the_line_runs_past_them(means, std, half_width):
    """A line longer than the gap passes through the means, where the score along it also changes sign
    (density maxima): the saddle is still the density minimum on the segment between the means."""
    mix = GaussianMixture(means, std, [0.2, 0.8], dtype=torch.float64)
    band = score_band(mix, 0.01, half_width=half_width, n=40_001)
    gap, step = band["gap"], (band["s"][1] - band["s"][0]).item()
    between = band["s"].abs() < gap / 2
    logp = mix.log_prob(band["points"][between])
    lowest = band["s"][between][logp.argmin()].item()
    assert -gap / 2 < band["saddle"] < gap / 2
    assert abs(band["saddle"] - lowest) <= step + 1e-12
