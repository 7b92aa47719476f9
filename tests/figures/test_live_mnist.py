"""The live MNIST figures (chapters 10 and 11) in headless Chromium, over http on 127.0.0.1: a small
site with onnxruntime-web's WebAssembly files and the exported models in ``_static`` (as the book's
build lays them out), served by a thread of this process. The page's score is PyTorch's, one step of
Algorithm 1 and of Algorithm 2 is the package's step with the same noise, Algorithm 2 keeps the known
pixels at y = x + sigma_i z at every level, every control changes the picture, and nothing is
requested outside 127.0.0.1 nor logged as an error. Opened from file://, a figure keeps its static
picture and says how to serve the site. The NCSNv2 model (chapter 11b) too: the page's score is the
undivided network over the slider's sigma, its Langevin steps, its final denoising step and an
inpainting step are the package's, and the model menu switches network, sampler and picture."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import torch
from browser import browser, open_page, serve
from live_pages import page_html

from ncsn_edu.figures import live_images
from ncsn_edu.images.inpainting import annealed_langevin_inpainting, left_half_mask
from ncsn_edu.sampling import annealed_langevin_dynamics

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
#: onnxruntime-web's WebAssembly backend, as npm installs it (package.json pins the version).
ORT_DIST = ROOT / "node_modules" / "onnxruntime-web" / "dist"
ORT_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
#: The exported model's tolerance against PyTorch, relative to the largest |score| (float32 weights;
#: onnxruntime's kernels sum in another order: the error seen is about 1e-6).
SCORE_RTOL = 1e-4


# ---------- the site, the server and the browser ----------

def _load_models():
    from ncsn_edu.images.checkpoints import load_checkpoint
    from ncsn_edu.images.mnist_classifier import load_classifier
    from ncsn_edu.resources import resource_path

    model, sigmas, _ = load_checkpoint(resource_path("mnist_ncsn_ngf16.pt"))
    classifier, _ = load_classifier()
    return model.eval(), sigmas, classifier.eval()


@pytest.fixture(autouse=True)
def static_build(monkeypatch):
    """The book's build (static mode): the figure functions emit the page's figure, not the kernel's widget."""
    monkeypatch.setenv("NCSN_EDU_STATIC", "1")


@pytest.fixture(scope="module")
def models():
    return _load_models()


@pytest.fixture(scope="module")
def v2():
    """The NCSNv2 model of chapter 11b (one network divided by sigma, 96 levels), its sigmas and its
    run's own sampler settings (as the site's models.json gives them)."""
    from ncsn_edu.images.checkpoints import load_checkpoint
    from ncsn_edu.images.onnx_export import sampler_defaults
    from ncsn_edu.resources import resource_path

    model, sigmas, cfg = load_checkpoint(resource_path("mnist_ncsnv2_ngf16.pt"))
    return model.eval(), sigmas, sampler_defaults(cfg)


@pytest.fixture(scope="module")
def site(tmp_path_factory, models):
    """A folder laid out as the built site's, by the build's own functions: _static/ort/ (onnxruntime-web,
    copy_ort_runtime), _static/ncsn_edu/ (the exported models and models.json, write_site_assets) and
    book/ for the pages."""
    from ncsn_edu.images.onnx_export import copy_ort_runtime, write_site_assets

    if not all((ORT_DIST / f).is_file() for f in ORT_FILES):
        pytest.skip("onnxruntime-web is not installed (npm ci at the repository's root)")
    from ncsn_edu.resources import resource_path

    root = tmp_path_factory.mktemp("site")
    copy_ort_runtime(ROOT / "node_modules", root / "_static" / "ort")
    write_site_assets(root / "_static" / "ncsn_edu", v2_checkpoint=resource_path("mnist_ncsnv2_ngf16.pt"))
    (root / "book").mkdir()
    (root / "favicon.ico").write_bytes(b"")  # the browser asks for it; a 404 is logged as a console error
    return root


@pytest.fixture(scope="module")
def server(site):
    """http://127.0.0.1:<port>/ serving ``site``."""
    with serve(site) as origin:
        yield origin


@pytest.fixture(scope="module")
def drv():
    d = browser((1300, 1000), loopback=True)
    yield d
    d.quit()


def digits_and_labels(n=3):
    """n synthetic 28 x 28 'digits' in [0, 1] (a bar, a ring, a diagonal; no data set needed)."""
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    shapes = [((xx - 14).abs() < 2) & ((yy - 14).abs() < 9),
              (((xx - 14) ** 2 + (yy - 14) ** 2).sqrt() - 7).abs() < 1.6,
              ((xx - yy).abs() < 2) & ((xx - 14).abs() < 9)]
    imgs = torch.stack([shapes[k % 3].float() for k in range(n)]).unsqueeze(1)
    return imgs, torch.tensor([1, 0, 7][:n] + [1] * max(0, n - 3))


#: Records the page's long tasks (main-thread tasks over 50 ms) in ``window.__long`` as [start, duration] in ms.
LONG_TASKS = """<script>window.__long = []; new PerformanceObserver(function (list) {
  list.getEntries().forEach(function (e) { window.__long.push([e.startTime, e.duration]); });
}).observe({type: "longtask", buffered: true});</script>"""


