"""ncsn_edu.toy.metrics against cases with known answers: score_error_by_band and
score_error_stats (chapter 6), distance_to_nearest_mean and score_error_by_distance (chapter 3),
energy_distance (chapter 13)."""

import math

import pytest
import torch

from ncsn_edu.toy.distributions import GaussianMixture
from ncsn_edu.toy.domain import uniform_starts
from ncsn_edu.toy.metrics import distance_to_nearest_mean, energy_distance, score_error_by_band, score_error_by_distance


def rotate(v, angle):
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([c * v[:, 0] - s * v[:, 1], s * v[:, 0] + c * v[:, 1]], 1)


def test_rotated_scores_give_the_known_error_and_cosine_per_band():
    # In band k the model is the exact score turned by angle_k (more than 90 degrees in the first band):
    # relative error 2 sin(angle_k / 2), cosine cos(angle_k), mean error 2 sin(angle_k / 2) times the mean
    # length of the exact score.
    x = uniform_starts(3000, generator=torch.Generator().manual_seed(0))
    value = (x[:, 0] + x[:, 1]).abs()
    edges = [0.0, 1.0, 2.0, 4.0, 8.0, 17.0]
    angles = torch.tensor([2.5, 1.0, 0.5, 0.2, 0.05], dtype=torch.float64)

    def exact(y):
        return -y.double() + torch.tensor([0.3, -0.2], dtype=torch.float64)

    def model(y):
        band = torch.bucketize(value, torch.tensor(edges[1:-1]), right=True)
        return rotate(exact(y), angles[band])

    rows = score_error_by_band(model, exact, x, value, edges)
    assert [r["lo"] for r in rows] == edges[:-1] and [r["hi"] for r in rows] == edges[1:]
    assert sum(r["n"] for r in rows) == len(x)
    for r, a in zip(rows, angles.tolist()):
        k = (value >= r["lo"]) & (value < r["hi"])
        assert r["n"] == int(k.sum())
        assert r["relative_error"] == pytest.approx(2 * math.sin(a / 2), rel=1e-9)
        assert r["mean_cosine"] == pytest.approx(math.cos(a), rel=1e-9)
        assert r["mean_error"] == pytest.approx(2 * math.sin(a / 2) * exact(x[k]).norm(dim=1).mean().item(), rel=1e-9)


def test_relative_error_is_a_ratio_of_sums_and_bands_are_half_open():
    # Two points in band [0, 1): exact (1, 0) and (3, 0), model (2, 0) and (3, 0):
    # sqrt((1 + 0) / (1 + 9)) = 0.316, not the mean of the two ratios (0.5). A point at exactly 1 is in [1, 2).
    x = torch.tensor([[0.0, 0.0], [0.5, 0.0], [1.0, 0.0]])
    exact_values = torch.tensor([[1.0, 0.0], [3.0, 0.0], [1.0, 1.0]])
    model_values = torch.tensor([[2.0, 0.0], [3.0, 0.0], [1.0, 1.0]])
    rows = score_error_by_band(lambda y: model_values, lambda y: exact_values, x, x[:, 0], [0.0, 1.0, 2.0, 3.0])
    assert rows[0]["n"] == 2 and rows[1]["n"] == 1 and rows[2]["n"] == 0
    assert rows[0]["relative_error"] == pytest.approx(math.sqrt(0.1))
    assert rows[0]["mean_error"] == pytest.approx(0.5)
    assert rows[1]["relative_error"] == 0.0 and rows[1]["mean_cosine"] == pytest.approx(1.0)
    assert math.isnan(rows[2]["relative_error"])


def test_bad_edges_are_refused():
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError):
        score_error_by_band(lambda y: y, lambda y: y, x, x[:, 0], [1.0, 1.0])
    with pytest.raises(ValueError):
        score_error_by_band(lambda y: y, lambda y: y, x, x[:3, 0], [0.0, 1.0])


def test_distance_to_nearest_mean_on_points_with_known_distances():
    # The paper's toy, means (-5, -5) and (5, 5); a third mean checks that every component counts.
    mix = GaussianMixture([[-5.0, -5.0], [5.0, 5.0], [5.0, -5.0]], 1.0, dtype=torch.float64)
    x = torch.tensor([[5.0, 5.0], [-5.0, -4.0], [8.0, 5.0], [0.0, 0.0], [-8.0, 8.0], [5.0, -7.0]], dtype=torch.float64)
    expected = [0.0, 1.0, 3.0, 5 * math.sqrt(2), math.sqrt(13**2 + 3**2), 2.0]
    assert distance_to_nearest_mean(mix, x).tolist() == pytest.approx(expected, abs=1e-12)


def test_score_error_by_distance_bands_by_the_nearest_mean():
    # The model is the exact score plus (k, 0) in the k-th distance band [2k, 2k + 2): the mean error
    # in band k is exactly k, and each band holds the points whose nearest mean is that far away.
    mix = GaussianMixture.paper_toy(dtype=torch.float64)
    x = uniform_starts(4000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    edges = [0.0, 2.0, 4.0, 6.0, 8.0, math.inf]
    dist = torch.minimum((x - mix.means[0]).norm(dim=1), (x - mix.means[1]).norm(dim=1))
    band = torch.bucketize(dist, torch.tensor(edges[1:-1], dtype=torch.float64), right=True)

    def model(y):
        return mix.score(y) + torch.stack([band.double(), torch.zeros_like(dist)], 1)

    rows = score_error_by_distance(model, mix, x, edges)
    assert [r["n"] for r in rows] == [int((band == k).sum()) for k in range(5)]
    assert all(r["n"] > 100 for r in rows)
    for k, r in enumerate(rows):
        assert r["mean_error"] == pytest.approx(k, abs=1e-9)
    assert rows[0]["mean_cosine"] == pytest.approx(1.0)


def test_energy_distance():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(800, 2, generator=g), torch.randn(800, 2, generator=g)
    same = energy_distance(a, b)
    shifted = energy_distance(a, b + torch.tensor([1.0, 0.0]))
    assert abs(same) < 0.02 and shifted > 0.2
    # closed form in 1-D for point masses: 2|a - b| between delta_a and delta_b
    assert energy_distance(torch.zeros(2, 1), torch.full((2, 1), 3.0)) == pytest.approx(6.0)


def test_score_error_stats_on_known_scores():
    from ncsn_edu.toy.metrics import score_error_stats

    mix = GaussianMixture.paper_toy()
    exact = score_error_stats(mix.score, mix)
    assert exact["weighted_error"] < 1e-5 and exact["low_density_error"] < 1e-5
    shift = torch.tensor([0.3, -0.4])
    off = score_error_stats(lambda x: mix.score(x) + shift, mix)  # error 0.5 everywhere
    assert off["weighted_error"] == pytest.approx(0.5, rel=1e-4)
    assert off["low_density_error"] == pytest.approx(0.5, rel=1e-4)
    assert off["ratio"] == pytest.approx(1.0, rel=1e-4)
    # the high-density region is the part of the grid near the two modes
    assert exact["high_mask"].float().mean() < 0.5
    assert exact["density"][exact["high_mask"]].min() >= 1e-3 * exact["density"].max()
    with pytest.raises(ValueError):
        score_error_stats(mix.score, mix, low_fraction=2.0)
