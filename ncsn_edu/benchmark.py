"""Speed of training and sampling: plain fp32 eager against the fast path.

    python -m ncsn_edu.benchmark                     # CIFAR-10 network, batch 128, on the GPU
    python -m ncsn_edu.benchmark --out bench.json --agreement-steps 300

For each mode it times training iterations per second (Adam step on the paper's loss)
and sampling images per second (annealed Langevin, 1,000 network evaluations per image),
and reports the peak GPU memory and the achieved fraction of the GPU's dense bf16 peak
(model FLOPs counted by ``torch.utils.flop_counter`` on one fp32 step). The modes:

* ``fp32``: float32, eager, contiguous (NCHW) memory;
* ``fast``: what the trainer's ``auto`` settings give on the device
  (:func:`ncsn_edu.images.precision.choose_precision`): bf16 autocast, channels-last and
  ``torch.compile`` on compute capability 8.0 and above; fp16 autocast with a gradient
  scaler and channels-last on 7.x (T4, V100); each can be set with ``--fast-*``.

Loss agreement: both modes train the same initial network on the same batches and
noise for ``--agreement-steps`` steps; the mean loss over the second half of the steps
must agree within ``--tolerance`` (relative, default 2%). **The agreement run uses
synthetic images (uniform noise in [0, 1]) unless ``--data real``**, which reads the
training images of ``--dataset`` (MNIST, CIFAR-10) through
:func:`ncsn_edu.images.data.image_dataset` and prints which files it read. Timings always use
random images in [0, 1] (the network's cost does not depend on the pixels).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import torch

from ncsn_edu.images import seeding
from ncsn_edu.images.batches import StepBatches, read_image_set
from ncsn_edu.images.devices import resolve_device
from ncsn_edu.images.precision import Precision, choose_precision, device_capability
from ncsn_edu.images.presets import DATASET_DEFAULTS, build_model
from ncsn_edu.images.train_step import make_step_fn
from ncsn_edu.schedules import geometric_sigmas

#: Dense bf16 tensor-core peaks in TFLOP/s (vendor data sheets, without sparsity).
BF16_PEAK_TFLOPS = {
    "H200": 989.4, "H100 SXM": 989.4, "H100 80GB HBM3": 989.4, "H100 PCIe": 756.5, "H100 NVL": 835.5,
    "A100": 312.0, "A10G": 70.0, "A10": 125.0, "L40S": 362.05, "L4": 121.0, "RTX 4090": 165.2,
    "RTX 3090": 71.0, "V100": None, "T4": None,
}


#: The GPUs of the run-time estimate (chapter 12): compute capability, and the vendor's
#: dense (no sparsity) tensor-core peak in TFLOP/s of the precision ``--amp auto`` gives
#: them (:func:`ncsn_edu.images.precision.choose_precision`): fp16 on T4 and V100, bf16 on the rest.
#: Sources: NVIDIA's data sheets (T4: 65 fp16 mixed precision; V100 SXM2: 125 tensor;
#: A100 SXM/PCIe: 312 bf16; H100 SXM and H200 SXM: 989.4 bf16, half of the 1,979 quoted
#: with sparsity).
ESTIMATE_GPUS = {
    "T4": ((7, 5), 65.0),
    "V100": ((7, 0), 125.0),
    "A100": ((8, 0), 312.0),
    "H100": ((9, 0), 989.4),
    "H200": ((9, 0), 989.4),
}
#: The assumed fraction of that peak a training step reaches (not measured on any GPU here).
ASSUMED_UTILISATION = 0.30


def run_estimate(step_flop: float, n_iters: int = 200_000, utilisation: float = ASSUMED_UTILISATION,
                 gpus=None) -> list[dict]:
    """An ESTIMATE, not a measurement: hours for ``n_iters`` training steps of ``step_flop``
    FLOP each on the GPUs of :data:`ESTIMATE_GPUS` (or the named ``gpus``), at
    ``utilisation`` of the peak of the precision ``--amp auto`` chooses there.
    Introduced in chapter 12 (the capstone)."""
    from ncsn_edu.images.precision import choose_precision

    rows = []
    for name in gpus or ESTIMATE_GPUS:
        cap, peak = ESTIMATE_GPUS[name]
        prec = choose_precision("auto", "cuda", cap)
        seconds = n_iters * step_flop / (peak * 1e12 * utilisation)
        rows.append(dict(gpu=name, capability=f"{cap[0]}.{cap[1]}", precision=prec.name, peak_tflops=peak,
                         utilisation=utilisation, it_per_s=n_iters / seconds, hours=seconds / 3600))
    return rows


def estimate_table(rows: list[dict], step_flop: float, n_iters: int) -> str:
    """:func:`run_estimate`'s rows as the markdown table chapter 12 shows, headed by what
    it assumes.
    Introduced in chapter 12 (the capstone)."""
    u = rows[0]["utilisation"]
    lines = [f"ESTIMATE (not measured): {n_iters:,} iterations x {step_flop / 1e12:.3f} TFLOP per step "
             f"= {n_iters * step_flop:.3g} FLOP, at an assumed {u:.0%} of each GPU's dense peak in the precision "
             f"--amp auto uses there",
             "",
             "| GPU | compute capability | precision (--amp auto) | dense peak, TFLOP/s | assumed utilisation "
             "| iterations/s | hours for the run |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['gpu']} | {r['capability']} | {r['precision']} | {r['peak_tflops']:g} | "
                     f"{r['utilisation']:.0%} | {r['it_per_s']:.2f} | {r['hours']:.1f} |")
    return "\n".join(lines)


def bf16_peak(device: torch.device, override=None):
    """The device's dense bf16 peak in TFLOP/s (None where unknown or without bf16 cores).
    Used by the capstone commands (chapter 12)."""
    if override:
        return float(override)
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key in sorted(BF16_PEAK_TFLOPS, key=len, reverse=True):
        if key in name:
            return BF16_PEAK_TFLOPS[key]
    return None


class Mode:
    """One way of running the network: precision, memory format, compilation.
    Used by the capstone commands (chapter 12)."""

    def __init__(self, name, amp, channels_last: bool, compile: bool):
        # amp: a precision name (bf16, fp16, fp32), or True/False for bf16/fp32.
        amp = {True: "bf16", False: "fp32"}.get(amp, amp) if isinstance(amp, bool) else amp
        self.name, self.precision, self.channels_last, self.compile = name, amp, channels_last, compile
        self.amp = amp != "fp32"

    def setup(self, model, device):
        model = model.to(device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        run = torch.compile(model) if self.compile else model
        return model, run

    def prep(self, x):
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def autocast(self, device):
        return Precision(self.precision, self.compile, "").autocast(device)

    def scaler(self, device):
        """fp16's gradient scaler (None for bf16 and fp32)."""
        return Precision(self.precision, self.compile, "").scaler(device)

    def describe(self):
        return dict(precision=self.precision, bf16=self.precision == "bf16", channels_last=self.channels_last,
                    compile=self.compile)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _model(factory, dataset, ngf, seed):
    return seeding.seeded_model(factory, seed, dataset, ngf, 10)