def serve_page(drv, site, server, fig, name, head=""):
    """Write a page holding ``fig`` (after ``head``) into the site's book/ folder, open it over http,
    wait until the figure is live; returns its root id."""
    (site / "book" / f"{name}.html").write_text(page_html(head + fig._repr_html_()))
    drv.get_log("browser")
    open_page(drv, server + f"book/{name}.html")
    end = time.time() + 90
    while time.time() < end:
        st = state(drv, fig.uid)
        if st.get("status") == "failed":
            raise AssertionError(f"the figure did not start: {st}")
        if "live" not in st and not st.get("busy"):
            return fig.uid
        time.sleep(0.2)
    raise AssertionError("the figure did not become live in 90 s")


def state(drv, uid):
    return json.loads(drv.execute_script(f"return document.getElementById('{uid}').state();"))


def arrays(drv, uid):
    return drv.execute_script(f"return document.getElementById('{uid}').figure.arrays();")


def advance(drv, uid, k):
    return drv.execute_async_script(f"var done = arguments[0]; document.getElementById('{uid}').figure.advance({k})"
                                    ".then(done, function (e) { done('error: ' + e); });")


def idle(drv, uid, timeout=30.0):
    end = time.time() + timeout
    while time.time() < end:
        if not state(drv, uid).get("busy"):
            return
        time.sleep(0.05)
    raise AssertionError("the figure stayed busy")


def set_control(drv, uid, name, value):
    """Set the slider or menu ``name`` of the figure to ``value`` (a value, not a position) as a reader would."""
    drv.execute_script(f"""var el = document.getElementById('{uid}').querySelector('[name="{name}"]');
      if (el.ncsnControl) {{ el.ncsnControl.set(arguments[0]); el.dispatchEvent(new Event('input')); }}
      else {{ el.value = String(arguments[0]); el.dispatchEvent(new Event('change')); }}""", value)


def pictures(drv, uid):
    return drv.execute_script(f"return Array.from(document.getElementById('{uid}').querySelectorAll('canvas'))"
                              ".map(function (c) {{ return c.toDataURL(); }});")


def click(drv, uid, label):
    """Press the figure's button labelled ``label``."""
    drv.execute_script(f"var label = arguments[0]; Array.from(document.getElementById('{uid}')"
                       ".querySelectorAll('button')).filter(function (b) { return b.textContent === label; })"
                       "[0].click();", label)


def text(drv, uid):
    """The figure's printed numbers (its text box)."""
    return drv.execute_script(f"return document.getElementById('{uid}').querySelector('pre').textContent")


def requested(drv):
    """The names of the files the page has requested."""
    return drv.execute_script("return performance.getEntriesByType('resource').map(function (e) { return e.name; })")


def clean_console(drv, origin):
    errors = [e["message"] for e in drv.get_log("browser") if e["level"] == "SEVERE"]
    names = drv.execute_script("return performance.getEntriesByType('resource').map(function (e) { return e.name; })")
    outside = [n for n in names if not n.startswith((origin, "data:", "blob:"))]
    return errors, outside


def img(values):
    return torch.tensor(values, dtype=torch.float64).reshape(-1, 1, 28, 28)


# ---------- the checks ----------

def test_the_page_score_is_pytorchs_at_the_nearest_level_and_tweedie_uses_sigma_squared(drv, site, server, models):
    model, sigmas, _ = models
    d, lab = digits_and_labels()
    fig = live_images.denoise_figure(model, sigmas, d, lab, sigma=0.1)
    uid = serve_page(drv, site, server, fig, "denoise")
    for sigma in (0.1, 0.013, 0.7):
        set_control(drv, uid, "sigma", sigma)
        idle(drv, uid)
        st, a = state(drv, uid), arrays(drv, uid)
        level = live_images.nearest_level(sigmas, st["sigma"])
        assert st["level"] == level, "the network must run at the level nearest to sigma in log sigma"
        x = img(a["noisy"]).float()
        with torch.no_grad():
            ref = model(x, torch.tensor([level])).double()
        page = img(a["score"])
        assert (page - ref).abs().max().item() <= SCORE_RTOL * ref.abs().max().item()
        # the noise is the slider's sigma (not the level's), and the denoised image is x~ + sigma^2 s
        assert torch.allclose(img(a["noisy"]), img(a["clean"]) + st["sigma"] * img(a["z"]), atol=1e-6)
        tweedie = img(a["noisy"]) + st["sigma"] ** 2 * page
        assert torch.allclose(img(a["denoised"]), tweedie, atol=1e-9)
        rms = ((tweedie - img(a["clean"])) ** 2).mean().sqrt().item()
        assert st["rms_denoised"] == pytest.approx(rms, rel=1e-9)
        text = drv.execute_script(f"return document.getElementById('{uid}').querySelector('pre').textContent")
        assert f"{rms:.4f}" in text and f"level {level + 1}," in text
    # at sigma = 0.1 a trained network denoises: the error falls well below the noise's
    set_control(drv, uid, "sigma", 0.1)
    idle(drv, uid)
    st = state(drv, uid)
    assert st["rms_denoised"] < 0.6 * st["rms_noisy"]
    errors, outside = clean_console(drv, server)
    assert not errors and not outside, (errors, outside)


