"""Evaluation command (ncsn_edu.evaluate_images): the Inception weights' cache and the
clear error offline. (The metrics themselves are torch-fidelity's; its Inception network
cannot run here without its weights, which these machines cannot download.)"""

from __future__ import annotations

import pytest
import torch

from ncsn_edu import evaluate_images as ev


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
