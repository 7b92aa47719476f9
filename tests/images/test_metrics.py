"""Quality numbers: the Frechet distance against its closed form (and between two samples of
the same distribution: not 0 but a small-sample bias that falls like 1/n), nearest neighbours
against brute force, and the committed MNIST classifier's numbers on real versus
shuffled-pixel images."""

import numpy as np
import pytest
import torch
from missing_data import skip_missing

from ncsn_edu.images.metrics import (
    class_histogram,
    classifier_report,
    frechet_between_disjoint_subsets,
    frechet_distance,
    frechet_distance_from_moments,
    has_closed_loop,
    inception_score,
    mean_confidence,
    nearest_neighbours,
    shuffle_pixels,
)


def test_frechet_distance_closed_form_for_diagonal_gaussians():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()  # = 5 + 4 + 1
    assert frechet_distance_from_moments(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, abs=1e-9)
    # Rotating both Gaussians together leaves the distance unchanged.
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    rotated = frechet_distance_from_moments(q @ mu1, q @ np.diag(v1) @ q.T, q @ mu2, q @ np.diag(v2) @ q.T)
    assert rotated == pytest.approx(expected, abs=1e-9)


def test_frechet_distance_of_samples():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(20000, 4, generator=g)
    b = torch.randn(20000, 4, generator=g) * 2 + torch.tensor([1.0, 0, 0, 0])
    # closed form: 1 + 4 * (2 - 1)^2 = 5
    assert frechet_distance(a, b) == pytest.approx(5.0, abs=0.15)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError):
        frechet_distance(a, b[:, :3])


def test_histogram_and_confidence():
    assert np.allclose(class_histogram(torch.tensor([0, 1, 1, 3]), 4), [0.25, 0.5, 0, 0.25])
    probs = torch.tensor([[0.9, 0.1], [0.3, 0.7]])
    assert np.allclose(class_histogram(probs, 2), [0.5, 0.5])
    assert mean_confidence(probs) == pytest.approx(0.8)


def test_inception_score_closed_forms():
    # Catches (each planted and seen failing): p(y) averaged over classes instead of images, the
    # exp left out, the KL taken the other way round, the mean taken after the exp.
    K = 10
    # Confident predictions, every class equally often: KL(p(y|x) || p(y)) = log K for every x.
    onehot = torch.eye(K).repeat(3, 1)
    assert inception_score(onehot) == pytest.approx(K, abs=1e-9)
    # Identical rows: p(y|x) = p(y), every KL is 0, whatever the row is.
    row = torch.softmax(torch.randn(K, generator=torch.Generator().manual_seed(0)), 0)
    assert inception_score(row.repeat(7, 1)) == pytest.approx(1.0, abs=1e-9)
    assert inception_score(torch.full((5, K), 1 / K)) == pytest.approx(1.0, abs=1e-9)
    # Confident but unbalanced, classes used 2:1:1: exp(H(1/2, 1/4, 1/4)) = exp(1.5 log 2) = 2 sqrt 2.
    assert inception_score(torch.eye(3)[[0, 0, 1, 2]]) == pytest.approx(2 * 2**0.5, abs=1e-9)
    # Half the rows sure of class 0, half split evenly between 0 and 1: p(y) = (3/4, 1/4),
    # E KL = 1/2 log(4/3) + 1/2 (1/2 log(2/3) + 1/2 log 2) = 1/2 log(4/3) + 1/4 log(4/3).
    mixed = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    assert inception_score(mixed) == pytest.approx((4 / 3) ** 0.75, abs=1e-9)
    with pytest.raises(ValueError):
        inception_score(torch.tensor([[0.5, 0.6]]))


def _ring(gap_rows=()):
    """A ring of radius 6-8 pixels on a 28 x 28 canvas, with the rows ``gap_rows`` of its right side erased."""
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    r = ((yy - 14) ** 2 + (xx - 14) ** 2).sqrt()
    img = ((r >= 6) & (r <= 8)).float()
    for row in gap_rows:
        img[row, 14:] = 0
    return img[None]


