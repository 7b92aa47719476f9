"""The CIFAR-10 training command (ncsn_edu.train_cifar): the paper's CIFAR-10 settings by
default, training and sampling on a small data set in CIFAR-10's own format."""

from __future__ import annotations

import torch
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


def test_preset_ncsnv2_sets_ncsnv2s_settings_together_and_the_default_stays_the_papers():
    from ncsn_edu.schedules import geometric_sigmas, last_level_variance_ratio, step_from_variance_criterion

    v2 = ti.config_from_args(ti.build_parser("cifar10", preset="ncsnv2").parse_args([])).resolved()
    assert (v2.dataset, v2.ngf, v2.flip, v2.batch_size) == ("cifar10", 128, True, 128)
    assert (v2.sigma_begin, v2.sigma_end, v2.n_sigmas) == (50.0, 0.01, 232)
    assert (v2.sample_steps_each, v2.sample_eps, v2.sample_denoise) == (5, 6.2e-6, True)
    assert (v2.ema, v2.divide_by_sigma, v2.lr, v2.dequantize) == (0.999, True, 1e-4, False)
    # The step is Technique 4's for these levels: gamma = (50/0.01)^(1/231) and T = 5 give
    # eps = 6.18e-6, which the official config rounds to 6.2e-6; the variance ratio of a level's
    # chain after T steps (1.055 there) is then within 0.01% of its smallest value over eps.
    sig = geometric_sigmas(v2.sigma_begin, v2.sigma_end, v2.n_sigmas)
    gamma = float(sig[0] / sig[1])
    best = step_from_variance_criterion(gamma, v2.sample_steps_each, v2.sigma_end)
    assert abs(best - v2.sample_eps) < 0.05e-6
    ratio = last_level_variance_ratio(v2.sample_eps, gamma, 5, v2.sigma_end)
    assert abs(ratio - last_level_variance_ratio(best, gamma, 5, v2.sigma_end)) < 1e-4 * ratio
    # The default command is the paper's v1 run: no average, CIN++, no final denoising.
    v1 = ti.config_from_args(ti.build_parser("cifar10").parse_args([])).resolved()
    assert (v1.ema, v1.divide_by_sigma, v1.sample_denoise, v1.n_sigmas) == (None, False, False, 10)
    # Options after the preset change it.
    one = ti.config_from_args(ti.build_parser("cifar10", preset="ncsnv2").parse_args(["--ema", "0.99"]))
    assert one.ema == 0.99 and one.divide_by_sigma


def test_preset_ncsnv2_trains_the_division_network_with_an_ema(tmp_path, monkeypatch, capsys):
    from fake_cifar import trust_fake_cifar10, write_fake_cifar10

    from ncsn_edu import train_cifar
    from ncsn_edu.images.checkpoints import load_checkpoint

    trust_fake_cifar10(monkeypatch, write_fake_cifar10(tmp_path / "data", n_per_batch=8, n_test=8))
    out = tmp_path / "run"
    rc = train_cifar.main(["--preset", "ncsnv2", "--data-root", str(tmp_path / "data"), "--out", str(out),
                           "--ngf", "4", "--batch-size", "8", "--n-sigmas", "12", "--n-iters", "2",
                           "--ckpt-every", "2", "--test-every", "2", "--test-batches", "1", "--sample-every", "2",
                           "--sample-n", "4", "--sample-steps-each", "1", "--no-progress"])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    assert "EMA of the weights at rate 0.999" in printed.out and "division by sigma" in printed.out
    state = read_checkpoint(out / "checkpoint.pt")
    assert state["config"]["ema"] == 0.999 and state["config"]["divide_by_sigma"]
    assert state["config"]["sigma_begin"] == 50.0 and state["ema"] is not None
    model, sigmas, _ = load_checkpoint(out / "checkpoint.pt")
    assert model.conditioning == "division" and len(sigmas) == 12
    for k, v in model.state_dict().items():
        assert torch.equal(v, state["ema"][k])
    # The sampling command samples it as the run did (its sampler settings: here the preset's step and
    # final denoising, with --sample-steps-each 1), from the EMA weights.
    from ncsn_edu import sample_images

    assert sample_images.main(["sample", str(out / "checkpoint.pt"), "--n", "2", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "12 levels 50 -> 0.01, 1 steps each, step 6.2e-06, final denoising; the EMA weights" in printed
    assert sample_images.main(["sample", str(out / "checkpoint.pt"), "--n", "2", "--steps-each", "2",
                               "--weights", "raw", "--no-progress"]) == 0
    assert "2 steps each, step 6.2e-06, final denoising\n" in capsys.readouterr().out
