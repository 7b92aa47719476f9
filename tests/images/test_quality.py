"""ncsn_edu.images.quality: the blur and the noise against their closed forms, the bootstrap
spread against the binomial standard error, the paired difference on known answers, and the
sanity check itself: the committed classifier's confident share orders real test digits, the
same digits with noise 0.05, 0.1 and 0.2 and blurred ones as a person would, and puts chapter
13's blotchy annealed Langevin T = 10 samples well below all of them."""

import math

import numpy as np
import pytest
import torch
from missing_data import skip_missing

from ncsn_edu.images.quality import (
    bootstrap,
    class_deviation,
    confident_share,
    degraded_copies,
    gaussian_blur,
    gaussian_noise,
    paired_difference,
    quality,
    readings,
)


def test_blur_of_a_point_is_the_sampled_gaussian_with_its_variance_and_unit_mass():
    x = torch.zeros(1, 1, 21, 21)
    x[0, 0, 10, 10] = 1.0
    for s in (0.7, 1.0, 2.0):
        y = gaussian_blur(x, s)[0, 0]
        assert y.shape == (21, 21) and y.sum().item() == pytest.approx(1.0, abs=1e-6)
        k = torch.arange(21.0) - 10
        var_rows = (y.sum(1) * k**2).sum().item()
        # the kernel is the Gaussian sampled at the integers within 3 s: its variance is
        # sum k^2 exp(-k^2 / 2 s^2) / sum exp(-k^2 / 2 s^2), which is s^2 to within 2% here
        kk = torch.arange(-math.ceil(3 * s), math.ceil(3 * s) + 1.0)
        w = torch.exp(-kk**2 / (2 * s**2))
        assert var_rows == pytest.approx(((w * kk**2).sum() / w.sum()).item(), rel=1e-5)
        assert var_rows == pytest.approx(s**2, rel=0.02)
        assert torch.allclose(y, y.T, atol=1e-7)  # the same blur along rows and columns


def test_noise_has_the_requested_spread_and_is_clamped():
    g = torch.Generator().manual_seed(0)
    grey = torch.full((50, 1, 28, 28), 0.5)
    d = gaussian_noise(grey, 0.1, g) - grey  # 0.5 is 5 sigma from both ends: clamping is negligible
    # sd of a sample sd from N = 39,200 values: sigma / sqrt(2N) = 3.6e-4; allow 4 of them
    assert d.std().item() == pytest.approx(0.1, abs=1.5e-3)
    assert abs(d.mean().item()) < 4 * 0.1 / math.sqrt(d.numel())
    assert gaussian_noise(torch.zeros(4, 1, 28, 28), 0.2, g).min() >= 0


def test_bootstrap_spread_of_a_share_is_the_binomial_standard_error():
    hits = torch.zeros(400)
    hits[:100] = 1.0  # share 0.25 of 400 images
    sd = bootstrap(lambda c: confident_share(c, 0.5), hits, n_boot=800, generator=torch.Generator().manual_seed(1))
    expected = math.sqrt(0.25 * 0.75 / 400)  # 0.0217
    # the sd of 800 resamples has a relative error of about 1 / sqrt(2 * 800) = 2.5%; allow 4 of them
    assert sd.std(ddof=1) == pytest.approx(expected, rel=0.10)
    assert sd.mean() == pytest.approx(0.25, abs=4 * expected / math.sqrt(800))


def test_paired_difference_and_class_deviation_on_known_answers():
    before = torch.tensor([1.0, 1.0, 1.0, 0.5])
    after = torch.tensor([1.0, 0.5, 0.5, 1.0])
    diff, se = paired_difference(before, after, threshold=0.9)  # per image 0, 1, 1, -1
    assert diff == pytest.approx(0.25)
    assert se == pytest.approx(np.std([0, 1, 1, -1], ddof=1) / 2)
    assert class_deviation(torch.tensor([0] * 5 + [1] * 5), 10) == pytest.approx(0.4)  # 50% against 10%
    assert class_deviation(torch.arange(10)) == pytest.approx(0.0)


@pytest.fixture(scope="module")
def committed():
    from ncsn_edu.images.data import image_dataset
    from ncsn_edu.images.mnist_classifier import load_classifier

    try:
        test = image_dataset("mnist", train=False)
    except FileNotFoundError as err:
        skip_missing("mnist", err)
    return load_classifier()[0], test.data.unsqueeze(1).float() / 255


def test_the_confident_share_orders_degraded_digits_and_blotchy_samples_as_a_person_would(committed):
    from ncsn_edu.experiments.sde_mnist import load
    from ncsn_edu.resources import resource_path

    classifier, x_test = committed
    real = x_test[torch.randperm(len(x_test), generator=torch.Generator().manual_seed(3))[:2000]]
    conf = {k: readings(classifier, v)[0] for k, v in degraded_copies(real, torch.Generator().manual_seed(4)).items()}
    names = list(conf)  # real, noise 0.05, 0.1, 0.2, blurred
    # each step down the ladder loses confident readings, by more than 3 paired standard errors
    # (measured: 0.032 +- 0.004, 0.045 +- 0.005, 0.155 +- 0.008, and 0.298 +- 0.010 for the blur;
    # at the threshold 0.9 the first two are 0.006 +- 0.002 and 0.007 +- 0.003, too small to see)
    for better, worse in [*zip(names[:4], names[1:4]), (names[0], names[4])]:
        diff, se = paired_difference(conf[better], conf[worse])
        assert diff > 3 * se, (better, worse, diff, se)
    # chapter 13's annealed Langevin T = 10 samples (128) are blotches that a person ranks below
    # noisy and blurred digits: below both by more than 3 standard errors of the difference of
    # two independent shares (measured 0.23 against 0.58 and 0.46; the Frechet distance in the
    # classifier's features puts them above the blurred digits, 154 against 204)
    blotchy = load(resource_path("mnist_pc_samples.npz"))["samples"]["annealed Langevin, T = 10 per level"]
    p2 = confident_share(readings(classifier, blotchy)[0])
    for name in names[3:]:
        p1 = confident_share(conf[name])
        se = math.sqrt(p1 * (1 - p1) / len(real) + p2 * (1 - p2) / len(blotchy))
        assert p1 - p2 > 3 * se, (name, p1, p2, se)


def test_quality_gives_the_share_and_balance_with_their_bootstrap_spreads():
    conf = torch.tensor([0.995] * 30 + [0.5] * 70)
    pred = torch.arange(100) % 5  # five classes, 20% each
    q = quality(conf, pred, n_boot=400, generator=torch.Generator().manual_seed(2))
    assert q["n"] == 100 and q["confident"] == pytest.approx(0.3) and q["deviation"] == pytest.approx(0.1)
    # binomial s.e. sqrt(0.3 * 0.7 / 100) = 0.046; the sd of 400 resamples is within about 3.5% of it
    assert q["confident_sd"] == pytest.approx(math.sqrt(0.21 / 100), rel=0.15)
    assert 0 < q["deviation_sd"] < 0.1
