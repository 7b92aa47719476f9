"""Tests aimed at bugs that once left the whole suite green (issue 14, item 1; issue 20,
item 4: the held-out loss, the held-out dequantisation, ``to_uint8``'s rounding).

Each test below was checked by planting its bug in the package, seeing the test fail,
and reverting; the comment on each test says which bug it catches. Tolerances are a
few standard errors of the statistic, computed from the samples themselves.

Issue 30's four bugs are caught in the files of their modules, each seen failing on its bug:
the in-page mode fractions divided by all n chains instead of the m finite ones
(tests/figures/test_live.py::test_mode_fractions_count_the_finite_chains_only); chapter 7's
plain live chains with a drift of eps*s instead of eps/2*s (tests/figures/test_live_mixing.py,
the spread within each mode); the VE SDE's prior with sigma_min instead of sigma_max
(tests/test_score_sde.py, the prior's tests); held-out batches flipped left-right
(tests/images/test_batches.py and, with the dequantisation, below).
"""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from image_train_helpers import (
    Crash,
    asymmetric_images,
    crashing_factory,
    nearest_stored,
    tiny_factory,
    write_fake_mnist,
)

from ncsn_edu import sample_images as si
from ncsn_edu import train_images as ti
from ncsn_edu.images import trainer
from ncsn_edu.images.batches import ImageSet
from ncsn_edu.images.inpainting import annealed_langevin_inpainting
from ncsn_edu.images.presets import TrainConfig
from ncsn_edu.images.refinenet import CondInstanceNormPlus, CondRefineNetDilated
from ncsn_edu.images.samples import to_uint8
from ncsn_edu.schedules import geometric_sigmas

# ----------------------------------------------------------------------------- inpainting (Algorithm 2)

RHO = 0.9  # correlation of the two coordinates of the Gaussian toy


def _toy_score(sigmas):
    """Exact score of N(0, [[1, RHO], [RHO, 1]]) convolved with N(0, sigma_i^2 I)."""
    cov = torch.tensor([[1.0, RHO], [RHO, 1.0]], dtype=torch.float64)
    prec = torch.stack([torch.linalg.inv(cov + s**2 * torch.eye(2, dtype=torch.float64)) for s in sigmas])
    return prec, (lambda x, labels: -torch.einsum("nij,nj->ni", prec[labels], x))


def test_inpainting_draws_one_noisy_observation_per_level():
    # Catches: Algorithm 2 drawing a fresh y = x + sigma z at every Langevin step instead
    # of once per noise level. Coordinate 0 is known (x0 = 1), coordinate 1 generated.
    sigmas = geometric_sigmas(1.0, 0.5, 3).double()
    eps, T, n = 0.05, 100, 4000
    prec, score = _toy_score(sigmas)
    images = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    out, states = annealed_langevin_inpainting(score, images, torch.tensor([1.0, 0.0]), sigmas, eps=eps,
                                               n_steps_each=T, n_completions=n, keep_every=1,
                                               generator=torch.Generator().manual_seed(0), convention="paper")
    known = torch.stack([s[0, :, 0] for s in states[1:]])  # (steps, completions)
    for i, sigma in enumerate(sigmas.tolist()):
        level = known[i * T:(i + 1) * T]
        # Within a level the known entry is the same y after every step ...
        assert torch.equal(level, level[:1].expand_as(level)), f"y redrawn within level {i}"
        # ... and that y is 1 + sigma_i z: mean 1 and spread sigma_i over the completions
        # (standard errors sigma/sqrt(n) and sigma/sqrt(2n)).
        y = level[0]
        assert abs(y.mean().item() - 1.0) < 4 * sigma / math.sqrt(n)
        assert abs(y.std().item() - sigma) < 4 * sigma / math.sqrt(2 * n)
    # The output is what the sampler is for: the generated entry must be correlated with
    # the last level's y, which it was sampled conditionally on. With x0_s = y fixed the
    # chain is x1 <- (1 - c) x1 - (eps/2) P10 y + noise, c = (eps/2) P11, so after T steps
    # Cov(x1, y) = (-P10/P11) Var(y) (1 - (1 - c)^T), with -P10/P11 = RHO / (1 + s^2) and
    # Var(y) = s^2. A y redrawn at every step is independent of x1: covariance 0 (25 SE away).
    s2 = sigmas[-1].item() ** 2
    p = prec[-1]
    c = eps / 2 * p[1, 1].item()
    expected = RHO / (1 + s2) * s2 * (1 - (1 - c) ** T)
    y, x1 = out[0, :, 0], out[0, :, 1]
    prod = (y - y.mean()) * (x1 - x1.mean())
    se = prod.std().item() / math.sqrt(n)
    assert abs(prod.mean().item() - expected) < 4 * se, (prod.mean().item(), expected, se)
    assert expected > 20 * se  # the test separates the two algorithms


