"""The image trainer (ncsn_edu.train_images): trains, checkpoints, resumes exactly,
survives SIGKILL, runs under torchrun, rejects bad inputs. Runs on CPU with a tiny
stand-in network (tests/image_train_helpers.py) on small generated data sets written in
MNIST's and CIFAR-10's own file formats."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from image_train_helpers import TinyScore, tiny_factory, write_fake_mnist  # noqa: E402

from ncsn_edu import train_images as ti  # noqa: E402
from ncsn_edu.losses import anneal_dsm_loss  # noqa: E402
from ncsn_edu.schedules import geometric_sigmas  # noqa: E402


def tiny_cfg(root, out, **kw):
    base = dict(dataset="mnist", out=str(out), data_root=str(root), ngf=4, batch_size=16, n_iters=12,
                ckpt_every=6, log_every=3, test_every=6, test_batches=1, sample_every=12, sample_n=4,
                sample_steps_each=2, progress=False)
    base.update(kw)
    return ti.TrainConfig(**base)


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
    ours = ti.dsm_per_sample(net, x, labels, z, sigmas)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-4)


def test_trains_checkpoints_and_loads(mnist_root, tmp_path):
    out = tmp_path / "run"
    res = ti.train(tiny_cfg(mnist_root, out, n_iters=40, ckpt_every=20, sample_every=40, lr=3e-3),
                   model_factory=tiny_factory, log=lambda *a: None)
    assert res["step"] == 40 and len(res["losses"]) == 40
    # Learning happens: with lambda = sigma^2 the loss of the zero score is exactly
    # E ||z||^2 / 2 = D / 2 = 392 at every level; the trained network does clearly better.
    last = sum(res["losses"][-5:]) / 5
    assert last < 0.85 * 392
    assert (out / "checkpoint.pt").is_file()
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == ["model_0000020.pt", "model_0000040.pt"]
    assert (out / "samples" / "step_0000040.png").is_file()
    m = ti.read_metrics(out / "metrics.csv")
    assert m["loss"][0] == sorted(set(range(3, 41, 3)) | {20, 40})  # every 3 and at checkpoints
    assert "test_loss" in m and any(k.startswith("loss_level/9") for k in m)
    model, sigmas, cfg = ti.load_checkpoint(out / "checkpoint.pt", model_factory=tiny_factory)
    torch.testing.assert_close(sigmas, geometric_sigmas(1, 0.01, 10).float())
    assert cfg["ngf"] == 4 and not model.training
