"""ncsn_edu.experiments.live_benchmark: the live figures' speed command runs every workload in headless
Chromium and in PyTorch (briefly here), and the committed data/live_speed.json that chapter 9 shows
holds what the command writes."""

import json

from browser import browser

from ncsn_edu.experiments import live_benchmark
from ncsn_edu.resources import resource_path


def test_every_workload_runs_in_the_page_and_in_pytorch():
    browser().quit()  # skips (fails under CI) without chromium, as the other browser tests
    out = live_benchmark.run(seconds=0.05, repeats=1)
    assert set(out["workloads"]) == set(live_benchmark.WORKLOADS)
    for kind, row in out["workloads"].items():
        assert row["chains"] == live_benchmark.WORKLOADS[kind]
        assert row["page_steps_per_s"] > 0 and row["torch_steps_per_s"] > 0
        assert row["page_runs"] == [row["page_steps_per_s"]]
    assert out["command"] == "python -m ncsn_edu.experiments.live_benchmark --out data/live_speed.json"


def test_the_committed_result_holds_what_the_command_writes():
    saved = json.loads(resource_path("live_speed.json").read_text())
    assert set(saved["workloads"]) == set(live_benchmark.WORKLOADS)
    assert set(saved["goals_steps_per_s"]) == set(live_benchmark.WORKLOADS)
    for row in saved["workloads"].values():
        assert row["page_steps_per_s"] == sorted(row["page_runs"])[len(row["page_runs"]) // 2]  # the median
    assert saved["command"].startswith("python -m ncsn_edu.experiments.live_benchmark")
