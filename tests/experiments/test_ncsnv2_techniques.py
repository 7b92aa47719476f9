"""NCSNv2's Techniques 3 and 5 (ncsn_edu.experiments.ncsnv2_techniques, chapter 11b): the closed-form
best division network and its floor against the mathematics, the EMA bookkeeping, the reading of
the trainer's metrics.csv, the per-level MNIST loss, and the committed data/ncsnv2_toy_techniques.json
against a rerun."""

from __future__ import annotations

import json
import math

import pytest
import torch

from ncsn_edu.experiments.ncsnv2_techniques import (
    KINDS,
    SEEDS,
    division_floor,
    division_oracle,
    ema_comparison,
    ema_curves,
    embedded_toy,
    eval_points,
    floor_by_dimension,
    make_net,
    mnist_level_losses,
    n_parameters,
    net_errors,
    paired_loss_difference,
    raw_step_matching,
    toy_sigmas,
)
from ncsn_edu.resources import resource_path
from ncsn_edu.toy.training import train_toy_ncsn


def _objective(f, mixture, sigmas, n=4000, seed=3):
    """mean_i E_{q_i} |f(x) - sigma_i s_i(x)|^2 per sample (one term a point and level) on fixed points."""
    terms = []
    for s, (x, t) in zip(sigmas.tolist(), eval_points(mixture, sigmas, n, seed)):
        terms.append((f(x).double() - s * t).pow(2).sum(1))
    return torch.cat(terms)


def test_oracle_with_one_level_is_exact():
    # one level: the posterior over levels is 1, so f*(x) / sigma is the exact score (floor 0)
    mixture = embedded_toy(2)
    for sigma in (0.5, 3.0, 20.0):
        assert division_floor(mixture, [sigma], n=500) == pytest.approx([0.0], abs=1e-12)


def test_oracle_minimises_the_training_objective():
    """f* is the pointwise minimiser of the objective a division net is trained on: shifting it by any
    constant c raises the objective by |c|^2 (the cross term has mean zero), and a trained division net,
    the level-blind average, and sigma-weighted scores all lie above it."""
    mixture, sigmas = embedded_toy(2), toy_sigmas()
    f_star = division_oracle(mixture, sigmas)
    base = _objective(f_star, mixture, sigmas)
    c = torch.tensor([0.6, -0.4], dtype=torch.float64)
    shifted = _objective(lambda x: f_star(x) + c, mixture, sigmas)
    gain = (shifted - base).mean().item()
    # gain = |c|^2 + 2 c . mean(f* - sigma s); that mean is 0 with standard error sd/sqrt(40,000) ~ 0.005,
    # so the cross term is within 2 * 0.72 * 3 * 0.005 = 0.02 of zero; |c|^2 = 0.52.
    assert gain == pytest.approx(c.pow(2).sum().item(), abs=0.03)
    # a trained division network (300 steps) cannot beat f*; paired over the same points and noise-free
    # targets, its excess is positive by many standard errors
    net, _ = train_toy_ncsn(model=make_net("division", sigmas, 0), n_steps=300, seed=0)
    net.eval()
    with torch.no_grad():
        trained = _objective(lambda x: net.net(x.float()), mixture, sigmas)
    diff = trained - base
    assert diff.mean() > 3 * diff.std() / math.sqrt(len(diff))
    # the level-blind average of sigma_i s_i and the score at the ladder's middle level are worse too
    levels = [mixture.perturbed(s) for s in sigmas.tolist()]
    blind = _objective(lambda x: sum(s * q.score(x) for s, q in zip(sigmas.tolist(), levels)) / len(levels),
                       mixture, sigmas)
    middle = _objective(lambda x: sigmas[5].item() * levels[5].score(x), mixture, sigmas)
    assert blind.mean() > base.mean() and middle.mean() > base.mean()