# ----------------------------------------------------------------------------- RefineNet wiring

# The network's wiring, computed independently from the paper's description (appendix A
# and the official model) on a one-channel stand-in. With the instance norms and the
# activations taken out (neither decides which pixels feed which: CIN++ mixes pixels only
# through its statistics, and ELU' > 0), no biases, and every convolution averaging its
# inputs (all weights 1 / (C_in k^2)), all channels of every feature map are equal, and
# the network is the one-channel linear map below:
# a 3x3 input conv; four stages of two pre-activation residual blocks (x + conv(conv(x)),
# 3x3): full resolution; 2x2 average pooling (entry block: conv, conv, pool; shortcut 1x1
# conv, pool); dilation 2; dilation 4 (entry blocks of stages 3 and 4: a dilated 3x3
# shortcut conv); four refine blocks fed f4 | f3, r | f2, r | f1, r, each: two RCU blocks
# per input, a 3x3 conv per input and bilinear upsampling with aligned corners (when two
# inputs), chained residual pooling (two 5x5 stride-1 average pools, each followed by a
# 3x3 conv, every output added), output RCUs (one block; three in the last); a final 3x3
# conv. Positive weights: nothing cancels, so the output's support is also the set of
# pixels the input pixel reaches (its receptive field, read the other way).

def _conv(h, d=1):
    return F.conv2d(h, torch.full((1, 1, 3, 3), 1 / 9, dtype=h.dtype), padding=d, dilation=d)


def _res_block(h, d=1, down=False, entry=False):
    if down:
        return F.avg_pool2d(_conv(_conv(h)), 2) + F.avg_pool2d(h, 2)
    return _conv(_conv(h, d), d) + (_conv(h, d) if entry else h)


def _rcu(h, n_blocks):
    for _ in range(n_blocks):
        h = h + _conv(_conv(h))
    return h


def _refine(xs, size, last=False):
    hs = [_rcu(x, 2) for x in xs]
    if len(hs) > 1:
        h = sum(F.interpolate(_conv(x), size=tuple(size), mode="bilinear", align_corners=True) for x in hs)
    else:
        h = hs[0]
    path = h
    for _ in range(2):
        path = _conv(F.avg_pool2d(path, 5, stride=1, padding=2))
        h = h + path
    return _rcu(h, 3 if last else 1)


def _paper_network(x):
    h = _res_block(_res_block(_conv(x)))
    f1 = h
    f2 = h = _res_block(_res_block(h, down=True, entry=True))
    f3 = h = _res_block(_res_block(h, 2, entry=True), 2)
    f4 = _res_block(_res_block(h, 4, entry=True), 4)
    r = _refine([f4], f4.shape[2:])
    r = _refine([f3, r], f3.shape[2:])
    r = _refine([f2, r], f2.shape[2:])
    r = _refine([f1, r], f1.shape[2:], last=True)
    return _conv(r)


def test_refinenet_wiring_and_receptive_field_are_the_papers(monkeypatch):
    # Catches what parameter counts and shapes cannot see: a dilation changed (stage 4's
    # 4 -> 2, stage 3's 2 -> 1), the pooling size of chained residual pooling, the
    # upsampling (bilinear -> nearest, aligned corners or not), the order in which the
    # encoder's features are fed to the refine blocks, the number of RCU blocks.
    size, p = 192, (0, 0)  # large enough that the reach from the corner does not fill the image
    net = CondRefineNetDilated(in_channels=1, ngf=2, num_classes=1, image_size=size).double()
    monkeypatch.setattr(CondInstanceNormPlus, "forward", lambda self, x, labels: x)
    monkeypatch.setattr(torch.nn.ELU, "forward", lambda self, x: x)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.fill_(1 / m.weight[0].numel())
                if m.bias is not None:
                    m.bias.zero_()
        x = torch.zeros(1, 1, size, size, dtype=torch.float64)
        x[0, 0, p[0], p[1]] = 1.0
        # The network first maps pixels x -> 2x - 1: feed (x + 1)/2 so that it sees x.
        out = net((x + 1) / 2, torch.zeros(1, dtype=torch.long))[0, 0]
        expected = _paper_network(x)[0, 0]
    # Values to float64 rounding; zeros exactly (the smallest nonzero value is ~1e-90,
    # far above float64's underflow).
    assert torch.equal(out > 0, expected > 0), ((out > 0).sum().item(), (expected > 0).sum().item())
    torch.testing.assert_close(out, expected, rtol=1e-9, atol=0)
    # The reach counted by hand along the longest path, in rows from the corner: fine
    # 1 + 4 + 2 = 7 -> pool -> coarse 3; + 2 (stage 2) + 4*2 (stage 3) + 4*4 (stage 4) = 29;
    # refine1 +4 +6 +2 = 41; refine2 +4 +1 +6 +2 = 54; refine3 +13 = 67; refine4's coarse
    # input +4 +1 = 72; bilinear 96 -> 192 with aligned corners reaches fine rows
    # o < 73 * 191/95, i.e. 146; +6 (pooling) +6 (three RCU blocks) +1 (end conv) = 159.
    # (A stage 4 dilated by 2 would stop at 143.)
    reached = expected > 0
    assert reached.any(1).nonzero().max().item() == 159 and reached.any(0).nonzero().max().item() == 159