def train_steps(mode: Mode, factory, dataset, ngf, batch, n_steps, device, seed=0, images=None, lr=1e-3,
                time_from: int | None = None):
    """Train ``n_steps`` steps; return (losses, seconds for the steps after ``time_from``).
    Used by the capstone commands (chapter 12)."""
    d = DATASET_DEFAULTS[dataset]
    shape = (batch, d["channels"], d["image_size"], d["image_size"])
    model, run = mode.setup(_model(factory, dataset, ngf, seed), device)
    state = {"model": run, "optimizer": torch.optim.Adam(model.parameters(), lr=lr), "step": 0,
             "scaler": mode.scaler(device)}
    sigmas = geometric_sigmas(1, 0.01, 10).float().to(device)
    step_fn = make_step_fn(sigmas, batch, autocast=mode.autocast(device), prepare=mode.prep)
    batches = StepBatches(images, batch, seed, False, False) if images is not None else None
    losses, t0 = [], None
    for step in range(n_steps):
        if time_from is not None and step == time_from:
            _sync(device)
            t0 = time.perf_counter()
        if batches is not None:
            x = batches.batch(step).to(device)
        else:
            x = torch.rand(shape, generator=seeding.generator(seed, seeding.SYNTHETIC, step, device=device),
                           device=device)
        losses.append(step_fn(state, mode.prep(x), seeding.generator(seed, seeding.NOISE, step, device=device)).loss)
    _sync(device)
    seconds = time.perf_counter() - t0 if t0 is not None else float("nan")
    return torch.stack(losses).tolist(), seconds


def sampling_rate(mode: Mode, factory, dataset, ngf, batch, n_evals, warmup, device, seed=0):
    """Network evaluations per second in the sampler's setting (no grad, batch ``batch``);
    returns images per second for the full 1,000-evaluation sampler.
    Used by the capstone commands (chapter 12)."""
    d = DATASET_DEFAULTS[dataset]
    model, run = mode.setup(_model(factory, dataset, ngf, seed).eval(), device)
    ac = mode.autocast(device)
    x = mode.prep(torch.rand(batch, d["channels"], d["image_size"], d["image_size"], device=device))
    labels = torch.zeros(batch, dtype=torch.long, device=device)
    with torch.no_grad():
        for i in range(warmup + n_evals):
            if i == warmup:
                _sync(device)
                t0 = time.perf_counter()
            if ac is not None:
                with ac():
                    s = run(x, labels).float()
            else:
                s = run(x, labels)
            x = x + 1e-5 * s  # a Langevin-like update keeps the evaluations dependent
    _sync(device)
    per_eval = (time.perf_counter() - t0) / n_evals
    return batch / (per_eval * 1000)


