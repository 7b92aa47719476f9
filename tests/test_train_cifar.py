"""The CIFAR-10 training command (ncsn_edu.train_cifar): the paper's CIFAR-10 settings by
default, training and sampling on a small data set in CIFAR-10's own format."""

from __future__ import annotations

from image_train_helpers import tiny_factory

from ncsn_edu import train_images as ti
from ncsn_edu.images.checkpoints import read_checkpoint


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