# ----------------------------------------------------------------------------- resume and metrics.csv

def _metric_rows(path):
    """metrics.csv as {(step, tag): value}, failing on a (step, tag) seen twice; wall time
    and the iterations-per-second column (timing, not training) are left out."""
    rows = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            if r["tag"] == "it_per_s":
                continue
            key = (int(r["step"]), r["tag"])
            assert key not in rows, f"{key} logged twice in {path}"
            rows[key] = r["value"]
    return rows


def test_resume_from_an_earlier_checkpoint_drops_the_rows_logged_after_it(tmp_path):
    # Catches: resuming without dropping the metrics.csv rows logged after the checkpoint
    # it resumes from (they are logged again by the resumed run: duplicates, or stale
    # values). The run dies at step 11 with its last checkpoint at step 8 and rows logged
    # at step 9; resumed, its log must equal an uninterrupted run's, row for row.
    root = tmp_path / "data"
    write_fake_mnist(root, n_train=64, n_test=16)

    def cli(out):
        return ["--data-root", str(root), "--out", str(out), "--ngf", "4", "--batch-size", "8", "--n-iters", "14",
                "--ckpt-every", "4", "--log-every", "3", "--test-every", "3", "--test-batches", "1",
                "--sample-every", "1000", "--sample-n", "1", "--sample-steps-each", "1", "--no-progress"]

    assert ti.main(cli(tmp_path / "clean"), model_factory=tiny_factory) == 0
    with pytest.raises(Crash):
        ti.main(cli(tmp_path / "crashed"), model_factory=crashing_factory(10))
    crashed = _metric_rows(tmp_path / "crashed" / "metrics.csv")
    assert max(s for s, _ in crashed) == 9  # rows after the step-8 checkpoint exist
    assert ti.main(cli(tmp_path / "crashed"), model_factory=tiny_factory) == 0
    clean = _metric_rows(tmp_path / "clean" / "metrics.csv")
    resumed = _metric_rows(tmp_path / "crashed" / "metrics.csv")
    assert {s for s, _ in clean} == {3, 4, 6, 8, 9, 12, 14}
    assert resumed == clean


# ----------------------------------------------------------------------------- the sampling command's step

class _GaussianPixels(torch.nn.Module):
    """The exact noise-conditional score of pixels i.i.d. N(MU, S^2): at level i the data
    convolved with N(0, sigma_i^2) is N(MU, S^2 + sigma_i^2). Its one parameter is unused
    (multiplied by zero) so that the trainer can run it and write a real checkpoint."""

    MU, S = 0.5, 0.05

    def __init__(self, dataset, ngf, n_sigmas, sigma_begin=0.1, sigma_end=0.05):
        super().__init__()
        self.register_buffer("sigmas", geometric_sigmas(sigma_begin, sigma_end, n_sigmas).float())
        self.unused = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, labels):
        var = self.S**2 + self.sigmas[labels].view(-1, 1, 1, 1) ** 2
        return -(x - self.MU) / var + 0 * self.unused


def _predicted_variance(sigmas, a_last, steps_each, start_var=1 / 12):
    """Variance of x after the chain x <- x + a_i s_i(x) + sqrt(2 a_i) z, a_i = a_last
    sigma_i^2 / sigma_L^2, on the Gaussian above, from uniform noise: each step maps the
    variance v to (1 - a_i/V_i)^2 v + 2 a_i with V_i = S^2 + sigma_i^2 (exact, for any
    start distribution)."""
    v = start_var
    for s in sigmas:
        a = a_last * s**2 / sigmas[-1] ** 2
        for _ in range(steps_each):
            v = (1 - a / (_GaussianPixels.S**2 + s**2)) ** 2 * v + 2 * a
    return v


