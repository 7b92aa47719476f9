"""Live figures on MNIST: the book's score network running in the reader's browser.

The image chapters' figures run the MNIST score network with onnxruntime-web (WebAssembly) in the
page. Unlike the toy figures of :mod:`ncsn_edu.figures.live`, which carry their networks' weights,
these load shared files once per site: ``_static/ort/`` (onnxruntime-web) and
``_static/ncsn_edu/models.json`` with the exported models, which the book's build puts in place.
A figure's HTML carries only its settings (a few test digits as bytes), the script
(``live_js/core.js`` and ``live_js/mnist.js``) and a static picture made here with the package,
which stays where the network cannot load (a page opened from ``file://``, scripts off), with one
line saying how to get the figure live: serve the site (``python -m http.server -d _build/html``).

In a Jupyter or Colab kernel (outside the book's build, :func:`ncsn_edu.progress.static_mode` false)
each function returns instead the kernel's version of the same figure, with the same controls,
running the PyTorch model (:mod:`ncsn_edu.figures.image_widgets`).

The page's sampler is core.js's ``AnnealedRun``, the toy figures' loop, under the package's names
(``eps``, ``n_steps_each``, the ``"paper"`` and ``"code"`` step conventions of
:func:`ncsn_edu.sampling.annealed_langevin_dynamics`); ``tests/figures/test_live_mnist.py`` checks
it against :mod:`ncsn_edu.sampling` and :mod:`ncsn_edu.images.inpainting` in headless Chromium.
Introduced in chapter 10 (NCSN on MNIST).
"""

from __future__ import annotations

import base64
import html
import io
import json
import uuid

import torch

from ncsn_edu.figures.live import LiveFigure, library_js
from ncsn_edu.progress import static_mode

#: The model files of the site's menu (``_static/ncsn_edu/models.json``), by the manifest's id:
#: NCSN v1 (chapter 10) and NCSNv2 (chapter 11b), as ``ncsn_edu.images.onnx_export`` names them.
MODEL_FILES = {"v1": "mnist_ncsn_v1.onnx", "v2": "mnist_ncsn_v2.onnx"}
#: The model file the figures start with unless a figure names another (``start_model``).
DEFAULT_MODEL = MODEL_FILES["v1"]
#: Where the site's ``_static/`` folder lies relative to a chapter page (when the page names none).
STATIC_BASE = "../_static/"
#: What a figure says where it cannot run live.
SERVE_HINT = ("To run it live, serve the built site over http: python -m http.server -d _build/html, "
              "then open http://127.0.0.1:8000.")
#: The image figures' kinds (all in live_js/mnist.js).
KINDS = ("mnist_denoise", "mnist_generate", "mnist_inpaint")


