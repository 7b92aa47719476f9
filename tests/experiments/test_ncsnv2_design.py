"""NCSNv2's noise design from the data (ncsn_edu.experiments.ncsnv2_design, chapter 11b): the exact score
of a perturbed empirical distribution against autograd, the command on a fake MNIST, and the committed
data/ncsnv2_design.json and data/ncsnv2_sigma1_sweep.json against the formulas and the data sets."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch
from missing_data import skip_missing

from ncsn_edu.experiments.ncsnv2_design import (
    OFFICIAL_CIFAR10,
    T_VALUES,
    empirical_score_fn,
    ladder,
    main,
    sigma1_sweep,
    step_table,
    training_pixels,
)
from ncsn_edu.resources import resource_path
from ncsn_edu.toy.noise_scales import shell_overlap


def _committed(name="ncsnv2_design.json"):
    return json.loads(resource_path(name).read_text())


def test_empirical_score_is_the_gradient_of_the_log_density():
    g = torch.Generator().manual_seed(0)
    data = torch.rand(7, 5, generator=g, dtype=torch.float64)
    sigmas = torch.tensor([2.0, 0.3, 0.05], dtype=torch.float64)
    score = empirical_score_fn(data, sigmas)
    x = torch.rand(4, 5, generator=g, dtype=torch.float64) + 0.1
    for i, s in enumerate(sigmas.tolist()):
        xr = x.clone().requires_grad_(True)
        logq = torch.logsumexp(-((xr[:, None] - data[None]) ** 2).sum(-1) / (2 * s * s), dim=1).sum()
        (grad,) = torch.autograd.grad(logq, xr)
        got = score(x, torch.full((4,), i))
        assert torch.allclose(got, grad, rtol=1e-9, atol=1e-9 / s**2), i
    # Images keep their shape.
    assert score(x.view(4, 1, 5), torch.zeros(4, dtype=torch.long)).shape == (4, 1, 5)


def test_ladder_and_step_table_follow_the_schedules():
    # CIFAR-10's setting at overlap 0.5: sqrt(6144) = 78.38, gamma = 78.38 / 75.38 = 1.0398, 218.25 steps -> 220.
    r = ladder(50.0, 3072, 0.5)
    assert r["L"] == 220 and r["gamma"] == pytest.approx(1.039796, abs=1e-6)
    # 220 levels have ratio 5000^(1/219) = 1.03966, a little below gamma, so a little more overlap than asked.
    assert r["ladder_ratio"] == pytest.approx(5000 ** (1 / 219), rel=1e-12) and r["ladder_ratio"] < r["gamma"]
    assert r["ladder_overlap"] == pytest.approx(shell_overlap(5000 ** (1 / 219), 3072), rel=1e-12)
    assert 0.503 < r["ladder_overlap"] < 0.506
    rows = step_table(r["ladder_ratio"], t_values=(1, 5, 50))
    assert [row["T"] for row in rows] == [1, 5, 50]
    assert all(row["variance_ratio"] > 1 for row in rows)
    assert rows[0]["variance_ratio"] > rows[1]["variance_ratio"] > rows[2]["variance_ratio"]  # more steps, closer


@pytest.mark.fake_mnist(n_train=120, n_test=8)
def test_command_on_a_fake_mnist(mnist_root, tmp_path):
    out = tmp_path / "design.json"
    main(["--datasets", "mnist", "--data-root", str(mnist_root), "--block", "32", "--parts", "design",
          "--out", str(out)])
    r = json.loads(out.read_text())
    m = r["datasets"]["mnist"]
    x, _ = training_pixels("mnist", mnist_root)
    xd = x.double() / 255
    brute = ((xd[:, None] - xd[None]) ** 2).sum(-1).sqrt()
    assert m["n_images"] == 120 and m["dim"] == 784
    assert m["sigma_1"] == pytest.approx(float(brute.max()), rel=1e-12)
    i, j = m["pair"]
    assert float(brute[i, j]) == pytest.approx(m["sigma_1"], rel=1e-12)
    assert m["ladder"] == ladder(m["sigma_1"], 784, 0.5)
    assert [row["T"] for row in m["steps"]] == list(T_VALUES)
    assert "--parts design" in r["command"] and "sweep" not in r
    # A later sweep keeps the design part and adds its own.
    main(["--data-root", str(mnist_root), "--parts", "sweep", "--sweep-data", "30", "--sweep-chains", "4",
          "--out", str(out)])
    r2 = json.loads(out.read_text())
    assert r2["datasets"] == r["datasets"] and r2["command"] == r["command"]
    assert r2["sweep"]["n_data"] == 30 and "--parts sweep" in r2["sweep"]["command"]
    # And a later design run keeps the sweep.
    main(["--datasets", "mnist", "--data-root", str(mnist_root), "--block", "64", "--parts", "design",
          "--out", str(out)])
    r3 = json.loads(out.read_text())
    assert r3["sweep"] == r2["sweep"] and "--block 64" in r3["command"]


@pytest.mark.fake_mnist(n_train=60, n_test=8)
def test_sweep_chains_end_at_data_points(mnist_root):
    r = sigma1_sweep(sigma_1_values=(1.0, None), n_data=60, n_chains=12, root=mnist_root, n_reference=50)
    assert r["n_data"] == 60 and sum(r["data_class_counts"]) == 60
    for run in r["runs"]:
        assert sum(run["class_counts"]) == 12 and 1 <= run["distinct"] <= 12
        # At sigma_L = 0.01 a chain sits on one digit's Gaussian: its distance to the digit is about
        # sigma_L sqrt(784) = 0.28, times the chain's slight excess width; fake digits are far further apart.
        assert 0.2 < run["median_nearest_distance"] < 0.4
    assert r["runs"][1]["sigma_1"] == pytest.approx(r["largest_distance"])
    assert r["runs"][1]["L"] > r["runs"][0]["L"]


def test_committed_design_agrees_with_the_formulas():
    r = _committed()
    for name, dim, n in (("mnist", 784, 60000), ("cifar10", 3072, 50000)):
        d = r["datasets"][name]
        assert d["dim"] == dim and d["n_images"] == n
        assert d["ladder"] == pytest.approx(ladder(d["sigma_1"], dim, 0.5))
        want = step_table(d["ladder"]["ladder_ratio"])
        assert len(d["steps"]) == len(want) and all(a == pytest.approx(b) for a, b in zip(d["steps"], want))
        assert 0 < d["sigma_1"] <= math.sqrt(dim)  # pixels in [0, 1]
    assert "JPEG re-encoding" in r["datasets"]["cifar10"]["source"]
    o = r["official_cifar10"]
    assert {k: o[k] for k in OFFICIAL_CIFAR10} == OFFICIAL_CIFAR10
    assert o["ratio"] == pytest.approx(1.0375591, abs=1e-7) and o["overlap"] == pytest.approx(0.567, abs=1e-3)
    assert round(o["criterion_eps"], 7) == pytest.approx(6.2e-6)
    assert o["ladder_at_one_half"]["L"] == 220


def _without_paths(text: str) -> str:
    return re.sub(r"/\S*", "<path>", text)


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_committed_pair_is_mutually_farthest(name):
    # The recorded pair (i, j) is at the recorded distance, and each is the other's farthest image in the whole
    # training split: a necessary condition for the largest distance, checked in N D operations.
    d = _committed()["datasets"][name]
    try:
        x, source = training_pixels(name)
    except FileNotFoundError as err:
        skip_missing(name, err)
    # the same data set, wherever its data root is (the recorded text names the root it ran with)
    assert _without_paths(source) == _without_paths(d["source"])
    i, j = d["pair"]
    xi, xj = x[i].double(), x[j].double()
    assert float((xi - xj).norm()) / 255 == pytest.approx(d["sigma_1"], rel=1e-12)
    for a, b in ((i, j), (j, i)):
        far = torch.cat([((x[k:k + 4096].double() - x[a].double()) ** 2).sum(1) for k in range(0, len(x), 4096)])
        assert float(far.max()) == pytest.approx(float(((x[a].double() - x[b].double()) ** 2).sum()), rel=1e-12)


def test_committed_sweep_is_consistent():
    s = _committed("ncsnv2_sigma1_sweep.json")["sweep"]
    data = torch.tensor(s["data_class_counts"], dtype=torch.float64)
    assert data.sum() == s["n_data"]
    for run in s["runs"]:
        counts = torch.tensor(run["class_counts"], dtype=torch.float64)
        assert counts.sum() == s["n_chains"]
        tv = 0.5 * float((counts / counts.sum() - data / data.sum()).abs().sum())
        assert run["class_tv"] == pytest.approx(tv, abs=1e-12)
    assert s["runs"][-1]["sigma_1"] == pytest.approx(s["largest_distance"])
    assert s["runs"][0]["sigma_1"] == 1.0
