"""Checkpoints of the image trainer: writing them atomically, reading them safely, and
deciding whether a run may resume from one (chapter 12).

A checkpoint is a dict ``{model, optimizer, step, sigmas, config, scaler, ema}`` (a snapshot
keeps ``model, step, sigmas, config, ema``); ``ema`` is the state dict of the network with the
exponential moving average of its weights (None when the run keeps no average), and
:func:`load_checkpoint` gives those weights when present; ``config`` holds the run's settings, including
what the data fixed: ``channels``, ``image_size`` and ``data_source`` (which files were
read: the original CIFAR-10 or its JPEG copy, say), and ``precision`` (bf16, fp16 or
fp32); ``scaler`` is the fp16 gradient scaler's state (None otherwise). No random state
is stored: every draw comes from generators seeded by (seed, step).

* **Atomic.** :func:`atomic_save` writes a temporary file, flushes it to disk and renames
  it over the old one, so a run killed at any moment leaves the last complete checkpoint.
* **Safe to load.** :func:`read_checkpoint` uses ``torch.load(weights_only=True)`` (no
  code runs from the file) and says clearly what is wrong with a damaged file.
* **Resume checks.** :func:`check_resume` refuses to continue a run under settings that
  change the model or the meaning of a step (:data:`ncsn_edu.images.presets.MODEL_KEYS`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from ncsn_edu.images.presets import DATA_KEYS, KEY_DEFAULTS, MODEL_KEYS, build_model, shape_kwargs

CHECKPOINT = "checkpoint.pt"
SNAPSHOT_KEYS = ("model", "step", "sigmas", "config", "ema")


def atomic_save(obj, path) -> None:
    """Write ``obj`` with ``torch.save`` so that ``path`` is always either the old or the
    new complete file: temporary file, flush and fsync, then rename.
    Used by the training command (chapter 10, NCSN on MNIST)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def remove_stale_temporaries(folder) -> None:
    """Delete the leftovers of saves that were killed midway.
    Used by the training command (chapter 10, NCSN on MNIST)."""
    for stale in Path(folder).glob(".*.tmp*"):
        stale.unlink()


