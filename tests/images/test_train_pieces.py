"""The trainer's named pieces: presets (and the shipped checkpoints made with them), the
dequantisation default, the recorded data source, training on a folder-shaped data set,
and the rule that no module imports another's private names."""

from __future__ import annotations

import ast
import math
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1]))

from image_train_helpers import TinyScore, tiny_factory, write_fake_mnist  # noqa: E402

from ncsn_edu import train_images as ti  # noqa: E402
from ncsn_edu.images import checkpoints, presets, trainer  # noqa: E402
from ncsn_edu.images.batches import StepBatches  # noqa: E402
from ncsn_edu.images.checkpoints import load_checkpoint, read_checkpoint  # noqa: E402
from ncsn_edu.images.presets import TrainConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
QUIET = dict(model_factory=tiny_factory, log=lambda *a: None)
SMALL = dict(ngf=4, batch_size=16, n_iters=4, ckpt_every=2, log_every=2, test_every=2, test_batches=1,
             sample_every=100, sample_n=2, sample_steps_each=1, progress=False)




@pytest.fixture(scope="module")
def mnist_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_fake_mnist(root, n_train=64, n_test=16)
    return root


def _trainer_checkpoints():
    """Every checkpoint of the image trainer shipped under data/ (a dict with a model and
    the trainer's settings)."""
    data = ROOT / "data"
    data_sets = {"MNIST", "FashionMNIST", "cifar-10-batches-py", "cifar10-jpeg", "cifar10", "celeba", "cache"}
    folders = [data] + [d for d in sorted(data.iterdir())
                        if d.is_dir() and not d.is_symlink() and d.name not in data_sets]
    found = []
    for path in sorted(p for d in folders for p in d.glob("*.pt")):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # not a tensor file the trainer could have written
            continue
        if isinstance(state, dict) and "model" in state and "ngf" in state.get("config", {}):
            found.append((path, state))
    return found


def test_every_shipped_checkpoint_matches_its_preset():
    shipped = _trainer_checkpoints()
    assert "mnist_ncsn_ngf16.pt" in [p.name for p, _ in shipped]
    for path, state in shipped:
        assert path.name in presets.SHIPPED_CHECKPOINTS, f"{path} has no preset in presets.SHIPPED_CHECKPOINTS"
        preset = presets.PRESETS[presets.SHIPPED_CHECKPOINTS[path.name]]
        keys = presets.MODEL_KEYS + ("lr", "beta1", "beta2")
        assert presets.settings_differ(state["config"], preset, keys) == {}, path.name
        assert state["step"] <= preset.n_iters
        # It loads with the package's network, and its recorded settings would resume
        # under the preset (the resume check of the trainer).
        model, sigmas, cfg = checkpoints.load_checkpoint(path)
        assert len(sigmas) == preset.n_sigmas
        checkpoints.check_resume(cfg, asdict(preset.resolved()), path)


def test_book_preset_is_the_shipped_models_settings():
    state = torch.load(ROOT / "data" / "mnist_ncsn_ngf16.pt", map_location="cpu", weights_only=True)
    model, _, _ = checkpoints.load_checkpoint(ROOT / "data" / "mnist_ncsn_ngf16.pt")
    assert sum(p.numel() for p in model.parameters()) == 518_817  # data/README.md
    assert state["config"]["dequantize"] is False and presets.BOOK_CPU_MNIST.dequantize is False
    # The paper's settings would not resume it: dequantisation differs, and the refusal says how.
    with pytest.raises(ValueError, match="--no-dequantize"):
        checkpoints.check_resume(state["config"], asdict(presets.PAPER_MNIST.replace(ngf=16, batch_size=32)), "x")


def test_paper_presets_and_the_command_line_dequantise_by_default():
    assert presets.PAPER_MNIST.dequantize and presets.PAPER_CIFAR10.dequantize and TrainConfig().dequantize
    assert (presets.PAPER_MNIST.ngf, presets.PAPER_CIFAR10.ngf, presets.PAPER_CIFAR10.flip) == (64, 128, True)
    parse = ti.build_parser().parse_args
    assert ti.config_from_args(parse([])).dequantize is True
    assert ti.config_from_args(parse(["--no-dequantize"])).dequantize is False
    assert "dequanti" in ti.build_parser().format_help()
    for name, preset in presets.PRESETS.items():  # --preset NAME gives the preset, options change it
        assert ti.config_from_args(ti.build_parser(preset=name).parse_args([])) == preset
    assert ti.config_from_args(ti.build_parser(preset="BOOK_CPU_MNIST").parse_args(["--dequantize"])).dequantize


def test_dequantised_pixels_spread_uniformly_over_their_bins():
    # v/255 in the data becomes (v + u)/256 with u ~ U(0, 1): the official x*255/256 + U/256.
    values = torch.arange(256, dtype=torch.uint8).view(256, 1, 1, 1).repeat(1, 1, 4, 4)
    b = StepBatches(values, batch_size=64, seed=3, flip=False, dequantize=True)
    u, n = [], 0
    for k in range(16):  # four epochs
        x = b.batch(k)
        v = (x * 256).floor()  # the bin a pixel fell in
        assert ((v == v[:, :, :1, :1]).all())  # every pixel of image v stays in bin v
        u.append(x * 256 - v)
        n += x.numel()
    u = torch.cat(u)
    assert u.min() >= 0 and u.max() < 1
    se = math.sqrt(1 / 12 / n)  # standard error of the mean of U(0, 1)
    assert abs(u.mean().item() - 0.5) < 5 * se
    assert abs(u.var().item() - 1 / 12) < 0.01
    plain = StepBatches(values, batch_size=64, seed=3, flip=False, dequantize=False).batch(0)
    assert torch.equal(plain * 255, (plain * 255).round())  # without it: exactly v/255


