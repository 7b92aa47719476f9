"""Evaluation command (ncsn_edu.evaluate_images): ``score`` and ``select`` (with
torch-fidelity's metric replaced by a stub whose answers are known), the Inception weights'
cache and the clear error offline. (The metrics themselves are torch-fidelity's; its Inception network
cannot run here without its weights, which these machines cannot download.)"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from image_train_helpers import tiny_args, tiny_factory

from ncsn_edu import evaluate_images as ev
from ncsn_edu import train_images as ti
from ncsn_edu.images.checkpoints import load_checkpoint
from ncsn_edu.images.data import image_dataset
from ncsn_edu.images.samples import read_shards, write_shards

#: mnist_root (tests/conftest.py) holds 32 training and 8 test images here.
pytestmark = pytest.mark.fake_mnist(n_train=32, n_test=8)


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    # A local port nobody listens on: the download is refused at once, as offline.
    monkeypatch.setattr(ev, "INCEPTION_URL", "http://127.0.0.1:9/weights-inception-2015-12-05-6726825d.pth")
    return tmp_path / "torch_home" / "hub" / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth"


def test_weights_are_cached_in_torch_hub(offline_cache):
    assert ev.inception_weights_path() == offline_cache
    offline_cache.parent.mkdir(parents=True)
    offline_cache.write_bytes(b"weights")
    assert ev.inception_weights() == offline_cache  # found in the cache, no download


def test_offline_is_a_clear_error_before_any_work(offline_cache, tmp_path, capsys):
    rc = ev.main(["score", str(tmp_path / "no_samples_needed_yet"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "could not download the Inception weights" in err and str(offline_cache) in err
    assert "--inception-weights" in err
    assert not offline_cache.exists() and not list(offline_cache.parent.glob("*.part"))
    assert ev.main(["select", str(tmp_path), "--no-progress"]) == 1
    assert "Inception weights" in capsys.readouterr().err
    assert ev.main(["score", str(tmp_path), "--inception-weights", str(tmp_path / "nope.pth")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_images_are_given_to_the_library_as_three_channel_uint8():
    gray = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    ds = ev.UInt8Images(gray)
    assert len(ds) == 4 and ds[2].shape == (3, 28, 28) and ds[2].dtype == torch.uint8
    assert torch.equal(ds[2][0], gray[2, 0]) and torch.equal(ds[2][2], gray[2, 0])
    with pytest.raises(ValueError):
        ev.UInt8Images(gray.float())


class StubMetrics:
    """Stands in for torch-fidelity: records what it was given and answers from a list."""

    def __init__(self, answers):
        self.answers, self.calls = list(answers), []

    def __call__(self, samples, reference, isc=True, fid=True, **kw):
        self.calls.append(dict(samples=samples.clone(), reference=reference, isc=isc, fid=fid, **kw))
        return self.answers.pop(0)


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