def _patched_randn(monkeypatch, queue):
    """torch.randn returns the queued tensors in order (the page's noise), then zeros."""

    def fake(*shape, generator=None, device=None, dtype=None, **kw):
        size = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list, torch.Size)) else shape
        if queue:
            z = queue.pop(0)
            assert tuple(z.shape) == tuple(size)
            return z.to(dtype or torch.float32)
        return torch.zeros(size, dtype=dtype or torch.float32)

    monkeypatch.setattr(torch, "randn", fake)


@pytest.mark.parametrize("convention", ["code", "paper"])
def test_one_langevin_step_is_the_packages(drv, site, server, models, monkeypatch, convention):
    """The page's step at level i (start and level 4, T = 1) equals annealed_langevin_dynamics's step
    with the page's noise injected; the levels before i are made no-ops in the package's loop (zero
    score, zero noise), so its step i starts from the page's state."""
    model, sigmas, _ = models
    fig = live_images.generate_figure(model, sigmas, torch.rand(4, 1, 28, 28), n_images=4, n_steps_each=1,
                                      eps=2e-5, convention=convention, seed=3)
    uid = serve_page(drv, site, server, fig, f"generate_{convention}")
    for level in (0, 4):
        advance(drv, uid, level - state(drv, uid)["t"])
        assert state(drv, uid)["t"] == level
        before = arrays(drv, uid)["x"]
        advance(drv, uid, 1)
        a = arrays(drv, uid)
        x0 = img(before).float()
        queue = [torch.zeros(x0.shape)] * level + [img(a["z"]).float()]

        def score(x, labels, i=level):
            return model(x, labels) if int(labels[0]) == i else torch.zeros_like(x)

        with monkeypatch.context() as mp, torch.no_grad():
            _patched_randn(mp, queue)
            _, states = annealed_langevin_dynamics(score, x0, sigmas, 2e-5, 1, keep_every=1, convention=convention)
        # float32 in the package and float32 network input in the page: the step's drift a_i <= 0.2
        # times scores of size up to 1/sigma ~ 100 agree to about 1e-6 of them
        assert (states[level + 1].double() - img(a["x"])).abs().max().item() < 1e-4
    errors, outside = clean_console(drv, server)
    assert not errors and not outside, (errors, outside)


def test_one_inpainting_step_is_the_packages_and_the_known_pixels_follow_y_at_each_level(drv, site, server, models,
                                                                                          monkeypatch):
    model, sigmas, classifier = models
    d, lab = digits_and_labels()
    fig = live_images.inpaint_figure(model, sigmas, d, lab, torch.rand(2, 1, 28, 28), index=1, n_completions=2,
                                     n_steps_each=2, eps=2e-5, seed=5, classifier=classifier)
    uid = serve_page(drv, site, server, fig, "inpaint")
    start = arrays(drv, uid)
    advance(drv, uid, 1)
    a = arrays(drv, uid)
    mask = torch.tensor(a["mask"], dtype=torch.float32).reshape(1, 28, 28)
    assert torch.equal(mask, left_half_mask((1, 28, 28)))
    with monkeypatch.context() as mp, torch.no_grad():
        _patched_randn(mp, [img(a["zy"]).float(), img(a["z"]).float()])
        _, states = annealed_langevin_inpainting(model, d[1:2], mask, sigmas, 2e-5, n_steps_each=1, n_completions=2,
                                                 init=img(start["start"]).float(), keep_every=1, convention="code")
    assert (states[1].reshape(2, 1, 28, 28).double() - img(a["x"])).abs().max().item() < 1e-4
    # every step of the run: the known pixels are y, and y = x + sigma_i z' of the current level
    known = mask.flatten().bool().repeat(2)
    x_known = d[1].flatten().double().repeat(2)
    seen = set()
    for _ in range(2 * len(sigmas) - 1):
        st, a = state(drv, uid), arrays(drv, uid)
        i = (st["t"] - 1) // 2  # the level of the step just taken
        x, y, zy = (torch.tensor(a[k], dtype=torch.float64) for k in ("x", "y", "zy"))
        assert torch.equal(x[known], y[known])
        assert torch.allclose(y, x_known + sigmas[i].item() * zy, atol=1e-6)
        if st["t"] == 2:  # the end of level 1: the classifier reads noisy images, and the figure says at which sigma
            st = until(drv, uid, lambda st: st["reading_sigma"] is not None)
            assert st["reading_sigma"] == pytest.approx(sigmas[0].item()) and st["reading_final"] is False
            assert f"reading at \u03c3 = {sigmas[0].item():.3g}" in text(drv, uid) and "means nothing" in text(drv, uid)
        seen.add(i)
        advance(drv, uid, 1)
    assert seen == set(range(len(sigmas)))
    st = state(drv, uid)
    assert st["t"] == st["total"] and st["known_gap"] == 0
    st = until(drv, uid, lambda st: st["reading_final"])  # the classifier's reading of the finished completions
    assert st["reading_sigma"] == pytest.approx(sigmas[-1].item())
    assert "reads the finished completions" in text(drv, uid)
    assert st["readings"] and len(st["readings"]) == 2
    x_end = img(arrays(drv, uid)["x"]).float().clamp(0, 1)
    with torch.no_grad():
        p = torch.softmax(classifier(x_end), 1)
    assert [r["digit"] for r in st["readings"]] == p.argmax(1).tolist()
    assert [r["confidence"] for r in st["readings"]] == pytest.approx(p.max(1).values.tolist(), abs=1e-4)
    errors, outside = clean_console(drv, server)
    assert not errors and not outside, (errors, outside)


