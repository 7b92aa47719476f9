"""ncsn_edu.images.onnx_export: the ONNX files the site's live image figures run in the browser
compute what the package's PyTorch networks compute.

Run with the ``onnxruntime`` Python package (the CPU build of the same runtime as onnxruntime-web's
WebAssembly backend). The error measure is ``max |onnx - torch| / max |torch|`` over a batch: float32
arithmetic in another order of summation differs by a few float32 roundings (2^-24 = 6e-8 each)
through the network's ~40 layers, about 1e-6 measured (1.3e-6 for v1 over every level); the
issue's tolerance 1e-4 leaves a factor of ~80, while every planted bug (a level off, the division
by sigma missing or done twice) moves the output by O(1) of its scale."""

import json
import os

import numpy as np
import onnxruntime as ort
import pytest
import torch

from ncsn_edu.images import onnx_export as oe
from ncsn_edu.images.checkpoints import load_checkpoint, read_checkpoint
from ncsn_edu.images.presets import BOOK_CPU_MNIST
from ncsn_edu.images.refinenet import CondRefineNetDilated, count_parameters
from ncsn_edu.resources import resource_path

pytestmark = pytest.mark.slow  # four networks exported once (about 20 s on one core)

TOL = 1e-4
V2_RUN = "mnist_ncsnv2_ngf16.pt"  # the NCSNv2 run of data/README.md (its EMA weights)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("ncsn_edu_static")
    manifest = oe.write_site_assets(out, v2_checkpoint=resource_path(V2_RUN))
    return out, manifest


