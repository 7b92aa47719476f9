"""Chapter 1's reading of the paper's section 3.2.2 on its toy mixture
1/5 N((-5,-5), I) + 4/5 N((5,5), I): the mixing weights enter the exact score only in a thin
band around the anti-diagonal, moved towards the light mode by log(4) / |mu_2 - mu_1|, where
the density is about 1e-11 of its peak; everywhere else the score is the nearer component's
own, mu_k - x, to within 1% of |mu_2 - mu_1|. All exact (closed-form scores, float64)."""

from __future__ import annotations

import math

import torch

from ncsn_edu.toy.distributions import GaussianMixture, nearest_component
from ncsn_edu.toy.domain import grid


def test_the_weights_shape_the_toy_score_only_in_a_thin_band_of_negligible_density():
    mix = GaussianMixture.paper_toy(dtype=torch.float64)
    gap = (mix.means[1] - mix.means[0]).norm().item()  # 10 sqrt(2)
    step = 1e-4
    t = torch.arange(-2.0, 2.0 + step / 2, step, dtype=torch.float64)
    diag = torch.stack([t, t], 1)  # crosses the band at right angles
    r_light = mix.responsibilities(diag)[:, 0]

    # the band's centre (equal responsibilities) sits log(4) / gap towards the light mode
    centre = t[(r_light - 0.5).abs().argmin()].item() * math.sqrt(2)
    assert abs(centre - (-math.log(4) / gap)) < 2 * step

    # its width (both responsibilities above 1%) is 2 log(99) / gap = 0.65
    band = (r_light > 0.01) & (r_light < 0.99)
    width = (t[band].max() - t[band].min()).item() * math.sqrt(2)
    assert abs(width - 2 * math.log(99) / gap) < 3 * step
    assert 0.64 < width < 0.66

    # its density is about 1e-11 of the peak: below 1e-10 everywhere in it
    peak = mix.log_prob(mix.means[1:])
    assert (mix.log_prob(diag[band]) - peak).exp().max().item() < 1e-10

    # at (-0.05, -0.05), nearer the light mode, the score points towards the heavy one
    nearer_light = torch.tensor([[-0.05, -0.05]], dtype=torch.float64)
    assert nearest_component(mix, nearer_light).item() == 0
    assert (mix.score(nearer_light) > 0.9).all()

    # on a 400 x 400 grid over [-8, 8]^2: outside the band the score is the nearer
    # component's to within 1% of the gap; inside, the weights move it by far more
    _, _, pts = grid(8.0, 400)
    pts = pts.to(torch.float64)
    deviation = (mix.score(pts) - (mix.means[nearest_component(mix, pts)] - pts)).norm(dim=1)
    r = mix.responsibilities(pts)[:, 0]
    in_band = (r > 0.01) & (r < 0.99)
    assert deviation[~in_band].max().item() <= 0.01 * gap + 1e-12
    assert deviation[in_band].max().item() > 0.5 * gap