def _canvas_pointer(drv, uid, which, points):
    """Press, move through ``points`` (fractions of the canvas) and release on canvas ``which``."""
    drv.execute_script(f"""var c = document.getElementById('{uid}').querySelectorAll('canvas')[{which}];
      c.scrollIntoView({{block: 'center'}}); var r = c.getBoundingClientRect(), pts = arguments[0];
      function ev(type, p) {{ c.dispatchEvent(new PointerEvent(type, {{clientX: r.left + p[0] * r.width,
        clientY: r.top + p[1] * r.height, bubbles: true, pointerId: 1, pointerType: 'touch'}})); }}
      ev('pointerdown', pts[0]); for (var i = 1; i < pts.length; i++) ev('pointermove', pts[i]);
      ev('pointerup', pts[pts.length - 1]);""", points)


def test_every_control_changes_the_picture(drv, site, server, models):
    model, sigmas, classifier = models
    d, lab = digits_and_labels()
    den = live_images.denoise_figure(model, sigmas, d, lab)
    uid = serve_page(drv, site, server, den, "controls_denoise")
    for name, value in (("sigma", 0.5), ("index", 2)):
        before = pictures(drv, uid)
        set_control(drv, uid, name, value)
        idle(drv, uid)
        assert pictures(drv, uid) != before, name
    before = pictures(drv, uid)
    _canvas_pointer(drv, uid, 0, [[0.2, 0.2], [0.5, 0.3], [0.8, 0.4]])
    idle(drv, uid)
    assert state(drv, uid)["drawn"] and pictures(drv, uid) != before, "drawing on the digit"
    for label in ("New noise", "Blank: draw a digit"):
        before = pictures(drv, uid)
        click(drv, uid, label)
        idle(drv, uid)
        assert pictures(drv, uid) != before, label

    gen = live_images.generate_figure(model, sigmas, torch.rand(4, 1, 28, 28), n_images=4, n_steps_each=2)
    uid = serve_page(drv, site, server, gen, "controls_generate")
    changes = [("n_images", 5), ("n_levels", 6), ("n_steps_each", 3), ("eps", 5e-5), ("step convention", "paper"),
               ("seed", 7), ("sampler", "single"), ("sampler", "last")]
    # 7 steps: past the first level (T <= 3), whose steps are the same for any L
    advance(drv, uid, 7)
    for name, value in changes:
        before = pictures(drv, uid)
        set_control(drv, uid, name, value)
        advance(drv, uid, 7)
        assert pictures(drv, uid) != before, name
    st = state(drv, uid)
    assert (st["n"], st["mode"], st["seed"], st["convention"]) == (5, "last", 7, "paper")
    assert st["sigmas"] == [pytest.approx(sigmas[-1].item())] and st["total"] == 6 * 3
    # Run, then Pause: the chain moves while it runs and stands still once paused
    set_control(drv, uid, "n_steps_each", 100)  # a long run: it is still running when paused
    t0 = state(drv, uid)["t"]
    click(drv, uid, "Run")
    time.sleep(1.5)
    click(drv, uid, "Pause")
    idle(drv, uid)
    t1 = state(drv, uid)["t"]
    time.sleep(0.5)
    assert t1 > t0 and state(drv, uid)["t"] == t1 and not state(drv, uid)["running"]
    click(drv, uid, "Reset")
    assert state(drv, uid)["t"] == 0

    inp = live_images.inpaint_figure(model, sigmas, d, lab, torch.rand(2, 1, 28, 28), n_completions=2, n_steps_each=1)
    uid = serve_page(drv, site, server, inp, "controls_inpaint")
    advance(drv, uid, 7)
    for name, value in [("index", 2), ("n_completions", 3), ("n_steps_each", 2), ("eps", 1e-5),
                        ("step convention", "paper"), ("seed", 4), ("n_levels", 5)]:
        before = pictures(drv, uid)
        set_control(drv, uid, name, value)
        advance(drv, uid, 7)
        assert pictures(drv, uid) != before, name
    hidden = state(drv, uid)["hidden"]
    before = pictures(drv, uid)
    _canvas_pointer(drv, uid, 0, [[0.1, 0.1], [0.2, 0.15], [0.3, 0.2]])  # paint over the known (left) half
    assert state(drv, uid)["hidden"] > hidden and pictures(drv, uid) != before, "painting the mask"
    # a mask over the whole digit: nothing is known, and the box says so (and no gap of known pixels)
    click(drv, uid, "Hide all")
    advance(drv, uid, 1)
    text = drv.execute_script(f"return document.getElementById('{uid}').querySelector('pre').textContent")
    assert state(drv, uid)["hidden"] == 784 and "every pixel hidden" in text and "held at" not in text, text
    errors, outside = clean_console(drv, server)
    assert not errors and not outside, (errors, outside)