def test_closed_loops_are_found_and_open_shapes_are_not():
    # Catches (each planted and seen failing): no flood from the border, a flood through strokes,
    # background spreading diagonally (8 neighbours), a wrong area threshold.
    ring, c_shape = _ring(), _ring(gap_rows=range(12, 17))  # an "O" and a "C"
    box = torch.zeros(1, 28, 28)
    box[0, 2:12, 8:20] = 1.0
    box[0, 4:10, 11:17] = 0.0  # a closed box: 6 x 6 enclosed pixels
    disk = (_ring() + _ring().roll(1, 2)).clamp(0, 1)
    disk[0, 7:22, 7:22] = 1.0  # filled: no background inside
    stroke = torch.zeros(1, 28, 28)
    stroke[0, 4:24, 13:15] = 1.0  # a "1"
    images = torch.stack([ring, c_shape, box, disk, stroke, torch.zeros(1, 28, 28)])
    assert has_closed_loop(images).tolist() == [True, False, True, False, False, False]
    # A loop whose stroke touches itself only diagonally is still closed (background moves in 4 directions).
    diag = torch.zeros(1, 1, 6, 6)
    for y, x in [(1, 2), (2, 1), (3, 2), (2, 3)]:
        diag[0, 0, y, x] = 1.0
    assert has_closed_loop(diag, min_area=1).tolist() == [True]
    assert has_closed_loop(ring[None] * 0.4).tolist() == [False]  # below the threshold: no strokes


def test_nearest_neighbours_against_brute_force():
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(300, 1, 5, 5, generator=g)
    queries = torch.cat([ref[[7, 123]], torch.rand(3, 1, 5, 5, generator=g)])
    d, i = nearest_neighbours(queries, ref, k=3, chunk=64)  # several chunks
    brute = torch.cdist(queries.flatten(1).double(), ref.flatten(1).double())
    bd, bi = brute.topk(3, dim=1, largest=False)
    assert torch.equal(i, bi) and torch.allclose(d, bd, atol=1e-6)
    assert i[0, 0] == 7 and i[1, 0] == 123 and d[:2, 0].abs().max() < 1e-6  # copies are found at distance 0


def test_shuffle_pixels_keeps_values():
    x = torch.rand(4, 1, 6, 6)
    s = shuffle_pixels(x, torch.Generator().manual_seed(0))
    assert torch.equal(s.flatten(1).sort(1).values, x.flatten(1).sort(1).values)
    assert not torch.equal(s, x)


@pytest.fixture(scope="module")
def mnist_and_classifier():
    from ncsn_edu.images.data import image_dataset
    from ncsn_edu.images.mnist_classifier import load_classifier

    try:
        test = image_dataset("mnist", train=False)
        train = image_dataset("mnist", train=True)
    except FileNotFoundError as err:  # offline without a copy of MNIST
        skip_missing("mnist", err)
    model, summary = load_classifier()
    to = lambda ds: (ds.data.unsqueeze(1).float() / 255, ds.targets)  # noqa: E731
    return to(test), to(train), model, summary