def test_floor_falls_with_dimension():
    """The noise's length reveals the level in high dimensions (|sigma z| ~ sigma sqrt(D)), so the best
    division network gets the score right there; in two dimensions it cannot tell the levels apart."""
    rows = {r["dim"]: r for r in floor_by_dimension(dims=(2, 32, 512), n=300)}
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    assert mean(rows[2]["ten_levels"]) > 0.3  # the ten levels overlap fully in 2D
    assert mean(rows[32]["ten_levels"]) < 0.5 * mean(rows[2]["ten_levels"])
    assert max(rows[512]["ten_levels"]) < 0.01  # ratio 1.39: shells 12.6 of the lower level's standard deviations apart
    assert "technique2" not in rows[2]  # overlap 0.5 is out of reach for D < 5
    # on Technique 2's ladders (half-overlapping shells) the floor stays, shrinking about as 1/sqrt(D)
    for d in (32, 512):
        assert 0.3 < mean(rows[d]["technique2"]) * math.sqrt(d) < 0.8
    assert rows[512]["technique2_L"] == 1 + math.ceil(math.log(20) / math.log(rows[512]["gamma"]))


def test_ema_rate_zero_is_the_raw_weights_and_starts_at_them():
    out = ema_comparison(seeds=(0,), n_steps=20, every=10, rate=0.0, n_eval=200)
    for row in out["runs"][0]["rows"]:
        assert row["ema"] == row["raw"]
    avg = ema_comparison(seeds=(0,), n_steps=20, every=10, rate=0.9, n_eval=200)
    rows = avg["runs"][0]["rows"]
    assert [r["step"] for r in rows] == [0, 10, 20]
    assert rows[0]["ema"] == rows[0]["raw"]  # the average starts at the initial weights
    assert rows[2]["ema"] != rows[2]["raw"]
    assert rows[2]["raw"] == out["runs"][0]["rows"][2]["raw"]  # the EMA does not change the training


def test_ema_curves_and_lag(tmp_path):
    path = tmp_path / "metrics.csv"
    lines = ["wall_time,step,tag,value", "1,10,loss,5.0"]
    for step, ema, raw in ((200, 90.0, 40.0), (400, 50.0, 30.0), (600, 35.0, 28.0), (800, 29.0, 27.0)):
        lines += [f"1,{step},test_loss,{ema}", f"1,{step},test_loss_raw,{raw}"]
    lines.append("1,1000,test_loss_raw,26.0")  # no EMA value at 1000: left out
    path.write_text("\n".join(lines) + "\n")
    curves = ema_curves(path)
    assert curves == {"step": [200, 400, 600, 800], "ema": [90.0, 50.0, 35.0, 29.0], "raw": [40.0, 30.0, 28.0, 27.0]}
    # the first raw step at or below each EMA value
    assert raw_step_matching(curves) == [200, 200, 400, 600]
    # a raw loss reached only later is no lag: at 200 the EMA (20) is below every raw loss so far
    later = {"step": [200, 400], "ema": [20.0, 25.0], "raw": [40.0, 19.0]}
    assert raw_step_matching(later) == [None, 400]


