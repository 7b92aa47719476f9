"""How fast the live figures compute: annealed Langevin steps per second in headless Chromium,
against PyTorch on the CPU doing the same chains.

    python -m ncsn_edu.experiments.live_benchmark --out data/live_speed.json

Two workloads, both chapter 9's sampler (annealed Langevin, sigmas from 20 to 1 in 10 levels,
eps 0.1, the paper's step convention):

* ``exact``: 2,000 chains on the toy mixture's exact perturbed scores;
* ``network``: 1,000 chains on a toy NCSN of chapters 8 and 9's architecture (the
  ConditionalScoreMLP that ``training.train_toy_ncsn`` trains: 2-64-64-2, softplus,
  level-conditioned, output divided by sigma); its speed does not depend on the weights;
* ``network_128``: the same at the paper's toy width, 2-128-128-2 (four times the work).

Each is timed for about ``--seconds`` seconds in the page (the library that the book ships,
``ncsn_edu/figures/live_js``) and in PyTorch with one thread, in float64 as the page computes. Needs
Debian's chromium and chromedriver and selenium (``python3 dev.py test`` installs them).
Introduced in chapter 9 (annealed Langevin dynamics).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from ncsn_edu.figures import live
from ncsn_edu.sampling import step_coefficients
from ncsn_edu.schedules import geometric_sigmas
from ncsn_edu.toy.distributions import GaussianMixture, annealed_score_fn
from ncsn_edu.toy.domain import uniform_starts
from ncsn_edu.toy.nets import ConditionalScoreMLP

WORKLOADS = {"exact": 2000, "network": 1000, "network_128": 1000}

_PAGE_RUN = """
var L = window.NCSNLive, kind = arguments[0], n = arguments[1], seconds = arguments[2], spec = arguments[3];
var mix = new L.Mixture(arguments[4]), sig = L.geometricSigmas(20, 1, 10), net = spec ? new L.Network(spec) : null;
var r = new L.Rng(0), x = L.uniformStarts(r, n, 8);
var run = new L.AnnealedRun({sigmas: sig, eps: 0.1, nStepsEach: 100, x: x, n: n, rng: r,
  scoreAt: net ? function (x, n, out, level) { return net.forward(x, n, out, level); }
               : function (x, n, out, level, sigma) { return mix.score(x, n, out, sigma); }});
run.advance(5);  // warm-up: let the JIT compile the loops
var steps = 0, t0 = performance.now();
while (performance.now() - t0 < 1000 * seconds) {
  if (run.t >= run.total) run.t = 0;
  run.advance(1); steps += 1;
}
return JSON.stringify({steps: steps, seconds: (performance.now() - t0) / 1000});
"""


def _driver():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        raise SystemExit("the benchmark needs chromium and chromium-driver (python3 dev.py test installs them)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as err:
        raise SystemExit("the benchmark needs selenium (pip install -e .[test])") from err
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--proxy-server=http://127.0.0.1:9",
                "--host-resolver-rules=MAP * ~NOTFOUND"]:
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=opts)


def page_speed(drv, kind: str, n: int, seconds: float, network_spec=None) -> float:
    """Annealed Langevin steps per second in the page for ``n`` chains."""
    out = json.loads(drv.execute_script(_PAGE_RUN, kind, n, seconds, network_spec,
                                        live.mixture_config(GaussianMixture.paper_toy())))
    return out["steps"] / out["seconds"]


def torch_speed(kind: str, n: int, seconds: float, model=None) -> float:
    """The same chains with the package's sampler step in PyTorch, one thread, float64."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        mix = GaussianMixture.paper_toy(dtype=torch.float64)
        sigmas = geometric_sigmas(20.0, 1.0, 10).double()
        score = annealed_score_fn(mix, sigmas, "perturbed") if kind == "exact" else copy.deepcopy(model).double()
        gen = torch.Generator().manual_seed(0)
        x = uniform_starts(n, generator=gen, dtype=torch.float64)
        labels = torch.zeros(n, dtype=torch.long)
        steps, t0 = 0, time.perf_counter()
        with torch.no_grad():
            while time.perf_counter() - t0 < seconds:
                i = (steps // 100) % len(sigmas)
                labels.fill_(i)
                drift, noise = step_coefficients(0.1, sigmas[i].item(), sigmas[-1].item())
                x = x + drift * score(x, labels) + noise * torch.randn(x.shape, generator=gen, dtype=x.dtype)
                steps += 1
        return steps / (time.perf_counter() - t0)
    finally:
        torch.set_num_threads(previous)


def chromium_version() -> str:
    try:
        return subprocess.run(["chromium", "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run(seconds: float = 3.0, repeats: int = 3) -> dict:
    """Median steps per second over ``repeats`` timings of each workload, in the page and in PyTorch."""
    torch.manual_seed(0)
    sigmas = geometric_sigmas(20.0, 1.0, 10)
    models = {"network": ConditionalScoreMLP(sigmas, hidden=64, scale_output=True),
              "network_128": ConditionalScoreMLP(sigmas, hidden=128, scale_output=True)}
    drv = _driver()
    results = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            page = Path(tmp) / "bench.html"
            page.write_text(f"<!doctype html><meta charset='utf-8'><script>{live.library_js()}</script>")
            drv.get(page.as_uri())
            for kind, n in WORKLOADS.items():
                model = models.get(kind)
                spec = live.export_network(model) if model is not None else None
                web = sorted(page_speed(drv, kind, n, seconds, spec) for _ in range(repeats))
                ref = sorted(torch_speed(kind, n, seconds, model) for _ in range(repeats))
                results[kind] = {"chains": n, "page_steps_per_s": web[len(web) // 2],
                                 "torch_steps_per_s": ref[len(ref) // 2], "page_runs": web, "torch_runs": ref}
    finally:
        drv.quit()
    return {
        "workloads": results,
        "sampler": "annealed Langevin, sigmas 20..1 (10 levels, geometric), eps 0.1, paper convention",
        "goals_steps_per_s": {"exact": 60, "network": 20, "network_128": 20},
        "seconds_per_timing": seconds, "repeats": repeats,
        "machine": {"cpu": cpu_name(), "platform": platform.platform(), "chromium": chromium_version(),
                    "torch": torch.__version__, "torch_threads": 1},
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m ncsn_edu.experiments.live_benchmark --out data/live_speed.json",
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m ncsn_edu.experiments.live_benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each timing (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="timings per workload; the median is kept (default 3)")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.repeats < 1:
        parser.error("--seconds must be positive and --repeats at least 1")
    res = run(args.seconds, args.repeats)
    for kind, r in res["workloads"].items():
        print(f"{kind:11s} {r['chains']:5d} chains: page {r['page_steps_per_s']:8.1f} steps/s, "
              f"PyTorch (1 thread) {r['torch_steps_per_s']:8.1f} steps/s (goal {res['goals_steps_per_s'][kind]})")
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
        print(f"wrote {args.out}")
    return res


if __name__ == "__main__":
    main()
