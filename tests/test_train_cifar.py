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


def _jpeg_copy(root, n: int = 2):
    """A CIFAR-10 of JPEG files in the offline copy's layout: root/cifar10-jpeg/{train,test}/<class>/*.jpg."""
    import numpy as np
    from PIL import Image

    from ncsn_edu.images.data import CIFAR10_CLASSES

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in CIFAR10_CLASSES:
            d = root / "cifar10-jpeg" / split / c
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(d / f"{i}.jpg", quality=75)


def test_the_jpeg_copy_is_announced_and_original_cifar10_forces_the_original(tmp_path, monkeypatch, capsys):
    from fake_cifar import trust_fake_cifar10, write_fake_cifar10
    from torchvision.datasets import CIFAR10

    from ncsn_edu import train_cifar

    root = tmp_path / "data"
    _jpeg_copy(root)
    monkeypatch.setenv("NCSN_EDU_DATA", str(root))
    small = ["--data-root", str(root), "--ngf", "4", "--batch-size", "4", "--n-iters", "1", "--ckpt-every", "1",
             "--test-batches", "0", "--sample-every", "10", "--sample-n", "4", "--sample-steps-each", "1",
             "--no-progress"]  # the last step's sample grid: 4 images, 1 step per level (not 1,000 steps)
    # Only the JPEG copy: it is read, and the run says so before reading, with where the decoded cache goes.
    assert train_cifar.main(small + ["--out", str(tmp_path / "jpeg")], model_factory=tiny_factory) == 0
    out = capsys.readouterr().out
    assert "reading CIFAR-10 from the image files in" in out and "--original-cifar10" in out
    assert f"caches the arrays in {root / 'cache'}" in out and "Data: cifar10: JPEG re-encoding" in out
    assert read_checkpoint(tmp_path / "jpeg" / "checkpoint.pt")["config"]["data_source"].startswith("cifar10: JPEG")

    # --original-cifar10 without the original files, offline: a clear error, nothing written.
    def offline(self):  # torchvision's download, which returns when the files are there, offline
        if self._check_integrity():
            return
        raise RuntimeError("no network")

    monkeypatch.setattr(CIFAR10, "download", offline)
    rc = train_cifar.main(small + ["--out", str(tmp_path / "orig"), "--original-cifar10"], model_factory=tiny_factory)
    err = capsys.readouterr().err
    assert rc == 1 and "--original-cifar10: torchvision's CIFAR-10 files" in err and "no network" in err
    assert not (tmp_path / "orig").exists()
    # With the original files beside the JPEG copy, the flag reads them (and no JPEG notice appears).
    trust_fake_cifar10(monkeypatch, write_fake_cifar10(root, n_per_batch=4, n_test=4))
    rc = train_cifar.main(small + ["--out", str(tmp_path / "orig"), "--original-cifar10"], model_factory=tiny_factory)
    out = capsys.readouterr().out
    assert rc == 0 and "image files" not in out and "Data: cifar10: JPEG" not in out
    assert "JPEG" not in read_checkpoint(tmp_path / "orig" / "checkpoint.pt")["config"]["data_source"]


def test_a_cpu_run_prints_its_time_estimate_first(tmp_path, monkeypatch, capsys):
    from fake_cifar import trust_fake_cifar10, write_fake_cifar10

    from ncsn_edu import train_cifar
    from ncsn_edu.images import trainer

    trust_fake_cifar10(monkeypatch, write_fake_cifar10(tmp_path / "data", n_per_batch=8, n_test=8))
    # The timing pass's result fixed, so that the printed numbers are known.
    monkeypatch.setattr(trainer, "cpu_time_estimate", lambda *a, **kw: 0.36)
    base = ["--data-root", str(tmp_path / "data"), "--ngf", "4", "--batch-size", "8", "--ckpt-every", "1",
            "--test-batches", "0", "--sample-every", "1000000000", "--no-progress", "--device", "cpu",
            "--max-steps-this-run", "1"]
    # 200,000 iterations at 0.36 s: 20 hours, printed before the first step (the default length).
    assert train_cifar.main(base + ["--out", str(tmp_path / "a")], model_factory=tiny_factory) == 0
    lines = capsys.readouterr().out.splitlines()
    est = [i for i, line in enumerate(lines) if line.startswith("ESTIMATE for the CPU")]
    assert est and "0.36 s per iteration at batch 8" in lines[est[0]]
    assert "the 200,000 iterations left would take about 20 hours (0.8 days)" in lines[est[0]]
    assert "--ngf 16 --batch-size 32" in lines[est[0] + 1]
    # Resumed, it counts what is left; a run of under an hour prints nothing.
    assert train_cifar.main(base + ["--out", str(tmp_path / "a")], model_factory=tiny_factory) == 0
    assert "the 199,999 iterations left" in capsys.readouterr().out
    assert train_cifar.main(base + ["--out", str(tmp_path / "b"), "--n-iters", "10000"],
                            model_factory=tiny_factory) == 0
    assert "ESTIMATE" not in capsys.readouterr().out


def test_the_cpu_estimate_times_a_pass_without_touching_the_model():
    from image_train_helpers import TinyScore

    from ncsn_edu.images.trainer import cpu_time_estimate

    torch.manual_seed(0)
    net = TinyScore(1, 4, 10, 28)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    state = torch.random.get_rng_state()
    sec = cpu_time_estimate(net, (1, 28, 28), 128)
    assert 0 < sec < 60
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.grad is None for p in net.parameters())
    assert torch.equal(state, torch.random.get_rng_state())  # the global random state is left alone
