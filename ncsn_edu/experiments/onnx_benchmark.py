"""How fast the MNIST score network runs in the reader's browser: onnxruntime-web's WebAssembly
backend in headless Chromium, against PyTorch on one CPU thread in the same run.

    python -m ncsn_edu.experiments.onnx_benchmark --out data/onnx_benchmark.json

The network is the book's NCSN v1 (``data/mnist_ncsn_ngf16.pt``, 518,817 parameters), exported as
the site ships it (:mod:`ncsn_edu.images.onnx_export`) and served with onnxruntime-web's files
(``node_modules``, from ``npm ci``) over http on 127.0.0.1, as a reader's ``python -m http.server``
serves the site. Measured:

* network evaluations per second (calls of the network; images per second is that times the
  batch) at batch 1 and 16, with one WebAssembly thread in a page that is not cross-origin
  isolated (the site as served), and with 2 threads in a page served with the COOP/COEP headers
  that multi-threaded WebAssembly needs (reported only where the page got them);
* the time of whole annealed Langevin chains of 100 and 1,000 evaluations at batch 1 (10 levels
  of 10 and of 100 steps: the latter is Algorithm 1 with the paper's L = 10, T = 100), the
  update computed in the page's JavaScript between the calls;
* the same evaluations per second and chains in PyTorch with one thread, each timing right after
  the page's (so that both see the same load from other work on the machine);
* the page's score for one fixed input against PyTorch's (max relative error), so the speed is
  that of a network computing the right thing.

Needs Debian's chromium and chromedriver, selenium, and ``npm ci`` (``python3 dev.py test``
installs them). Introduced for the live image figures of chapters 10 and 11.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import http.server
import json
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

import torch

from ncsn_edu.experiments.live_benchmark import chromium_version, cpu_name
from ncsn_edu.images.onnx_export import copy_ort_runtime, export_onnx

#: The goal of issue 28: network evaluations per second at batch 1 on a 2-core machine.
GOAL_BATCH1_PER_S = 20

_PAGE = """<!doctype html><meta charset="utf-8"><title>onnx benchmark</title>
<script src="ort/ort.wasm.min.js"></script>
<script>
const q = new URLSearchParams(location.search);
ort.env.wasm.numThreads = Number(q.get("threads") || 1);
ort.env.wasm.wasmPaths = new URL("ort/", location.href).href;
window.bench = {ready: ort.InferenceSession.create("model.onnx", {executionProviders: ["wasm"]})};
</script>"""

#: arguments: what ("speed" | "chain" | "score"), batch, seconds, n_evals, sigmas, eps, x (flat), label
_RUN = """
const [what, B, seconds, nEvals, sigmas, eps, fixedX, fixedLabel] = arguments;
const done = arguments[arguments.length - 1];
(async () => {
  const s = await window.bench.ready;
  const feeds = (x, label, n) => ({x: new ort.Tensor("float32", x, [n, 1, 28, 28]),
    labels: new ort.Tensor("int64", new BigInt64Array(n).fill(BigInt(label)), [n])});
  const info = {isolated: self.crossOriginIsolated === true, threads: ort.env.wasm.numThreads};
  if (what === "score") {
    const out = await s.run(feeds(Float32Array.from(fixedX), fixedLabel, 1));
    return {...info, score: Array.from(out.score.data)};
  }
  if (what === "speed") {
    const x = new Float32Array(B * 784).map((_, i) => (i * 37 % 101) / 100);
    await s.run(feeds(x, fixedLabel, B));  // warm-up
    let calls = 0; const t0 = performance.now();
    while (performance.now() - t0 < 1000 * seconds) { await s.run(feeds(x, fixedLabel, B)); calls += 1; }
    return {...info, calls: calls, seconds: (performance.now() - t0) / 1000};
  }
  // an annealed Langevin chain at batch 1, the official code's step: a = eps sigma_i^2 / sigma_L^2,
  // x <- x + a s + sqrt(2a) z, with nEvals / L steps per level
  const L = sigmas.length, T = nEvals / L, sL = sigmas[L - 1];
  let x = new Float32Array(784).map(() => Math.random());
  const gauss = () => Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
  const t0 = performance.now();
  let evals = 0;
  for (let i = 0; i < L; i++) {
    const a = eps * sigmas[i] * sigmas[i] / (sL * sL), c = Math.sqrt(2 * a);
    for (let t = 0; t < T; t++) {
      const sc = (await s.run(feeds(x, i, 1))).score.data;
      evals += 1;
      const nx = new Float32Array(784);
      for (let k = 0; k < 784; k++) nx[k] = x[k] + a * sc[k] + c * gauss();
      x = nx;
    }
  }
  const secs = (performance.now() - t0) / 1000;
  return {...info, seconds: secs, evals: evals, finite: x.every(Number.isFinite)};
})().then(r => done(JSON.stringify(r)), e => done(JSON.stringify({error: String(e && e.stack || e)})));
"""


def _driver():
    """Headless Chromium with every host but 127.0.0.1 unreachable."""
    import shutil

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
                "--proxy-bypass-list=127.0.0.1", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]:
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=opts)


class _Handler(http.server.SimpleHTTPRequestHandler):
    isolated = False

    def end_headers(self):
        if self.isolated:  # what multi-threaded WebAssembly (SharedArrayBuffer) needs
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()

    def log_message(self, *args):
        pass


def serve(folder, isolated: bool):
    """An http server of ``folder`` on 127.0.0.1 (a free port) in a thread; with ``isolated``
    it sends the cross-origin isolation headers. Returns ``(server, base url)``."""
    handler = type("Handler", (_Handler,), {"isolated": isolated})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def in_page(drv, what, batch=1, seconds=0.0, n_evals=0, sigmas=(), eps=0.0, x=(), label=0) -> dict:
    out = json.loads(drv.execute_async_script(_RUN, what, batch, seconds, n_evals, list(sigmas), eps, list(x), label))
    if "error" in out:
        raise RuntimeError(f"onnxruntime-web failed in the page: {out['error']}")
    return out


def torch_speed(model, batch: int, seconds: float, label: int = 0) -> float:
    """Network calls per second of ``model`` at ``batch`` (one thread, after one warm-up call)."""
    x = (torch.arange(batch * 784) * 37 % 101).float().div(100).reshape(batch, 1, 28, 28)
    labels = torch.full((batch,), label, dtype=torch.long)
    with torch.no_grad():
        model(x, labels)
        calls, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            model(x, labels)
            calls += 1
    return calls / (time.perf_counter() - t0)


def torch_chain(model, sigmas, eps: float, n_evals: int) -> float:
    """Seconds of an annealed Langevin chain of ``n_evals`` evaluations at batch 1 in PyTorch."""
    from ncsn_edu.sampling import annealed_langevin_dynamics

    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, 28, 28, generator=g)
    t0 = time.perf_counter()
    annealed_langevin_dynamics(model, x, sigmas, eps, n_evals // len(sigmas), generator=g, convention="code")
    return time.perf_counter() - t0


def _median(values):
    values = sorted(values)
    return values[len(values) // 2]


def _speed_row(runs, batch: int) -> dict:
    return {"evals_per_s": _median(runs), "images_per_s": _median(runs) * batch, "runs": runs}


def run(model=None, sigmas=None, eps=None, node_modules=None, seconds: float = 5.0, repeats: int = 3,
        batches=(1, 16), threads=(1, 2), chains=(100, 1000)) -> dict:
    """Time ``model`` (default: the book's v1 network with its sigmas and step) in the page and in
    PyTorch (one thread); ``node_modules`` holds onnxruntime-web (default: the repository's).
    Each evaluations-per-second figure is the median of ``repeats`` timings of ``seconds``."""
    from ncsn_edu.images.checkpoints import load_checkpoint
    from ncsn_edu.images.onnx_export import sampler_defaults
    from ncsn_edu.resources import resource_path

    if model is None:
        model, sigmas, cfg = load_checkpoint(resource_path("mnist_ncsn_ngf16.pt"))
        eps = sampler_defaults(cfg)["eps"] if eps is None else eps
    sigmas = [float(s) for s in sigmas]
    label = min(3, len(sigmas) - 1)  # a middle level of the book's ten
    load_before = [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None
    node_modules = Path(node_modules or Path(__file__).resolve().parents[2] / "node_modules")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    drv, servers = _driver(), []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            copy_ort_runtime(node_modules, Path(tmp) / "ort")
            export_onnx(model, Path(tmp) / "model.onnx")
            (Path(tmp) / "index.html").write_text(_PAGE)
            page, torch_rows, ref_x = {}, {}, [((i * 53) % 97) / 96 for i in range(784)]
            for n_threads in threads:
                server, url = serve(tmp, isolated=n_threads > 1)
                servers.append(server)
                drv.get(f"{url}index.html?threads={n_threads}")
                drv.set_script_timeout(max(600, 10 * seconds))
                got = in_page(drv, "score", x=ref_x, label=label)
                row = {"cross_origin_isolated": got["isolated"], "threads_used": got["threads"]}
                if n_threads > 1 and not got["isolated"]:
                    page[str(n_threads)] = {**row, "note": "no cross-origin isolation: not measured"}
                    continue
                with torch.no_grad():
                    want = model(torch.tensor(ref_x).reshape(1, 1, 28, 28), torch.tensor([label]))
                err = (torch.tensor(got["score"]).reshape(want.shape) - want).abs().max() / want.abs().max()
                row["score_max_rel_error_vs_torch"] = float(err)
                first = n_threads == threads[0]  # PyTorch is timed alternately with this one (same load)
                for b in batches:
                    runs, truns = [], []
                    for _ in range(repeats):
                        r = in_page(drv, "speed", batch=b, seconds=seconds, label=label)
                        runs.append(r["calls"] / r["seconds"])
                        if first:
                            truns.append(torch_speed(model, b, seconds, label))
                    row[f"batch_{b}"] = _speed_row(runs, b)
                    if first:
                        torch_rows[f"batch_{b}"] = _speed_row(truns, b)
                if first:
                    for n in chains:
                        r = in_page(drv, "chain", n_evals=n, sigmas=sigmas, eps=eps)
                        row[f"chain_{n}_s"] = r["seconds"]
                        row[f"chain_{n}_evals"], row[f"chain_{n}_finite"] = r["evals"], r["finite"]
                        torch_rows[f"chain_{n}_s"] = torch_chain(model, sigmas, eps, n)
                page[str(n_threads)] = row
    finally:
        drv.quit()
        for server in servers:
            server.shutdown()
        torch.set_num_threads(previous)
    ort_version = (node_modules / "onnxruntime-web" / "package.json")
    return {
        "page": {"threads": page},
        "torch_1_thread": torch_rows,
        "goal_batch1_evals_per_s": GOAL_BATCH1_PER_S,
        "model": {"parameters": sum(p.numel() for p in model.parameters()), "levels": len(sigmas), "eps": eps},
        "chains": {str(n): f"{len(sigmas)} levels x {n // len(sigmas)} steps, batch 1, measured" for n in chains},
        "seconds_per_timing": seconds, "repeats": repeats,
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "platform": platform.platform(),
                    "chromium": chromium_version(), "torch": torch.__version__,
                    "onnxruntime_web": json.loads(ort_version.read_text())["version"]},
        # the machine's load (1, 5, 15 min) as the run began and as it ended: other work slows every number
        "load_average_1_5_15min": {"start": load_before,
                                   "end": [round(v, 2) for v in os.getloadavg()] if load_before else None},
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m ncsn_edu.experiments.onnx_benchmark --out data/onnx_benchmark.json",
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m ncsn_edu.experiments.onnx_benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each timing (default 5)")
    parser.add_argument("--repeats", type=int, default=3, help="timings of each; the median is kept (default 3)")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.repeats < 1:
        parser.error("--seconds must be positive and --repeats at least 1")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    print(f"load average (1 min) {load:.2f} on {os.cpu_count()} cores")
    res = run(seconds=args.seconds, repeats=args.repeats)
    for n, row in res["page"]["threads"].items():
        if "note" in row:
            print(f"page, {n} threads: {row['note']}")
            continue
        speeds = ", ".join(f"batch {k[6:]}: {v['evals_per_s']:.1f} evals/s" for k, v in row.items()
                           if k.startswith("batch_"))
        print(f"page, {n} thread(s): {speeds} (score vs PyTorch {row['score_max_rel_error_vs_torch']:.1e})")
        for k in (k for k in row if k.startswith("chain_") and k.endswith("_s")):
            print(f"  {k[6:-2]}-evaluation chain: {row[k]:.1f} s")
    t = res["torch_1_thread"]
    print("PyTorch, 1 thread: " + ", ".join(f"batch {k[6:]}: {v['evals_per_s']:.1f} evals/s" for k, v in t.items()
                                              if k.startswith("batch_")))
    for k in (k for k in t if k.startswith("chain_")):
        print(f"  {k[6:-2]}-evaluation chain: {t[k]:.1f} s")
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
        print(f"wrote {args.out}")
    return res


if __name__ == "__main__":
    main()
