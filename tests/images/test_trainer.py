"""The image trainer (ncsn_edu.train_images): trains, checkpoints, resumes exactly,
rejects bad inputs (SIGKILL and torchrun: tests/images/test_trainer_processes.py). Runs on CPU with a tiny
stand-in network (tests/image_train_helpers.py) on small generated data sets written in
MNIST's and CIFAR-10's own file formats."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1]))

from image_train_helpers import TinyScore, tiny_factory, write_fake_mnist  # noqa: E402

from ncsn_edu import train_images as ti  # noqa: E402
from ncsn_edu.images import trainer  # noqa: E402
from ncsn_edu.images.batches import StepBatches  # noqa: E402
from ncsn_edu.images.checkpoints import load_checkpoint, read_checkpoint  # noqa: E402
from ncsn_edu.images.presets import TrainConfig  # noqa: E402
from ncsn_edu.images.train_step import dsm_per_sample  # noqa: E402
from ncsn_edu.schedules import geometric_sigmas  # noqa: E402
from ncsn_edu.toy.losses import anneal_dsm_loss  # noqa: E402


def tiny_cfg(root, out, **kw):
    base = dict(dataset="mnist", out=str(out), data_root=str(root), ngf=4, batch_size=16, n_iters=12,
                ckpt_every=6, log_every=3, test_every=6, test_batches=1, sample_every=12, sample_n=4,
                sample_steps_each=2, progress=False)
    base.update(kw)
    return TrainConfig(**base)


QUIET = dict(model_factory=tiny_factory, log=lambda *a: None)




@pytest.fixture(scope="module")
def mnist_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_fake_mnist(root, n_train=128, n_test=32)
    return root


def test_engine_loss_is_the_papers_anneal_dsm_loss():
    torch.manual_seed(0)
    net = TinyScore(1, 4, 10, 28)
    x = torch.rand(6, 1, 28, 28)
    sigmas = geometric_sigmas(1, 0.01, 10)
    labels = torch.tensor([0, 3, 9, 1, 5, 9])
    g = torch.Generator().manual_seed(5)
    ref = anneal_dsm_loss(net, x, sigmas, labels=labels, generator=g, reduction="none")
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(5))
    ours = dsm_per_sample(net, x, labels, z, sigmas)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-4)


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


def test_resume_with_other_settings_is_refused(mnist_root, tmp_path):
    trainer.train(tiny_cfg(mnist_root, tmp_path, n_iters=3, ckpt_every=3), **QUIET)
    with pytest.raises(ValueError, match="different settings"):
        trainer.train(tiny_cfg(mnist_root, tmp_path, n_iters=6, ngf=8), **QUIET)


# ----------------------------------------------------------------------------- data

def test_step_batches_visit_every_image_once_per_epoch_and_flip_half():
    images = torch.arange(20, dtype=torch.uint8).view(20, 1, 1, 1).repeat(1, 1, 2, 3)
    images[:, :, :, 0] = 0  # a left column of zeros makes a flip visible
    b = StepBatches(images, batch_size=5, seed=1, flip=True, dequantize=False)
    seen = torch.cat([b.batch(k) for k in range(4)])  # one epoch
    ids = (seen.amax(dim=(1, 2, 3)) * 255).round().long()
    assert sorted(ids.tolist()) == list(range(20))
    assert torch.equal(b.batch(2), StepBatches(images, 5, 1, True, False).batch(2))  # a function of the step
    assert torch.equal(torch.cat([b.batch(7, 0, 1)]), torch.cat([b.batch(7, r, 5) for r in range(5)]))
    flipped = [(b.batch(k)[:, 0, 0, 0] > 0) for k in range(400)]
    frac = torch.cat(flipped).float().mean().item()
    assert 0.45 < frac < 0.55  # about half the images are mirrored (2000 draws)
    b0 = StepBatches(images, batch_size=5, seed=1, flip=False, dequantize=False)
    assert all((b0.batch(k)[:, 0, 0, 0] == 0).all() for k in range(10))


def test_cifar10_defaults_train_sample_on_cifar_format_data(tmp_path, monkeypatch, capsys):
    from fake_cifar import trust_fake_cifar10, write_fake_cifar10

    from ncsn_edu import train_cifar

    trust_fake_cifar10(monkeypatch, write_fake_cifar10(tmp_path / "data", n_per_batch=8, n_test=8))
    out = tmp_path / "run"
    rc = train_cifar.main(["--data-root", str(tmp_path / "data"), "--out", str(out), "--ngf", "4", "--batch-size", "8",
                           "--n-iters", "6", "--ckpt-every", "3", "--test-every", "3", "--test-batches", "1",
                           "--sample-every", "6", "--sample-n", "4", "--sample-steps-each", "2", "--no-progress"],
                          model_factory=tiny_factory)
    assert rc == 0, capsys.readouterr().err
    state = read_checkpoint(out / "checkpoint.pt")
    cfg = state["config"]
    assert (cfg["dataset"], cfg["flip"], cfg["n_sigmas"], cfg["lr"], cfg["n_iters"]) == ("cifar10", True, 10, 1e-3, 6)
    assert state["model"]["conv1.weight"].shape[1] == 3
    from PIL import Image

    grid = Image.open(out / "samples" / "step_0000006.png")
    assert grid.size == (2 * 32 + 3 * 2, 2 * 32 + 3 * 2) and grid.mode == "RGB"
    # With no options, the paper's settings (appendix B).
    c = ti.config_from_args(ti.build_parser("cifar10").parse_args([])).resolved()
    assert (c.dataset, c.ngf, c.flip, c.n_sigmas, c.sigma_begin, c.sigma_end) == ("cifar10", 128, True, 10, 1.0, 0.01)
    assert (c.lr, c.beta1, c.beta2, c.batch_size, c.n_iters, c.ckpt_every) == (1e-3, 0.9, 0.999, 128, 200_000, 5_000)
    m = ti.config_from_args(ti.build_parser().parse_args([])).resolved()
    assert (m.dataset, m.ngf, m.flip) == ("mnist", 64, False)


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