def test_a_step_too_large_says_so(drv, site, server, models):
    """eps = 1e-3 (50 times the paper's): a_1 = 10 at sigma_1 = 1. The network normalises its input
    (instance normalisation), so its score stays bounded and the chain does not overflow; it wanders
    far outside [0, 1], and the figure says why, with no NaN printed."""
    model, sigmas, _ = models
    fig = live_images.generate_figure(model, sigmas, torch.rand(4, 1, 28, 28), n_images=4, n_steps_each=5, eps=1e-3)
    uid = serve_page(drv, site, server, fig, "diverge")
    text = lambda: drv.execute_script(f"return document.getElementById('{uid}').querySelector('pre').textContent")  # noqa: E731
    assert "left the data's range" not in text()
    advance(drv, uid, 5)
    st = state(drv, uid)
    assert st["out_of_range"] and "left the data's range" in text() and "Lower \u03b5" in text(), text()
    assert "NaN" not in text() and "Infinity" not in text()
    # the step's drift in the official code's convention is a_i = eps sigma_i^2 / sigma_L^2: a_i / sigma_i^2 = 10
    assert "a\u1d62 s, about a\u1d62/\u03c3\u1d62\u00b2 = 10.00 times" in text(), text()
    # in the paper's it is alpha_i / 2 (alpha_i = eps sigma_i^2 / sigma_L^2): alpha_i / (2 sigma_i^2) = 5, not named a_i
    set_control(drv, uid, "step convention", "paper")
    advance(drv, uid, 5)
    assert state(drv, uid)["out_of_range"]
    assert "\u03b1\u1d62/2 s, about \u03b1\u1d62/(2\u03c3\u1d62\u00b2) = 5.00 times" in text(), text()
    assert "a\u1d62" not in text(), text()
    set_control(drv, uid, "eps", 2e-5)
    advance(drv, uid, 5)
    assert not state(drv, uid)["out_of_range"] and "left the data's range" not in text()


def test_the_sampler_never_freezes_the_page_and_says_what_it_does(drv, site, server, models):
    """Algorithm 1's figure as a curious reader uses it. Going live holds the page's thread for under
    2.5 s (onnxruntime's sessions are made in its proxy worker: the longest task was 0.07-0.86 s on a
    loaded 2-core machine; on the page's thread a session took 11-20 s there), and the baseline network
    loads only when its mode is chosen.
    The speed counts the batch size now and leaves out the first (warm-up) evaluation; the time left
    never reads 0 s; the title names the settings once they change; Run on a finished chain says so;
    the baseline mode says why its chains stay noise and that L only sets the steps."""
    model, sigmas, _ = models
    title = "Algorithm 1 (paper's chain: L = 10, T = 3)"
    fig = live_images.generate_figure(model, sigmas, torch.rand(4, 1, 28, 28), n_images=4, n_steps_each=3, title=title)
    uid = serve_page(drv, site, server, fig, "reader", head=LONG_TASKS)
    time.sleep(0.5)
    longest = max([d for _, d in drv.execute_script("return window.__long")] or [0])
    assert longest < 2500, f"going live held the page's thread for {longest:.0f} ms"
    assert not [n for n in requested(drv) if "baseline" in n], "the baseline loads before its mode is chosen"
    assert state(drv, uid)["title"] == title
    # the speed: counted anew at a new batch size, without its first evaluation
    advance(drv, uid, 3)
    assert state(drv, uid)["rate_evals"] == 2
    set_control(drv, uid, "n_images", 5)
    advance(drv, uid, 1)
    st = state(drv, uid)
    assert st["rate_evals"] == 0 and "network:" not in text(drv, uid), "the warm-up call at 5 images counted"
    advance(drv, uid, 2)
    st = state(drv, uid)
    assert (st["rate_evals"], st["rate_images"]) == (2, 10), st
    # L = 1, T = 3 and evaluations under 0.5 s (the page's clock made to say so): with one step to go the
    # time left is under a second, never "about 0 s"; the title names the settings now
    drv.execute_script("window.__now = performance.now; var k = 0;"
                       "performance.now = function () { return (k += 50); };")
    set_control(drv, uid, "n_images", 4)
    set_control(drv, uid, "n_levels", 1)
    advance(drv, uid, 2)
    drv.execute_script("performance.now = window.__now;")
    st, t = state(drv, uid), text(drv, uid)
    assert st["t"] == 2 and st["eval_ms"] < 500 and "under a second left" in t and "about 0 s" not in t, t
    assert st["title"].startswith(title) and "L = 1, T = 3" in st["title"] and "4 digits" in st["title"], st["title"]
    advance(drv, uid, 1)
    assert state(drv, uid)["finished"] and "the chain is finished. Press Reset" in text(drv, uid)
    click(drv, uid, "Run")
    until(drv, uid, lambda st: not st["running"] and not st["busy"])
    assert "Run has nothing left to do" in text(drv, uid), text(drv, uid)
    # the baseline: loaded now, its chains' failure explained, L labelled as steps only
    set_control(drv, uid, "sampler", "single")
    st = until(drv, uid, lambda st: st["mode"] == "single" and not st["busy"] and st["sigmas"] == [pytest.approx(0.01)],
               timeout=90)  # its session is made now
    assert [n for n in requested(drv) if "baseline" in n]
    t = text(drv, uid)
    assert "trained at \u03c3 = 0.01 only" in t and "not learned" in t and "does not reach digits" in t, t
    assert "L \u00d7 T" in st["levels_label"] and "L \u00d7 T = 3 steps" in t, (st["levels_label"], t)
    assert "baseline network" in st["title"]
    set_control(drv, uid, "sampler", "annealed")
    assert state(drv, uid)["levels_label"] == "levels L"
    errors, outside = clean_console(drv, server)
    assert not errors and not outside, (errors, outside)