def session(path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def rel_err(a, b) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def noisy_digits(n, sigma, seed):
    """Inputs like the sampler's: uniform pixels plus noise of the level's size."""
    g = torch.Generator().manual_seed(seed)
    sigma = torch.as_tensor(sigma, dtype=torch.float32).reshape(-1, 1, 1, 1)
    return torch.rand(n, 1, 28, 28, generator=g) + sigma * torch.randn(n, 1, 28, 28, generator=g)


def level_batches(n_levels, seed):
    """Index batches over a reference batch of one input per level: every level alone
    (batch 1), then every level again in batches of 5 of shuffled levels."""
    yield from (torch.tensor([i]) for i in range(n_levels))
    perm = torch.randperm(n_levels, generator=torch.Generator().manual_seed(seed))
    perm = perm.repeat(5)[: -(-n_levels // 5) * 5]  # whole batches of 5 (5 copies of a single level)
    yield from perm.split(5)


def compare_by_level(sess, model, sigmas, second, seed):
    """The worst relative error of ``sess`` against ``model`` over :func:`level_batches`, with
    one input per level (PyTorch evaluates them in one batch: every image's score depends on
    that image alone, instance normalisation included) and ``second(idx)`` the ONNX model's
    second input; returns (worst, batch sizes seen)."""
    levels = torch.arange(len(sigmas))
    x = noisy_digits(len(sigmas), sigmas, seed)
    with torch.no_grad():
        want = model(x, levels).numpy()
    worst, seen = 0.0, set()
    for idx in level_batches(len(sigmas), seed):
        names = [i.name for i in sess.get_inputs()]
        got = sess.run(["score"], dict(zip(names, (x[idx].numpy(), second(idx)))))[0]
        assert got.shape == (len(idx), 1, 28, 28)
        worst = max(worst, rel_err(got, want[idx.numpy()]))
        seen.add(len(idx))
    return worst, seen


def entry(manifest, key):
    return next(m for m in (*manifest["models"], manifest["baseline"], manifest["classifier"]) if m["id"] == key)


@pytest.mark.parametrize("key, checkpoint", [("v1", "mnist_ncsn_ngf16.pt"), ("baseline", "mnist_baseline_sigma001.pt")])
def test_the_label_conditioned_network_equals_pytorch_at_every_level(site, key, checkpoint):
    out, manifest = site
    model, sigmas, _ = load_checkpoint(resource_path(checkpoint))
    sess = session(out / entry(manifest, key)["file"])
    assert [i.name for i in sess.get_inputs()] == ["x", "labels"] and sess.get_outputs()[0].name == "score"
    worst, seen = compare_by_level(sess, model, sigmas, lambda idx: idx.numpy(), seed=1)
    assert seen == {1, 5}
    assert worst < TOL, f"{key}: max relative error {worst:.2e}"


def test_the_sigma_conditioned_network_divides_by_the_given_sigma(site):
    """NCSNv2: at a ladder level the export's score(x, sigma_i) is the network's model(x, i); between
    levels it is the same unconditional output divided by the given sigma (s(x) / sigma is exact
    arithmetic: s(x, sigma) sigma is the same for every sigma)."""
    out, manifest = site
    model, sigmas, _ = load_checkpoint(resource_path(V2_RUN))
    assert model.conditioning == "division"
    sess = session(out / entry(manifest, "v2")["file"])
    assert [i.name for i in sess.get_inputs()] == ["x", "sigma"]
    worst, seen = compare_by_level(sess, model, sigmas, lambda idx: sigmas[idx].numpy(), seed=2)
    assert seen == {1, 5} and worst < TOL, f"max relative error {worst:.2e}"
    # between levels, and at sigmas off the ladder: s(x, sigma) = model(x, i) sigma_i / sigma
    x = noisy_digits(3, 0.3, seed=3)
    off = torch.tensor([0.3, 0.0105, 25.0])
    got = sess.run(["score"], {"x": x.numpy(), "sigma": off.numpy()})[0]
    with torch.no_grad():
        want = (model(x, torch.zeros(3, dtype=torch.long)) * sigmas[0] / off.view(-1, 1, 1, 1)).numpy()
    for k in range(3):
        assert rel_err(got[k], want[k]) < TOL


def test_the_classifier_export_gives_the_same_logits(site):
    from ncsn_edu.images.mnist_classifier import load_classifier

    out, manifest = site
    model, _ = load_classifier()
    sess = session(out / entry(manifest, "classifier")["file"])
    x = noisy_digits(5, 0.1, seed=4).clamp(0, 1)
    with torch.no_grad():
        want = model(x).numpy()
    got = sess.run(["logits"], {"x": x.numpy()})[0]
    assert got.shape == (5, 10) and rel_err(got, want) < TOL
    assert (got.argmax(1) == want.argmax(1)).all()


def test_the_manifest_describes_the_files_and_the_package_sampler(site):
    out, manifest = site
    on_disk = json.loads((out / oe.MANIFEST).read_text())
    assert on_disk == manifest and manifest["format"] == oe.MANIFEST_FORMAT
    assert [m["id"] for m in manifest["models"]] == ["v1", "v2"]
    v1, v2 = manifest["models"]
    assert (v1["file"], v1["name"], v1["conditioning"]) == ("mnist_ncsn_v1.onnx", "NCSN v1 (chapter 10)", "labels")
    assert (v2["file"], v2["conditioning"]) == ("mnist_ncsn_v2.onnx", "sigma")
    for e in (v1, v2, manifest["baseline"], manifest["classifier"]):
        f = out / e["file"]
        assert e["sha256"] == oe.sha256(f) and e["bytes"] == f.stat().st_size and e["weights"] == "float32"
    model, sigmas, cfg = load_checkpoint(resource_path("mnist_ncsn_ngf16.pt"))
    assert v1["parameters"] == count_parameters(model) == 518_817  # the count
    assert np.allclose(v1["sigmas"], sigmas.numpy(), rtol=1e-7) and len(v1["sigmas"]) == 10
    # the sampler of the book's v1 run: the preset's T and step, the official code's convention
    assert v1["sampler"] == {"n_steps_each": BOOK_CPU_MNIST.sample_steps_each, "eps": BOOK_CPU_MNIST.sample_eps,
                             "final_denoise": False, "convention": "code"}
    assert (v1["sampler"]["n_steps_each"], v1["sampler"]["eps"]) == (100, 2e-5)
    v2cfg = read_checkpoint(resource_path(V2_RUN))["config"]
    assert v2["sampler"]["n_steps_each"] == v2cfg["sample_steps_each"] == 10 and v2["sampler"]["final_denoise"]
    assert manifest["baseline"]["sigmas"] == [pytest.approx(0.01)]
    assert manifest["classifier"]["output"] == "logits"


def test_a_second_write_reuses_current_files_and_drops_unlisted_ones(site, tmp_path):
    out, manifest = site
    target = tmp_path / "static"
    target.mkdir()
    for e in (*manifest["models"], manifest["baseline"], manifest["classifier"]):
        (target / e["file"]).write_bytes((out / e["file"]).read_bytes())
    (target / oe.MANIFEST).write_text(json.dumps(manifest))
    os.utime(target / "mnist_ncsn_v1.onnx", (1, 1))
    again = oe.write_site_assets(target)  # no v2 checkpoint this time
    assert (target / "mnist_ncsn_v1.onnx").stat().st_mtime == 1  # not exported again
    assert [m["id"] for m in again["models"]] == ["v1"] and not (target / "mnist_ncsn_v2.onnx").exists()
    assert again["models"][0] == manifest["models"][0]


def test_half_precision_weights_equal_the_network_with_rounded_weights(tmp_path):
    """half_weights stores each weight of more than 16 values in float16 and casts it back: the file
    then computes exactly the network whose weights were rounded to float16 (float32 arithmetic
    otherwise, so within TOL), and it holds those weights in 2 bytes each instead of 4. (On the
    classifier, whose export is quick; export_onnx applies the same function to the score networks.)"""
    import onnx

    from ncsn_edu.images.mnist_classifier import MnistClassifier

    torch.manual_seed(0)
    model = MnistClassifier().eval()
    oe.export_classifier(model, tmp_path / "fp32.onnx")
    full = onnx.load(str(tmp_path / "fp32.onnx"))
    half = oe.half_weights(full)
    onnx.save(half, str(tmp_path / "fp16.onnx"))
    rounded = MnistClassifier().eval()
    rounded.load_state_dict({k: v.half().float() if v.numel() > 16 else v for k, v in model.state_dict().items()})
    x = noisy_digits(5, 0.2, seed=5)
    got = session(tmp_path / "fp16.onnx").run(["logits"], {"x": x.numpy()})[0]
    with torch.no_grad():
        assert rel_err(got, rounded(x).numpy()) < TOL
        exact = model(x).numpy()
    assert rel_err(got, exact) > 1e-5  # the rounding is really there

    def weight_bytes(proto):
        return sum(len(onnx.numpy_helper.to_array(i).tobytes()) for i in proto.graph.initializer)

    n_big = sum(p.numel() for p in model.state_dict().values() if p.numel() > 16)
    assert weight_bytes(full) - weight_bytes(half) == 2 * n_big


def test_score_by_sigma_needs_a_network_that_divides():
    with pytest.raises(ValueError, match="divides by sigma"):
        oe.ScoreBySigma(CondRefineNetDilated(ngf=4, num_classes=2))


def test_the_runtime_copy_names_npm_ci_when_node_modules_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="npm ci"):
        oe.copy_ort_runtime(tmp_path / "node_modules", tmp_path / "ort")
    dist = tmp_path / "node_modules" / "onnxruntime-web" / "dist"
    dist.mkdir(parents=True)
    for f in oe.ORT_FILES:
        (dist / f).write_text(f)
    (dist.parent / "package.json").write_text(json.dumps({"version": "9.9.9"}))
    (dist / "ort.webgpu.min.js").write_text("not shipped")
    copied = oe.copy_ort_runtime(tmp_path / "node_modules", tmp_path / "ort")
    assert sorted(p.name for p in copied) == sorted(oe.ORT_FILES)
    assert sorted(p.name for p in (tmp_path / "ort").iterdir()) == sorted([*oe.ORT_FILES, "VERSION"])
    assert (tmp_path / "ort" / "VERSION").read_text().strip() == "9.9.9"
