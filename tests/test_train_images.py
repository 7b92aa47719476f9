"""The training command (ncsn_edu.train_images): its options (``--dequantize``,
``fashion_mnist``, ``--no-snapshots``, ``--tensorboard``, a folder data set), the refusal
to resume with any setting that fixes the model, clear errors for bad input, and the
command in other processes: a run killed with SIGKILL resumes to the weights of a run never
killed, and torchrun's two processes make the same update as one. Runs on CPU with a tiny
stand-in network (tests/image_train_helpers.py) on small generated data sets written in
MNIST's own file format. The tests from issue 14 (item 3) were each checked against a bug
planted in the package (see their comments)."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from image_train_helpers import TinyScore, crashing_factory, tiny_args, tiny_factory, write_fake_mnist, write_idx

from ncsn_edu import evaluate_images as ev
from ncsn_edu import sample_images as si
from ncsn_edu import train_images as ti
from ncsn_edu.images import trainer
from ncsn_edu.images.checkpoints import load_checkpoint, read_checkpoint
from ncsn_edu.images.data import image_dataset
from ncsn_edu.images.presets import image_shape
from ncsn_edu.images.samples import read_shards

#: Ten seconds or more on one core: parallel runs (dev.py test) start this file first. The
#: mnist_root fixture (tests/conftest.py) holds 128 training and 32 test images here.
pytestmark = [pytest.mark.slow, pytest.mark.fake_mnist(n_train=128, n_test=32)]


@pytest.mark.parametrize("args, message", [
    (["--dataset", "svhn"], "unknown data set"),
    (["--sigma-begin", "0.01", "--sigma-end", "1"], "below --sigma-end"),
    (["--batch-size", "0"], "--batch-size must be positive"),
    (["--batch-size", "-4"], "--batch-size must be positive"),
    (["--data-root", "/nonexistent/ncsn"], "is not a folder"),
])
def test_bad_inputs_give_clear_errors_and_write_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    rc = ti.main(["--out", str(out), "--no-progress"] + args, model_factory=tiny_factory)
    assert rc == 1
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_unreadable_checkpoint_is_an_error_and_is_not_overwritten(mnist_root, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"not a checkpoint at all")
    rc = ti.main(["--out", str(out), "--data-root", str(mnist_root), "--ngf", "4", "--batch-size", "16",
                  "--n-iters", "4", "--no-progress"], model_factory=tiny_factory)
    assert rc == 1
    assert "cannot read checkpoint" in capsys.readouterr().err
    assert (out / "checkpoint.pt").read_bytes() == b"not a checkpoint at all"
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt"]


def test_the_command_trains_the_papers_network(mnist_root, tmp_path, capsys):
    from ncsn_edu import sample_images
    from ncsn_edu.images.refinenet import CondRefineNetDilated

    out = tmp_path / "run"
    rc = ti.main(["--out", str(out), "--data-root", str(mnist_root), "--ngf", "4", "--batch-size", "8",
                  "--n-iters", "2", "--ckpt-every", "2", "--test-batches", "1", "--sample-n", "2",
                  "--sample-steps-each", "1", "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    model, sigmas, cfg = load_checkpoint(out / "checkpoint.pt")
    assert isinstance(model, CondRefineNetDilated) and cfg["ngf"] == 4
    ref = CondRefineNetDilated(in_channels=1, ngf=4, num_classes=10, image_size=28)
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
    rc = sample_images.main(["sample", str(out / "checkpoint.pt"), "--n", "2", "--steps-each", "1",
                             "--grid", str(tmp_path / "g.png"), "--no-progress"])
    assert rc == 0 and (tmp_path / "g.png").is_file()


class _Folder(torch.utils.data.Dataset):
    """What ``image_dataset("folder", ...)`` gives: images in [0, 1] and the attributes the
    trainer reads (no stored array, so the trainer reads it item by item)."""

    def __init__(self, root, train, n=24, channels=3, size=12):
        g = torch.Generator().manual_seed(int(train))
        self.x = torch.randint(0, 256, (n, channels, size, size), generator=g, dtype=torch.uint8)
        self.source, self.channels, self.image_size = f"image folder {root} (PNG)", channels, size

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i].float() / 255, 0


def test_a_folder_data_set_trains_a_network_of_its_shape(tmp_path, monkeypatch):
    from ncsn_edu.images import data

    seen = {}

    def fake_image_dataset(name, train=True, root=None, flip=False, download=True, **kw):
        seen.update(name=name, **kw)
        return _Folder(root, train)

    def factory(dataset, ngf, n_sigmas, channels=None, image_size=None):
        return TinyScore(channels, ngf, n_sigmas, image_size)

    monkeypatch.setattr(data, "image_dataset", fake_image_dataset)
    (tmp_path / "imgs").mkdir()
    rc = ti.main(["--dataset", "folder", "--data-root", str(tmp_path / "imgs"), "--image-size", "12", "--crop", "20",
                  "--out", str(tmp_path / "run"), "--ngf", "4", "--batch-size", "8", "--n-iters", "2",
                  "--ckpt-every", "2", "--test-batches", "1", "--sample-n", "4", "--sample-steps-each", "1",
                  "--no-progress"], model_factory=factory)
    assert rc == 0
    assert seen == dict(name="folder", image_size=12, crop=20)
    model, _, cfg = load_checkpoint(tmp_path / "run" / "checkpoint.pt", model_factory=factory)
    assert (cfg["channels"], cfg["image_size"], cfg["crop"]) == (3, 12, 20)
    assert model.conv1.weight.shape[1] == 3 and image_shape(cfg) == (3, 12, 12)
    # The network trained on exactly the folder's images, read back losslessly.
    ds = _Folder(None, True)
    from ncsn_edu.images.batches import read_image_set

    assert torch.equal(read_image_set("folder", True, tmp_path / "imgs").images, ds.x)
    assert ti.main(["--dataset", "folder", "--out", str(tmp_path / "r2")]) == 1  # no --data-root


def _weights(out):
    return read_checkpoint(Path(out) / "checkpoint.pt")


HELPER = Path(__file__).parent / "image_train_helpers.py"


ROOT = Path(__file__).resolve().parents[1]


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def _cli(root, out, *extra):
    # A run's last step draws a sample grid; one Langevin step per level for 4 images keeps it
    # (and the samples/ folder) at a few milliseconds instead of seconds of a 1,000-step chain.
    return ["--dataset", "mnist", "--data-root", str(root), "--out", str(out), "--ngf", "4", "--batch-size", "16",
            "--log-every", "5", "--test-batches", "0", "--sample-every", "100000", "--sample-n", "4",
            "--sample-steps-each", "1", "--no-progress", *extra]


def test_sigkill_during_training_resumes(mnist_root, tmp_path):
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(HELPER), "--tiny-model", "--"] +
                            _cli(mnist_root, out, "--n-iters", "1000000", "--ckpt-every", "7"),
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            snaps = list((out / "snapshots").glob("model_*.pt")) if (out / "snapshots").exists() else []
            if len(snaps) >= 3:  # a few checkpoints written: kill it wherever it is now
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stdout.read().decode()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    at = read_checkpoint(out / "checkpoint.pt")["step"]
    assert at >= 14 and at % 7 == 0
    # Resume to a few steps past the checkpoint, and compare with a run never killed.
    end = at + 6
    args = ti.build_parser().parse_args(_cli(mnist_root, out, "--n-iters", str(end), "--ckpt-every", "7"))
    resumed = trainer.train(ti.config_from_args(args), model_factory=tiny_factory, log=lambda *a: None)
    assert resumed["steps_run"] == 6
    clean = tmp_path / "clean"
    trainer.train(ti.config_from_args(ti.build_parser().parse_args(_cli(mnist_root, clean, "--n-iters", str(end),
                                                                   "--ckpt-every", "7"))),
             model_factory=tiny_factory, log=lambda *a: None)
    a, b = _weights(out), _weights(clean)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_torchrun_two_processes_make_the_same_update_as_one(mnist_root, tmp_path):
    args = ["--n-iters", "2", "--ckpt-every", "1", "--log-every", "1", "--lr", "1e-2"]
    env = _env()
    env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        str(HELPER), "--tiny-model", "--record-batch", str(tmp_path / "seen"), "--"]
                       + _cli(mnist_root, tmp_path / "ddp", *args),
                       env=env, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "batch 16 on 2 x cpu" in r.stdout + r.stderr
    # Each process trained on its half of the global batch.
    assert [json.loads((tmp_path / f"seen.{rank}").read_text()) for rank in (0, 1)] == [[8], [8]]
    single = trainer.train(ti.config_from_args(ti.build_parser().parse_args(_cli(mnist_root, tmp_path / "one", *args))),
                      model_factory=tiny_factory, log=lambda *a: None)
    ddp_snap = torch.load(tmp_path / "ddp" / "snapshots" / "model_0000001.pt", weights_only=True)
    one_snap = torch.load(tmp_path / "one" / "snapshots" / "model_0000001.pt", weights_only=True)
    init = tiny_factory("mnist", 4, 10).state_dict()
    for k in one_snap["model"]:
        # The first Adam step moves every weight by about lr: the same move in both runs.
        torch.testing.assert_close(ddp_snap["model"][k], one_snap["model"][k], rtol=0, atol=1e-6)
        assert not torch.equal(one_snap["model"][k], init[k]) or k.startswith("scale")
    m = trainer.read_metrics(tmp_path / "ddp" / "metrics.csv")
    assert m["loss"][1] == pytest.approx(single["losses"], rel=1e-5)
    # Only rank 0 wrote files.
    written = sorted(p.name for p in (tmp_path / "ddp").iterdir())
    assert written == ["checkpoint.pt", "metrics.csv", "samples", "snapshots"]


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


@pytest.mark.fake_mnist(n_train=32, n_test=8)
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
    "ema": ["--ema", "0.5"],
    "divide_by_sigma": ["--divide-by-sigma"],
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


@pytest.mark.fake_mnist(n_train=32, n_test=8)
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


@pytest.mark.fake_mnist(n_train=32, n_test=8)
def test_tensorboard_on_without_the_package_is_a_clear_error(mnist_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails, as when not installed
    rc = ti.main(tiny_args(mnist_root, tmp_path / "run", "--n-iters", "1", "--tensorboard", "on"),
                 model_factory=tiny_factory)
    assert rc == 1 and "needs the tensorboard package" in capsys.readouterr().err
    # auto: runs without TensorBoard.
    assert ti.main(tiny_args(mnist_root, tmp_path / "auto", "--n-iters", "1"), model_factory=tiny_factory) == 0


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


def test_no_divide_by_sigma_turns_a_presets_division_off():
    # chapter 11b's Technique 3 on MNIST trains the CIN++ network under NCSNv2's preset; the command
    # in data/README.md must give exactly the settings of BOOK_CPU_MNIST_V2 with the division off
    from ncsn_edu.images.presets import BOOK_CPU_MNIST_V2

    parser = ti.build_parser(preset="BOOK_CPU_MNIST_V2")
    assert ti.config_from_args(parser.parse_args([])).divide_by_sigma
    args = ["--no-divide-by-sigma", "--ngf", "10", "--n-iters", "1600", "--out", "runs/t3_cinpp_ngf10"]
    cfg = ti.config_from_args(parser.parse_args(args))
    assert cfg == BOOK_CPU_MNIST_V2.replace(divide_by_sigma=False, ngf=10, n_iters=1600, out="runs/t3_cinpp_ngf10")
    text = " ".join(parser.format_help().split())
    assert "(default: True)" not in text and "(default: False)" not in text
