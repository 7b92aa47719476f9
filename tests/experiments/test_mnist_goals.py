"""ncsn_edu.experiments.mnist_goals: real digits measured against themselves meet every goal
(ratio 1, loops 0 points off), known images give known loop shares and class shares, and a set
of copies of one digit fails the class goal; the command reads shards and writes its file."""

import json

import numpy as np
import pytest
import torch
from missing_data import skip_missing

from ncsn_edu.experiments.mnist_goals import goals, main, real_test_digits, summary


@pytest.fixture(scope="module")
def committed():
    from ncsn_edu.images.mnist_classifier import load_classifier

    try:
        real = real_test_digits(300, seed=0)
    except FileNotFoundError as err:
        skip_missing("mnist", err)
    return load_classifier()[0], real


def _ring_and_bar(n_rings: int, n_bars: int) -> torch.Tensor:
    x = torch.zeros(n_rings + n_bars, 1, 28, 28)
    x[:n_rings, 0, 8:20, 8:20] = 1.0
    x[:n_rings, 0, 10:18, 10:18] = 0.0  # an 8 x 8 hole: a closed loop
    x[n_rings:, 0, 4:24, 13:15] = 1.0  # a bar: no loop
    return x


def test_loop_share_and_class_shares_of_known_images(committed):
    classifier, _ = committed
    s = summary(_ring_and_bar(3, 5), classifier, n_boot=50)
    assert s["loops"] == pytest.approx(3 / 8)
    assert sum(s["class_shares"]) == pytest.approx(1.0)
    assert s["class_min"] <= min(s["class_shares"]) and s["class_max"] == max(s["class_shares"])
    with pytest.raises(ValueError, match="shape"):
        summary(torch.zeros(2, 28, 28), classifier)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        summary(torch.full((2, 1, 28, 28), 255.0), classifier)


def test_real_digits_against_the_same_real_digits_meet_the_share_and_loop_goals(committed):
    classifier, real = committed
    r = goals({"real": real}, classifier, real=real, n_boot=100)["real"]
    assert r["confident_0.9_ratio"] == pytest.approx(1.0)
    assert r["loops_minus_real"] == 0.0
    # 300 real digits: the classifier (98-99% accurate) reads about 93% of them with
    # confidence >= 0.9; binomial sd sqrt(.93 * .07 / 300) = 0.015, so 0.85 is 5 sd below
    assert r["confident_0.9"] > 0.85
    # the bootstrap spread is the binomial standard error sqrt(p(1-p)/n) within the
    # bootstrap's own noise (100 resamples: relative sd about 1/sqrt(200) = 7%; 30% is 4 sd)
    p = r["confident_0.9"]
    assert r["confident_0.9_sd"] == pytest.approx((p * (1 - p) / 300) ** 0.5, rel=0.3)
    # about 0.3 of real digits have a closed loop (0, 6, 8, 9 and some 2s and 4s)
    assert 0.2 < r["loops"] < 0.45


def test_copies_of_one_digit_fail_the_class_goal_and_noise_fails_the_share_goal(committed):
    classifier, real = committed
    one = real[:1].repeat(200, 1, 1, 1)
    g = torch.Generator().manual_seed(0)
    noisy = (real[:200] + 0.5 * torch.randn(real[:200].shape, generator=g)).clamp(0, 1)
    out = goals({"one": one, "noisy": noisy}, classifier, real=real, n_boot=50)
    assert out["one"]["class_max"] == 1.0 and not out["one"]["goals"]["every class 5-15%"]
    assert out["one"]["confident_0.9_ratio"] > 0.9
    assert out["noisy"]["confident_0.9_ratio"] < 0.85
    assert not out["noisy"]["goals"]["confident_0.9 at least 85% of real"]


def test_the_command_reads_shards_and_writes_its_file(committed, tmp_path):
    _, real = committed
    folder = tmp_path / "shards"
    folder.mkdir()
    for i in range(2):
        imgs = (real[20 * i:20 * (i + 1)] * 255).round().to(torch.uint8).numpy()
        np.savez_compressed(folder / f"shard_{i:05d}.npz", images=imgs)
    out = tmp_path / "goals.json"
    result = main(["--set", f"a={folder}", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["results"]["a"]["n"] == 40 == result["a"]["n"]
    assert "mnist_goals --set a=" in saved["meta"]["command"]
    with pytest.raises(SystemExit):
        main(["--set", "nofolder", "--out", str(out)])


def test_the_class_goal_needs_both_bounds(committed):
    classifier, real = committed
    from ncsn_edu.images.quality import readings

    conf, pred = readings(classifier, real)
    sure = conf >= 0.99
    pick = lambda c, k: real[(pred == c) & sure][:k]  # noqa: E731
    balanced = torch.cat([pick(c, 6) for c in range(10)])  # 10% each
    skewed = torch.cat([pick(0, 18)] + [pick(c, 6) for c in range(1, 10)])  # 25%, the rest 8.3%
    assert len(balanced) == 60 and len(skewed) == 72
    out = goals({"balanced": balanced, "skewed": skewed}, classifier, real=real, n_boot=20)
    assert out["balanced"]["goals"]["every class 5-15%"]
    assert out["skewed"]["class_min"] > 0.05 and not out["skewed"]["goals"]["every class 5-15%"]