def png_bytes(fig, dpi: int, colours: int = 64) -> bytes:
    """A matplotlib figure as PNG bytes with a palette of ``colours`` (a third of the full-colour
    file's size for these pictures: the page carries it inline), closed afterwards; bytes pass through."""
    import matplotlib.pyplot as plt
    from PIL import Image

    if isinstance(fig, (bytes, bytearray)):
        return bytes(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    out = io.BytesIO()
    Image.open(buf).convert("RGB").quantize(colours).save(out, format="PNG", optimize=True)
    return out.getvalue()


class ImageFigure(LiveFigure):
    """A live MNIST figure of kind ``kind`` (one of :data:`KINDS`) with settings ``config``.

    Its root element carries ``data-ncsn-onnx`` (not the toys' ``data-ncsn-live``: it needs the
    site's shared files and an http server) and, once the network has loaded, ``state()``.
    Introduced in chapter 10 (NCSN on MNIST)."""

    def __init__(self, kind: str, config: dict, fallback=None, title: str = "", dpi: int = 60):
        if kind not in KINDS:
            raise ValueError(f"no image figure kind {kind!r}; the kinds are {KINDS}")
        library_js(["mnist"])
        self.kind, self.title = kind, title
        self.config = dict(config, kind=kind, static_base=STATIC_BASE, serve_hint=SERVE_HINT)
        self.fallback = None if fallback is None else png_bytes(fallback, dpi)
        self.uid = "ncsn-onnx-" + uuid.uuid4().hex[:12]

    def _repr_html_(self) -> str:
        uid = self.uid
        config = json.dumps(self.config, separators=(",", ":")).replace("</", "<\\/")
        script = library_js(["mnist"]).replace("</script", "<\\/script")
        title = f'<div class="ncsn-live-title">{html.escape(self.title)}</div>' if self.title else ""
        fallback = ""
        if self.fallback is not None:
            src = "data:image/png;base64," + base64.b64encode(self.fallback).decode("ascii")
            alt = html.escape(self.title or f"static picture of the {self.kind} figure")
            fallback = f'<img class="ncsn-live-fallback" src="{src}" alt="{alt}" style="max-width: 100%">'
        note = f"A static picture: this figure computes live in the browser. {SERVE_HINT}"
        return f"""<div class="ncsn-live" id="{uid}" data-ncsn-onnx="{html.escape(self.kind)}">
{title}{fallback}
<p class="ncsn-live-note ncsn-live-hint">{html.escape(note)}</p>
<div class="ncsn-live-ui" style="display: none"></div>
<script type="application/json" class="ncsn-live-config">{config}</script>
<script>{script}
NCSNLive.onnx.mount("{uid}");</script>
</div>"""

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/html": self._repr_html_(), "text/plain": f"<live image figure: {self.kind}>"}


def _digits(digits, labels, index: int):
    """Digits (N, 1, 28, 28) or (N, 28, 28), float in [0, 1] or uint8, as (float (N, 1, 28, 28),
    base64 uint8 bytes, labels as a list)."""
    d = torch.as_tensor(digits)
    if d.dtype == torch.uint8:
        d = d.float() / 255
    d = d.reshape(-1, 1, 28, 28).float()
    if len(d) < 1 or not 0 <= index < len(d):
        raise ValueError("digits must hold at least one 28 x 28 image and index one of them")
    if labels is None:
        raise ValueError("labels: the class of each digit (the figure names it)")
    labels = [int(v) for v in torch.as_tensor(labels).flatten().tolist()]
    if len(labels) != len(d):
        raise ValueError("one label per digit")
    u8 = (d.clamp(0, 1) * 255).round().to(torch.uint8).flatten().numpy().tobytes()
    return d, base64.b64encode(u8).decode("ascii"), labels


def _sampler_settings(eps, n_steps_each, convention, seed):
    if convention not in ("paper", "code"):
        raise ValueError("convention must be 'paper' or 'code'")
    if not eps > 0 or n_steps_each < 1:
        raise ValueError("eps must be positive and n_steps_each at least 1")
    return {"eps": float(eps), "eps_min": 1e-7, "eps_max": 1e-1, "n_steps_each": int(n_steps_each),
            "steps_max": 1000, "convention": convention, "seed": int(seed)}


def _model_file(start_model: str) -> str:
    if start_model not in MODEL_FILES:
        raise ValueError(f"start_model must be one of {sorted(MODEL_FILES)}, got {start_model!r}")
    return MODEL_FILES[start_model]


def _widget(name: str):
    """L3's kernel widget ``name`` from :mod:`ncsn_edu.figures.image_widgets`, or None in the book's
    static build."""
    if static_mode():
        return None
    from ncsn_edu.figures import image_widgets

    return getattr(image_widgets, name)


def nearest_level(sigmas, sigma: float) -> int:
    """The index of the level of ``sigmas`` nearest to ``sigma`` in ``log sigma`` (what the page's
    level-conditioned network runs at for a slider's sigma). Introduced in chapter 10."""
    s = torch.as_tensor(sigmas, dtype=torch.float64)
    return int((s.log() - torch.tensor(float(sigma), dtype=torch.float64).log()).abs().argmin())


def denoise_panels(model, sigmas, image, sigma: float, generator=None) -> dict:
    """What the denoising figure shows, computed with PyTorch: ``x~ = x + sigma z``, the score
    ``s(x~, sigma_i)`` at the nearest level ``i``, Tweedie's ``x~ + sigma^2 s`` and the root mean
    square errors per pixel against the clean image ``x`` (1, 1, 28, 28). Introduced in chapter 10."""
    level = nearest_level(sigmas, sigma)
    z = torch.randn(image.shape, generator=generator)
    noisy = image + sigma * z
    with torch.no_grad():
        score = model(noisy, torch.full((len(image),), level, dtype=torch.long))
    den = noisy + sigma**2 * score
    rmse = lambda a: ((a - image) ** 2).mean().sqrt().item()  # noqa: E731
    return {"level": level, "noisy": noisy, "score": score, "denoised": den, "rms_noisy": rmse(noisy),
            "rms_denoised": rmse(den)}


def _denoise_picture(model, sigmas, image, sigma: float, seed: int):
    import matplotlib.pyplot as plt

    p = denoise_panels(model, sigmas, image, sigma, torch.Generator().manual_seed(seed))
    big = p["score"].abs().max().item()
    fig, axes = plt.subplots(1, 4, figsize=(6.4, 1.95))
    panels = [(image, "clean x", "gray", 0, 1), (p["noisy"], f"x~, sigma = {sigma:.3g}", "gray", 0, 1),
              (p["score"], f"score at level {p['level'] + 1}", "RdBu_r", -big, big),
              (p["denoised"], f"x~ + sigma^2 s: rms {p['rms_denoised']:.3f}", "gray", 0, 1)]
    for ax, (im, name, cmap, lo, hi) in zip(axes, panels):
        ax.imshow(im[0, 0].numpy(), cmap=cmap, vmin=lo, vmax=hi)
        ax.set_title(name, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Denoising with the score (Tweedie), static picture", fontsize=9)
    fig.tight_layout()
    return fig


def denoise_figure(model, sigmas, digits, labels, sigma: float = 0.1, index: int = 0, seed: int = 0,
                   sigma_min: float = 0.01, sigma_max: float = 1.0, title: str = "", start_model: str = "v1"):
    """Denoise a digit at any noise level, live: a test digit of ``digits`` (or one the reader
    draws), ``sigma`` on a log slider from ``sigma_min`` to ``sigma_max``, the noisy ``x~``, the
    score ``s(x~, sigma_i)`` as an image (the level-conditioned network at the level nearest to
    ``sigma``, named on the figure), Tweedie's ``x~ + sigma^2 s`` and the per-pixel error against
    the clean digit. ``model`` and ``sigmas`` make the static picture (and the kernel's figure);
    the page's model menu starts at ``start_model`` (``"v1"`` or ``"v2"``, :data:`MODEL_FILES`).
    Introduced in chapter 10 (NCSN on MNIST)."""
    if not (0 < sigma_min <= sigma <= sigma_max):
        raise ValueError("need 0 < sigma_min <= sigma <= sigma_max")
    d, b64, labels = _digits(digits, labels, index)
    widget = _widget("denoise_widget")
    if widget is not None:
        return widget(model, torch.as_tensor(sigmas), d, sigma=sigma, index=index, seed=seed, labels=labels)
    cfg = {"model": _model_file(start_model), "digits": b64, "digit_labels": labels, "index": int(index),
           "seed": int(seed), "sigma": float(sigma), "sigma_min": float(sigma_min), "sigma_max": float(sigma_max)}
    fallback = _denoise_picture(model, sigmas, d[index:index + 1], sigma, seed)
    return ImageFigure("mnist_denoise", cfg, fallback=fallback, title=title)


def _grid_picture(images, per_row: int, caption: str):
    """``images`` in rows of ``per_row`` (show_grid's ``nrow`` counts rows)."""
    import matplotlib.pyplot as plt

    from ncsn_edu.figures.plotting import show_grid

    images = torch.as_tensor(images).float().clamp(0, 1)
    rows = -(-len(images) // per_row)
    fig, ax = plt.subplots(figsize=(0.75 * per_row + 0.4, 0.75 * rows + 0.5))
    show_grid(ax, images, rows, caption, title_fontsize=8)
    fig.tight_layout()
    return fig


def generate_figure(model, sigmas, fallback_images, n_images: int = 8, n_steps_each: int = 100,
                    eps: float = 2e-5, convention: str = "code", seed: int = 0, mode: str = "annealed",
                    fallback_caption: str = "", title: str = "", start_model: str = "v1",
                    final_denoise: bool = False):
    """Annealed Langevin dynamics (Algorithm 1) on ``n_images`` digits (4 to 16), live, one frame per
    step: sliders for L, T (``n_steps_each``) and ``eps``, the step ``convention``, a seed, Run,
    Pause and Reset, the current level and sigma printed; the sampler menu also offers the NCSN's
    last level alone (``mode="last"``) and the appendix's baseline trained at sigma = 0.01 alone
    (``"single"``), which do not make digits. ``fallback_images`` (a few samples the package made,
    e.g. a stored chain's final states) are the static picture. ``final_denoise`` adds NCSNv2's last
    step ``x + sigma_L^2 s(x, sigma_L)`` after the chain (a menu of the page; as
    :func:`ncsn_edu.sampling.annealed_langevin_dynamics`). The page's model menu starts at
    ``start_model`` (``"v1"`` or ``"v2"``, :data:`MODEL_FILES`) with these sampler settings; choosing
    another model sets the sampler to that model's own (its ``models.json`` entry). Introduced in
    chapter 10; the v2 model's figure in chapter 11b."""
    if not 4 <= n_images <= 16:
        raise ValueError("n_images must lie in 4..16")
    if mode not in ("annealed", "last", "single"):
        raise ValueError("mode must be 'annealed', 'last' or 'single'")
    cfg = dict(_sampler_settings(eps, n_steps_each, convention, seed), model=_model_file(start_model),
               n_images=int(n_images), n_images_max=16, mode=mode, final_denoise=bool(final_denoise))
    widget = _widget("generate_widget")
    if widget is not None:
        return widget(model, torch.as_tensor(sigmas), n_images=n_images, n_steps_each=n_steps_each, eps=eps,
                      convention=convention, seed=seed, mode=mode, final_denoise=final_denoise)
    fallback = _grid_picture(fallback_images, min(len(fallback_images), 8),
                             fallback_caption or "samples of Algorithm 1 (static picture)")
    return ImageFigure("mnist_generate", cfg, fallback=fallback, title=title)


def mask_string(mask) -> str:
    """A (1, 28, 28) or (28, 28) 0/1 mask (1 = known) as the page reads it: 784 characters '0'/'1'."""
    m = torch.as_tensor(mask).reshape(-1)
    if m.numel() != 784 or not torch.all((m == 0) | (m == 1)):
        raise ValueError("the mask must hold 784 entries, each 0 (fill in) or 1 (known)")
    return "".join("1" if v else "0" for v in m.tolist())


def inpaint_figure(model, sigmas, digits, labels, fallback_images, index: int = 0, mask=None,
                   n_completions: int = 4, n_steps_each: int = 100, eps: float = 2e-5, convention: str = "code",
                   seed: int = 0, classifier=None, fallback_caption: str = "", title: str = "",
                   start_model: str = "v1"):
    """Inpainting (Algorithm 2), live: the reader paints a mask over a test digit of ``digits`` (mouse
    or touch; ``mask`` starts it, 1 = known, default the left half known) and the page fills it
    ``n_completions`` times side by side, with the digit classifier's reading of each (the site's
    exported classifier; ``classifier`` serves the kernel's figure). ``fallback_images`` (completions
    the package made) are the static picture. The page's model menu starts at ``start_model``
    (``"v1"`` or ``"v2"``, :data:`MODEL_FILES`). Introduced in chapter 11 (MNIST inpainting)."""
    from ncsn_edu.images.inpainting import left_half_mask

    if not 1 <= n_completions <= 8:
        raise ValueError("n_completions must lie in 1..8")
    d, b64, labels = _digits(digits, labels, index)
    mask = left_half_mask((1, 28, 28)) if mask is None else torch.as_tensor(mask, dtype=torch.float32)
    cfg = dict(_sampler_settings(eps, n_steps_each, convention, seed), model=_model_file(start_model), digits=b64,
               digit_labels=labels, index=int(index), mask=mask_string(mask), n_completions=int(n_completions),
               n_completions_max=8)
    widget = _widget("inpaint_widget")
    if widget is not None:
        return widget(model, torch.as_tensor(sigmas), d, index=index, mask=mask.reshape(1, 28, 28),
                      n_completions=n_completions, n_steps_each=n_steps_each, eps=eps, convention=convention,
                      seed=seed, classifier=classifier, labels=labels)
    fallback = _grid_picture(fallback_images, min(len(fallback_images), 8),
                             fallback_caption or "completions by Algorithm 2 (static picture)")
    return ImageFigure("mnist_inpaint", cfg, fallback=fallback, title=title)