def step_flops(factory, dataset, ngf, batch, device, count_batch: int = 2) -> float:
    """FLOPs of one training step (forward and backward) at batch ``batch``, counted by
    torch's flop counter on ``count_batch`` images and scaled (the count is linear in the
    batch: every image goes through the same convolutions).
    Used by the capstone commands (chapter 12)."""
    from torch.utils.flop_counter import FlopCounterMode

    d = DATASET_DEFAULTS[dataset]
    model = _model(factory, dataset, ngf, 0).to(device)
    x = torch.rand(count_batch, d["channels"], d["image_size"], d["image_size"], device=device)
    labels = torch.zeros(count_batch, dtype=torch.long, device=device)
    with FlopCounterMode(display=False) as fc:
        model(x, labels).square().sum().backward()
    return float(fc.get_total_flops()) * batch / count_batch


def run_benchmark(args, factory=None) -> dict:
    """Used by the capstone commands (chapter 12)."""
    factory = factory or build_model
    device = resolve_device(args.device, 0)
    cuda = device.type == "cuda"
    d = DATASET_DEFAULTS[args.dataset]
    ngf = args.ngf or d["ngf"]

    def flag(v):
        return v == "on" or (v == "auto" and cuda)

    amp = {"on": "bf16", "off": "fp32"}.get(args.fast_amp, args.fast_amp)
    fast = choose_precision(amp, device.type, device_capability(device), args.fast_compile)
    modes = [Mode("fp32", "fp32", False, False),
             Mode("fast", fast.name, flag(args.fast_channels_last), fast.compile)]
    res = dict(device=torch.cuda.get_device_name(device) if cuda else f"cpu ({torch.get_num_threads()} threads)",
               torch=torch.__version__, dataset=args.dataset, ngf=ngf, batch_size=args.batch_size, modes={})
    flops = step_flops(factory, args.dataset, ngf, args.batch_size, device)
    peak = bf16_peak(device, args.peak_tflops)
    res.update(train_step_gflop=flops / 1e9, bf16_peak_tflops=peak)
    print(f"one training step of the {args.dataset} network (ngf {ngf}) at batch {args.batch_size}: "
          f"{flops / 1e12:.3f} TFLOP (forward and backward)", flush=True)
    if args.flops_only:
        rows = run_estimate(flops, args.n_iters, args.utilisation, args.gpu)
        res["estimate"] = dict(n_iters=args.n_iters, utilisation=args.utilisation, rows=rows,
                               note="an estimate from the FLOP count, published peaks and an assumed utilisation; "
                                    "not a measurement")
        print(estimate_table(rows, flops, args.n_iters), flush=True)
        if args.out:
            with open(args.out, "w") as f:
                json.dump(res, f, indent=2)
        return res
    for mode in modes:
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        _, secs = train_steps(mode, factory, args.dataset, ngf, args.batch_size, args.warmup + args.steps, device,
                              time_from=args.warmup)
        its = args.steps / secs
        entry = dict(mode.describe(), train_it_per_s=its,
                     train_peak_mem_gib=torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None,
                     achieved_tflops=flops * its / 1e12)
        entry["fraction_of_bf16_peak"] = entry["achieved_tflops"] / peak if peak else None
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        entry["sample_img_per_s"] = sampling_rate(mode, factory, args.dataset, ngf, args.sample_batch,
                                                  args.sample_evals, args.warmup, device)
        entry["sample_peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None
        res["modes"][mode.name] = entry
        print(f"{mode.name:5s} {mode.describe()}: {its:.2f} it/s, {entry['sample_img_per_s']:.2f} img/s sampled",
              flush=True)
    res["speedup_train"] = res["modes"]["fast"]["train_it_per_s"] / res["modes"]["fp32"]["train_it_per_s"]
    res["speedup_sample"] = res["modes"]["fast"]["sample_img_per_s"] / res["modes"]["fp32"]["sample_img_per_s"]

    if args.agreement_steps:
        images, source = None, "synthetic images (uniform noise in [0, 1]; --data real for the data set)"
        if args.data == "real":
            real = read_image_set(args.dataset, True, args.data_root)
            images, source = (real.images.to(device) if cuda else real.images), real.source
        print(f"loss agreement data: {source}", flush=True)
        curves = {m.name: train_steps(m, factory, args.dataset, ngf, args.batch_size, args.agreement_steps, device,
                                      seed=1, images=images)[0] for m in modes}
        half = args.agreement_steps // 2
        means = {k: sum(v[half:]) / len(v[half:]) for k, v in curves.items()}
        rel = abs(means["fast"] - means["fp32"]) / abs(means["fp32"])
        first = abs(curves["fast"][0] - curves["fp32"][0]) / abs(curves["fp32"][0])
        res["agreement"] = dict(steps=args.agreement_steps, data=args.data, data_source=source,
                                mean_loss_second_half=means,
                                relative_difference=rel, first_step_relative_difference=first,
                                tolerance=args.tolerance, agrees=bool(rel <= args.tolerance and math.isfinite(rel)),
                                losses=curves)
        print(f"loss agreement ({args.data} images) over steps {half}-{args.agreement_steps}: "
              f"fp32 {means['fp32']:.4f}, fast "
              f"{means['fast']:.4f}, relative difference {rel:.3%} (tolerance {args.tolerance:.1%}): "
              f"{'agrees' if res['agreement']['agrees'] else 'DOES NOT AGREE'}")
    print(f"speed-up of the fast path: training {res['speedup_train']:.2f}x, sampling {res['speedup_sample']:.2f}x")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=2)
    return res