def test_resume_with_another_dequantisation_is_refused(mnist_root, tmp_path):
    trainer.train(TrainConfig(dataset="mnist", out=str(tmp_path), data_root=str(mnist_root), **SMALL), **QUIET)
    with pytest.raises(ValueError, match="dequantize"):
        trainer.train(TrainConfig(dataset="mnist", out=str(tmp_path), data_root=str(mnist_root), dequantize=False,
                                **dict(SMALL, n_iters=6)), **QUIET)


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


class _Folder(torch.utils.data.Dataset):
    """What ``image_dataset("folder", ...)`` gives: images in [0, 1] and the attributes the
    trainer reads (no stored array, so the trainer reads it item by item)."""

    def __init__(self, root, train, n=24, channels=3, size=12):
        g = torch.Generator().manual_seed(int(train))
        self.x = torch.randint(0, 256, (n, channels, size, size), generator=g, dtype=torch.uint8)
        self.source, self.channels, self.image_size = f"image folder {root} (PNG)", channels, size

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i].float() / 255, 0


def test_a_folder_data_set_trains_a_network_of_its_shape(tmp_path, monkeypatch):
    from ncsn_edu.images import data

    seen = {}

    def fake_image_dataset(name, train=True, root=None, flip=False, download=True, **kw):
        seen.update(name=name, **kw)
        return _Folder(root, train)

    def factory(dataset, ngf, n_sigmas, channels=None, image_size=None):
        return TinyScore(channels, ngf, n_sigmas, image_size)

    monkeypatch.setattr(data, "image_dataset", fake_image_dataset)
    (tmp_path / "imgs").mkdir()
    rc = ti.main(["--dataset", "folder", "--data-root", str(tmp_path / "imgs"), "--image-size", "12", "--crop", "20",
                  "--out", str(tmp_path / "run"), "--ngf", "4", "--batch-size", "8", "--n-iters", "2",
                  "--ckpt-every", "2", "--test-batches", "1", "--sample-n", "4", "--sample-steps-each", "1",
                  "--no-progress"], model_factory=factory)
    assert rc == 0
    assert seen == dict(name="folder", image_size=12, crop=20)
    model, _, cfg = load_checkpoint(tmp_path / "run" / "checkpoint.pt", model_factory=factory)
    assert (cfg["channels"], cfg["image_size"], cfg["crop"]) == (3, 12, 20)
    assert model.conv1.weight.shape[1] == 3 and presets.image_shape(cfg) == (3, 12, 12)
    # The network trained on exactly the folder's images, read back losslessly.
    ds = _Folder(None, True)
    from ncsn_edu.images.batches import read_image_set

    assert torch.equal(read_image_set("folder", True, tmp_path / "imgs").images, ds.x)
    assert ti.main(["--dataset", "folder", "--out", str(tmp_path / "r2")]) == 1  # no --data-root


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


def test_one_step_is_a_gradient_step_on_the_papers_loss():
    from ncsn_edu.images.train_step import make_step_fn
    from ncsn_edu.schedules import geometric_sigmas
    from ncsn_edu.toy.losses import anneal_dsm_loss

    sigmas = geometric_sigmas(1, 0.01, 10).float()
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    net, ref = TinyScore(1, 4, 10, 8), TinyScore(1, 4, 10, 8)
    ref.load_state_dict(net.state_dict())
    state = {"model": net, "optimizer": torch.optim.SGD(net.parameters(), lr=0.1), "step": 7}
    res = make_step_fn(sigmas, global_batch=6)(state, x, torch.Generator().manual_seed(3))
    # The reference draws its levels and noise from the same seed, in the same order.
    loss = anneal_dsm_loss(ref, x, sigmas, generator=torch.Generator().manual_seed(3))
    loss.backward()
    assert state["step"] == 8
    torch.testing.assert_close(res.loss, loss.detach())
    for (name, p), q in zip(net.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.detach(), q.detach() - 0.1 * q.grad, msg=name)
    # A process's share: rows 3-5 of the global batch, with the global batch's levels and noise.
    ref.zero_grad()
    part = make_step_fn(sigmas, global_batch=6, share=slice(3, 6))(
        {"model": ref, "optimizer": torch.optim.SGD(ref.parameters(), lr=0.0), "step": 0}, x[3:],
        torch.Generator().manual_seed(3))
    assert torch.equal(part.labels, res.labels[3:])
    full = anneal_dsm_loss(ref, x, sigmas, generator=torch.Generator().manual_seed(3), reduction="none")
    torch.testing.assert_close(part.per_sample, full[3:].detach())


def test_no_module_imports_a_private_name_of_another():
    bad = []
    for path in sorted((ROOT / "ncsn_edu").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("ncsn_edu")):
                bad += [f"{path.name}: {a.name} from {node.module}" for a in node.names if a.name.startswith("_")]
    assert bad == []
