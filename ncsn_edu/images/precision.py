"""The arithmetic a training run uses on its device: bf16, fp16 with a gradient scaler, or
fp32, and whether ``torch.compile`` is used (chapter 12).

``--amp auto`` decides per device (:func:`choose_precision`):

* CUDA, compute capability 8.0 or above (A100, H100, H200, RTX 30xx/40xx, L4): bf16
  autocast, which these GPUs compute natively; ``torch.compile`` on (the fast path the
  CUDA tests check);
* CUDA 7.0 to 7.9 (V100, T4, Colab's free GPU): fp16 autocast with a gradient scaler
  (:class:`torch.amp.GradScaler`): their tensor cores compute fp16, and bf16 there is
  emulated or unsupported. ``torch.compile`` off: it is not checked on these GPUs, and its
  minutes of compilation come out of a time-limited session;
* older CUDA GPUs and the CPU: fp32, no compilation.

fp16 keeps 10 bits of mantissa but only 5 of exponent (largest value 65,504, gradients
below about 6e-8 vanish); the scaler multiplies the loss by a large factor before the
backward pass, unscales the gradients before the optimiser step, and *skips* a step whose
gradients overflowed, halving the factor (it doubles it again after 2,000 good steps).
bf16 has fp32's exponent and needs no scaler. The network's output is cast to fp32 before
the loss is formed (:func:`ncsn_edu.images.train_step.dsm_per_sample`) and the instance-norm
statistics are computed in fp32 (:class:`ncsn_edu.images.refinenet.CondInstanceNormPlus`).

The choice is printed when a run starts and stored in its checkpoints
(``config["precision"]``). A resumed run keeps it: ``--amp auto`` resumes in the recorded
precision and stops with a message if this device cannot compute it; another precision
is used only when ``--amp`` names it.

:func:`level_agreement` checks a precision against fp32 loss by loss, per noise level, on
real images (a precision bug that hurts only sigma = 0.01 does not show in one mean
loss, which the large levels dominate).
"""

from __future__ import annotations

import itertools
import math
import sys
from dataclasses import dataclass

import torch

#: The precisions by name; ``off`` (the old name) means fp32.
NAMES = ("bf16", "fp16", "fp32")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}
#: The gradient scaler's first factor (torch's default); a test lowers or raises it.
SCALER_INIT_SCALE = 2.0**16


@dataclass(frozen=True)
class Precision:
    """What a run computes in: ``name`` (bf16, fp16 or fp32), whether it compiles the
    network, and why (the line the trainer prints).
    Introduced in chapter 12 (the capstone)."""

    name: str
    compile: bool
    reason: str

    @property
    def dtype(self):
        """The autocast dtype, or None for fp32."""
        return DTYPES[self.name]

    @property
    def uses_scaler(self) -> bool:
        """fp16 trains with a gradient scaler; bf16 and fp32 do not need one."""
        return self.name == "fp16"

    def autocast(self, device: torch.device):
        """A context factory that runs the network in this precision (None for fp32)."""
        if self.dtype is None:
            return None
        dtype, kind = self.dtype, device.type
        return lambda: torch.autocast(kind, dtype=dtype)

    def scaler(self, device: torch.device):
        """A fresh :class:`torch.amp.GradScaler` for fp16, else None."""
        if not self.uses_scaler:
            return None
        return torch.amp.GradScaler(device.type, init_scale=SCALER_INIT_SCALE)

    def describe(self) -> str:
        what = {"bf16": "bf16 autocast", "fp16": "fp16 autocast with a gradient scaler", "fp32": "fp32"}[self.name]
        return f"precision {what}, torch.compile {'on' if self.compile else 'off'} ({self.reason})"


def device_capability(device: torch.device):
    """``(major, minor)`` CUDA compute capability of ``device``, None for a CPU.
    Introduced in chapter 12 (the capstone)."""
    if device.type != "cuda":
        return None
    return torch.cuda.get_device_capability(device)


