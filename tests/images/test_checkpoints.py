"""ncsn_edu.images.checkpoints: atomic saves, clear errors for files that are not checkpoints, and the
shipped MNIST checkpoint loading as the network it was trained as."""

import pytest
import torch

from ncsn_edu.images import checkpoints
from ncsn_edu.resources import resource_path
from ncsn_edu.schedules import geometric_sigmas


def test_the_shipped_checkpoint_loads_as_the_trained_network():
    path = resource_path("mnist_ncsn_ngf16.pt")
    state = checkpoints.read_checkpoint(path)
    model, sigmas, cfg = checkpoints.load_checkpoint(path)
    assert not model.training
    assert cfg["dataset"] == "mnist" and cfg["ngf"] == 16
    torch.testing.assert_close(sigmas.double(), geometric_sigmas(1.0, 0.01, 10).double(), rtol=1e-6, atol=0)
    loaded = model.state_dict()
    assert loaded.keys() == state["model"].keys()
    assert all(torch.equal(loaded[k], state["model"][k]) for k in loaded)


def test_files_that_are_not_checkpoints_are_refused_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        checkpoints.read_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a torch file")
    with pytest.raises(RuntimeError, match="cannot read checkpoint"):
        checkpoints.read_checkpoint(tmp_path / "garbage.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(RuntimeError, match="not a checkpoint written by"):
        checkpoints.read_checkpoint(tmp_path / "other.pt")


def test_a_save_killed_midway_leaves_the_old_file_and_a_temporary_that_is_cleaned(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    checkpoints.atomic_save({"step": 1}, path)

    def dying_save(obj, f):
        f.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        checkpoints.atomic_save({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert list(tmp_path.glob(".*.tmp*"))
    checkpoints.remove_stale_temporaries(tmp_path)
    assert not list(tmp_path.glob(".*.tmp*")) and path.exists()


def test_data_sources_compare_without_their_paths_or_cache_notes():
    a = "cifar10: JPEG copy from folder /work/a/data/cifar10-jpeg/train (32x32x3); decoded cache /x/y.npy (hit)"
    b = "cifar10: JPEG copy from folder /elsewhere/cifar10-jpeg/train (32x32x3)"
    assert checkpoints.comparable_source(a) == checkpoints.comparable_source(b)
    assert "<path>" in checkpoints.comparable_source(b)
    assert checkpoints.comparable_source(None) is None
