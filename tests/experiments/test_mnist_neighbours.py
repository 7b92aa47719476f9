"""ncsn_edu.experiments.mnist_neighbours: the nearest other digit and the Monte Carlo rate at which a
noisy copy lies nearer to another digit, against brute force; the command on a small fake MNIST;
the committed result's own consistency."""

import json
import math
from pathlib import Path

import pytest
import torch

from ncsn_edu.experiments.mnist_neighbours import main, nearer_other_rate, nearest_other
from ncsn_edu.resources import resource_path


def points(n=300, d=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, d, generator=g, dtype=torch.float64)
    x[7] = x[3]  # an exact duplicate: its nearest other is at distance 0
    return x


def test_nearest_other_is_the_brute_force_minimum_over_the_others():
    x = points()
    dist, index = nearest_other(x, block=64)  # several blocks, the last one short
    full = torch.cdist(x, x)
    full.fill_diagonal_(math.inf)
    assert torch.allclose(dist, full.min(1).values, atol=1e-12, rtol=0)
    assert (index != torch.arange(len(x))).all()
    assert dist[3] == 0 and dist[7] == 0 and {index[3].item(), index[7].item()} == {7, 3}


def test_nearer_other_rate_is_the_brute_force_share():
    x = points(n=120, d=6)
    picks = torch.tensor([0, 3, 50])
    sigma, n_draws = 0.3, 200
    rates = nearer_other_rate(x, picks, n_draws, sigma, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)  # the same draws, in the same order
    for j, i in enumerate(picks.tolist()):
        z = torch.randn(n_draws, x.shape[1], generator=g, dtype=torch.float64)
        d = torch.cdist(x[i] + sigma * z, x)
        own = d[:, i].clone()
        d[:, i] = math.inf
        assert rates[j].item() == pytest.approx((d.min(1).values < own).double().mean().item(), abs=1e-12)
    # digit 3 has a duplicate (7): a copy is nearer to it or to 7 with equal chance, and ties never count
    assert 0 < rates[1] < 1


@pytest.mark.fake_mnist(n_train=200, n_test=8)
def test_command_writes_what_it_measured(mnist_root, tmp_path):
    out = tmp_path / "nn.json"
    assert main(["--data-root", str(mnist_root), "--n-images", "4", "--n-draws", "50", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["n_train"] == 200 and "--n-images 4" in r["command"]
    mc = r["nearer_other"]
    assert len(mc["picks"]) == len(mc["rate_per_image"]) == 4
    assert mc["mean"] == pytest.approx(sum(mc["rate_per_image"]) / 4)
    assert r["nearest_other"]["quantiles"]["0.5"] == pytest.approx(r["nearest_other"]["median"], rel=1e-2)


def test_committed_result_is_all_of_mnist_and_consistent():
    r = json.loads(Path(resource_path("mnist_neighbours.json")).read_text())
    assert r["n_train"] == 60000 and r["source"].startswith("mnist: original torchvision MNIST")
    nn, mc = r["nearest_other"], r["nearer_other"]
    q = nn["quantiles"]
    assert nn["min"] <= q["0.05"] <= q["0.25"] <= nn["median"] <= q["0.75"] <= q["0.95"] <= nn["max"]
    assert mc["n_images"] == 60 and mc["n_draws"] == 1000 and mc["sigma"] == 1.0
    rates = torch.tensor(mc["rate_per_image"], dtype=torch.float64)
    assert mc["mean"] == pytest.approx(rates.mean().item())
    assert mc["standard_error"] == pytest.approx((rates.std() / math.sqrt(60)).item())
    # each rate is a count out of 1,000 draws
    assert torch.allclose(rates * 1000, (rates * 1000).round(), atol=1e-9)
    # no picked digit has an exact duplicate (where a tie would decide)
    assert min(mc["nearest_distance_of_picks"]) > 0