def test_opened_from_file_the_figure_keeps_its_picture_and_says_how_to_serve(drv, tmp_path, models):
    model, sigmas, _ = models
    d, lab = digits_and_labels()
    fig = live_images.denoise_figure(model, sigmas, d, lab)
    page = tmp_path / "file.html"
    page.write_text(page_html(fig._repr_html_()))
    drv.get_log("browser")
    open_page(drv, page.as_uri())
    time.sleep(0.5)
    root = f"document.getElementById('{fig.uid}')"
    assert drv.execute_script(f"return {root}.querySelector('.ncsn-live-fallback').offsetHeight > 0")
    note = drv.execute_script(f"return {root}.querySelector('.ncsn-live-note')")
    assert note.is_displayed() and "python -m http.server -d _build/html" in note.text
    assert json.loads(drv.execute_script(f"return {root}.state()"))["live"] is False
    assert not [e for e in drv.get_log("browser") if e["level"] == "SEVERE"]
    names = drv.execute_script("return performance.getEntriesByType('resource').map(function (e) { return e.name; })")
    assert not [n for n in names if not n.startswith(("file:", "data:"))]


def test_every_setting_the_kinds_read_comes_from_python(models):
    """As the toy figures' rule (tests/figures/test_live.py): mnist.js reads cfg.<name> with no default
    of its own, and each figure function sends every name its kind reads."""
    model, sigmas, classifier = models
    d, lab = digits_and_labels()
    figs = [live_images.denoise_figure(model, sigmas, d, lab),
            live_images.generate_figure(model, sigmas, torch.rand(4, 1, 28, 28)),
            live_images.inpaint_figure(model, sigmas, d, lab, torch.rand(2, 1, 28, 28))]
    source = (ROOT / "ncsn_edu" / "figures" / "live_js" / "mnist.js").read_text()
    assert "cfg[" not in source
    assert not re.findall(r"cfg\.\w+\s*(?:\|\||\?\?|[!=]==?\s*(?:undefined|null))", source)
    read = set(re.findall(r"\bcfg\.([A-Za-z_]\w*)", source))
    # which settings each kind reads: the names in its own function, plus the shared ones
    shared = {"kind", "static_base", "serve_hint", "model", "eps", "eps_min", "eps_max", "n_steps_each", "steps_max",
              "convention", "seed"}
    sent = set().union(*(f.config for f in figs))
    assert not read - sent, f"mnist.js reads settings that live_images.py does not send: {sorted(read - sent)}"
    for f in figs:
        assert f.kind in live_images.KINDS and shared - {"eps", "eps_min", "eps_max", "n_steps_each", "steps_max",
                                                          "convention"} <= set(f.config)
    # a figure's HTML is small: the model travels once per site, not in the page
    for f in figs:
        assert len(f._repr_html_()) < 150_000, f.kind


def test_in_a_kernel_the_functions_return_the_kernels_figure(monkeypatch, models):
    """Outside the book's build (a Jupyter or Colab kernel) the same calls give the ipywidgets figures."""
    pytest.importorskip("ipywidgets")
    from ncsn_edu.figures import image_widgets

    calls = {}
    for name in ("denoise_widget", "generate_widget", "inpaint_widget"):
        monkeypatch.setattr(image_widgets, name, lambda *a, _n=name, **k: calls.setdefault(_n, (a, k)))
    monkeypatch.setenv("NCSN_EDU_STATIC", "0")
    model, sigmas, classifier = models
    d, lab = digits_and_labels()
    live_images.denoise_figure(model, sigmas, d, lab, sigma=0.2, index=1)
    live_images.generate_figure(model, sigmas, torch.rand(4, 1, 28, 28), n_images=6, mode="last")
    live_images.inpaint_figure(model, sigmas, d, lab, None, n_completions=3, classifier=classifier)
    assert calls["denoise_widget"][1]["sigma"] == 0.2 and calls["denoise_widget"][1]["index"] == 1
    assert calls["denoise_widget"][0][2].shape == (3, 1, 28, 28)
    assert calls["generate_widget"][1]["n_images"] == 6 and calls["generate_widget"][1]["mode"] == "last"
    assert calls["inpaint_widget"][1]["classifier"] is classifier
    assert torch.equal(calls["inpaint_widget"][1]["mask"], left_half_mask((1, 28, 28)))


# ---------- the NCSNv2 model (chapter 11b) and the model menu ----------

def test_the_v2_page_score_is_the_undivided_network_over_sigma(drv, site, server, v2):
    """NCSNv2's network takes no level: the page feeds the slider's sigma itself, and its score is the
    package's s(x) / sigma. The package divides by its levels' sigmas (model(x, i) = s(x) / sigma_i), so
    s(x) = model(x, i) sigma_i at any level i, and the page must give model(x, i) sigma_i / sigma."""
    model, sigmas, _ = v2
    d, lab = digits_and_labels()
    fig = live_images.denoise_figure(model, sigmas, d, lab, sigma=0.1, start_model="v2")
    uid = serve_page(drv, site, server, fig, "denoise_v2")
    for sigma in (0.1, 0.013, 0.7):
        set_control(drv, uid, "sigma", sigma)
        idle(drv, uid)
        st, a = state(drv, uid), arrays(drv, uid)
        assert st["model"] == "mnist_ncsn_v2.onnx" and st["level"] is None
        x = img(a["noisy"]).float()
        with torch.no_grad():
            ref = (model(x, torch.tensor([40])).double() * sigmas[40].item() / st["sigma"])
        page = img(a["score"])
        assert (page - ref).abs().max().item() <= SCORE_RTOL * ref.abs().max().item(), (sigma, (page - ref).abs().max())
        text = drv.execute_script(f"return document.getElementById('{uid}').querySelector('pre').textContent")
        assert "the network takes \u03c3 itself" in text
    errors, outside = clean_console(drv, server)
    assert not errors and not outside, (errors, outside)