def test_sampling_command_takes_the_step_it_is_given(tmp_path):
    # Catches: the sampling command's step size doubled or halved, or its default
    # convention switched from the official code's (x + a s + sqrt(2a) z) to the paper's
    # (x + a/2 s + sqrt(a) z, which is the code's with a/2). On a Gaussian target, an
    # unadjusted Langevin chain's variance is known exactly as a function of the step; at
    # the last level it tends to V / (1 - a / (2V)), which differs by 14% or more between
    # a/2, a and 2a. 16 images of 784 independent pixels give a 1.3% standard error.
    root = tmp_path / "data"
    write_fake_mnist(root, n_train=16, n_test=4)
    run = tmp_path / "run"
    rc = ti.main(["--data-root", str(root), "--out", str(run), "--n-sigmas", "2", "--sigma-begin", "0.1",
                  "--sigma-end", "0.05", "--batch-size", "8", "--n-iters", "1", "--test-batches", "0",
                  "--sample-n", "1", "--sample-steps-each", "1", "--no-progress"],
                 model_factory=lambda d, ngf, n, **kw: _GaussianPixels(d, ngf, n))
    assert rc == 0
    sigmas = [0.1, 0.05]
    eps, steps, n = 0.0025, 40, 16  # a/V at the last level = 0.0025 / 0.005 = 1/2

    def sample_variance(*extra):
        folder = tmp_path / ("shards" + "_".join(extra))
        assert si.main(["sample", str(run / "checkpoint.pt"), "--n", str(n), "--eps", str(eps), "--steps-each",
                        str(steps), "--shards", str(folder), "--seed", "1", "--no-progress", *extra],
                       model_factory=lambda d, ngf, k, **kw: _GaussianPixels(d, ngf, k)) == 0
        x = np.concatenate([np.load(f)["images"] for f in sorted(folder.glob("shard_*.npz"))])
        assert x.shape == (n, 1, 28, 28)
        x = x.astype(np.float64) / 255
        assert abs(x.mean() - 0.5) < 0.01  # far from the clamp at 0 and 1 (6 standard deviations)
        return x.var(), x.size

    # uint8 rounding adds (1/255)^2 / 12 to the variance (Sheppard's correction).
    rounding = (1 / 255) ** 2 / 12
    predicted = {k: _predicted_variance(sigmas, k * eps, steps) + rounding for k in (0.25, 0.5, 1, 2)}
    var, size = sample_variance()  # the default: the official code's convention
    se = var * math.sqrt(2 / size)
    assert abs(var - predicted[1]) < 4 * se, (var, predicted, se)
    # Half and twice the step are many standard errors away.
    assert abs(predicted[0.5] - predicted[1]) > 8 * se and abs(predicted[2] - predicted[1]) > 8 * se
    var, size = sample_variance("--convention", "paper")  # the paper's update: the code's with eps/2
    se = var * math.sqrt(2 / size)
    assert abs(var - predicted[0.5]) < 4 * se, (var, predicted, se)
    assert abs(predicted[0.25] - predicted[0.5]) > 4 * se and abs(predicted[1] - predicted[0.5]) > 8 * se


# ----------------------------------------------------------------------------- issue 20: three more bugs

class _ZeroScore(torch.nn.Module):
    """The score network that always answers zero. With lambda(sigma) = sigma^2 its loss at
    every level is 1/2 ||z||^2 per image, whose mean is D/2 (D pixel values) and whose
    variance is D/2 (1/4 of a chi-square's 2D). Its one parameter is unused, so the
    trainer can run it."""

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, labels):
        return torch.zeros_like(x) + 0 * self.unused


