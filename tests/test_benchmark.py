"""The benchmark script (ncsn_edu.benchmark) on CPU with a tiny stand-in network: it
times both modes, counts FLOPs, and checks that bf16 + channels-last give the fp32 loss."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from image_train_helpers import tiny_factory  # noqa: E402

from ncsn_edu import benchmark  # noqa: E402


def test_benchmark_runs_and_the_fast_path_matches_fp32(tmp_path):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path / "bench.json"
        rc = benchmark.main(["--dataset", "mnist", "--ngf", "4", "--batch-size", "16", "--steps", "3", "--warmup", "1",
                             "--sample-batch", "4", "--sample-evals", "2", "--agreement-steps", "20",
                             "--device", "cpu", "--fast-amp", "on", "--fast-channels-last", "on",
                             "--fast-compile", "off", "--out", str(out)], model_factory=tiny_factory)
    finally:
        torch.set_num_threads(before)
    res = json.loads(out.read_text())
    assert rc == 0 and res["agreement"]["agrees"]
    assert res["modes"]["fast"]["bf16"] and not res["modes"]["fp32"]["bf16"]
    for m in res["modes"].values():
        assert m["train_it_per_s"] > 0 and m["sample_img_per_s"] > 0
    # bf16 changes the numbers a little, but not the loss the network reaches.
    a, b = res["agreement"]["losses"]["fp32"], res["agreement"]["losses"]["fast"]
    assert a != b and res["agreement"]["relative_difference"] < 0.02
    # FLOPs of the tiny net's step: three 3x3 convolutions on 28x28, forward and backward.
    fwd = 2 * 16 * 28 * 28 * 9 * (1 * 4 + 4 * 4 + 4 * 1)
    assert 2.5 * fwd <= res["train_step_gflop"] * 1e9 <= 3.5 * fwd
    assert res["bf16_peak_tflops"] is None and res["modes"]["fast"]["fraction_of_bf16_peak"] is None


def test_the_fast_path_in_fp16_trains_with_a_scaler_and_matches_fp32(tmp_path, monkeypatch):
    # The T4/V100 fast path (fp16 autocast + GradScaler) on the CPU: it runs, says so, and
    # reaches fp32's loss. The scaler's first factor is torch's 2^16; on this network the
    # first steps' fp16 gradients overflow at that factor, are skipped, and the factor
    # halves (tests/images/test_precision.py), so the agreement is taken over the second half.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path / "bench.json"
        rc = benchmark.main(["--dataset", "mnist", "--ngf", "4", "--batch-size", "16", "--steps", "2", "--warmup", "1",
                             "--sample-batch", "4", "--sample-evals", "2", "--agreement-steps", "30",
                             "--device", "cpu", "--fast-amp", "fp16", "--fast-compile", "auto", "--out", str(out)],
                            model_factory=tiny_factory)
    finally:
        torch.set_num_threads(before)
    res = json.loads(out.read_text())
    assert res["modes"]["fast"]["precision"] == "fp16" and not res["modes"]["fast"]["compile"]
    assert rc == 0 and res["agreement"]["agrees"], res["agreement"]["relative_difference"]
