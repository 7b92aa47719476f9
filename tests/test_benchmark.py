"""The benchmark script (ncsn_edu.benchmark) on CPU with a tiny stand-in network: it
times both modes, counts FLOPs, and checks that bf16 + channels-last give the fp32 loss; its
exit code on a failed loss agreement, ``--flops-only`` and the time estimate per GPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from image_train_helpers import tiny_factory

from ncsn_edu import benchmark


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


BENCH = ["--dataset", "mnist", "--ngf", "4", "--batch-size", "4", "--steps", "1", "--warmup", "0",
         "--sample-batch", "2", "--sample-evals", "1", "--agreement-steps", "4", "--device", "cpu",
         "--fast-compile", "off"]


def test_benchmark_exit_code_says_whether_the_losses_agree(tmp_path):
    # Catches: a failed loss agreement that still exits 0 (a CI job would pass), or a
    # tolerance ignored. bf16 changes the losses by ~0.1-1%: it fails a tolerance of 1e-7
    # (exit code 2) and passes 50%; the fp32 path against itself agrees exactly.
    out = tmp_path / "b.json"
    assert benchmark.main(BENCH + ["--fast-amp", "on", "--tolerance", "1e-7", "--out", str(out)],
                          model_factory=tiny_factory) == 2
    agreement = json.loads(out.read_text())["agreement"]
    assert agreement["agrees"] is False and agreement["relative_difference"] > 1e-7
    assert benchmark.main(BENCH + ["--fast-amp", "on", "--tolerance", "0.5"], model_factory=tiny_factory) == 0
    assert benchmark.main(BENCH + ["--fast-amp", "off", "--fast-channels-last", "off", "--tolerance", "0",
                                   "--out", str(out)], model_factory=tiny_factory) == 0
    assert json.loads(out.read_text())["agreement"]["relative_difference"] == 0


def test_benchmark_flops_only_counts_without_timing(tmp_path, monkeypatch):
    # Catches: --flops-only still timing the modes (minutes on a GPU's full network), or
    # a wrong count. TinyScore: three 3x3 convolutions 1->4->4->1 on 28x28. Forward
    # 2*B*784*9*(4 + 16 + 4) multiply-adds counted as 2 FLOPs each; backward: every
    # weight's gradient (same again) and the inputs' gradients of the last two convs.
    def no_timing(*a, **k):
        raise AssertionError("--flops-only timed a mode")

    monkeypatch.setattr(benchmark, "train_steps", no_timing)
    monkeypatch.setattr(benchmark, "sampling_rate", no_timing)
    out = tmp_path / "f.json"
    rc = benchmark.main(["--dataset", "mnist", "--ngf", "4", "--batch-size", "16", "--device", "cpu", "--flops-only",
                         "--out", str(out)], model_factory=tiny_factory)
    assert rc == 0
    res = json.loads(out.read_text())
    per = 2 * 16 * 784 * 9
    assert res["train_step_gflop"] * 1e9 == pytest.approx(per * ((4 + 16 + 4) * 2 + (16 + 4)), rel=1e-9)
    assert res["modes"] == {}


def test_flops_only_estimates_the_run_on_each_gpu(tmp_path):
    # Catches: an estimate that does not follow from its stated inputs (FLOP count, peak,
    # utilisation), the wrong precision for a GPU (bf16 on a T4), or the chapter's table
    # drifting from what the command makes of the committed result.
    out = tmp_path / "e.json"
    rc = benchmark.main(["--dataset", "mnist", "--ngf", "4", "--batch-size", "16", "--device", "cpu", "--flops-only",
                         "--utilisation", "0.2", "--n-iters", "1000", "--gpu", "T4", "H200", "--out", str(out)],
                        model_factory=tiny_factory)
    assert rc == 0
    res = json.loads(out.read_text())
    flop = res["train_step_gflop"] * 1e9
    rows = {r["gpu"]: r for r in res["estimate"]["rows"]}
    assert set(rows) == {"T4", "H200"} and "not a measurement" in res["estimate"]["note"]
    assert (rows["T4"]["precision"], rows["H200"]["precision"]) == ("fp16", "bf16")
    for r, peak in ((rows["T4"], 65.0), (rows["H200"], 989.4)):
        assert r["hours"] * 3600 == pytest.approx(1000 * flop / (peak * 1e12 * 0.2), rel=1e-12)
    # The committed estimate (data/capstone_time_estimate.json) is what chapter 12 shows.
    root = Path(__file__).resolve().parents[1]
    committed = json.loads((root / "data" / "capstone_time_estimate.json").read_text())
    table = benchmark.estimate_table(committed["estimate"]["rows"], committed["train_step_gflop"] * 1e9,
                                     committed["estimate"]["n_iters"])
    chapter = " ".join((root / "book" / "12_capstone_cifar10.md").read_text().split())
    for line in table.split("\n"):
        assert " ".join(line.split()) in chapter, line
    assert {r["gpu"] for r in committed["estimate"]["rows"]} == {"T4", "V100", "A100", "H100", "H200"}