def build_parser():
    """The command's argument parser. Used by the capstone commands (chapter 12)."""
    p = argparse.ArgumentParser(prog="python -m ncsn_edu.benchmark",
                                description=__doc__.split("\n\n")[0] + " The loss agreement uses synthetic images "
                                "unless --data real.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    a = p.add_argument
    a("--dataset", default="cifar10", choices=sorted(DATASET_DEFAULTS), help="which network (channels, size)")
    a("--ngf", type=int, default=None, help="network width (default the paper's for the data set)")
    a("--batch-size", type=int, default=128, help="training batch")
    a("--steps", type=int, default=50, help="timed training steps per mode")
    a("--warmup", type=int, default=10, help="untimed steps first (compilation happens here)")
    a("--sample-batch", type=int, default=500, help="sampling batch")
    a("--sample-evals", type=int, default=20, help="timed network evaluations for the sampling rate")
    a("--agreement-steps", type=int, default=300, help="steps of the loss agreement check (0: skip)")
    a("--tolerance", type=float, default=0.02, help="allowed relative difference of the mean losses")
    a("--data", default="synthetic", choices=["synthetic", "real"],
      help="images for the loss agreement run: synthetic (uniform noise, no data set needed) or real (the "
           "training images of --dataset); the timings always use random images")
    a("--data-root", default=None, help="data folder for --data real")
    a("--device", default="auto", help="auto, cuda, cpu, ...")
    a("--fast-amp", default="auto", choices=["auto", "bf16", "fp16", "on", "off"],
      help="the fast path's precision (on = bf16, off = fp32; auto: the trainer's choice for the device, bf16 on "
           "compute capability >= 8.0, fp16 with a gradient scaler on 7.x)")
    a("--fast-channels-last", default="auto", choices=["auto", "on", "off"], help="channels-last in the fast path")
    a("--fast-compile", default="auto", choices=["auto", "on", "off"],
      help="torch.compile in the fast path (auto: the trainer's choice, on with bf16 on compute capability >= 8.0)")
    a("--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak, if not in the built-in table")
    a("--flops-only", action="store_true", help="only count the FLOPs of a training step (quick, also on a CPU) "
                                                 "and ESTIMATE the time of --n-iters steps on the GPUs of --gpu")
    a("--n-iters", type=int, default=200_000, help="iterations of the run the estimate is for")
    a("--utilisation", type=float, default=ASSUMED_UTILISATION,
      help="assumed fraction of each GPU's dense peak that a step reaches (the estimate states it)")
    a("--gpu", nargs="+", default=None, choices=sorted(ESTIMATE_GPUS), help="GPUs to estimate for (default: all)")
    a("--out", default=None, help="write the results to this JSON file")
    return p


def main(argv=None, model_factory=None) -> int:
    """The command line. Introduced in chapter 12 (the capstone)."""
    args = build_parser().parse_args(argv)
    for name in ("batch_size", "steps", "sample_batch", "sample_evals"):
        if getattr(args, name) <= 0:
            print(f"error: --{name.replace('_', '-')} must be positive", file=sys.stderr)
            return 1
    res = run_benchmark(args, model_factory)
    return 0 if res.get("agreement", {}).get("agrees", True) else 2


if __name__ == "__main__":
    sys.exit(main())