def test_held_out_loss_is_the_mean_per_image_loss(tmp_path):
    # Catches: the held-out test loss summing the batch means (or averaging per-pixel, or
    # over batches of another size) instead of the per-image losses, which divides the
    # logged test_loss by the batch size. The zero-score model's loss is known: D/2 = 392
    # on 28x28 images at every level, with standard error sqrt(D/2 / n) over n images.
    root = tmp_path / "data"
    write_fake_mnist(root, n_train=32, n_test=16)
    n_batches, batch = 4, 16
    rc = ti.main(["--data-root", str(root), "--out", str(tmp_path / "run"), "--batch-size", str(batch),
                  "--n-iters", "2", "--ckpt-every", "2", "--log-every", "1", "--test-every", "2", "--test-batches",
                  str(n_batches), "--sample-n", "1", "--sample-steps-each", "1", "--no-progress"],
                 model_factory=lambda *a, **kw: _ZeroScore())
    assert rc == 0
    m = trainer.read_metrics(tmp_path / "run" / "metrics.csv")
    d = 28 * 28
    (test_loss,) = m["test_loss"][1]
    se = math.sqrt(d / 2 / (n_batches * batch))
    assert abs(test_loss - d / 2) < 5 * se, (test_loss, d / 2, se)
    # The training log's per-level losses are the same quantity (about 3 images per level
    # per row: a loose 6-standard-error band per row, the mean of all rows within 4).
    levels = [v for tag, (_, vals) in m.items() if tag.startswith("loss_level/") for v in vals]
    assert all(abs(v - d / 2) < 6 * math.sqrt(d / 2) for v in levels)
    assert abs(sum(m["loss_mean"][1]) / 2 - d / 2) < 4 * math.sqrt(d / 2 / (2 * batch))


class _Recorder(torch.nn.Module):
    """Records the (noised) images the held-out loss shows it; answers zero."""

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(()))
        self.seen = []

    def forward(self, x, labels):
        self.seen.append(x.detach().clone())
        return torch.zeros_like(x)


def test_held_out_batches_are_dequantised_as_the_training_batches():
    # Catches: the held-out batch dequantised as x + u/256 instead of x * 255/256 + u/256
    # (x = v/255): then a pixel of value v lands at v + v/255 + u grey levels (256ths), past
    # its bin [v, v + 1) by up to a whole level at v = 255. Also catches held-out batches
    # flipped left-right: the images are random, so a mirrored image is more than 2 grey
    # levels from every stored image. Dequantised right, every pixel of value v lies in
    # [v, v + 1] whatever the random stream draws (1e-3 allows float32's rounding and the
    # 1e-7 noise level's z), and u = 256 x - v is uniform. The network sees the held-out
    # images themselves through trainer.held_out_loss (noise level 1e-7).
    images = asymmetric_images(40)
    assert nearest_stored(images.flip(-1), images)[0].min() > 2
    test = ImageSet(images, torch.zeros(len(images)), "random images")
    net = _Recorder()
    for deq in (True, False):
        net.seen.clear()
        cfg = TrainConfig(dataset="cifar10", n_sigmas=1, sigma_begin=1e-7, sigma_end=1e-7, batch_size=64,
                          test_batches=4, dequantize=deq)
        sigmas = geometric_sigmas(1e-7, 1e-7, 1).float()
        state = {"model": net}
        loss = trainer.held_out_loss(state, test, cfg, sigmas, trainer.Speed(cfg, torch.device("cpu")))
        assert math.isfinite(loss) and net.training
        x = torch.cat(net.seen).double()
        assert len(x) == 4 * 64
        if not deq:  # exactly v/255 (+ 1e-7 z) of a stored image, unflipped
            dist, _ = nearest_stored(x * 255, images)
            assert (dist < 1e-3).all(), dist.max()
            continue
        dist, idx = nearest_stored(x * 256 - 0.5, images)
        assert (dist <= 0.5 + 1e-3).all(), f"{dist.max().item() - 0.5:.3f} grey levels out of the bins"
        u = x * 256 - images[idx].double()
        se = math.sqrt(1 / 12 / u.numel())
        assert abs(u.mean().item() - 0.5) < 5 * se and abs(u.var().item() - 1 / 12) < 0.01


def test_to_uint8_rounds_to_the_nearest_grey_level():
    # Catches: to_uint8 truncating instead of rounding, which lowers every stored sample
    # and every metric input by half a grey level on average. A value within 0.49 of grey
    # level k maps to k; uniform values keep their mean (to the rounding error's standard
    # error, 1/255 / sqrt(12 n)).
    k = torch.arange(256, dtype=torch.float64)
    for offset in (-0.49, -0.25, 0.0, 0.25, 0.49):
        got = to_uint8(((k + offset) / 255).clamp(0, 1).float())
        assert got.dtype == torch.uint8 and torch.equal(got.long(), k.long()), offset
    x = torch.rand(200_000, generator=torch.Generator().manual_seed(0))
    bias = (to_uint8(x).double() / 255 - x.double()).mean().item()
    assert abs(bias) < 5 / 255 / math.sqrt(12 * len(x)), bias
    assert to_uint8(torch.tensor([-0.5, 1.5])).tolist() == [0, 255]
