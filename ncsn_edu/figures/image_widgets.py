"""The image chapters' live figures in a kernel: denoise, generate and inpaint MNIST digits with
ipywidgets and PyTorch (chapters 10 and 11).

On the built site these figures run in the reader's browser (:mod:`ncsn_edu.figures.live_images`,
onnxruntime-web); in Jupyter and Colab those functions return the widgets made here, which compute
with the package itself: the score network at a level, :func:`ncsn_edu.sampling.annealed_langevin_dynamics`
(Algorithm 1) and :func:`ncsn_edu.images.inpainting.annealed_langevin_inpainting` (Algorithm 2), on
the GPU when there is one (``device=None``), under ``torch.no_grad``.

* :func:`denoise_widget`: a test digit, ``sigma`` on a log slider from 0.01 to 1; the network
  knows only its levels, so it gets the level nearest to ``sigma`` in log sigma, and the widget
  says which. It shows the noisy digit ``x~ = x + sigma z``, the score ``s(x~, level)``, the
  one-step (Tweedie) denoised ``x~ + sigma^2 s`` and its error against the clean digit.
* :func:`generate_widget`: Algorithm 1 on 4 to 16 digits with controls for L, T, eps, the step
  convention (named as in the toy figures) and the seed; Run, Pause and Reset; a mode that runs
  one noise level only (the appendix's baseline network trained at sigma = 0.01, or the NCSN's
  last level).
* :func:`inpaint_widget`: a preset mask or a rectangle over a test digit, Algorithm 2's
  completions side by side with the digit classifier's reading of each.

A chain runs in a background thread, so the kernel stays responsive and Pause and Reset act
while it runs. The package's sampler is called unchanged: only the network is wrapped, in a
function that before each step shows a frame (at most every :data:`FRAME_SECONDS`), waits while
paused, stops on Reset, and stops the chain with a message when its state has left any sensible
range (eps too large) instead of running on to NaN.

Each widget is an ipywidgets ``VBox`` (ipywidgets 7.7, as Colab ships, and 8) with three more
attributes for tests and the curious: ``controls`` (name -> control), ``state`` (the tensors and
numbers last shown) and ``wait(timeout)`` (until a running chain ends).
Introduced in chapter 10 (NCSN on MNIST).
"""

from __future__ import annotations

import copy
import io
import math
import threading
import time

import numpy as np
import torch

from ncsn_edu.figures.plotting import image_grid
from ncsn_edu.images.inpainting import annealed_langevin_inpainting, left_half_mask
from ncsn_edu.sampling import annealed_langevin_dynamics

#: Shortest time between two frames of a running chain (seconds): on a GPU a step takes
#: milliseconds, and a frame per step would only flood the front end.
FRAME_SECONDS = 0.1
#: A chain has diverged when a pixel lies more than this many times the network's largest noise
#: level sigma_1 beyond [0, 1] (or is not finite): it is stopped and the widget says so. A
#: step eps too large does not always end in inf and NaN: the network normalises its input, so
#: its output stays bounded and the chain wanders off to pixels of hundreds (the ngf-16 MNIST
#: model with the code's eps = 1e-2: 289 after 3 steps at sigma_1 = 1; 27.6 with 1e-3, which
#: then comes back).
DIVERGED = 100.0
#: The step conventions, named as in the toy figures (``ncsn_edu/figures/live_js/ncsn_sampler.js``).
CONVENTIONS = [("paper: \u03b1\u1d62/2, \u221a\u03b1\u1d62", "paper"),
               ("official code: a\u1d62, \u221a(2a\u1d62)", "code")]
#: The inpainting masks the reader picks from (the hidden part; 1 = known pixel in the mask).
MASKS = ("right half", "bottom half", "centre square", "random quarter", "rectangle", "everything")
SIGMA_RANGE = (0.01, 1.0)


# ----------------------------------------------------------------------------- helpers

def pick_device(device=None) -> torch.device:
    """``device``, or CUDA when there is one (Colab's GPU) and the CPU otherwise."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def on_device(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` in eval mode on ``device``: itself when it is there already, else a copy
    (the chapter's own model stays where it is)."""
    p = next(model.parameters(), None)
    if p is not None and p.device != device:
        model = copy.deepcopy(model).to(device)
    return model.eval()


def nearest_level(sigmas, sigma: float) -> int:
    """The index of the level nearest to ``sigma`` in log sigma (the levels are geometric)."""
    s = torch.as_tensor(sigmas, dtype=torch.float64).cpu()
    return int((s.log() - math.log(sigma)).abs().argmin())


def level_subset(n_levels: int, count: int) -> list[int]:
    """``count`` of a network's ``n_levels`` level indices spread evenly (the first and last
    always among them; ``count = 1`` is the last level alone), as the page's
    ``NCSNLive.levelSubset``."""
    count = max(1, min(n_levels, int(round(count))))
    if count == 1:
        return [n_levels - 1]
    return [int(math.floor(j * (n_levels - 1) / (count - 1) + 0.5)) for j in range(count)]