def test_v2_langevin_steps_and_the_final_denoising_step_are_the_packages(drv, site, server, v2, monkeypatch):
    """NCSNv2's sampler in the page on 3 of its 96 levels (the first, the middle and the last, as the L
    slider spreads them), T = 1, then the final denoising step: each step's noise z is read from the
    page, and annealed_langevin_dynamics(..., final_denoise=True) run with those z on the same levels
    ends where the page ends (the network at its level's sigma; no noise in the denoising step)."""
    model, sigmas, own = v2
    fig = live_images.generate_figure(model, sigmas, torch.rand(4, 1, 28, 28), n_images=4, n_steps_each=1,
                                      eps=own["eps"], convention=own["convention"], seed=2, start_model="v2",
                                      final_denoise=True)
    uid = serve_page(drv, site, server, fig, "generate_v2")
    st = state(drv, uid)
    assert st["model"] == "mnist_ncsn_v2.onnx" and len(st["sigmas"]) == len(sigmas) == 96 and st["final_denoise"]
    set_control(drv, uid, "n_levels", 3)
    st = state(drv, uid)
    levels = st["network_levels"]
    assert levels == [0, 48, 95] and st["sigmas"] == pytest.approx(sigmas[levels].tolist())
    x0 = img(arrays(drv, uid)["start"]).float()
    noise, xs = [], []
    for k in range(3):
        advance(drv, uid, 1)
        a = arrays(drv, uid)
        noise.append(img(a["z"]).float())
        xs.append(img(a["x"]))
        # at sigma_1 = 16.88 the pixels spread over about +-4 sigma_1: that is the level's noise, not a
        # step too large (the figure warns only beyond 1 + 6 sigma_i); one step at level 48 (sigma 0.41)
        # leaves that noise in place: not settled, but no step too large either (a_i / sigma_i^2 = 0.09)
        assert k > 0 or xs[0].abs().max().item() > 20
        st = state(drv, uid)
        assert not st["out_of_range"] and "the step is too large" not in text(drv, uid), k
        far = k > 0 and (xs[k].abs().max().item() > 10 or not torch.isfinite(xs[k]).all())
        assert st["unsettled"] == far and (not far or "have not settled" in text(drv, uid)), (k, st["unsettled"])
        assert k != 1 or far, "after one step at sigma 0.41 the noise of sigma_1 = 16.88 is still there"
    assert not state(drv, uid)["denoised"]
    advance(drv, uid, 1)  # the denoising step
    st, end = state(drv, uid), img(arrays(drv, uid)["x"])
    assert st["denoised"] and st["t"] == st["total"] == 3
    idx = torch.tensor(levels)
    with monkeypatch.context() as mp, torch.no_grad():
        _patched_randn(mp, list(noise))
        out, states = annealed_langevin_dynamics(lambda x, lab: model(x, idx[lab]), x0, sigmas[levels], own["eps"],
                                                 1, keep_every=1, convention=own["convention"], final_denoise=True)
    # float32 in both (the page keeps the chain in float64 and feeds the network float32): steps of
    # a_i s with a_i <= eps sigma_1^2 / sigma_L^2 = 24.5 and |s| up to ~1/sigma_1 agree to ~1e-5
    for k in range(3):
        assert (states[k + 1].double() - xs[k]).abs().max().item() < 1e-3, k
    assert (out.double() - end).abs().max().item() < 1e-3
    # the denoising step moved the chain (sigma_L^2 s is not small at the end of a chain)
    assert (end - xs[-1]).abs().max().item() > 1e-2
    errors, outside = clean_console(drv, server)
    assert not errors and not outside, (errors, outside)


def test_a_v2_inpainting_step_is_the_packages(drv, site, server, v2, monkeypatch):
    """Algorithm 2 with the v2 model (chapter 11b's figure): the first step, with the page's noise,
    equals annealed_langevin_inpainting's with the package's v2 model (division by sigma_1 = 16.88)."""
    model, sigmas, own = v2
    d, lab = digits_and_labels()
    fig = live_images.inpaint_figure(model, sigmas, d, lab, torch.rand(2, 1, 28, 28), index=2, n_completions=2,
                                     n_steps_each=own["n_steps_each"], eps=own["eps"], seed=1, start_model="v2")
    uid = serve_page(drv, site, server, fig, "inpaint_v2")
    start = arrays(drv, uid)
    advance(drv, uid, 1)
    a = arrays(drv, uid)
    mask = torch.tensor(a["mask"], dtype=torch.float32).reshape(1, 28, 28)
    calls = []

    def first_only(x, labels):  # the network for step 1; the package's loop then goes on through the
        calls.append(int(labels[0]))  # other 95 levels with zero score and zero noise (states[1] is step 1)
        return model(x, labels) if len(calls) == 1 else torch.zeros_like(x)

    with monkeypatch.context() as mp, torch.no_grad():
        _patched_randn(mp, [img(a["zy"]).float(), img(a["z"]).float()])
        _, states = annealed_langevin_inpainting(first_only, d[2:3], mask, sigmas, own["eps"], n_steps_each=1,
                                                 n_completions=2, init=img(start["start"]).float(), keep_every=1,
                                                 convention=own["convention"])
    assert calls[0] == 0
    assert (states[1].reshape(2, 1, 28, 28).double() - img(a["x"])).abs().max().item() < 1e-3
    assert state(drv, uid)["sigmas"] == pytest.approx(sigmas.tolist())
    errors, outside = clean_console(drv, server)
    assert not errors and not outside, (errors, outside)