def read_checkpoint(path) -> dict:
    """``torch.load(path, weights_only=True)`` with a clear error for a missing or
    unreadable file.
    Introduced in chapter 12 (the capstone)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, corrupted or not a checkpoint at all
        raise RuntimeError(
            f"cannot read checkpoint {path}: {type(err).__name__}: {err}. The file is damaged or "
            f"is not a checkpoint of this trainer; move it away to start afresh, or point to "
            f"another checkpoint. Nothing was overwritten."
        ) from err
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise RuntimeError(f"{path} is not a checkpoint written by ncsn_edu.train_images")
    return state


def model_kwargs(config: dict, sigmas) -> dict:
    """The keyword arguments a model factory ``factory(dataset, ngf, n_sigmas, **kw)`` needs
    for a run's settings: the images' shape (:func:`ncsn_edu.images.presets.shape_kwargs`) and,
    for NCSNv2's division by sigma, ``sigmas=``.
    Used by the training command (chapter 10, NCSN on MNIST)."""
    kw = shape_kwargs(config["dataset"], config.get("channels"), config.get("image_size"))
    if config.get("divide_by_sigma"):
        kw["sigmas"] = sigmas
    return kw


def load_checkpoint(path, device="cpu", model_factory=None, weights: str = "ema"):
    """Load a checkpoint written by the trainer: returns ``(model, sigmas, config)``.

    ``model`` is in eval mode on ``device``; ``sigmas`` is the run's noise levels and
    ``config`` its settings (a dict). ``weights="ema"`` (the default) loads the exponential
    moving average of the weights when the run kept one (NCSNv2 samples from it), and the
    weights themselves otherwise; ``weights="raw"`` always loads the weights themselves.
    ``model_factory(dataset, ngf, n_sigmas)`` builds the
    network (default: :func:`ncsn_edu.images.presets.build_model`); for images of another shape
    than the data set's own it also gets ``channels=`` and ``image_size=``, and for a network
    that divides by sigma ``sigmas=``.
    Introduced in chapter 10 (NCSN on MNIST).
    """
    if weights not in ("ema", "raw"):
        raise ValueError(f"weights must be 'ema' or 'raw', got {weights!r}")
    state = read_checkpoint(path)
    cfg = state["config"]
    kw = model_kwargs(cfg, state["sigmas"])
    model = (model_factory or build_model)(cfg["dataset"], cfg["ngf"], cfg["n_sigmas"], **kw)
    use_ema = weights == "ema" and state.get("ema") is not None
    model.load_state_dict(state["ema"] if use_ema else state["model"])
    model.to(device).eval()
    return model, state["sigmas"].to(device), cfg


def comparable_source(source: str | None) -> str | None:
    """What a data source says was read, without where it lies or whether a decoded cache
    was hit: absolute paths become ``<path>`` and a trailing ``decoded cache`` note is
    dropped, so a resume may find the same files moved or freshly cached.
    Used by the training command (chapter 10, NCSN on MNIST)."""
    if source is None:
        return None
    source = re.sub(r"\s*;?\s*decoded cache .*$", "", source)
    return re.sub(r"(?<![^\s(])/[^\s,;()]*", "<path>", source)


def check_resume(recorded: dict, settings: dict, path) -> None:
    """Raise ``ValueError`` if the settings a checkpoint recorded and this run's
    ``settings`` differ in what fixes the model or a step (:data:`MODEL_KEYS`), or in what
    the data fixed (:data:`DATA_KEYS`, where the checkpoint recorded it; the data source
    compared by :func:`comparable_source`).
    Used by the training command (chapter 10, NCSN on MNIST)."""
    keys = MODEL_KEYS + tuple(k for k in DATA_KEYS if k in recorded)

    def then(k):  # checkpoints older than a key were made without it
        return recorded.get(k, KEY_DEFAULTS.get(k))

    def same(k):
        if k == "data_source":
            return comparable_source(recorded.get(k)) == comparable_source(settings.get(k))
        return then(k) == settings.get(k, KEY_DEFAULTS.get(k))

    diff = {k: (then(k), settings.get(k)) for k in keys if not same(k)}
    if diff:
        hint = ""
        if "dequantize" in diff and not recorded.get("dequantize"):
            hint = (" (runs made without dequantisation, such as the book's data/mnist_ncsn_ngf16.pt, "
                    "resume with --no-dequantize)")
        raise ValueError(
            f"{path} was made with different settings {diff} (checkpoint, now){hint}; use another "
            f"--out to start a new run, or the same settings to resume. Nothing was overwritten.")


# ----------------------------------------------------------------------------- training state

def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside DistributedDataParallel and ``torch.compile`` wrappers.
    Used by the training command (chapter 10, NCSN on MNIST)."""
    while True:
        if hasattr(model, "module") and isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def restore(state: dict, saved: dict, lr: float, betas: tuple, device: torch.device) -> None:
    """Put a checkpoint's model, optimiser, step, (when ``state`` has a gradient scaler
    and the checkpoint one's state) the scaler's state and (when ``state`` keeps an EMA) the
    averaged weights into the training ``state`` (``{model, optimizer, step, scaler, ema}``);
    ``lr`` and ``betas`` (the command line's) replace the saved optimiser settings.
    Used by the training command (chapter 10, NCSN on MNIST)."""
    unwrap(state["model"]).load_state_dict(saved["model"])
    if state.get("ema") is not None:
        if saved.get("ema") is None:
            raise ValueError("the checkpoint keeps no EMA of the weights; resume it without --ema")
        state["ema"].load_state_dict(saved["ema"])
    state["optimizer"].load_state_dict(saved["optimizer"])
    for group in state["optimizer"].param_groups:
        group["lr"], group["betas"] = lr, betas
    state["step"] = int(saved["step"])
    if state.get("scaler") is not None and saved.get("scaler"):
        state["scaler"].load_state_dict(saved["scaler"])


def save(state: dict, sigmas: torch.Tensor, settings: dict, out, device: torch.device, snapshot: bool) -> None:
    """Write ``out/checkpoint.pt`` from the training ``state`` (and, with ``snapshot``,
    the model alone as ``out/snapshots/model_<step>.pt``).
    Used by the training command (chapter 10, NCSN on MNIST)."""
    out = Path(out)
    payload = {
        "model": unwrap(state["model"]).state_dict(),
        "optimizer": state["optimizer"].state_dict(),
        "step": state["step"],
        "sigmas": sigmas,
        "config": settings,
        "scaler": state["scaler"].state_dict() if state.get("scaler") is not None else None,
        "ema": state["ema"].state_dict() if state.get("ema") is not None else None,
    }
    atomic_save(payload, out / CHECKPOINT)
    if snapshot:
        (out / "snapshots").mkdir(exist_ok=True)
        atomic_save({k: payload[k] for k in SNAPSHOT_KEYS}, out / "snapshots" / f"model_{state['step']:07d}.pt")
