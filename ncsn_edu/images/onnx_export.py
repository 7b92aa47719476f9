"""The MNIST score networks as ONNX files for the site's live image figures (chapters 10, 11
and 11b), which run them in the reader's browser with onnxruntime-web's WebAssembly backend.

Two kinds of network are exported, each with one float32 output ``score`` of shape
``(N, 1, 28, 28)`` and a dynamic batch ``N``:

* **labels** (NCSN v1, :class:`~ncsn_edu.images.refinenet.CondRefineNetDilated` with CIN++):
  inputs ``x`` float32 ``(N, 1, 28, 28)`` (pixels in [0, 1], as the package's networks take
  them) and ``labels`` int64 ``(N,)``, the level index ``i`` (0 = the largest sigma).
* **sigma** (NCSNv2's division by sigma): inputs ``x`` and ``sigma`` float32 ``(N,)``; the
  output is the unconditional network's divided by ``sigma``, ``s(x) / sigma``, so any sigma
  works, not only the ladder's (at a ladder level ``sigma_i`` it equals ``model(x, i)``).

:func:`write_site_assets` writes the files the site serves under ``_static/ncsn_edu/``:
``mnist_ncsn_v1.onnx`` (and ``mnist_ncsn_v2.onnx`` when a v2 checkpoint is given), the
appendix's single-level baseline ``mnist_baseline_sigma001.onnx``, the digit classifier
``mnist_classifier.onnx`` (input ``x``, output ``logits`` ``(N, 10)``) and the manifest
``models.json`` (see :func:`write_site_assets`); :func:`copy_ort_runtime` copies
onnxruntime-web's WebAssembly files from ``node_modules`` (``npm ci``) into ``_static/ort/``.
The book's Sphinx extension (``book/_ext/ncsn_book.py``) calls both once per build.

The weights are stored as float32 by default, and the files then match PyTorch to about 1e-6
of the scores' scale (``tests/images/test_onnx_export.py`` asks for 1e-4). Half-precision
weights (:func:`half_weights`, ``fp16=True``) shrink the v1 file from 2.9 MB to 1.9 MB
(beside 14.8 MB of WebAssembly that every page shares) but move its scores by 9.1e-4 of
their scale (v2: 3.1e-4), above that tolerance, so the site ships float32.

The export uses ``torch.onnx``'s TorchScript exporter (``dynamo=False``): on this book's
network it took 11 s where the torch.export-based exporter took 135 s (on the same busy
2-core machine) and wrote a file of 5.5 MB instead of 2.9 MB. The network's check of the
label values cannot be traced; the exported copy skips it (onnxruntime itself rejects a
label out of range).
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import shutil
import warnings
from pathlib import Path

import torch
from torch import nn

#: The files of onnxruntime-web's WebAssembly backend that the site ships (``ort.wasm.min.js``
#: loads the ``.mjs`` glue, which loads the ``.wasm``), from ``node_modules/onnxruntime-web/dist``.
#: This one build serves one thread everywhere and several threads where the page is
#: cross-origin isolated (a plain ``python -m http.server`` is not: one thread there).
ORT_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
#: The manifest's format version (raise it when its fields change meaning).
MANIFEST_FORMAT = 1
OPSET = 17
V1_FILE, V2_FILE, MANIFEST = "mnist_ncsn_v1.onnx", "mnist_ncsn_v2.onnx", "models.json"
BASELINE_FILE, CLASSIFIER_FILE = "mnist_baseline_sigma001.onnx", "mnist_classifier.onnx"
V1_NAME = "NCSN v1 (chapter 10)"
V2_NAME = "NCSN v2 (chapter 11b)"
BASELINE_NAME = "single level, sigma = 0.01 (the appendix's baseline, chapter 10)"


def sha256(path) -> str:
    """The SHA-256 of a file, in hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _unchecked(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode whose input check (label values compared in Python,
    which a trace cannot record) is skipped."""
    net = copy.deepcopy(model).eval()
    net._check = lambda x, labels: None
    return net


class ScoreByLabel(nn.Module):
    """``score(x, labels) = model(x, labels)``: the exported NCSN v1 network."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.net = _unchecked(model)

    def forward(self, x, labels):
        return self.net(x, labels)


class ScoreBySigma(nn.Module):
    """``score(x, sigma) = s(x) / sigma`` of a network that divides by sigma (NCSNv2): the
    copy's table of sigmas is set to ones, so the network gives the undivided ``s(x)``
    (its normalisations ignore the labels), and the division by the input ``sigma`` follows."""

    def __init__(self, model: nn.Module):
        super().__init__()
        if getattr(model, "conditioning", None) != "division":
            raise ValueError("ScoreBySigma needs a network that divides by sigma (conditioning='division')")
        self.net = _unchecked(model)
        with torch.no_grad():
            self.net.sigmas.fill_(1.0)

    def forward(self, x, sigma):
        labels = torch.zeros_like(sigma, dtype=torch.long)
        return self.net(x, labels) / sigma.view(-1, 1, 1, 1)


def conditioning_of(model: nn.Module) -> str:
    """``"sigma"`` for a network that divides by sigma, else ``"labels"``."""
    return "sigma" if getattr(model, "conditioning", None) == "division" else "labels"


def _export(wrapper: nn.Module, inputs: tuple, names: list[str], output: str, path, fp16: bool) -> None:
    """``torch.onnx.export`` of ``wrapper`` on the example ``inputs`` (named ``names``) to
    ``path`` with a dynamic first axis on every input and the output, written atomically.
    (The ``onnx`` package is needed for ``fp16`` only: the book's build needs torch alone.)"""
    kw = dict(input_names=list(names), output_names=[output], opset_version=OPSET, do_constant_folding=True,
              dynamic_axes={n: {0: "N"} for n in (*names, output)})
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kw["dynamo"] = False  # the TorchScript exporter (module docstring)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, inputs, str(tmp), **kw)
    if fp16:
        import onnx

        proto = half_weights(onnx.load(str(tmp)))
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
    tmp.replace(path)


def export_onnx(model: nn.Module, path, fp16: bool = False) -> str:
    """Export the score network ``model`` (a
    :class:`~ncsn_edu.images.refinenet.CondRefineNetDilated` on the CPU) to the ONNX file
    ``path`` with the inputs of its conditioning (module docstring), a dynamic batch and the
    output ``score``; ``fp16`` stores the weights in half precision (:func:`half_weights`).
    Returns the conditioning, ``"labels"`` or ``"sigma"``."""
    cond = conditioning_of(model)
    c, s = model.in_channels, model.image_size
    x = torch.rand(2, c, s, s)
    if cond == "sigma":
        _export(ScoreBySigma(model), (x, torch.tensor([1.0, 0.1])), ["x", "sigma"], "score", path, fp16)
    else:
        labels = torch.tensor([0, model.num_classes - 1])
        _export(ScoreByLabel(model), (x, labels), ["x", "labels"], "score", path, fp16)
    return cond


def export_classifier(model: nn.Module, path, fp16: bool = False) -> None:
    """Export the MNIST classifier (:class:`~ncsn_edu.images.mnist_classifier.MnistClassifier`)
    to ``path``: input ``x`` float32 ``(N, 1, 28, 28)`` in [0, 1], output ``logits`` float32
    ``(N, 10)``."""
    _export(copy.deepcopy(model).eval(), (torch.rand(2, 1, 28, 28),), ["x"], "logits", path, fp16)


def half_weights(proto):
    """The ONNX model ``proto`` with every float32 weight (initializer) of more than 16
    values stored in float16 and cast back to float32 where it is used: the file shrinks
    by about half and every computation stays in float32."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    proto = copy.deepcopy(proto)
    graph, casts, keep = proto.graph, [], []
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT and int(np.prod(init.dims)) > 16:
            half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name + "_fp16")
            keep.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT,
                                          name=init.name + "_cast"))
        else:
            keep.append(init)
    del graph.initializer[:]
    graph.initializer.extend(keep)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return proto


def sampler_defaults(config: dict) -> dict:
    """The sampler settings a checkpoint's run samples with, as the package reads them
    (``ncsn_edu.sample_images``): its ``sample_steps_each``, ``sample_eps`` and
    ``sample_denoise``, else :class:`~ncsn_edu.images.presets.TrainConfig`'s defaults; the step
    convention is :func:`ncsn_edu.images.samples.generate`'s default (the official code's)."""
    from ncsn_edu.images.presets import TrainConfig
    from ncsn_edu.images.samples import generate

    d = TrainConfig()
    return {
        "n_steps_each": int(config.get("sample_steps_each", d.sample_steps_each)),
        "eps": float(config.get("sample_eps", d.sample_eps)),
        "final_denoise": bool(config.get("sample_denoise", d.sample_denoise)),
        "convention": inspect.signature(generate).parameters["convention"].default,
    }


def _file_fields(path, source, fp16: bool) -> dict:
    path, source = Path(path), Path(source)
    return {"file": path.name, "weights": "float16" if fp16 else "float32", "bytes": path.stat().st_size,
            "sha256": sha256(path), "source": source.name, "source_sha256": sha256(source)}


def export_checkpoint(checkpoint, path, name: str, fp16: bool = False, weights: str = "ema") -> dict:
    """Export the network of a trainer checkpoint (loaded with
    :func:`ncsn_edu.images.checkpoints.load_checkpoint`; ``weights`` as there) to ``path``;
    returns its manifest entry (:func:`write_site_assets`)."""
    from ncsn_edu.images.checkpoints import load_checkpoint
    from ncsn_edu.images.refinenet import count_parameters

    model, sigmas, cfg = load_checkpoint(checkpoint, "cpu", weights=weights)
    cond = export_onnx(model, path, fp16=fp16)
    second = "labels" if cond == "labels" else "sigma"
    return {
        "name": name,
        "conditioning": cond,
        "inputs": {"x": ["N", model.in_channels, model.image_size, model.image_size], second: ["N"]},
        "input_types": {"x": "float32", second: "int64" if cond == "labels" else "float32"},
        "output": "score",
        "image_shape": [model.in_channels, model.image_size, model.image_size],
        "sigmas": [float(s) for s in sigmas],
        "sampler": sampler_defaults(cfg),
        "parameters": count_parameters(model),
        **_file_fields(path, checkpoint, fp16),
    }


def export_classifier_checkpoint(checkpoint, path, fp16: bool = False) -> dict:
    """Export the classifier saved at ``checkpoint``
    (:func:`ncsn_edu.images.mnist_classifier.load_classifier`) to ``path``; returns its
    manifest entry."""
    from ncsn_edu.images.mnist_classifier import load_classifier

    model, summary = load_classifier(checkpoint)
    export_classifier(model, path, fp16=fp16)
    entry = {"name": "MNIST classifier (chapter 11)", "inputs": {"x": ["N", 1, 28, 28]},
             "input_types": {"x": "float32"}, "output": "logits",
             "parameters": sum(p.numel() for p in model.parameters())}
    if "test_accuracy" in summary:
        entry["test_accuracy"] = float(summary["test_accuracy"])
    return {**entry, **_file_fields(path, checkpoint, fp16)}


def _current(entry, outdir: Path, fname: str, checkpoint: Path, name: str | None, fp16: bool) -> bool:
    if not isinstance(entry, dict) or entry.get("file") != fname or not (outdir / fname).is_file():
        return False
    return (name is None or entry.get("name") == name) and entry.get("weights") == ("float16" if fp16 else "float32") \
        and entry.get("source_sha256") == sha256(checkpoint) and entry.get("sha256") == sha256(outdir / fname)


def write_site_assets(outdir, v1_checkpoint=None, v2_checkpoint=None, baseline_checkpoint=None,
                      classifier_checkpoint=None, fp16: bool = False) -> dict:
    """Write the live image figures' networks into ``outdir`` (the site's ``_static/ncsn_edu``)
    with the manifest ``models.json`` that the page reads; returns the manifest.

    * ``models``, the menu of score networks, in order: ``mnist_ncsn_v1.onnx`` from
      ``v1_checkpoint`` (default: the book's ``data/mnist_ncsn_ngf16.pt``), then
      ``mnist_ncsn_v2.onnx`` from ``v2_checkpoint`` when one is given;
    * ``baseline``: the appendix's single-level network, ``mnist_baseline_sigma001.onnx``
      from ``baseline_checkpoint`` (default: ``data/mnist_baseline_sigma001.pt``; conditioning
      ``labels``, all 0);
    * ``classifier``: ``mnist_classifier.onnx`` from ``classifier_checkpoint`` (default:
      ``data/mnist_classifier.pt``), input ``x``, output ``logits`` ``(N, 10)``.

    The format::

        {"format": 1,
         "models": [{"id": "v1", "file": "mnist_ncsn_v1.onnx", "name": "NCSN v1 (chapter 10)",
                     "conditioning": "labels", "inputs": {"x": ["N", 1, 28, 28], "labels": ["N"]},
                     "input_types": {"x": "float32", "labels": "int64"}, "output": "score",
                     "image_shape": [1, 28, 28], "sigmas": [1.0, ..., 0.01],
                     "sampler": {"n_steps_each": 100, "eps": 2e-05, "final_denoise": false,
                                 "convention": "code"},
                     "parameters": 518817, "weights": "float32", "bytes": ..., "sha256": ...,
                     "source": "mnist_ncsn_ngf16.pt", "source_sha256": ...},
                    {"id": "v2", ..., "conditioning": "sigma", "inputs": {"x": ..., "sigma": ["N"]}}],
         "baseline": {"id": "baseline", "file": "mnist_baseline_sigma001.onnx", ... as a model},
         "classifier": {"id": "classifier", "file": "mnist_classifier.onnx", "output": "logits", ...}}

    A network whose file, checkpoint and settings match the manifest already there is not
    exported again (a rebuild of the site costs nothing), and files of networks no longer
    listed are removed."""
    from ncsn_edu.resources import resource_path

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    old = {}
    if (outdir / MANIFEST).is_file():
        try:
            prev = json.loads((outdir / MANIFEST).read_text())
            entries = list(prev.get("models", [])) + [prev.get("baseline"), prev.get("classifier")]
            old = {e["id"]: e for e in entries if isinstance(e, dict) and "id" in e}
        except (ValueError, AttributeError, TypeError, KeyError):
            old = {}

    def entry(key, fname, ckpt, name, export):
        ckpt = Path(ckpt)
        prev = old.get(key)
        if _current(prev, outdir, fname, ckpt, name, fp16):
            return prev
        return {"id": key, **export(ckpt, outdir / fname)}

    models = [entry("v1", V1_FILE, v1_checkpoint or resource_path("mnist_ncsn_ngf16.pt"), V1_NAME,
                    lambda c, p: export_checkpoint(c, p, V1_NAME, fp16=fp16))]
    if v2_checkpoint is not None:
        models.append(entry("v2", V2_FILE, v2_checkpoint, V2_NAME,
                            lambda c, p: export_checkpoint(c, p, V2_NAME, fp16=fp16)))
    baseline = entry("baseline", BASELINE_FILE, baseline_checkpoint or resource_path("mnist_baseline_sigma001.pt"),
                     BASELINE_NAME, lambda c, p: export_checkpoint(c, p, BASELINE_NAME, fp16=fp16))
    classifier = entry("classifier", CLASSIFIER_FILE, classifier_checkpoint or resource_path("mnist_classifier.pt"),
                       None, lambda c, p: export_classifier_checkpoint(c, p, fp16=fp16))
    manifest = {"format": MANIFEST_FORMAT, "models": models, "baseline": baseline, "classifier": classifier}
    kept = {e["file"] for e in (*models, baseline, classifier)}
    for prev in old.values():  # networks no longer listed
        stale = outdir / str(prev.get("file", ""))
        if stale.name and stale.name not in kept and stale.suffix == ".onnx" and stale.is_file():
            stale.unlink()
    (outdir / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def copy_ort_runtime(node_modules, outdir) -> list[Path]:
    """Copy onnxruntime-web's WebAssembly files (:data:`ORT_FILES`) from ``node_modules``
    (installed by ``npm ci`` from the repository's ``package-lock.json``) into ``outdir``
    (the site's ``_static/ort``), skipping files already there with the same size and
    modification time. Raises ``FileNotFoundError`` naming ``npm ci`` when they are missing."""
    dist = Path(node_modules) / "onnxruntime-web" / "dist"
    missing = [f for f in ORT_FILES if not (dist / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"onnxruntime-web's files {', '.join(missing)} are not in {dist}: run `npm ci` in the repository "
            f"(python3 dev.py book runs it) to install the version package-lock.json pins")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    copied = []
    for f in ORT_FILES:
        src, dst = dist / f, outdir / f
        st = src.stat()
        if not (dst.is_file() and dst.stat().st_size == st.st_size and int(dst.stat().st_mtime) == int(st.st_mtime)):
            shutil.copy2(src, dst)
        copied.append(dst)
    version = json.loads((Path(node_modules) / "onnxruntime-web" / "package.json").read_text())["version"]
    (outdir / "VERSION").write_text(version + "\n")
    return copied
