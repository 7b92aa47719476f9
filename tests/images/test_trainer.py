"""The image trainer (ncsn_edu.images.trainer): trains, checkpoints, resumes exactly, refuses
to resume with other settings, other dequantisation or other data, stops cleanly, records
its data source, and trains on a folder of PNG files (the command, SIGKILL and torchrun:
tests/test_train_images.py). Runs on CPU with a tiny stand-in network
(tests/image_train_helpers.py) on small generated data sets written in MNIST's own file
format."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from image_train_helpers import SMALL, TinyScore, tiny_factory

from ncsn_edu.images import checkpoints, presets, trainer
from ncsn_edu.images.checkpoints import load_checkpoint, read_checkpoint
from ncsn_edu.images.presets import TrainConfig
from ncsn_edu.schedules import geometric_sigmas


def tiny_cfg(root, out, **kw):
    base = dict(dataset="mnist", out=str(out), data_root=str(root), ngf=4, batch_size=16, n_iters=12,
                ckpt_every=6, log_every=3, test_every=6, test_batches=1, sample_every=12, sample_n=4,
                sample_steps_each=2, progress=False)
    base.update(kw)
    return TrainConfig(**base)


QUIET = dict(model_factory=tiny_factory, log=lambda *a: None)

#: mnist_root (tests/conftest.py) holds 128 training and 32 test images here, unless a test says otherwise.
pytestmark = pytest.mark.fake_mnist(n_train=128, n_test=32)


def test_trains_checkpoints_and_loads(mnist_root, tmp_path):
    out = tmp_path / "run"
    res = trainer.train(tiny_cfg(mnist_root, out, n_iters=40, ckpt_every=20, sample_every=40, lr=3e-3),
                   **QUIET)
    assert res["step"] == 40 and len(res["losses"]) == 40
    # Learning happens: with lambda = sigma^2 the loss of the zero score is exactly
    # E ||z||^2 / 2 = D / 2 = 392 at every level; the trained network does clearly better.
    last = sum(res["losses"][-5:]) / 5
    assert last < 0.85 * 392
    assert (out / "checkpoint.pt").is_file()
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == ["model_0000020.pt", "model_0000040.pt"]
    assert (out / "samples" / "step_0000040.png").is_file()
    m = trainer.read_metrics(out / "metrics.csv")
    assert m["loss"][0] == sorted(set(range(3, 41, 3)) | {20, 40})  # every 3 and at checkpoints
    assert "test_loss" in m and any(k.startswith("loss_level/9") for k in m)
    model, sigmas, cfg = load_checkpoint(out / "checkpoint.pt", model_factory=tiny_factory)
    torch.testing.assert_close(sigmas, geometric_sigmas(1, 0.01, 10).float())
    assert cfg["ngf"] == 4 and not model.training


def _weights(out):
    return read_checkpoint(Path(out) / "checkpoint.pt")


def test_resume_is_exact(mnist_root, tmp_path):
    quiet = dict(**QUIET)
    full = trainer.train(tiny_cfg(mnist_root, tmp_path / "a", n_iters=14, ckpt_every=4), **quiet)
    # Interrupted after 5 steps (between checkpoints; the stop itself checkpoints), resumed,
    # interrupted again after 4 more, resumed to the end.
    parts = [trainer.train(tiny_cfg(mnist_root, tmp_path / "b", n_iters=14, ckpt_every=4, max_steps_this_run=k),
                           **quiet)
             for k in (5, 4, None)]
    assert [p["step"] for p in parts] == [5, 9, 14]
    assert sum((p["losses"] for p in parts), []) == full["losses"]  # bit for bit
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert a["step"] == b["step"] == 14
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    # The metrics log of the resumed run equals the uninterrupted one (but for wall time).
    # The metrics log of the resumed run has every row of the uninterrupted one (plus rows
    # at the two interruptions), with the same values.
    ma, mb = trainer.read_metrics(tmp_path / "a" / "metrics.csv"), trainer.read_metrics(tmp_path / "b" / "metrics.csv")
    for tag in ("loss", "test_loss"):
        rows_b = dict(zip(*mb[tag]))
        assert set(mb[tag][0]) - set(ma[tag][0]) <= {5, 9}
        assert {s: rows_b[s] for s in ma[tag][0]} == dict(zip(*ma[tag])), tag


def test_a_save_killed_midway_leaves_the_last_checkpoint(mnist_root, tmp_path, monkeypatch):
    out = tmp_path / "run"
    trainer.train(tiny_cfg(mnist_root, out, n_iters=6, ckpt_every=6), **QUIET)
    before = (out / "checkpoint.pt").read_bytes()
    real_save = torch.save

    def dying_save(obj, f, *a, **k):  # write half a file, then die
        real_save(obj, f, *a, **k)
        f.truncate(100)
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(tiny_cfg(mnist_root, out, n_iters=12, ckpt_every=6), **QUIET)
    monkeypatch.setattr(torch, "save", real_save)
    assert (out / "checkpoint.pt").read_bytes() == before  # old checkpoint intact
    assert list(out.glob(".*.tmp*"))  # the half-written temporary file
    res = trainer.train(tiny_cfg(mnist_root, out, n_iters=12, ckpt_every=6), **QUIET)
    assert res["steps_run"] == 6 and res["step"] == 12 and not list(out.glob(".*.tmp*"))


def test_non_finite_loss_stops_with_last_checkpoint_intact(mnist_root, tmp_path):
    out = tmp_path / "run"
    trainer.train(tiny_cfg(mnist_root, out, n_iters=4, ckpt_every=4), **QUIET)
    before = (out / "checkpoint.pt").read_bytes()
    # An absurd learning rate overflows the weights and the loss within a few steps.
    with pytest.raises(trainer.NonFiniteLoss, match="last good checkpoint"):
        trainer.train(tiny_cfg(mnist_root, out, n_iters=40, ckpt_every=20, log_every=1, lr=1e38),
                 **QUIET)
    assert (out / "checkpoint.pt").read_bytes() == before
    assert read_checkpoint(out / "checkpoint.pt")["step"] == 4


def test_resume_with_other_settings_is_refused(mnist_root, tmp_path):
    trainer.train(tiny_cfg(mnist_root, tmp_path, n_iters=3, ckpt_every=3), **QUIET)
    with pytest.raises(ValueError, match="different settings"):
        trainer.train(tiny_cfg(mnist_root, tmp_path, n_iters=6, ngf=8), **QUIET)


def test_bf16_and_channels_last_give_the_fp32_losses(mnist_root, tmp_path):
    quiet = dict(**QUIET)
    plain = trainer.train(tiny_cfg(mnist_root, tmp_path / "a", n_iters=10, amp="off"), **quiet)
    fast = trainer.train(tiny_cfg(mnist_root, tmp_path / "b", n_iters=10, amp="bf16", channels_last="on"), **quiet)
    a, b = torch.tensor(plain["losses"]), torch.tensor(fast["losses"])
    assert not torch.equal(a, b)  # bf16 did run
    assert ((a - b).abs() / a).max() < 0.01


def test_max_minutes_stops_with_a_checkpoint(mnist_root, tmp_path):
    res = trainer.train(tiny_cfg(mnist_root, tmp_path, n_iters=1000, log_every=2, max_minutes=1e-9),
                   **QUIET)
    assert res["step"] == 2 and read_checkpoint(tmp_path / "checkpoint.pt")["step"] == 2


@pytest.mark.fake_mnist(n_train=64, n_test=16)
def test_resume_with_another_dequantisation_is_refused(mnist_root, tmp_path):
    trainer.train(TrainConfig(dataset="mnist", out=str(tmp_path), data_root=str(mnist_root), **SMALL), **QUIET)
    with pytest.raises(ValueError, match="dequantize"):
        trainer.train(TrainConfig(dataset="mnist", out=str(tmp_path), data_root=str(mnist_root), dequantize=False,
                                **dict(SMALL, n_iters=6)), **QUIET)


@pytest.mark.fake_mnist(n_train=64, n_test=16)
def test_the_data_source_is_printed_recorded_and_checked_on_resume(mnist_root, tmp_path):
    printed = []
    res = trainer.train(presets.BOOK_CPU_MNIST, out=str(tmp_path), data_root=str(mnist_root), device="auto",
                   model_factory=tiny_factory, log=printed.append, **SMALL)
    state = read_checkpoint(tmp_path / "checkpoint.pt")
    source = state["config"]["data_source"]
    assert source and res["data_source"] == source and f"Data: {source}" in printed
    assert (state["config"]["channels"], state["config"]["image_size"]) == (1, 28)
    assert (state["config"]["ngf"], state["config"]["dequantize"]) == (4, False)  # preset + overrides
    snap = torch.load(tmp_path / "snapshots" / "model_0000004.pt", weights_only=True)
    assert snap["config"]["data_source"] == source
    # A checkpoint made on other files (say the JPEG copy instead of the original) does not resume.
    state["config"]["data_source"] = "cifar10: JPEG copy"
    checkpoints.atomic_save(state, tmp_path / "checkpoint.pt")
    with pytest.raises(ValueError, match="data_source"):
        trainer.train(presets.BOOK_CPU_MNIST, out=str(tmp_path), data_root=str(mnist_root), **dict(SMALL, n_iters=6),
                 **QUIET)


def test_a_folder_of_png_files_trains_samples_and_records_its_source(tmp_path, monkeypatch):
    """Through the real ncsn_edu.images.data reader: 20x20 colour PNGs in two class folders,
    centre-cropped to 16 and resized to 8."""
    from PIL import Image

    monkeypatch.setenv("NCSN_EDU_DATA", str(tmp_path / "cache_root"))  # decoded caches go here
    rng = torch.Generator().manual_seed(0)
    for cls in ("a", "b"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(8):
            arr = torch.randint(0, 256, (20, 20, 3), generator=rng, dtype=torch.uint8).numpy()
            Image.fromarray(arr).save(tmp_path / "imgs" / cls / f"{i}.png")

    def factory(dataset, ngf, n_sigmas, channels=None, image_size=None):
        return TinyScore(channels, ngf, n_sigmas, image_size)

    printed = []
    res = trainer.train(dataset="folder", data_root=str(tmp_path / "imgs"), image_size=8, crop=16,
                   out=str(tmp_path / "run"), **dict(SMALL, batch_size=8, n_iters=2, sample_every=2),
                   model_factory=factory, log=printed.append)
    cfg = read_checkpoint(tmp_path / "run" / "checkpoint.pt")["config"]
    assert (cfg["channels"], cfg["image_size"], cfg["crop"], cfg["dataset"]) == (3, 8, 16, "folder")
    assert "PNG" in cfg["data_source"] and str(tmp_path / "imgs") in cfg["data_source"]
    assert f"Data: {res['data_source']}" in printed and res["data_source"] == cfg["data_source"]
    # The sample grid holds two 8x8 colour images (one per row, 2-pixel gaps).
    grid = Image.open(tmp_path / "run" / "samples" / "step_0000002.png")
    assert grid.size == (8 + 2 * 2, 2 * 8 + 3 * 2) and grid.mode == "RGB"
    # Rerun: it resumes, although the images now come from the decoded cache (which the
    # source line mentions) and the folder has moved.
    (tmp_path / "imgs").rename(tmp_path / "moved")
    again = trainer.train(dataset="folder", data_root=str(tmp_path / "moved"), image_size=8, crop=16,
                     out=str(tmp_path / "run"), **dict(SMALL, batch_size=8, n_iters=3, sample_every=100),
                     model_factory=factory, log=printed.append)
    assert again["steps_run"] == 1 and again["data_source"] != res["data_source"]


# ----------------------------------------------------------------------------- NCSNv2's options

def test_ema_resumes_bit_for_bit_and_samples_and_tests_use_it(mnist_root, tmp_path):
    kw = dict(n_iters=14, ckpt_every=4, ema=0.9)
    full = trainer.train(tiny_cfg(mnist_root, tmp_path / "a", **kw), **QUIET)
    parts = [trainer.train(tiny_cfg(mnist_root, tmp_path / "b", max_steps_this_run=k, **kw), **QUIET)
             for k in (5, 4, None)]
    assert [p["step"] for p in parts] == [5, 9, 14]
    assert sum((p["losses"] for p in parts), []) == full["losses"]
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert a["ema"] is not None and set(a["ema"]) == set(a["model"])
    for k in a["ema"]:
        assert torch.equal(a["ema"][k], b["ema"][k]), k  # the average resumed exactly
    # The average is not the weights (rate 0.9 over 14 steps), and the loaders give it by default.
    assert any(not torch.equal(a["ema"][k], a["model"][k]) for k in a["model"])
    ema_net, _, _ = load_checkpoint(tmp_path / "a" / "checkpoint.pt", model_factory=tiny_factory)
    raw_net, _, _ = load_checkpoint(tmp_path / "a" / "checkpoint.pt", model_factory=tiny_factory, weights="raw")
    for k, v in ema_net.state_dict().items():
        assert torch.equal(v, a["ema"][k]) and torch.equal(raw_net.state_dict()[k], a["model"][k])
    # The test loss is the average's, logged beside the raw weights' (which differ).
    m = trainer.read_metrics(tmp_path / "a" / "metrics.csv")
    assert m["test_loss"][0] == m["test_loss_raw"][0] and m["test_loss"][1] != m["test_loss_raw"][1]
    # A resume with another rate, or without the average, is refused.
    with pytest.raises(ValueError, match="ema"):
        trainer.train(tiny_cfg(mnist_root, tmp_path / "b", n_iters=20, ckpt_every=4, ema=0.99), **QUIET)
    with pytest.raises(ValueError, match="ema"):
        trainer.train(tiny_cfg(mnist_root, tmp_path / "b", n_iters=20, ckpt_every=4), **QUIET)


def test_ema_at_rate_zero_trains_exactly_as_without_it(mnist_root, tmp_path):
    plain = trainer.train(tiny_cfg(mnist_root, tmp_path / "a", n_iters=6), **QUIET)
    zero = trainer.train(tiny_cfg(mnist_root, tmp_path / "b", n_iters=6, ema=0.0), **QUIET)
    assert zero["losses"] == plain["losses"]
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    for k in a["model"]:
        assert torch.equal(b["ema"][k], b["model"][k]) and torch.equal(a["model"][k], b["model"][k])
    ma, mb = trainer.read_metrics(tmp_path / "a" / "metrics.csv"), trainer.read_metrics(tmp_path / "b" / "metrics.csv")
    assert ma["test_loss"] == mb["test_loss"] == (mb["test_loss_raw"][0], mb["test_loss_raw"][1])


def test_a_division_network_trains_resumes_and_loads(mnist_root, tmp_path):
    kw = dict(n_iters=4, ckpt_every=2, divide_by_sigma=True, ema=0.5, sigma_begin=8.0, n_sigmas=5,
              sample_every=4, sample_denoise=True, log_every=2, test_every=2)
    quiet = dict(model_factory=presets.build_model, log=lambda *a: None)
    full = trainer.train(tiny_cfg(mnist_root, tmp_path / "a", **kw), **quiet)
    parts = [trainer.train(tiny_cfg(mnist_root, tmp_path / "b", max_steps_this_run=k, **kw), **quiet)
             for k in (3, None)]
    assert sum((p["losses"] for p in parts), []) == full["losses"]
    saved = _weights(tmp_path / "a")
    assert saved["config"]["divide_by_sigma"] and saved["config"]["ema"] == 0.5
    model, sigmas, cfg = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    assert model.conditioning == "division" and torch.equal(model.sigmas, sigmas)
    torch.testing.assert_close(sigmas, geometric_sigmas(8.0, 0.01, 5).float())
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        s0, s4 = model(x, torch.zeros(2, dtype=torch.long)), model(x, torch.full((2,), 4, dtype=torch.long))
    torch.testing.assert_close(s4 * sigmas[4], s0 * sigmas[0], rtol=1e-5, atol=1e-6)
    assert (tmp_path / "a" / "samples" / "step_0000004.png").is_file()
    with pytest.raises(ValueError, match="divide_by_sigma"):
        trainer.train(tiny_cfg(mnist_root, tmp_path / "b", **{**kw, "divide_by_sigma": False, "n_iters": 6}),
                      **quiet)


def test_checkpoints_older_than_the_ncsnv2_keys_resume_as_made_without_them(mnist_root, tmp_path):
    out = tmp_path / "run"
    trainer.train(tiny_cfg(mnist_root, out, n_iters=3, ckpt_every=3), **QUIET)
    saved = read_checkpoint(out / "checkpoint.pt")
    for k in ("ema", "divide_by_sigma", "sample_denoise"):
        saved["config"].pop(k)
    saved.pop("ema")
    torch.save(saved, out / "checkpoint.pt")
    res = trainer.train(tiny_cfg(mnist_root, out, n_iters=5, ckpt_every=3), **QUIET)
    assert res["step"] == 5
