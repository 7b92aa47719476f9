"""ncsn_edu.experiments.onnx_benchmark: the speed command runs the exported network in headless
Chromium with onnxruntime-web over http on 127.0.0.1 (one thread without cross-origin isolation, two
with it), computing PyTorch's scores, and times whole chains of the asked length; briefly here, on a
small network. The committed data/onnx_benchmark.json holds what the command writes."""

import json
import os
from pathlib import Path

import pytest
import torch
from browser import browser

from ncsn_edu.experiments import onnx_benchmark
from ncsn_edu.images.onnx_export import ORT_FILES
from ncsn_edu.images.refinenet import CondRefineNetDilated
from ncsn_edu.resources import resource_path

pytestmark = pytest.mark.slow  # a browser, a network export and a few timings (about 15 s)

NODE_MODULES = Path(__file__).resolve().parents[2] / "node_modules"


def test_the_page_computes_the_network_and_times_every_setting():
    browser().quit()  # skips (fails under CI) without chromium, as the other browser tests
    if not all((NODE_MODULES / "onnxruntime-web" / "dist" / f).is_file() for f in ORT_FILES):
        if os.environ.get("CI"):
            pytest.fail("onnxruntime-web must be installed in CI (npm ci; python3 dev.py test runs it)")
        pytest.skip("onnxruntime-web not installed (run npm ci)")
    torch.manual_seed(0)
    model = CondRefineNetDilated(ngf=4, num_classes=2).eval()
    out = onnx_benchmark.run(model, sigmas=[1.0, 0.1], eps=1e-4, node_modules=NODE_MODULES, seconds=0.05,
                             repeats=1, batches=(1, 3), threads=(1, 2), chains=(4,))
    one, two = out["page"]["threads"]["1"], out["page"]["threads"]["2"]
    assert not one["cross_origin_isolated"] and one["threads_used"] == 1  # the site as http.server serves it
    assert one["score_max_rel_error_vs_torch"] < 1e-4  # as tests/images/test_onnx_export.py
    for row in (one, two, out["torch_1_thread"]):
        for b in (1, 3):
            r = row[f"batch_{b}"]
            assert r["evals_per_s"] > 0 and r["images_per_s"] == pytest.approx(b * r["evals_per_s"])
            assert r["runs"] == [r["evals_per_s"]]
    assert one["chain_4_evals"] == 4 and one["chain_4_finite"] and one["chain_4_s"] > 0  # 2 levels x 2 steps
    assert out["torch_1_thread"]["chain_4_s"] > 0
    assert two["cross_origin_isolated"] and two["threads_used"] == 2 and "chain_4_s" not in two
    assert out["model"] == {"parameters": sum(p.numel() for p in model.parameters()), "levels": 2, "eps": 1e-4}
    assert set(out["load_average_1_5_15min"]) == {"start", "end"}
    assert out["machine"]["onnxruntime_web"] == json.loads(
        (NODE_MODULES / "onnxruntime-web" / "package.json").read_text())["version"]


def test_the_committed_result_holds_what_the_command_writes():
    saved = json.loads(resource_path("onnx_benchmark.json").read_text())
    assert saved["command"] == "python -m ncsn_edu.experiments.onnx_benchmark --out data/onnx_benchmark.json"
    one = saved["page"]["threads"]["1"]
    assert one["score_max_rel_error_vs_torch"] < 1e-4 and not one["cross_origin_isolated"]
    for row in (one, saved["torch_1_thread"]):
        for b in (1, 16):
            r = row[f"batch_{b}"]
            assert r["evals_per_s"] == sorted(r["runs"])[len(r["runs"]) // 2]  # the median
    assert one["chain_100_evals"] == 100 and one["chain_1000_evals"] == 1000
    assert saved["model"]["parameters"] == 518_817 and saved["model"]["levels"] == 10
    assert all(len(saved["load_average_1_5_15min"][k]) == 3 for k in ("start", "end"))