@pytest.mark.fake_mnist(n_train=16, n_test=32)
def test_mnist_level_losses_of_a_zero_network(mnist_root, tmp_path):
    """A network that answers 0 has the loss sigma^2 |z / sigma|^2 / 2 = |z|^2 / 2 at every level: with
    the same noise at every level and for every run, all the numbers are equal, and equal to it."""
    from ncsn_edu.images.presets import build_model

    sigmas = torch.tensor([16.88, 1.0, 0.1, 0.01])
    runs = {}
    for name, divide in (("cin", False), ("division", True)):
        model = build_model("mnist", 4, 4, sigmas=sigmas if divide else None)
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()
        folder = tmp_path / name
        folder.mkdir()
        config = {"dataset": "mnist", "ngf": 4, "n_sigmas": 4, "divide_by_sigma": divide, "batch_size": 32,
                  "lr": 1e-3, "seed": 0}
        # the EMA slot holds a network that is not zero: the raw weights must be the ones read
        ema = {k: v + 1.0 if v.is_floating_point() else v for k, v in model.state_dict().items()}
        torch.save({"model": model.state_dict(), "ema": ema, "config": config, "sigmas": sigmas, "step": 7},
                   folder / "checkpoint.pt")
        runs[name] = folder
    runs["division"] = runs["division"] / "checkpoint.pt"  # a checkpoint file works as well as a folder
    out = mnist_level_losses(runs, every=2, n_images=32, seed=5, root=mnist_root)
    z = torch.randn(32, 1, 28, 28, generator=torch.Generator().manual_seed(6))
    per_image = 0.5 * z.pow(2).flatten(1).sum(1)  # about 784 / 2 each
    for name in runs:
        r = out["runs"][name]
        assert r["levels"] == [0, 2, 3] and r["step"] == 7 and r["ngf"] == 4
        assert r["loss"] == pytest.approx([per_image.mean().item()] * 3, rel=1e-5)
        assert r["image_means"] == pytest.approx(per_image.tolist(), rel=1e-5)
    assert out["runs"]["division"]["divide_by_sigma"] and not out["runs"]["cin"]["divide_by_sigma"]
    assert paired_loss_difference(out, "cin", "division") == pytest.approx((0.0, 0.0), abs=1e-3)
    # the EMA weights are another network, with another loss
    ema_out = mnist_level_losses(runs, every=2, n_images=32, seed=5, root=mnist_root, weights="ema")
    assert ema_out["weights"] == "ema"
    assert ema_out["runs"]["cin"]["loss"][0] != pytest.approx(per_image.mean().item(), rel=1e-3)
    # timing a training step (Adam moves the weights) leaves the losses those of the network read
    timed = mnist_level_losses(runs, every=2, n_images=32, seed=5, root=mnist_root, time_steps=2)
    for name in runs:
        assert timed["runs"][name]["image_means"] == out["runs"][name]["image_means"]
        assert 0 < timed["runs"][name]["cpu_seconds_per_step"] < 60


def test_paired_loss_difference_uses_the_spread_of_the_paired_differences():
    """Two runs whose per-image losses share a large image effect: the difference's standard error is
    that of the differences (here sd 1 over sqrt(n)), far below the unpaired sqrt(var_a/n + var_b/n)."""
    g = torch.Generator().manual_seed(0)
    n = 400
    image = 100.0 * torch.randn(n, generator=g, dtype=torch.float64)  # how hard each image is
    d = torch.randn(n, generator=g, dtype=torch.float64)
    result = {"runs": {"a": {"image_means": (image + 2.0 + d).tolist()}, "b": {"image_means": image.tolist()}}}
    mean, se = paired_loss_difference(result, "a", "b")
    assert mean == pytest.approx((2.0 + d).mean().item(), rel=1e-12)
    assert se == pytest.approx(d.std().item() / n ** 0.5, rel=1e-12)  # 0.05, against about 7 unpaired


def _committed():
    return json.loads(resource_path("ncsnv2_toy_techniques.json").read_text())


def test_committed_toy_results_are_what_the_module_computes():
    data = _committed()
    cond, ema = data["conditioning"], data["ema"]
    sigmas = toy_sigmas()
    assert cond["seeds"] == list(SEEDS) and ema["seeds"] == list(SEEDS)
    assert cond["sigmas"] == pytest.approx(sigmas.tolist())
    assert cond["parameters"] == {k: n_parameters(make_net(k, sigmas, 0)) for k in KINDS}
    assert ema["rate"] == 0.999 and ema["lr_decay"] is None
    # the floors are closed forms on fixed points: recomputed exactly
    mixture = embedded_toy(2)
    assert cond["floor_levels"] == pytest.approx(division_floor(mixture, sigmas, n=cond["n_eval"], seed=1000),
                                                 rel=1e-9)
    # one run of the comparison, rerun: seed 0 of the division network (about 3 CPU-seconds)
    net = make_net("division", sigmas, 0)
    net, _ = train_toy_ncsn(model=net, n_steps=cond["n_steps"], batch_size=cond["batch_size"], lr=cond["lr"],
                            seed=0)
    net.eval()
    got = net_errors(net, eval_points(mixture, sigmas, cond["n_eval"], 1000))
    assert got == pytest.approx(cond["runs"]["division"][0]["levels"], abs=1e-3)
    # every EMA curve starts at the raw weights and has a row every `every` steps
    for run in ema["runs"]:
        assert run["rows"][0]["ema"] == run["rows"][0]["raw"]
        assert [r["step"] for r in run["rows"]] == list(range(0, ema["n_steps"] + 1, ema["every"]))