def choose_precision(amp: str, device_type: str, capability=None, compile: str = "auto") -> Precision:
    """The precision of a run: ``amp`` is ``auto``, ``bf16``, ``fp16``, ``fp32`` (or
    ``off`` = fp32), ``compile`` is ``auto``, ``on`` or ``off``; ``capability`` is the CUDA
    compute capability ``(major, minor)`` (None on a CPU). See the module's docstring for
    the ``auto`` rules; an explicit ``amp`` or ``compile`` is taken as given.
    Introduced in chapter 12 (the capstone)."""
    amp = "fp32" if amp == "off" else amp
    if amp not in ("auto", *NAMES):
        raise ValueError(f"--amp must be auto, bf16, fp16 or fp32, got {amp!r}")
    cuda = device_type == "cuda"
    cap = tuple(capability) if capability is not None else None
    if not cuda:
        auto, why = "fp32", "a CPU"
    elif cap is not None and cap >= (8, 0):
        auto, why = "bf16", f"compute capability {cap[0]}.{cap[1]} >= 8.0: native bf16"
    elif cap is not None and cap >= (7, 0):
        auto, why = "fp16", f"compute capability {cap[0]}.{cap[1]} < 8.0: no native bf16, fp16 tensor cores"
    else:
        cc = f"{cap[0]}.{cap[1]}" if cap is not None else "unknown"
        auto, why = "fp32", f"compute capability {cc} < 7.0: no tensor cores"
    name = auto if amp == "auto" else amp
    if amp != "auto":
        why = f"--amp {amp}"
    if compile == "auto":
        # On only where the fast path is checked (tests/test_cuda.py): bf16 on >= 8.0.
        comp = cuda and name == "bf16" and cap is not None and cap >= (8, 0)
    else:
        comp = compile == "on"
    return Precision(name, comp, why)


def resume_precision(recorded: str | None, amp: str, chosen: Precision, step: int) -> tuple[Precision, str | None]:
    """The precision a resumed run uses, and a line to print when it changes.

    ``recorded`` is the checkpoint's precision (None for checkpoints older than the
    record: then ``chosen`` stands). With ``--amp auto`` the recorded precision is kept;
    if the device's own choice differs, ``ValueError`` asks for an explicit ``--amp``
    (unless the recorded one is fp32, which every device computes). An explicit ``--amp``
    other than the recorded one is a deliberate switch and is reported.
    Introduced in chapter 12 (the capstone)."""
    if recorded is None or recorded == chosen.name:
        return chosen, None
    if amp in ("auto",):
        if recorded == "fp32":
            return Precision("fp32", chosen.compile, f"recorded in the checkpoint ({chosen.reason} would choose "
                                                     f"{chosen.name})"), None
        raise ValueError(
            f"the checkpoint was trained in {recorded} up to step {step}, and --amp auto chooses {chosen.name} on "
            f"this device ({chosen.reason}). Pass --amp {recorded} to keep {recorded} or --amp {chosen.name} to "
            f"switch to {chosen.name} from here on. Nothing was overwritten.")
    return chosen, f"precision switched from {recorded} (the checkpoint's) to {chosen.name} at step {step}, " \
                   f"as --amp {amp} asks"


# ----------------------------------------------------------------------------- per-level agreement

def level_losses(model: torch.nn.Module, images: torch.Tensor, sigmas: torch.Tensor, autocast=None, seed: int = 0,
                 batch: int = 64, levels=None, device="cpu") -> torch.Tensor:
    """The mean annealed DSM loss of ``model`` at every noise level (a tensor of
    ``len(sigmas)``; only the indices in ``levels`` when given, the others NaN), each of
    the ``images`` (floats in [0, 1]) noised once at every level with noise drawn from
    ``seed`` (on the CPU, so every device sees the same noise); the network runs on
    ``device`` (where it already is) under ``autocast`` (None: fp32).
    Introduced in chapter 12 (the capstone)."""
    from ncsn_edu.images.train_step import dsm_per_sample

    g = torch.Generator().manual_seed(seed)
    n_levels = len(sigmas)
    total = torch.full((n_levels,), math.nan, dtype=torch.float64)
    levels = range(n_levels) if levels is None else levels
    total[list(levels)] = 0.0
    model.eval()
    with torch.no_grad():
        for start in range(0, len(images), batch):
            x = images[start:start + batch].to(device)
            for level in levels:
                z = torch.randn(x.shape, generator=g).to(device)
                labels = torch.full((len(x),), level, dtype=torch.long, device=device)
                total[level] += dsm_per_sample(model, x, labels, z, sigmas.to(device), autocast).double().sum().cpu()
    return total / len(images)