def png(array, scale: int = 4, cmap=None, vmax: float = 1.0) -> bytes:
    """PNG bytes of a 2-D array: grey on [0, 1] (clamped), or with ``cmap`` (a matplotlib
    colormap name) on [-vmax, vmax]; each pixel a ``scale x scale`` block."""
    from PIL import Image

    a = np.asarray(array, dtype=np.float64)
    if cmap is None:
        rgb = (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)
    else:
        import matplotlib

        colors = matplotlib.colormaps[cmap]((np.clip(a / vmax, -1, 1) + 1) / 2)[..., :3]
        rgb = (colors * 255 + 0.5).astype(np.uint8)
    img = Image.fromarray(rgb)
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="png")
    return buf.getvalue()


def grid_png(images, per_row: int = 8, scale: int = 3) -> bytes:
    """PNG of images ``(N, 1, 28, 28)`` (clamped to [0, 1]) in rows of ``per_row``."""
    images = images.detach().float().cpu()
    return png(image_grid(images, -(-len(images) // per_row)), scale)


def _check_digits(digits, index):
    digits = torch.as_tensor(digits).float()
    if digits.dim() != 4 or tuple(digits.shape[1:]) != (1, 28, 28) or len(digits) == 0:
        raise ValueError(f"digits must have shape (N, 1, 28, 28) with N >= 1, got {tuple(digits.shape)}")
    if not 0 <= index < len(digits):
        raise ValueError(f"index {index} is outside 0..{len(digits) - 1}")
    return digits


def _check_sampler(n_steps_each, eps, convention):
    if convention not in ("paper", "code"):
        raise ValueError("convention must be 'paper' or 'code'")
    if not (eps > 0 and n_steps_each >= 1):
        raise ValueError(f"eps must be positive and n_steps_each at least 1, got {eps} and {n_steps_each}")


def _widgets():
    import ipywidgets

    return ipywidgets


def _style():
    return {"description_width": "initial"}


def _panel(widgets, caption: str, width: int = 120):
    label = widgets.HTML(value=caption, layout=widgets.Layout(width=f"{width + 10}px"))
    image = widgets.Image(format="png", layout=widgets.Layout(width=f"{width}px"))
    return widgets.VBox([label, image]), label, image


# ----------------------------------------------------------------------------- a watched chain

class _Stopped(Exception):
    """Reset (or a changed control) ended the chain."""


class _Diverged(Exception):
    def __init__(self, step: int, level: int, size: float):
        super().__init__(f"diverged at step {step}")
        self.step, self.level, self.size = step, level, size


class Chain:
    """One call of a package sampler in a background thread, with its network wrapped.

    ``start(call, net, total)`` runs ``call(score_fn)`` in a thread, where ``score_fn(x, labels)``
    is ``net(x, labels)`` preceded, at each step, by: stop on :meth:`stop`; wait while paused;
    stop with :class:`_Diverged` when ``x`` is not finite or beyond ``bound`` in size; call
    ``show(x, t, label)`` (``x`` the state after ``t`` steps) at the first step, at each new
    level and at least :data:`FRAME_SECONDS` apart. ``finish(result, error, seconds)`` is called
    at the end (``error``: None, a :class:`_Diverged` or another exception; not called on stop;
    ``seconds`` leaves out the time spent paused).
    """

    def __init__(self, show, finish, bound: float = math.inf):
        self.show, self.finish, self.bound = show, finish, bound
        self.thread = None
        self._go = threading.Event()
        self._stop = False
        self.waiting = threading.Event()  # set while the thread waits in a pause
        self.t, self.paused_seconds = 0, 0.0

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    @property
    def paused(self) -> bool:
        return self.running and not self._go.is_set()

    def start(self, call, net, total: int) -> None:
        self.stop()
        self._stop, self.t, self.paused_seconds = False, 0, 0.0
        self._go.set()
        last = {"time": -math.inf, "label": None}

        def score_fn(x, labels):
            if not self._go.is_set():
                t_pause = time.perf_counter()
                self.waiting.set()
                while not self._go.wait(0.05):
                    pass
                self.waiting.clear()
                self.paused_seconds += time.perf_counter() - t_pause
            if self._stop:
                raise _Stopped
            label = int(labels[0])
            size = x.abs().max().item()
            if not math.isfinite(size) or size > self.bound:
                raise _Diverged(self.t, label, size)
            now = time.perf_counter()
            if self.t == 0 or label != last["label"] or now - last["time"] >= FRAME_SECONDS:
                self.show(x, self.t, label)
                last["time"], last["label"] = time.perf_counter(), label
            self.t += 1
            return net(x, labels)

        def body():
            t0 = time.perf_counter()
            try:
                with torch.no_grad():
                    result = call(score_fn)
            except _Stopped:
                return
            except Exception as err:  # shown on the widget: a thread's traceback would be lost
                self.finish(None, err, self.seconds(t0))
                return
            self.finish(result, None, self.seconds(t0))

        self.thread = threading.Thread(target=body, daemon=True)
        self.thread.start()

    def seconds(self, t0: float) -> float:
        """Seconds since ``t0`` less the time spent paused."""
        return time.perf_counter() - t0 - self.paused_seconds

    def pause(self) -> None:
        self._go.clear()

    def resume(self) -> None:
        self._go.set()

    def stop(self) -> None:
        """End a running chain (it stops before its next network call) and wait for it."""
        if self.running:
            self._stop = True
            self._go.set()
            self.thread.join()
        self._stop = False

    def join(self, timeout=None) -> bool:
        """Wait until the chain ends; True when it has."""
        if self.thread is not None:
            self.thread.join(timeout)
        return not self.running

    def wait_paused(self, timeout: float = 10.0) -> bool:
        """Wait until the thread sits in a pause (for tests); True when it does."""
        return self.waiting.wait(timeout)


def bound_for(sigmas) -> float:
    """The size beyond which a chain of a network with levels ``sigmas`` has diverged:
    ``1 + DIVERGED * sigma_1``."""
    return 1.0 + DIVERGED * float(torch.as_tensor(sigmas).max())


def _speed(t: int, total: int, seconds=None) -> str:
    """``; 0.31 s per step, about 290 s left`` once a step has been timed (under a second: said so,
    never "about 0 s")."""
    if not seconds or t < 1:
        return ""
    per, left = seconds / t, seconds / t * (total - t)
    if t >= total:
        return f"; {per:.3f} s per step"
    return f"; {per:.3f} s per step, " + ("under a second left" if left < 1 else f"about {left:.0f} s left")


def _diverged_text(err: _Diverged, sigmas_shown, eps: float, bound: float) -> str:
    sigma = sigmas_shown[err.level] if err.level < len(sigmas_shown) else float("nan")
    what = "not finite" if not math.isfinite(err.size) else f"{err.size:.3g} in size"
    return (f"<pre><b>The chain diverged</b> at step {err.step} (level {err.level + 1}, \u03c3 = {sigma:.3g}):\n"
            f"a pixel became {what}, beyond {bound:.3g} = 1 + {DIVERGED:g} \u03c3\u2081 (the data lie in [0, 1]).\n"
            f"The step \u03b5 = {eps:.2g} is too large for this network; lower \u03b5 and press Run.</pre>")


# ----------------------------------------------------------------------------- denoise

def denoise_widget(model, sigmas, digits, sigma: float = 0.1, index: int = 0, seed: int = 0, *,
                   labels=None, device=None):
    """Denoise a test digit at any noise level ``sigma`` (0.01 to 1) with one step of Tweedie's
    formula and the network's score.

    ``model(x, labels)`` is the level-conditioned score network with levels ``sigmas`` (largest
    first); ``digits`` are test digits ``(N, 1, 28, 28)`` in [0, 1] (``labels``: their classes,
    shown when given). For the digit ``index``, the noise is ``x~ = x + sigma z`` with ``z``
    ``torch.randn`` of shape ``(1, 1, 28, 28)`` from a generator seeded ``seed`` on the device; the
    network gets the level ``i`` nearest to ``sigma`` in log sigma; the widget shows ``x~``, the
    score ``s = s(x~, i)``, the denoised ``x~ + sigma^2 s`` (the slider's ``sigma``: the noise the
    digit has) and its error against ``x``, with the root-mean-square errors of ``x~`` and of the
    denoised digit printed. The sigma slider redraws while it is dragged on a GPU, and when it is
    let go on a CPU (where one redraw of the ngf-16 network takes 0.1 to 0.2 s on the book's
    busy 2-core machine).
    Introduced in chapter 10 (NCSN on MNIST).
    """
    w = _widgets()
    digits = _check_digits(digits, index)
    if not SIGMA_RANGE[0] <= sigma <= SIGMA_RANGE[1]:
        raise ValueError(f"sigma must lie in [{SIGMA_RANGE[0]}, {SIGMA_RANGE[1]}], got {sigma}")
    dev = pick_device(device)
    net = on_device(model, dev)
    sig = torch.as_tensor(sigmas, dtype=torch.float64).cpu()
    c = {
        "index": w.IntSlider(value=index, min=0, max=len(digits) - 1, description="test digit",
                             continuous_update=False, style=_style()),
        "sigma": w.FloatLogSlider(value=sigma, base=10, min=math.log10(SIGMA_RANGE[0]), max=math.log10(SIGMA_RANGE[1]),
                                  step=0.01, description="noise \u03c3", readout_format=".3f",
                                  continuous_update=dev.type == "cuda", style=_style()),
        "seed": w.BoundedIntText(value=seed, min=0, max=2**31 - 1, description="noise seed", style=_style(),
                                 layout=w.Layout(width="180px")),
    }
    names = ["clean digit x", "noisy x\u0303 = x + \u03c3z", "score s(x\u0303, \u03c3\u1d62)",
             "denoised x\u0303 + \u03c3\u00b2s", "error: denoised \u2212 x"]
    panels = [_panel(w, n) for n in names]
    text = w.HTML()
    state: dict = {}

    def update(change=None):
        k, s = int(c["index"].value), float(c["sigma"].value)
        x = digits[k : k + 1].to(dev)
        g = torch.Generator(device=dev).manual_seed(int(c["seed"].value))
        z = torch.randn(x.shape, generator=g, device=dev)
        noisy = x + s * z
        i = nearest_level(sig, s)
        with torch.no_grad():
            score = net(noisy, torch.full((1,), i, dtype=torch.long, device=dev))
        denoised = noisy + s**2 * score
        err = denoised - x
        rms_noisy, rms_den = (noisy - x).pow(2).mean().sqrt().item(), err.pow(2).mean().sqrt().item()
        smax = score.abs().max().item() or 1.0
        pics = [png(x[0, 0].cpu()), png(noisy[0, 0].cpu()), png(score[0, 0].cpu(), cmap="RdBu_r", vmax=smax),
                png(denoised[0, 0].cpu()), png(err[0, 0].cpu(), cmap="RdBu_r", vmax=1.0)]
        for (_, _, image), pic in zip(panels, pics):
            image.value = pic
        digit = f" (a {int(labels[k])})" if labels is not None else ""
        text.value = (
            f"<pre>test digit {k}{digit}, noise \u03c3 = {s:.4f}\n"
            f"the network knows {len(sig)} levels: it gets the nearest in log \u03c3, level {i + 1} "
            f"(\u03c3\u1d62 = {sig[i].item():.4f})\n"
            f"denoised = x\u0303 + \u03c3\u00b2 s(x\u0303, \u03c3\u1d62) with your \u03c3 = {s:.4f}\n"
            f"root-mean-square error per pixel against x: noisy {rms_noisy:.4f}, denoised {rms_den:.4f}\n"
            f"score: red +, blue \u2212, largest |s| = {smax:.3g}; error: red +1, blue \u22121</pre>")
        state.update(x=x.cpu(), noisy=noisy.cpu(), score=score.cpu(), denoised=denoised.cpu(), level=i,
                     sigma=s, rms_noisy=rms_noisy, rms_denoised=rms_den)

    for ctl in c.values():
        ctl.observe(update, names="value")
    update()
    box = w.VBox([w.HBox([c["index"], c["sigma"], c["seed"]]), w.HBox([p[0] for p in panels]), text])
    box.controls, box.state, box.wait = c, state, (lambda timeout=None: True)
    return box


# ----------------------------------------------------------------------------- sampler controls

def _sampler_controls(w, n_levels: int, n_steps_each: int, eps: float, convention: str, seed: int) -> dict:
    return {
        "n_levels": w.IntSlider(value=n_levels, min=1, max=n_levels, description="levels L",
                                continuous_update=False, style=_style()),
        "n_steps_each": w.IntSlider(value=n_steps_each, min=1, max=max(1000, n_steps_each),
                                    description="steps per level T", continuous_update=False, style=_style()),
        "eps": w.FloatLogSlider(value=eps, base=10, min=-7, max=-1, step=0.1, description="step \u03b5",
                                readout_format=".1e", continuous_update=False, style=_style()),
        "convention": w.Dropdown(options=CONVENTIONS, value=convention, description="step convention",
                                 style=_style()),
        "seed": w.BoundedIntText(value=seed, min=0, max=2**31 - 1, description="seed", style=_style(),
                                 layout=w.Layout(width="160px")),
    }


def _buttons(w):
    run = w.Button(description="Run", button_style="success", icon="play")
    pause = w.Button(description="Pause", icon="pause")
    reset = w.Button(description="Reset", icon="refresh")
    return run, pause, reset


# ----------------------------------------------------------------------------- generate

def generate_widget(model, sigmas, n_images: int = 8, n_steps_each: int = 100, eps: float = 2e-5,
                    convention: str = "code", seed: int = 0, mode: str = "annealed", *, baseline=None,
                    device=None, final_denoise: bool = False):
    """Annealed Langevin dynamics (Algorithm 1) on ``n_images`` (4 to 16) digits, live.

    Controls: the number of digits, L (``L`` of the network's levels spread evenly in log sigma,
    the first and last always among them; L = 1 is the last level alone), T
    (``n_steps_each``), eps and the step ``convention`` (as
    :func:`ncsn_edu.sampling.annealed_langevin_dynamics`; the defaults are the package's,
    ``TrainConfig.sample_eps`` and ``sample_steps_each`` with the official code's step), the seed,
    and the ``mode``: ``"annealed"``; ``"single"``, the appendix's baseline network trained at
    sigma = 0.01 alone (``baseline=(model, sigmas)``; None loads the book's
    ``mnist_baseline_sigma001.pt``; False offers the NCSN's last level instead), L x T steps at its
    one level; ``"last"``, the NCSN's last level alone for L x T steps. The start is
    ``torch.rand((n, 1, 28, 28))`` of a generator seeded ``seed`` on the device, and the same
    generator then draws the chain's noise, so a run repeats
    ``annealed_langevin_dynamics(score, x0, sigmas, eps, T, generator)`` exactly; the check box
    ``final_denoise`` (NCSNv2's sampler, chapter 11b) adds its last step ``x + sigma_L^2 s``.
    Introduced in chapter 10 (NCSN on MNIST).
    """
    w = _widgets()
    _check_sampler(n_steps_each, eps, convention)
    if not 4 <= n_images <= 16:
        raise ValueError(f"n_images must lie in 4..16, got {n_images}")
    modes = [("annealed: Algorithm 1 over the levels", "annealed")]
    if baseline is not False:
        modes.append(("one level, \u03c3 = 0.01: the appendix's baseline network", "single"))
    modes.append(("one level: the NCSN's last level \u03c3_L alone", "last"))
    if mode not in [m for _, m in modes]:
        raise ValueError(f"mode must be one of {', '.join(m for _, m in modes)}, got {mode!r}")
    dev = pick_device(device)
    net = on_device(model, dev)
    sig = torch.as_tensor(sigmas, dtype=torch.float64).cpu()
    base = {"given": baseline}
    c = {"n_images": w.IntSlider(value=n_images, min=4, max=16, description="digits", continuous_update=False,
                                 style=_style()),
         **_sampler_controls(w, len(sig), n_steps_each, eps, convention, seed),
         "mode": w.Dropdown(options=modes, value=mode, description="mode", style=_style(),
                            layout=w.Layout(width="460px")),
         "final_denoise": w.Checkbox(value=bool(final_denoise), description="final denoising step x + \u03c3_L\u00b2 s",
                                     indent=False)}
    run_b, pause_b, reset_b = _buttons(w)
    image = w.Image(format="png")
    progress = w.IntProgress(value=0, min=0, max=1, description="step", style=_style())
    text = w.HTML()
    state: dict = {}

    def baseline_net():
        if base.get("net") is None:
            given = base["given"]
            if given is None:
                from ncsn_edu.images.checkpoints import load_checkpoint
                from ncsn_edu.resources import resource_path

                given = load_checkpoint(resource_path("mnist_baseline_sigma001.pt"))[:2]
            bmodel, bsig = given
            base["net"], base["sigmas"] = on_device(bmodel, dev), torch.as_tensor(bsig, dtype=torch.float64).cpu()
        return base["net"], base["sigmas"]

    def plan():
        """(network, its level index of each chain level, the chain's sigmas, steps per level)."""
        m, count, T = c["mode"].value, int(c["n_levels"].value), int(c["n_steps_each"].value)
        if m == "annealed":
            levels = level_subset(len(sig), count)
            return net, levels, sig[levels], T
        if m == "single":
            bnet, bsig = baseline_net()
            return bnet, [len(bsig) - 1], bsig[-1:], count * T
        return net, [len(sig) - 1], sig[-1:], count * T

    def start_state():
        g = torch.Generator(device=dev).manual_seed(int(c["seed"].value))
        return g, torch.rand((int(c["n_images"].value), 1, 28, 28), generator=g, device=dev)

    def describe(t, total, levels, sigmas_run, j, seconds=None):
        lvl = (f"level {j + 1} of {len(sigmas_run)}, \u03c3 = {sigmas_run[j].item():.4f}"
               + (f" (network level {levels[j] + 1})" if c["mode"].value == "annealed" else
                  " (one level only: plain Langevin, L x T steps)"))
        return f"<pre>{lvl}\nstep {t} of {total}{_speed(t, total, seconds)}{why(sigmas_run)}</pre>"

    def why(sigmas_run):
        """In the baseline's mode: why its chains stay noise."""
        if c["mode"].value != "single":
            return ""
        return ("\nthe appendix's baseline: this network saw only digits with noise of size "
                f"{sigmas_run[0].item():g} in training, so its scores far from the data are not learned;\n"
                "from noise, Langevin at this one \u03c3 does not reach digits in the steps given "
                "(Algorithm 1 starts at a large \u03c3)")

    def show_frame(x, t, j):
        _, levels, sigmas_run, T = state["plan"]
        state.update(x=x.detach().cpu(), t=t, level=j)
        image.value = grid_png(x)
        progress.value = t
        text.value = describe(t, progress.max, levels, sigmas_run, j, chain.seconds(state["t0"]))

    def finish(result, error, seconds):
        _, levels, sigmas_run, T = state["plan"]
        eps_now = float(c["eps"].value)
        if isinstance(error, _Diverged):
            state.update(diverged=error.step, error=None)
            text.value = _diverged_text(error, sigmas_run.tolist(), eps_now, chain.bound)
            return
        if error is not None:
            state.update(error=error)
            text.value = f"<pre>the chain stopped: {type(error).__name__}: {error}</pre>"
            return
        size = result.abs().max().item()
        if not math.isfinite(size) or size > chain.bound:
            err = _Diverged(progress.max, len(sigmas_run) - 1, size)
            state.update(diverged=err.step, error=None)
            text.value = _diverged_text(err, sigmas_run.tolist(), eps_now, chain.bound)
            return
        state.update(x=result.detach().cpu(), t=progress.max, done=True, seconds=seconds,
                     seconds_per_step=seconds / progress.max)
        image.value = grid_png(result)
        progress.value = progress.max
        text.value = (f"<pre>done: {progress.max} steps in {seconds:.1f} s ({seconds / progress.max:.3f} s per step "
                      f"on {dev.type})\npixels from {result.min().item():.2f} to {result.max().item():.2f}, "
                      f"shown clamped to [0, 1]{why(sigmas_run)}</pre>")

    chain = Chain(show_frame, finish, bound_for(sig))

    def reset(change=None):
        chain.stop()
        try:
            net_run, levels, sigmas_run, T = plan()
        except Exception as err:  # the baseline's file unreadable, say: shown, not lost in a callback
            state.clear()
            state.update(error=err, t=0, done=False, diverged=None)
            text.value = f"<pre>cannot run this mode: {type(err).__name__}: {err}</pre>"
            return
        g, x0 = start_state()
        state.clear()
        state.update(plan=(net_run, levels, sigmas_run, T), generator=g, x0=x0.cpu(), x=x0.cpu(), t=0, done=False,
                     diverged=None, error=None, t0=time.perf_counter())
        progress.value = 0
        progress.max = len(sigmas_run) * T
        image.value = grid_png(x0)
        text.value = describe(0, progress.max, levels, sigmas_run, 0) + "<pre>press Run</pre>"

    def run(_=None):
        if chain.paused:
            chain.resume()
            return
        if chain.running:
            return
        if state.get("t", 0) != 0 or state.get("done") or state.get("diverged") is not None or "plan" not in state:
            reset()
        if "plan" not in state:
            return
        net_run, levels, sigmas_run, T = state["plan"]
        lev = torch.tensor(levels, dtype=torch.long, device=dev)
        g, x0 = state["generator"], state["x0"].to(dev)
        eps_now, conv = float(c["eps"].value), c["convention"].value
        denoise = bool(c["final_denoise"].value)
        state["t0"] = time.perf_counter()

        def call(score_fn):
            return annealed_langevin_dynamics(score_fn, x0, sigmas_run, eps_now, T, generator=g, convention=conv,
                                              final_denoise=denoise)

        chain.start(call, lambda x, lab: net_run(x, lev[lab]), progress.max)

    for ctl in c.values():
        ctl.observe(reset, names="value")
    run_b.on_click(run)
    pause_b.on_click(lambda _: chain.pause())
    reset_b.on_click(reset)
    reset()
    controls = w.VBox([w.HBox([c["mode"], c["n_images"]]),
                       w.HBox([c["n_levels"], c["n_steps_each"], c["eps"]]),
                       w.HBox([c["convention"], c["seed"], c["final_denoise"], run_b, pause_b, reset_b])])
    box = w.VBox([controls, progress, image, text])
    c.update(run=run_b, pause=pause_b, reset=reset_b)
    box.controls, box.state, box.wait, box.chain = c, state, chain.join, chain
    return box


# ----------------------------------------------------------------------------- inpaint

def preset_mask(name: str, seed: int = 0, rows=(7, 21), cols=(7, 21)) -> torch.Tensor:
    """A mask ``(1, 28, 28)`` (1 = known, 0 = generated) that hides: ``"right half"`` (the
    package's :func:`left_half_mask`), ``"bottom half"``, ``"centre square"`` (rows and columns
    7 to 20), ``"random quarter"`` (196 of the 784 pixels, a permutation from a generator seeded
    ``seed``), ``"rectangle"`` (rows ``rows[0]`` to ``rows[1] - 1``, columns likewise) or
    ``"everything"`` (unconditional generation).
    Introduced in chapter 11 (MNIST inpainting and sample quality)."""
    if name == "right half":
        return left_half_mask((1, 28, 28))
    m = torch.ones(1, 28, 28)
    if name == "bottom half":
        m[:, 14:, :] = 0
    elif name == "centre square":
        m[:, 7:21, 7:21] = 0
    elif name == "random quarter":
        hide = torch.randperm(784, generator=torch.Generator().manual_seed(seed))[:196]
        m.view(-1)[hide] = 0
    elif name == "rectangle":
        (r0, r1), (c0, c1) = rows, cols
        m[:, r0:r1, c0:c1] = 0
    elif name == "everything":
        m.zero_()
    else:
        raise ValueError(f"unknown mask {name!r}; choose one of {', '.join(MASKS)}")
    return m


def inpaint_widget(model, sigmas, digits, index: int = 0, mask=None, n_completions: int = 4,
                   n_steps_each: int = 100, eps: float = 2e-5, convention: str = "code", seed: int = 0,
                   classifier=None, *, labels=None, device=None):
    """Inpainting with annealed Langevin dynamics (Algorithm 2) of a test digit, live.

    The reader picks the digit, the hidden part (:func:`preset_mask`: right half, bottom half,
    centre square, a random quarter of the pixels, a rectangle set by row and column sliders,
    everything; ``mask``: a ``(1, 28, 28)`` tensor of 0 and 1 offered as "given", or a preset's
    name; None is the right half, as the paper's Figure 6), the number of completions (1 to 8),
    L, T, eps, the step convention and the seed. A run is
    ``annealed_langevin_inpainting(score, digit, mask, sigmas, eps, T, n_completions, generator)``
    with a generator seeded ``seed`` on the device (drawing the start and then the noise), shown as
    it runs; at the end ``classifier`` (an MNIST classifier) reads each completion (clamped to
    [0, 1]).
    Introduced in chapter 11 (MNIST inpainting and sample quality).
    """
    w = _widgets()
    digits = _check_digits(digits, index)
    _check_sampler(n_steps_each, eps, convention)
    if not 1 <= n_completions <= 8:
        raise ValueError(f"n_completions must lie in 1..8, got {n_completions}")
    given = None
    if isinstance(mask, str):
        preset_mask(mask)  # a clear error for an unknown name
        first = mask
    elif mask is None:
        first = "right half"
    else:
        given = torch.as_tensor(mask).float().reshape(1, 28, 28)
        if not torch.all((given == 0) | (given == 1)):
            raise ValueError("mask must hold only 0 (generate) and 1 (known)")
        first = "given"
    dev = pick_device(device)
    net = on_device(model, dev)
    clf = on_device(classifier, dev) if classifier is not None else None
    sig = torch.as_tensor(sigmas, dtype=torch.float64).cpu()
    options = ([("the mask given", "given")] if given is not None else []) + [(f"hide {m}", m) for m in MASKS]
    c = {"index": w.IntSlider(value=index, min=0, max=len(digits) - 1, description="test digit",
                              continuous_update=False, style=_style()),
         "mask": w.Dropdown(options=options, value=first, description="mask", style=_style()),
         "rows": w.IntRangeSlider(value=(7, 21), min=0, max=28, description="rectangle rows",
                                  continuous_update=False, style=_style()),
         "cols": w.IntRangeSlider(value=(7, 21), min=0, max=28, description="rectangle columns",
                                  continuous_update=False, style=_style()),
         "n_completions": w.IntSlider(value=n_completions, min=1, max=8, description="completions",
                                      continuous_update=False, style=_style()),
         **_sampler_controls(w, len(sig), n_steps_each, eps, convention, seed)}
    run_b, pause_b, reset_b = _buttons(w)
    occluded = _panel(w, "known pixels (hidden: grey)")
    original = _panel(w, "original")
    image = w.Image(format="png")
    progress = w.IntProgress(value=0, min=0, max=1, description="step", style=_style())
    text = w.HTML()
    state: dict = {}

    def current_mask():
        name = c["mask"].value
        if name == "given":
            return given.clone()
        return preset_mask(name, int(c["seed"].value), c["rows"].value, c["cols"].value)

    def plan():
        levels = level_subset(len(sig), int(c["n_levels"].value))
        return levels, sig[levels], int(c["n_steps_each"].value)

    def describe(t, j, seconds=None):
        levels, sigmas_run, _ = state["plan"]
        return (f"<pre>level {j + 1} of {len(sigmas_run)}, \u03c3 = {sigmas_run[j].item():.4f} (network level "
                f"{levels[j] + 1})\nstep {t} of {progress.max}{_speed(t, progress.max, seconds)}</pre>")

    def readings(x):
        if clf is None:
            return None
        with torch.no_grad():
            p = torch.softmax(clf(x.clamp(0, 1).to(dev)), dim=1)
        conf, pred = p.max(1)
        return pred.cpu().tolist(), conf.cpu().tolist()

    def show_frame(x, t, j):
        k = int(c["n_completions"].value)
        state.update(x=x.detach().cpu().reshape(1, k, 1, 28, 28), t=t, level=j)
        image.value = grid_png(x.reshape(k, 1, 28, 28), per_row=8)
        progress.value = t
        text.value = describe(t, j, chain.seconds(state["t0"]))

    def finish(result, error, seconds):
        levels, sigmas_run, _ = state["plan"]
        if isinstance(error, _Diverged):
            state.update(diverged=error.step)
            text.value = _diverged_text(error, sigmas_run.tolist(), float(c["eps"].value), chain.bound)
            return
        if error is not None:
            state.update(error=error)
            text.value = f"<pre>the chain stopped: {type(error).__name__}: {error}</pre>"
            return
        size = result.abs().max().item()
        if not math.isfinite(size) or size > chain.bound:
            err = _Diverged(progress.max, len(sigmas_run) - 1, size)
            state.update(diverged=err.step)
            text.value = _diverged_text(err, sigmas_run.tolist(), float(c["eps"].value), chain.bound)
            return
        out = result.detach().cpu()
        read = readings(out[0])
        state.update(x=out, completions=out, t=progress.max, done=True, seconds=seconds,
                     seconds_per_step=seconds / progress.max, readings=read)
        image.value = grid_png(out[0], per_row=8)
        progress.value = progress.max
        lines = (f"done: {progress.max} steps in {seconds:.1f} s ({seconds / progress.max:.3f} s per step on "
                 f"{dev.type})\npixels from {out.min().item():.2f} to {out.max().item():.2f}, shown clamped to [0, 1]")
        if read is not None:
            truth = f" (the digit is a {int(labels[int(c['index'].value)])})" if labels is not None else ""
            lines += (f"\nthe digit classifier reads the completions, left to right{truth}:\n  "
                      + ", ".join(f"{d} ({p:.2f})" for d, p in zip(*read)))
        text.value = f"<pre>{lines}</pre>"

    chain = Chain(show_frame, finish, bound_for(sig))

    def reset(change=None):
        chain.stop()
        c["rows"].disabled = c["cols"].disabled = c["mask"].value != "rectangle"
        k = int(c["index"].value)
        m = current_mask()
        x = digits[k : k + 1]
        state.clear()
        state.update(plan=plan(), mask=m, digit=x, t=0, done=False, diverged=None, error=None,
                     t0=time.perf_counter())
        levels, sigmas_run, T = state["plan"]
        progress.value = 0
        progress.max = len(sigmas_run) * T
        shown = x[0, 0] * m[0] + 0.5 * (1 - m[0])
        occluded[2].value, original[2].value = png(shown), png(x[0, 0])
        n = int(c["n_completions"].value)
        image.value = grid_png(x.expand(n, -1, -1, -1) * m + 0.5 * (1 - m), per_row=8)
        text.value = describe(0, 0) + "<pre>press Run</pre>"

    def run(_=None):
        if chain.paused:
            chain.resume()
            return
        if chain.running:
            return
        if state.get("t", 0) != 0 or state.get("done") or state.get("diverged") is not None:
            reset()
        levels, sigmas_run, T = state["plan"]
        lev = torch.tensor(levels, dtype=torch.long, device=dev)
        g = torch.Generator(device=dev).manual_seed(int(c["seed"].value))
        x, m = state["digit"].to(dev), state["mask"].to(dev)
        eps_now, conv, k = float(c["eps"].value), c["convention"].value, int(c["n_completions"].value)
        state["t0"] = time.perf_counter()

        def call(score_fn):
            return annealed_langevin_inpainting(score_fn, x, m, sigmas_run, eps_now, T, n_completions=k,
                                                generator=g, convention=conv)

        chain.start(call, lambda xx, lab: net(xx, lev[lab]), progress.max)

    for ctl in c.values():
        ctl.observe(reset, names="value")
    run_b.on_click(run)
    pause_b.on_click(lambda _: chain.pause())
    reset_b.on_click(reset)
    reset()
    controls = w.VBox([w.HBox([c["index"], c["mask"], c["n_completions"]]),
                       w.HBox([c["rows"], c["cols"]]),
                       w.HBox([c["n_levels"], c["n_steps_each"], c["eps"]]),
                       w.HBox([c["convention"], c["seed"], run_b, pause_b, reset_b])])
    box = w.VBox([controls, w.HBox([occluded[0], original[0]]), progress,
                  w.HTML("completions (pixels shown clamped to [0, 1])"), image, text])
    c.update(run=run_b, pause=pause_b, reset=reset_b)
    box.controls, box.state, box.wait, box.chain = c, state, chain.join, chain
    return box