def test_classifier_numbers_separate_real_from_shuffled_images(mnist_and_classifier):
    (xt, yt), (xtr, _), model, summary = mnist_and_classifier
    assert summary["test_accuracy"] > 0.97
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(xt), generator=g)
    real, reference = xt[perm[:1000]], xt[perm[1000:3000]]
    ref_feats = classifier_report(model, reference)["features"]
    r = classifier_report(model, real, ref_feats)
    s = classifier_report(model, shuffle_pixels(real, g), ref_feats)
    # Real digits: every class, close to 10% each, recognised with confidence.
    assert r["classes_present"] == 10 and r["max_class_deviation"] < 0.04
    assert r["confidence"] > 0.95
    assert (torch.tensor(class_histogram(yt[perm[:1000]])) - torch.tensor(r["histogram"])).abs().max() < 0.02
    # Shuffled pixels: same pixel values, no digit. The classifier is less sure, and the
    # features sit far from those of real digits.
    assert s["confidence"] < r["confidence"] - 0.1
    assert s["frechet"] > 20 * r["frechet"]
    # In pixel space, real test digits have much closer training neighbours than shuffled ones.
    d_real, _ = nearest_neighbours(real[:50], xtr[:20000])
    d_shuf, _ = nearest_neighbours(shuffle_pixels(real[:50], g), xtr[:20000])
    assert d_real.median() < 0.8 * d_shuf.median()


def test_feature_neighbours_find_the_training_digits_themselves(mnist_and_classifier):
    # Catches (planted and seen failing): the nearest neighbour (a copy) skipped.
    from ncsn_edu.images.metrics import classifier_outputs, feature_nearest_neighbours

    (xt, _), (xtr, _), model, _ = mnist_and_classifier
    ref = xtr[:2000]
    _, ref_feats = classifier_outputs(model, ref)
    d, i = feature_nearest_neighbours(model, ref[[5, 700]], ref_feats, k=2)
    assert i[:, 0].tolist() == [5, 700] and d[:, 0].abs().max() < 1e-4  # a copy is its own nearest neighbour
    assert (d[:, 1] > d[:, 0]).all()
    # Real test digits: their nearest training neighbour in feature space mostly has their label.
    _, i_t = feature_nearest_neighbours(model, xt[:200], ref_feats, k=1)
    assert (mnist_and_classifier[1][1][:2000][i_t[:, 0]] == mnist_and_classifier[0][1][:200]).float().mean() > 0.9


def test_real_zeros_have_loops_and_ones_do_not(mnist_and_classifier):
    (xt, yt), _, _, _ = mnist_and_classifier
    loop = has_closed_loop(xt[:2000])
    y = yt[:2000]
    # (Some handwritten zeros are left open: 81% of these zeros close their loop, 95% of the eights.)
    assert loop[y == 0].float().mean() > 0.7 and loop[y == 8].float().mean() > 0.85
    assert loop[y == 1].float().mean() < 0.05


def test_frechet_between_same_distribution_subsets_is_the_small_sample_bias():
    """For N(0, I_d) features and n >> d, E[FD] between two independent n-samples is
    about (2d + d(d+1)/2) / n: 2d/n from the means, d(d+1)/(2n) from the covariances
    (tr((C1^1/2 - C2^1/2)^2) ~ ||C1 - C2||_F^2 / 4). Mean of 40 splits, 4 standard errors."""
    d = 16
    g = torch.Generator().manual_seed(0)
    f = torch.randn(40000, d, generator=g)
    predicted = 2 * d + d * (d + 1) / 2
    scaled = {}
    for n in (1024, 4096):
        v = frechet_between_disjoint_subsets(f, n, repeats=40, generator=g)
        se = v.std(ddof=1) / np.sqrt(len(v))
        assert abs(v.mean() - predicted / n) < 4 * se + 0.03 * predicted / n, (n, v.mean(), predicted / n)
        scaled[n] = v.mean() * n
    # bias falls like 1/n
    assert scaled[4096] == pytest.approx(scaled[1024], rel=0.1)


def test_frechet_subsets_are_disjoint():
    f = torch.arange(20.0).view(10, 2)
    with pytest.raises(ValueError):
        frechet_between_disjoint_subsets(f, 6)  # 2 x 6 > 10 rows
    # two far-apart halves: with a split into disjoint halves the distance is not 0
    g = torch.Generator().manual_seed(1)
    v = frechet_between_disjoint_subsets(torch.randn(200, 3, generator=g), 100, repeats=5, generator=g)
    assert (v > 0).all()