def level_agreement(model: torch.nn.Module, images: torch.Tensor, sigmas: torch.Tensor, names=("bf16",),
                    seeds=(0, 1, 2), batch: int = 64, levels=None, device="cpu") -> dict:
    """Per-level losses of ``model`` on ``images`` in each precision of ``names`` (bf16,
    fp16: autocast on the CPU) against fp32, with each level's tolerance measured: the
    largest difference between the fp32 losses of two ``seeds`` (the same images, other
    noise), i.e. how much the loss moves when only the noise draw changes. The
    low-precision losses use ``seeds[0]``'s noise and must lie within each level's
    tolerance of fp32's with that noise (and be finite). ``levels`` restricts the check to
    those level indices (the others are NaN in the result); ``device`` is where the
    network runs (autocast of that device).
    Introduced in chapter 12 (the capstone)."""
    levels = list(range(len(sigmas))) if levels is None else list(levels)
    device = torch.device(device)
    model = model.to(device)
    fp32 = [level_losses(model, images, sigmas, None, s, batch, levels, device) for s in seeds]
    tol = torch.stack([(a - b).abs() for a, b in itertools.combinations(fp32, 2)]).amax(0)
    out = dict(sigmas=[float(s) for s in sigmas], levels=levels, seeds=list(seeds), n_images=len(images),
               fp32=fp32[0].tolist(), fp32_other_seeds=[f.tolist() for f in fp32[1:]], tolerance=tol.tolist(),
               precisions={})
    for name in names:
        low = level_losses(model, images, sigmas, Precision(name, False, "").autocast(device), seeds[0],
                           batch, levels, device)
        diff = (low - fp32[0]).abs()[levels]
        full = torch.full_like(low, math.nan)
        full[levels] = diff
        out["precisions"][name] = dict(
            loss=low.tolist(), difference=full.tolist(),
            ratio=[(d / t if t > 0 else math.inf) if i in levels else math.nan
                   for i, (d, t) in enumerate(zip(full.tolist(), tol.tolist()))],
            agrees=bool(torch.isfinite(low[levels]).all() and (diff <= tol[levels]).all()))
    out["agrees"] = all(r["agrees"] for r in out["precisions"].values())
    return out


def agreement_table(result: dict) -> str:
    """The per-level comparison of :func:`level_agreement` as a text table.
    Introduced in chapter 12 (the capstone)."""
    names = list(result["precisions"])
    head = f"{'sigma':>8} {'fp32':>9} {'tolerance':>9} " + " ".join(f"{n + ' diff':>10} {'ratio':>6}" for n in names)
    rows = [head]
    for i in result.get("levels", range(len(result["sigmas"]))):
        sigma = result["sigmas"][i]
        cells = " ".join(f"{result['precisions'][n]['difference'][i]:10.4f} {result['precisions'][n]['ratio'][i]:6.2f}"
                         for n in names)
        rows.append(f"{sigma:8.4f} {result['fp32'][i]:9.3f} {result['tolerance'][i]:9.4f} {cells}")
    rows.append("agrees: " + ", ".join(f"{n} {'yes' if result['precisions'][n]['agrees'] else 'NO'}" for n in names))
    return "\n".join(rows)


def main(argv=None) -> int:
    """``python -m ncsn_edu.images.precision CHECKPOINT``: the per-level agreement of a trained
    network's loss in bf16 and fp16 autocast (on ``--device``) with fp32 on held-out real
    images of its data set. Exit code 0 when every precision agrees, 2 otherwise.
    Introduced in chapter 12 (the capstone)."""
    import argparse
    import json
    import platform

    from ncsn_edu.images.batches import read_image_set
    from ncsn_edu.images.checkpoints import load_checkpoint

    p = argparse.ArgumentParser(prog="python -m ncsn_edu.images.precision", description=main.__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("checkpoint", help="a checkpoint of ncsn_edu.train_images")
    p.add_argument("--n-images", type=int, default=64, help="held-out test images (the first N)")
    p.add_argument("--precisions", nargs="+", default=["bf16", "fp16"], choices=["bf16", "fp16"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="noise seeds of the fp32 spread")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--device", default="cpu", help="where the network runs: cpu (autocast on the CPU), cuda, ...")
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", default=None, help="write the result as JSON here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, sigmas, cfg = load_checkpoint(args.checkpoint)
    test = read_image_set(cfg["dataset"], False, args.data_root)
    x = test.images[:args.n_images].float()
    # As the run saw its images: dequantised to the middle of each bin, or v/255.
    x = (x + 0.5) / 256 if cfg.get("dequantize") else x / 255
    print(f"Data: {test.source}; {len(x)} test images, checkpoint {args.checkpoint} (step "
          f"{torch.load(args.checkpoint, weights_only=True)['step']})", flush=True)
    res = level_agreement(model, x, sigmas.float(), args.precisions, tuple(args.seeds), device=args.device)
    dev = torch.device(args.device)
    res.update(checkpoint=str(args.checkpoint), dataset=cfg["dataset"], ngf=cfg["ngf"], data_source=test.source,
               torch=torch.__version__, device=torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
               machine=platform.processor() or platform.machine(),
               command="python -m ncsn_edu.images.precision " + " ".join(argv if argv is not None else sys.argv[1:]))
    print(agreement_table(res))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)
    return 0 if res["agrees"] else 2


if __name__ == "__main__":
    sys.exit(main())