def test_the_model_menu_switches_network_sampler_and_picture(drv, site, server, models, v2):
    """Start at v2 (chapter 11b's figure): the menu offers v1 and v2; choosing v1 sets chapter 10's
    network, its 10 levels and its own sampler (models.json), and its first step is v1's step
    (the package's, with the page's noise); back at v2, the figure's own settings return."""
    model1, sigmas1, _ = models
    model2, sigmas2, own = v2
    fig = live_images.generate_figure(model2, sigmas2, torch.rand(4, 1, 28, 28), n_images=4,
                                      n_steps_each=own["n_steps_each"], eps=own["eps"], convention=own["convention"],
                                      start_model="v2", final_denoise=True)
    uid = serve_page(drv, site, server, fig, "menu_v2")
    options = drv.execute_script(f"return Array.from(document.getElementById('{uid}').querySelector('[name=model]')"
                                 ".options).map(function (o) {{ return o.value; }})")
    assert options == ["mnist_ncsn_v1.onnx", "mnist_ncsn_v2.onnx"]
    # v1 chosen and v2 again at once: v1's session (made now, seconds) answers last, and must not take over
    drv.execute_script(f"""var s = document.getElementById('{uid}').querySelector('[name=model]');
      s.value = 'mnist_ncsn_v1.onnx'; s.dispatchEvent(new Event('change'));
      s.value = 'mnist_ncsn_v2.onnx'; s.dispatchEvent(new Event('change'));""")
    drv.execute_async_script("""var done = arguments[0], L = window.NCSNLive, base = L.onnx.staticBase('');
      L.onnx.session(base, 'mnist_ncsn_v1.onnx').then(function () { setTimeout(done, 200); });""")
    st = state(drv, uid)
    assert (st["model"], len(st["sigmas"]), st["busy"]) == ("mnist_ncsn_v2.onnx", 96, False), st
    advance(drv, uid, 1)
    v2_picture, v2_x = pictures(drv, uid), img(arrays(drv, uid)["x"])
    set_control(drv, uid, "model", "mnist_ncsn_v1.onnx")
    st = switched(drv, uid, 10)
    assert st["model"] == "mnist_ncsn_v1.onnx" and st["sigmas"] == pytest.approx(sigmas1.tolist())
    assert (st["n_steps_each"], st["eps"], st["final_denoise"]) == (100, pytest.approx(2e-5), False)
    x0 = img(arrays(drv, uid)["start"]).float()
    advance(drv, uid, 1)
    a = arrays(drv, uid)
    assert pictures(drv, uid) != v2_picture and not torch.allclose(img(a["x"]), v2_x)
    with monkeypatch_randn([img(a["z"]).float()]), torch.no_grad():
        _, states = annealed_langevin_dynamics(model1, x0, sigmas1, 2e-5, 1, keep_every=1, convention="code")
    assert (states[1].double() - img(a["x"])).abs().max().item() < 1e-4
    set_control(drv, uid, "model", "mnist_ncsn_v2.onnx")
    st = switched(drv, uid, 96)
    assert (st["model"], len(st["sigmas"]), st["n_steps_each"], st["final_denoise"]) == \
        ("mnist_ncsn_v2.onnx", 96, own["n_steps_each"], True)
    advance(drv, uid, 1)
    assert torch.allclose(img(arrays(drv, uid)["x"]), v2_x, atol=1e-9), "the same seed gives v2's first step again"
    errors, outside = clean_console(drv, server)
    assert not errors and not outside, (errors, outside)


def until(drv, uid, ok, timeout=20.0):
    """The figure's state once ``ok(state)`` holds."""
    end = time.time() + timeout
    while time.time() < end:
        st = state(drv, uid)
        if ok(st):
            return st
        time.sleep(0.05)
    raise AssertionError(f"the figure never reached the state asked for: {st}")


def switched(drv, uid, n_levels, timeout=30.0):
    """The state once the figure runs a model of ``n_levels`` levels (its session loads first)."""
    end = time.time() + timeout
    while time.time() < end:
        st = state(drv, uid)
        if len(st["sigmas"]) == n_levels and not st["busy"]:
            return st
        time.sleep(0.1)
    raise AssertionError(f"the figure did not switch to a model of {n_levels} levels")


class monkeypatch_randn:
    """torch.randn as _patched_randn, for a with-block."""

    def __init__(self, queue):
        self.mp, self.queue = pytest.MonkeyPatch(), queue

    def __enter__(self):
        _patched_randn(self.mp, self.queue)

    def __exit__(self, *exc):
        self.mp.undo()
