"""The image trainer in other processes: a run killed with SIGKILL resumes to the weights
of a run never killed, and torchrun's two processes make the same update as one. Each
test starts Python (and torch) again, so they are the slowest of the trainer's tests and
live in their own file, which a parallel run (pytest-xdist, whole files per worker) can
place beside the others'."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1]))

from image_train_helpers import tiny_factory, write_fake_mnist  # noqa: E402

from ncsn_edu import train_images as ti  # noqa: E402
from ncsn_edu.images import trainer  # noqa: E402
from ncsn_edu.images.checkpoints import read_checkpoint  # noqa: E402

#: Ten seconds or more on one core: parallel runs (dev.py test) start this file first.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mnist_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_fake_mnist(root, n_train=128, n_test=32)
    return root


def _weights(out):
    return read_checkpoint(Path(out) / "checkpoint.pt")


HELPER = Path(__file__).parents[1] / "image_train_helpers.py"
ROOT = Path(__file__).resolve().parents[2]


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def _cli(root, out, *extra):
    return ["--dataset", "mnist", "--data-root", str(root), "--out", str(out), "--ngf", "4", "--batch-size", "16",
            "--log-every", "5", "--test-batches", "0", "--sample-every", "100000", "--no-progress", *extra]


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
