"""Commands and options that no other test ran (issue 14, item 3): ``evaluate_images
score`` and ``select`` (with torch-fidelity's metric replaced by a stub whose answers are
known), ``--dequantize``, ``fashion_mnist``, ``--no-snapshots``, the refusal to resume
with each setting that fixes the model, the TensorBoard purge on resume (through a stub
writer that keeps TensorBoard's purge rule), ``benchmark``'s exit code on a failed loss
agreement and ``--flops-only``, and ``image_dataset(flip=True)``.

Each test was checked against a bug planted in the package (see the comments).
"""

from __future__ import annotations

import csv
import json
import math
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from image_train_helpers import crashing_factory, tiny_factory, write_fake_mnist  # noqa: E402

from ncsn_edu import benchmark  # noqa: E402
from ncsn_edu import evaluate_images as ev  # noqa: E402
from ncsn_edu import sample_images as si  # noqa: E402
from ncsn_edu import train_images as ti  # noqa: E402
from ncsn_edu.images.checkpoints import load_checkpoint, read_checkpoint  # noqa: E402
from ncsn_edu.images.data import image_dataset  # noqa: E402
from ncsn_edu.images.samples import read_shards, write_shards  # noqa: E402


def write_idx(root, folder: str, train: np.ndarray, test: np.ndarray) -> Path:
    """uint8 images ``(N, 28, 28)`` as the uncompressed IDX files torchvision reads from
    ``root/<folder>/raw`` (``MNIST`` or ``FashionMNIST``), with labels ``i % 10``."""
    raw = Path(root) / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, imgs in (("train", train), ("t10k", test)):
        n = len(imgs)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, 28, 28)
                                                          + imgs.astype(np.uint8).tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n)
                                                          + (np.arange(n) % 10).astype(np.uint8).tobytes())
    return raw


def tiny_args(root, out, *extra):
    return ["--data-root", str(root), "--out", str(out), "--ngf", "4", "--batch-size", "8", "--test-batches", "0",
            "--sample-n", "1", "--sample-steps-each", "1", "--no-progress", *extra]


@pytest.fixture(scope="module")
def mnist_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_fake_mnist(root, n_train=32, n_test=8)
    return root


# ----------------------------------------------------------------------------- evaluate_images

class StubMetrics:
    """Stands in for torch-fidelity: records what it was given and answers from a list."""

    def __init__(self, answers):
        self.answers, self.calls = list(answers), []

    def __call__(self, samples, reference, isc=True, fid=True, **kw):
        self.calls.append(dict(samples=samples.clone(), reference=reference, isc=isc, fid=fid, **kw))
        return self.answers.pop(0)


@pytest.fixture
def fake_weights(tmp_path):
    path = tmp_path / "inception.pth"
    path.write_bytes(b"stand-in")  # only its existence is checked before the (stubbed) metric
    return path


def test_score_command_scores_the_shards_against_the_training_set(mnist_root, tmp_path, fake_weights, monkeypatch,
                                                                   capsys):
    # Catches: scoring other images than the first --n of the shards, in order; a reference
    # other than the data set's training images; results lost on the way to --out.
    shards = tmp_path / "shards"
    shards.mkdir()
    rng = np.random.default_rng(0)
    written = [rng.integers(0, 256, (4, 1, 28, 28), dtype=np.uint8) for _ in range(3)]
    for i, x in enumerate(written):
        np.savez(shards / f"shard_{i:05d}.npz", images=x)
    stub = StubMetrics([dict(inception_score=2.5, inception_score_std=0.25, fid=123.5)])
    monkeypatch.setattr(ev, "fidelity_metrics", stub)
    out = tmp_path / "scores.json"
    rc = ev.main(["score", str(shards), "--dataset", "mnist", "--n", "10", "--data-root", str(mnist_root),
                  "--inception-weights", str(fake_weights), "--device", "cpu", "--out", str(out), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    (call,) = stub.calls
    assert torch.equal(call["samples"], torch.from_numpy(np.concatenate(written)[:10]))
    train = image_dataset("mnist", train=True, root=mnist_root, download=False)
    assert call["reference"].dtype == torch.uint8 and call["reference"].shape == (32, 1, 28, 28)
    assert torch.equal(call["reference"][:, 0], torch.as_tensor(train.data))
    assert call["isc"] and call["fid"]
    res = json.loads(out.read_text())
    assert (res["inception_score"], res["inception_score_std"], res["fid"], res["n"]) == (2.5, 0.25, 123.5, 10)
    assert "Inception score 2.500 +- 0.250, FID 123.50 (10 samples" in capsys.readouterr().out
    # More samples asked for than the shards hold: a clear error.
    assert ev.main(["score", str(shards), "--n", "13", "--data-root", str(mnist_root),
                    "--inception-weights", str(fake_weights), "--no-progress"]) == 1
    assert "fewer than the 13" in capsys.readouterr().err


def test_select_command_picks_the_snapshot_with_the_lowest_fid(mnist_root, tmp_path, fake_weights, monkeypatch,
                                                               capsys):
    # Catches: a wrong choice (first, last, highest FID), steps misread from the snapshot
    # names, a CSV that does not list every snapshot with its FID, samples not made from
    # the snapshot they are scored for.
    run = tmp_path / "run"
    assert ti.main(tiny_args(mnist_root, run, "--n-iters", "6", "--ckpt-every", "2"), model_factory=tiny_factory) == 0
    fids = [30.5, 10.25, 20.0]  # steps 2, 4, 6: the paper's choice is step 4
    stub = StubMetrics([dict(fid=f) for f in fids])
    monkeypatch.setattr(ev, "fidelity_metrics", stub)
    rc = ev.main(["select", str(run), "--n", "3", "--batch", "2", "--steps-each", "1", "--data-root", str(mnist_root),
                  "--inception-weights", str(fake_weights), "--device", "cpu", "--no-progress"],
                 model_factory=tiny_factory)
    assert rc == 0, capsys.readouterr().err
    with open(run / "selection.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [["step", "fid_3"], ["2", "30.5"], ["4", "10.25"], ["6", "20.0"]]
    assert "lowest FID: step 4 (10.25)" in capsys.readouterr().out
    assert [c["isc"] for c in stub.calls] == [False] * 3
    # Each snapshot's FID was computed on samples of that snapshot: the same command's
    # sampler run on the snapshot gives the images the metric was given.
    for call, step in zip(stub.calls, (2, 4, 6)):
        assert call["samples"].shape == (3, 1, 28, 28) and call["samples"].dtype == torch.uint8
        model, sigmas, _ = load_checkpoint(run / "snapshots" / f"model_{step:07d}.pt", model_factory=tiny_factory)
        again = write_shards(model, sigmas, 3, (1, 28, 28), tmp_path / f"again_{step}", 2, 0, False,
                                n_steps_each=1)
        assert torch.equal(call["samples"], read_shards(again, 3))
    assert not torch.equal(stub.calls[0]["samples"], stub.calls[2]["samples"])


# ----------------------------------------------------------------------------- trainer options

def _recording_factory(seen):
    """TinyScore that records the (perturbed) images it trains on."""
    def factory(dataset, ngf, n_sigmas, **kw):
        net = tiny_factory(dataset, ngf, n_sigmas, **kw)
        forward = net.forward

        def recording(x, labels):
            if net.training:
                seen.append(x.detach().clone())
            return forward(x, labels)

        net.forward = recording
        return net
    return factory


def test_dequantize_spreads_each_pixel_uniformly_over_its_bin(tmp_path):
    # Catches: --dequantize ignored, or a wrong formula: (255 x + u) / 256 puts pixel value
    # k uniformly in [k/256, (k+1)/256); without it the pixel is exactly k/255. Every
    # training image is the same pattern holding each value 0..255, so the batch is known
    # whatever the order; the noise levels are 1e-12, far below float32's resolution here.
    pattern = (np.arange(784) % 256).reshape(28, 28).astype(np.uint8)
    root = tmp_path / "data"
    write_idx(root, "MNIST", np.repeat(pattern[None], 16, 0), np.repeat(pattern[None], 2, 0))
    k = torch.from_numpy(pattern).double()
    sig = ["--sigma-begin", "1e-12", "--sigma-end", "1e-12", "--n-sigmas", "1", "--n-iters", "2"]
    plain, deq = [], []
    # (Where the trainer dequantises by default, --no-dequantize turns it off.)
    off = ["--no-dequantize"] if "--no-dequantize" in ti.build_parser().format_help() else []
    assert ti.main(tiny_args(root, tmp_path / "a", *sig, *off), model_factory=_recording_factory(plain)) == 0
    assert ti.main(tiny_args(root, tmp_path / "b", *sig, "--dequantize"), model_factory=_recording_factory(deq)) == 0
    x = torch.cat(plain).double()[:, 0]
    assert torch.allclose(x, (k / 255).expand_as(x), atol=1e-6, rtol=0)
    x = torch.cat(deq).double()[:, 0]
    assert x.shape == (16, 28, 28)
    u = 256 * x - k  # the uniform draw of each pixel
    assert u.min() > -1e-4 and u.max() < 1 + 1e-4
    n = u.numel()
    assert abs(u.mean().item() - 0.5) < 4 * math.sqrt(1 / 12 / n)  # standard error of a U(0,1) mean
    assert abs(u.var().item() - 1 / 12) < 4 * math.sqrt(1 / 180 / n)  # var of (u - 1/2)^2 is 1/180
    # Independent of the pixel value (without dequantisation u would be k/255: correlation 1)
    # and drawn afresh for every image and pixel (not one shared offset).
    kk = k.expand_as(u)
    corr = ((u - u.mean()) * (kk - kk.mean())).mean() / (u.std() * kk.std())
    assert abs(corr.item()) < 4 / math.sqrt(n)
    assert (u[0] - u[1]).abs().mean() > 0.2
    assert read_checkpoint(tmp_path / "b" / "checkpoint.pt")["config"]["dequantize"] is True


def test_fashion_mnist_is_read_from_torchvisions_layout_and_trains(tmp_path):
    # Catches: fashion_mnist mapped to MNIST's files (or folder), or not accepted by the
    # trainer and the sampler.
    rng = np.random.default_rng(1)
    train = rng.integers(0, 256, (24, 28, 28), dtype=np.uint8)
    test = rng.integers(0, 256, (4, 28, 28), dtype=np.uint8)
    root = tmp_path / "data"
    write_idx(root, "FashionMNIST", train, test)  # no MNIST folder at all
    ds = image_dataset("fashion_mnist", train=True, root=root, download=False)
    assert len(ds) == 24 and torch.equal(torch.as_tensor(ds.data), torch.from_numpy(train))
    x, label = ds[5]
    assert x.shape == (1, 28, 28) and label == 5
    torch.testing.assert_close(x[0], torch.from_numpy(train[5]).float() / 255)
    assert len(image_dataset("fashion-mnist", train=False, root=root, download=False)) == 4
    out = tmp_path / "run"
    rc = ti.main(tiny_args(root, out, "--dataset", "fashion_mnist", "--n-iters", "2", "--ckpt-every", "2"),
                 model_factory=tiny_factory)
    assert rc == 0
    assert read_checkpoint(out / "checkpoint.pt")["config"]["dataset"] == "fashion_mnist"
    rc = si.main(["sample", str(out / "checkpoint.pt"), "--n", "2", "--steps-each", "1", "--shards",
                  str(tmp_path / "s"), "--no-progress"], model_factory=tiny_factory)
    assert rc == 0 and read_shards(tmp_path / "s").shape == (2, 1, 28, 28)


def test_no_snapshots_keeps_only_the_checkpoint(mnist_root, tmp_path, fake_weights, capsys):
    # Catches: --no-snapshots ignored (a model file per checkpoint written anyway), or the
    # resumable checkpoint no longer written.
    out = tmp_path / "run"
    assert ti.main(tiny_args(mnist_root, out, "--n-iters", "4", "--ckpt-every", "2", "--no-snapshots"),
                   model_factory=tiny_factory) == 0
    assert read_checkpoint(out / "checkpoint.pt")["step"] == 4
    assert not list(out.glob("snapshots/*"))
    assert ev.main(["select", str(out), "--inception-weights", str(fake_weights), "--no-progress"]) == 1
    assert "no snapshots" in capsys.readouterr().err
    # The default keeps one per checkpoint (the control).
    assert ti.main(tiny_args(mnist_root, tmp_path / "kept", "--n-iters", "4", "--ckpt-every", "2"),
                   model_factory=tiny_factory) == 0
    assert sorted(p.name for p in (tmp_path / "kept" / "snapshots").iterdir()) == ["model_0000002.pt",
                                                                                  "model_0000004.pt"]


# Every setting that fixes the network or what a training step draws, with another value
# (the switches, flip and dequantize, are turned the other way than the checkpoint's).
# A resumed run that changed one of them would silently continue a different run.
MODEL_SETTINGS = {
    "dataset": ["--dataset", "fashion_mnist"],
    "ngf": ["--ngf", "8"],
    "n_sigmas": ["--n-sigmas", "5"],
    "sigma_begin": ["--sigma-begin", "2.0"],
    "sigma_end": ["--sigma-end", "0.02"],
    "batch_size": ["--batch-size", "4"],
    "seed": ["--seed", "1"],
    "flip": ["--flip", "--no-flip"],
    "dequantize": ["--dequantize", "--no-dequantize"],
}


@pytest.fixture(scope="module")
def both_roots(tmp_path_factory):
    root = tmp_path_factory.mktemp("both")
    write_fake_mnist(root, n_train=16, n_test=4)
    rng = np.random.default_rng(2)
    write_idx(root, "FashionMNIST", rng.integers(0, 256, (16, 28, 28)), rng.integers(0, 256, (4, 28, 28)))
    return root


def test_resume_is_refused_when_any_setting_that_fixes_the_model_changed(both_roots, tmp_path, capsys):
    # Catches: a setting left out of the resume check (the old test covered ngf only).
    try:  # the trainer's own list (wherever it lives) is this one
        from ncsn_edu.images.presets import MODEL_KEYS as known
    except ImportError:
        known = getattr(ti, "_ARCH_KEYS", None)
    assert known is None or set(known) == set(MODEL_SETTINGS)
    out = tmp_path / "run"
    base = tiny_args(both_roots, out, "--n-iters", "2", "--ckpt-every", "2")
    assert ti.main(base, model_factory=tiny_factory) == 0
    before = {p.name: p.read_bytes() for p in (out / "checkpoint.pt", out / "metrics.csv")}
    recorded = read_checkpoint(out / "checkpoint.pt")["config"]
    for name, change in MODEL_SETTINGS.items():
        if name in ("flip", "dequantize"):
            change = [change[1] if recorded[name] else change[0]]
        rc = ti.main(base[:-4] + ["--n-iters", "4", "--ckpt-every", "2"] + change, model_factory=tiny_factory)
        err = capsys.readouterr().err
        assert rc == 1, name
        assert "different settings" in err and repr(name) in err, (name, err)
        assert {p.name: p.read_bytes() for p in (out / "checkpoint.pt", out / "metrics.csv")} == before, name
    # The control: settings that do not fix the model may change on resume.
    assert ti.main(base[:-4] + ["--n-iters", "3", "--ckpt-every", "2", "--lr", "5e-4", "--log-every", "1"],
                   model_factory=tiny_factory) == 0
    assert read_checkpoint(out / "checkpoint.pt")["step"] == 3


class StubTensorBoard:
    """``torch.utils.tensorboard`` stand-in whose SummaryWriter keeps events in memory and
    applies TensorBoard's rule for ``purge_step``: events of that log folder at steps
    >= purge_step are discarded when the writer opens."""

    def __init__(self):
        self.events, self.opened = {}, []
        stub = self

        class SummaryWriter:
            def __init__(self, log_dir, purge_step=None, **kw):
                stub.opened.append((log_dir, purge_step))
                ev_ = stub.events.setdefault(log_dir, [])
                if purge_step is not None:
                    ev_[:] = [e for e in ev_ if e[0] < purge_step]
                self.log_dir = log_dir

            def add_scalar(self, tag, value, step):
                stub.events[self.log_dir].append((int(step), tag, float(value)))

            def close(self):
                pass

        self.module = types.ModuleType("torch.utils.tensorboard")
        self.module.SummaryWriter = SummaryWriter


def test_tensorboard_events_after_the_checkpoint_are_purged_on_resume(mnist_root, tmp_path, monkeypatch):
    # Catches: resuming without purge_step (TensorBoard would show two curves after the
    # checkpoint), or a purge step one off (losing the checkpoint's own point, or keeping
    # a stale one). A run dies at step 7 (last checkpoint 4, rows logged at 6), resumes.
    tb = StubTensorBoard()
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", tb.module)
    out = tmp_path / "run"
    args = tiny_args(mnist_root, out, "--n-iters", "10", "--ckpt-every", "4", "--log-every", "2", "--tensorboard", "on")
    with pytest.raises(KeyboardInterrupt):
        ti.main(args, model_factory=crashing_factory(7))
    logdir = str(out / "tensorboard")
    assert tb.opened == [(logdir, None)] and max(s for s, _, _ in tb.events[logdir]) == 6
    assert ti.main(args, model_factory=tiny_factory) == 0
    assert tb.opened[1] == (logdir, 5)  # purge every event after the step-4 checkpoint
    with open(out / "metrics.csv", newline="") as f:
        rows = sorted((int(r["step"]), r["tag"], float(r["value"])) for r in csv.DictReader(f))
    events = sorted(tb.events[logdir])
    assert [e[:2] for e in events] == [r[:2] for r in rows]  # each point once, as in metrics.csv
    assert all(math.isclose(e[2], r[2], rel_tol=1e-5) for e, r in zip(events, rows) if e[1] != "it_per_s")


def test_tensorboard_on_without_the_package_is_a_clear_error(mnist_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails, as when not installed
    rc = ti.main(tiny_args(mnist_root, tmp_path / "run", "--n-iters", "1", "--tensorboard", "on"),
                 model_factory=tiny_factory)
    assert rc == 1 and "needs the tensorboard package" in capsys.readouterr().err
    # auto: runs without TensorBoard.
    assert ti.main(tiny_args(mnist_root, tmp_path / "auto", "--n-iters", "1"), model_factory=tiny_factory) == 0


# ----------------------------------------------------------------------------- benchmark

BENCH = ["--dataset", "mnist", "--ngf", "4", "--batch-size", "4", "--steps", "1", "--warmup", "0",
         "--sample-batch", "2", "--sample-evals", "1", "--agreement-steps", "4", "--device", "cpu",
         "--fast-compile", "off"]


def test_benchmark_exit_code_says_whether_the_losses_agree(tmp_path):
    # Catches: a failed loss agreement that still exits 0 (a CI job would pass), or a
    # tolerance ignored. bf16 changes the losses by ~0.1-1%: it fails a tolerance of 1e-7
    # (exit code 2) and passes 50%; the fp32 path against itself agrees exactly.
    out = tmp_path / "b.json"
    assert benchmark.main(BENCH + ["--fast-amp", "on", "--tolerance", "1e-7", "--out", str(out)],
                          model_factory=tiny_factory) == 2
    agreement = json.loads(out.read_text())["agreement"]
    assert agreement["agrees"] is False and agreement["relative_difference"] > 1e-7
    assert benchmark.main(BENCH + ["--fast-amp", "on", "--tolerance", "0.5"], model_factory=tiny_factory) == 0
    assert benchmark.main(BENCH + ["--fast-amp", "off", "--fast-channels-last", "off", "--tolerance", "0",
                                   "--out", str(out)], model_factory=tiny_factory) == 0
    assert json.loads(out.read_text())["agreement"]["relative_difference"] == 0


def test_benchmark_flops_only_counts_without_timing(tmp_path, monkeypatch):
    # Catches: --flops-only still timing the modes (minutes on a GPU's full network), or
    # a wrong count. TinyScore: three 3x3 convolutions 1->4->4->1 on 28x28. Forward
    # 2*B*784*9*(4 + 16 + 4) multiply-adds counted as 2 FLOPs each; backward: every
    # weight's gradient (same again) and the inputs' gradients of the last two convs.
    def no_timing(*a, **k):
        raise AssertionError("--flops-only timed a mode")

    monkeypatch.setattr(benchmark, "train_steps", no_timing)
    monkeypatch.setattr(benchmark, "sampling_rate", no_timing)
    out = tmp_path / "f.json"
    rc = benchmark.main(["--dataset", "mnist", "--ngf", "4", "--batch-size", "16", "--device", "cpu", "--flops-only",
                         "--out", str(out)], model_factory=tiny_factory)
    assert rc == 0
    res = json.loads(out.read_text())
    per = 2 * 16 * 784 * 9
    assert res["train_step_gflop"] * 1e9 == pytest.approx(per * ((4 + 16 + 4) * 2 + (16 + 4)), rel=1e-9)
    assert res["modes"] == {}


# ----------------------------------------------------------------------------- data

def test_image_dataset_flip_mirrors_half_the_images(tmp_path):
    # Catches: flips that never or always happen, happen with another probability, or are
    # not left-right mirrors. 2,000 draws: the count of flips is Binomial(2000, 1/2),
    # standard deviation sqrt(2000)/2 = 22; the test allows 4 of them (so it catches a
    # probability off by 0.1 or more with 5 standard deviations to spare).
    img = np.zeros((28, 28), dtype=np.uint8)
    img[:, :7] = 200  # bright on the left only
    img[3, 2] = 17  # and asymmetric up-down
    root = tmp_path / "data"
    write_idx(root, "MNIST", img[None].repeat(2, 0), img[None])
    ds = image_dataset("mnist", train=True, root=root, flip=True, download=False)
    plain = torch.from_numpy(img).float()[None] / 255
    n, flipped = 2000, 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for i in range(n):
            x, _ = ds[i % 2]
            if torch.equal(x, plain.flip(-1)):
                flipped += 1
            else:
                assert torch.equal(x, plain)
    assert abs(flipped - n / 2) < 4 * math.sqrt(n) / 2, flipped
    ds = image_dataset("mnist", train=True, root=root, flip=False, download=False)
    assert all(torch.equal(ds[i % 2][0], plain) for i in range(50))


def test_each_switch_says_what_happens_without_it():
    # Catches: the help of --no-flip / --no-snapshots ending in "(default: True)", which
    # reads as if flips and snapshots were off (argparse's default of a store_false switch).
    for parser in (ti.build_parser(), ti.build_parser("cifar10", preset="PAPER_CIFAR10")):
        text = " ".join(parser.format_help().split())
        assert "(default: True)" not in text and "(default: False)" not in text and "(default: None)" not in text
        no_flip = text.split("--no-flip ")[-1].split(" --n-sigmas")[0]
        assert "without it" in no_flip and "flipped at random" in no_flip, no_flip
        no_snap = text.split("--no-snapshots ")[-1].split(" --log-every")[0]
        assert "without it" in no_snap and "snapshot of the model is also kept" in no_snap, no_snap


def test_flops_only_estimates_the_run_on_each_gpu(tmp_path):
    # Catches: an estimate that does not follow from its stated inputs (FLOP count, peak,
    # utilisation), the wrong precision for a GPU (bf16 on a T4), or the chapter's table
    # drifting from what the command makes of the committed result.
    out = tmp_path / "e.json"
    rc = benchmark.main(["--dataset", "mnist", "--ngf", "4", "--batch-size", "16", "--device", "cpu", "--flops-only",
                         "--utilisation", "0.2", "--n-iters", "1000", "--gpu", "T4", "H200", "--out", str(out)],
                        model_factory=tiny_factory)
    assert rc == 0
    res = json.loads(out.read_text())
    flop = res["train_step_gflop"] * 1e9
    rows = {r["gpu"]: r for r in res["estimate"]["rows"]}
    assert set(rows) == {"T4", "H200"} and "not a measurement" in res["estimate"]["note"]
    assert (rows["T4"]["precision"], rows["H200"]["precision"]) == ("fp16", "bf16")
    for r, peak in ((rows["T4"], 65.0), (rows["H200"], 989.4)):
        assert r["hours"] * 3600 == pytest.approx(1000 * flop / (peak * 1e12 * 0.2), rel=1e-12)
    # The committed estimate (data/capstone_time_estimate.json) is what chapter 12 shows.
    root = Path(__file__).resolve().parents[1]
    committed = json.loads((root / "data" / "capstone_time_estimate.json").read_text())
    table = benchmark.estimate_table(committed["estimate"]["rows"], committed["train_step_gflop"] * 1e9,
                                     committed["estimate"]["n_iters"])
    chapter = " ".join((root / "book" / "12_capstone_cifar10.md").read_text().split())
    for line in table.split("\n"):
        assert " ".join(line.split()) in chapter, line
    assert {r["gpu"] for r in committed["estimate"]["rows"]} == {"T4", "V100", "A100", "H100", "H200"}
