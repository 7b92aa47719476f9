"""Live figures: the toy chapters' mathematics running in the reader's browser.

A live figure is a piece of HTML that carries everything it needs: the JavaScript library
(``ncsn_edu/figures/live_js/core.js`` and the figure's kind, ``live_js/<kind>.js``), the figure's
settings as JSON (mixtures, noise levels, the weights of the network the chapter trained; every
setting its kind reads, with the defaults of the figure functions below, the only defaults: the
JavaScript has none of its own), and
a static picture that shows where scripts do not run (JavaScript off, a PDF). Nothing is
fetched, so a page works over http, from ``file://`` and offline. The same HTML is the output
of a Jupyter or Colab cell (where each output carries its own copy of the script) and a part of
the built book.

The JavaScript computes exactly what this package computes, under the same names
(``sigma``, ``sigmas``, ``eps``, ``step_size``, ``n_steps_each``, the ``"paper"`` and ``"code"``
step conventions); ``tests/figures/test_live.py`` checks it in headless Chromium against the package.
Introduced in chapter 1 (scores and Langevin dynamics).
"""

from __future__ import annotations

import base64
import html
import io
import json
import uuid
from importlib import resources

import numpy as np
import torch


def library_js(kinds=()) -> str:
    """The JavaScript of the core library followed by the scripts of ``kinds``."""
    folder = resources.files("ncsn_edu.figures").joinpath("live_js")
    parts = [folder.joinpath("core.js").read_text(encoding="utf-8")]
    for kind in kinds:
        if not (folder / f"{kind}.js").is_file():
            raise ValueError(f"no live figure kind {kind!r} (ncsn_edu/figures/live_js/{kind}.js)")
        parts.append(folder.joinpath(f"{kind}.js").read_text(encoding="utf-8"))
    return "\n".join(parts)


def encode_array(values, dtype: str = "float32") -> dict:
    """A tensor or array as little-endian ``float32`` (or ``float16``) bytes in base64, the form
    the page decodes (``NCSNLive.decode``)."""
    if dtype not in ("float32", "float16"):
        raise ValueError("dtype must be 'float32' or 'float16'")
    arr = torch.as_tensor(values).detach().cpu().numpy().astype("<f4" if dtype == "float32" else "<f2")
    data = base64.b64encode(np.ascontiguousarray(arr).tobytes()).decode("ascii")
    return {"dtype": dtype, "shape": list(arr.shape), "data": data}


def _linear(lin, dtype):
    return {"in": lin.in_features, "out": lin.out_features,
            "weight": encode_array(lin.weight, dtype), "bias": encode_array(lin.bias, dtype)}


def export_network(model, dtype: str = "float32") -> dict:
    """The weights of a toy score network as JSON-ready settings for the page.

    ``model`` is a :class:`ncsn_edu.toy.nets.ScoreMLP` or
    :class:`ncsn_edu.toy.nets.ConditionalScoreMLP` (2-D input); the page runs the same forward
    pass (``NCSNLive.Network``). ``dtype="float16"`` halves the size for figures that carry many
    networks (the page then runs the float16-rounded weights).
    """
    from ncsn_edu.toy.nets import ConditionalScoreMLP, ScoreMLP

    if isinstance(model, ScoreMLP):
        mods = list(model.net)
        linears = [m for m in mods if isinstance(m, torch.nn.Linear)]
        acts = [m for m in mods if not isinstance(m, torch.nn.Linear)]
        if not all(isinstance(a, torch.nn.Softplus) and a.beta == 1 and a.threshold == 20 for a in acts):
            raise ValueError("only softplus ScoreMLPs (beta 1, threshold 20) can run in the page")
        if linears[0].in_features != 2:
            raise ValueError("live figures are two-dimensional: the network must take 2-D points")
        return {"type": "mlp", "dim": 2, "linears": [_linear(m, dtype) for m in linears[:-1]],
                "out": _linear(linears[-1], dtype)}
    if isinstance(model, ConditionalScoreMLP):
        if model.linears[0].in_features != 2:
            raise ValueError("live figures are two-dimensional: the network must take 2-D points")
        spec = {"type": "cond_mlp", "dim": 2, "condition": model.condition, "scale_output": model.scale_output,
                "hidden": model.hidden, "n_hidden": model.n_hidden, "sigmas": model.sigmas.tolist(),
                "linears": [_linear(m, dtype) for m in model.linears], "out": _linear(model.out, dtype)}
        if model.condition == "level":
            spec["embed"] = {"table": encode_array(model.embed.weight, dtype)}
        else:
            spec["embed"] = {"linears": [_linear(model.embed[0], dtype), _linear(model.embed[2], dtype)]}
        return spec
    raise TypeError(f"cannot export {type(model).__name__}: only ScoreMLP and ConditionalScoreMLP run in the page")


def mixture_config(mixture) -> dict:
    """A 2-D :class:`ncsn_edu.toy.distributions.GaussianMixture` as settings for the page."""
    if mixture.dim != 2:
        raise ValueError("live figures are two-dimensional")
    return {"means": mixture.means.tolist(), "stds": mixture.stds.tolist(), "weights": mixture.weights.tolist()}


def _png(fig, dpi: int) -> bytes:
    import matplotlib.pyplot as plt

    if isinstance(fig, (bytes, bytearray)):
        return bytes(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


class LiveFigure:
    """A live figure of kind ``kind`` with settings ``config`` (JSON-serialisable).

    ``fallback`` (a matplotlib figure or PNG bytes) is shown where scripts do not run, and is
    hidden by the script once the live figure is built. Display it as a cell's last expression.
    The root element carries ``data-ncsn-live`` and, once mounted, a ``state()`` method that
    returns the figure's settings and current points as JSON.
    Introduced in chapter 1 (scores and Langevin dynamics).
    """

    def __init__(self, kind: str, config: dict, fallback=None, title: str = "", dpi: int = 80):
        library_js([kind])  # an unknown kind fails here, not in the reader's browser
        self.kind, self.config, self.title = kind, dict(config, kind=kind), title
        self.fallback = None if fallback is None else _png(fallback, dpi)
        self.uid = "ncsn-live-" + uuid.uuid4().hex[:12]

    def _repr_html_(self) -> str:
        uid = self.uid
        # JSON inside <script>: "</" would end the element early.
        config = json.dumps(self.config, separators=(",", ":")).replace("</", "<\\/")
        script = library_js([self.kind]).replace("</script", "<\\/script")
        title = f'<div class="ncsn-live-title">{html.escape(self.title)}</div>' if self.title else ""
        fallback = ""
        if self.fallback is not None:
            src = "data:image/png;base64," + base64.b64encode(self.fallback).decode("ascii")
            alt = html.escape(self.title or f"static picture of the {self.kind} figure")
            fallback = f'<img class="ncsn-live-fallback" src="{src}" alt="{alt}" style="max-width: 100%">'
        return f"""<div class="ncsn-live" id="{uid}" data-ncsn-live="{html.escape(self.kind)}">
{title}{fallback}
<div class="ncsn-live-ui" style="display: none"></div>
<script type="application/json" class="ncsn-live-config">{config}</script>
<script>{script}
NCSNLive.mount("{uid}");</script>
</div>"""

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/html": self._repr_html_(), "text/plain": f"<live figure: {self.kind}>"}


def langevin_figure(mixture, lim: float = 8.0, n: int = 1280, step_size: float = 0.1, n_steps: int = 1000,
                    seed: int = 0, step_max: float = 3.9, fallback=None, title: str = "") -> LiveFigure:
    """Plain Langevin dynamics on a 2-D mixture with its exact score, live: a continuous step size,
    a steps control, chains that start where the reader clicks, and the fraction in each mode and
    the spread around the modes printed against the weights and the stationary variance
    ``v / (1 - eps / (4 v))``. Introduced in chapter 1 (scores and Langevin dynamics)."""
    if n < 1 or n_steps < 1 or step_size <= 0 or lim <= 0:
        raise ValueError("n and n_steps must be at least 1, step_size and lim positive")
    cfg = {"mixture": mixture_config(mixture), "lim": lim, "n": n, "step_size": step_size, "n_steps": n_steps,
           "seed": seed, "step_min": 1e-3, "step_max": step_max, "steps_max": 20000}
    return LiveFigure("langevin", cfg, fallback=fallback, title=title)


def mixing_figure(mixture, sigmas, heavy: int = 1, lim: float = 8.0, n: int = 1280, step_size: float = 0.1,
                  n_steps: int = 1000, eps: float = 0.1, n_steps_each: int = 100, convention: str = "code",
                  seed: int = 0, fallback=None, title: str = "") -> LiveFigure:
    """The paper's Figure 3, live: plain Langevin (``step_size``, ``n_steps``) and annealed Langevin
    (``sigmas``, ``eps``, ``n_steps_each``, the paper's step; exact annealed scores in the
    ``convention`` of :func:`ncsn_edu.toy.distributions.annealed_score_fn`) side by side from the same
    uniform starts on a two-mode ``mixture``, with a slider for the weight of mode ``heavy`` and the
    fraction of chains nearest to that mode printed against the weight and each level's equilibrium.
    Introduced in chapter 7 (slow mixing)."""
    sig = [float(s) for s in torch.as_tensor(sigmas).flatten().tolist()]
    if mixture.means.shape[0] != 2 or heavy not in (0, 1):
        raise ValueError("the mixing figure needs a two-component mixture and heavy in {0, 1}")
    if not sig or any(s <= 0 for s in sig) or any(b > a for a, b in zip(sig, sig[1:])):
        raise ValueError("sigmas must be positive, largest first")
    if convention not in ("code", "perturbed"):
        raise ValueError("convention must be 'code' or 'perturbed'")
    if n < 1 or n_steps < 1 or n_steps_each < 1 or step_size <= 0 or eps <= 0:
        raise ValueError("n, n_steps and n_steps_each must be at least 1; step_size and eps positive")
    cfg = {"mixture": mixture_config(mixture), "heavy": heavy, "lim": lim, "n": n, "step_size": step_size,
           "n_steps": n_steps, "sigmas": sig, "eps": eps, "n_steps_each": n_steps_each, "convention": convention,
           "seed": seed, "steps_max": 10000}
    return LiveFigure("mixing", cfg, fallback=fallback, title=title)


def _conditional(model):
    from ncsn_edu.toy.nets import ConditionalScoreMLP

    if not isinstance(model, ConditionalScoreMLP):
        raise TypeError("the NCSN figures need a ConditionalScoreMLP (ncsn_edu.toy.training.train_toy_ncsn makes one)")
    return export_network(model)


def ncsn_field_figure(model, mixture, lim: float = 8.0, level: int | None = None, fallback=None,
                      title: str = "") -> LiveFigure:
    """A trained toy NCSN (:class:`ncsn_edu.toy.nets.ConditionalScoreMLP`) running in the page,
    against the exact perturbed score: a continuous sigma slider over the trained range, the
    network at the nearest trained level, the error between them printed, and a click reading
    both scores at a point. Introduced in chapter 8 (noise-conditional networks)."""
    spec = _conditional(model)
    if level is not None and not 0 <= level < len(spec["sigmas"]):
        raise ValueError(f"level must lie in 0..{len(spec['sigmas']) - 1}")
    cfg = {"mixture": mixture_config(mixture), "network": spec, "lim": lim,
           "level": len(spec["sigmas"]) - 1 if level is None else level}
    return LiveFigure("ncsn_field", cfg, fallback=fallback, title=title)


def ncsn_sampler_figure(model, mixture, lim: float = 8.0, n: int = 1280, eps: float = 0.1,
                        n_steps_each: int = 100, convention: str = "paper", score: str = "network", heavy: int = 1,
                        seed: int = 0, fallback=None, title: str = "") -> LiveFigure:
    """Annealed Langevin dynamics (Algorithm 1) in the page with a trained toy NCSN or the exact
    perturbed scores: controls for L, T (``n_steps_each``), ``eps`` and the step ``convention``
    (as :func:`ncsn_edu.sampling.annealed_langevin_dynamics`), chains that start where the
    reader clicks, and the fraction nearest to mode ``heavy`` printed against its weight.
    Introduced in chapter 9 (annealed Langevin dynamics)."""
    spec = _conditional(model)
    if convention not in ("paper", "code") or score not in ("network", "exact"):
        raise ValueError("convention must be 'paper' or 'code', score 'network' or 'exact'")
    if n < 1 or n_steps_each < 1 or eps <= 0 or not 0 <= heavy < mixture.means.shape[0]:
        raise ValueError("n and n_steps_each must be at least 1, eps positive, heavy a component index")
    cfg = {"mixture": mixture_config(mixture), "network": spec, "lim": lim, "n": n, "eps": eps,
           "n_steps_each": n_steps_each, "convention": convention, "score": score, "heavy": heavy,
           "target": float(mixture.weights[heavy]), "seed": seed, "max_levels": 30}
    return LiveFigure("ncsn_sampler", cfg, fallback=fallback, title=title)


#: The bands of |x1 + x2| in which the chapter 6 figure splits the error (issue 23).
SSM_ERROR_BANDS = (0, 1, 2, 4, 8, 17)


def ssm_error_figure(result: dict, mixture=None, steps=None, lim: float = 8.0, n: int = 100,
                     low_fraction: float = 1e-3, stats: dict | None = None, dtype: str = "float16",
                     fallback=None, title: str = "") -> LiveFigure:
    """The sliced-score-matching network of Figure 2 at each saved training step, live: the page
    runs every snapshot of ``result`` (:func:`ncsn_edu.experiments.low_density.load_result`,
    exported with ``dtype``, float16 by default since the page carries all of them), draws its
    field against the exact score of ``mixture`` and computes the error map
    ``log10 ||s_theta - grad log p||`` on the ``n x n`` grid of
    :func:`~ncsn_edu.toy.metrics.score_error_stats`, with the region
    ``p >= low_fraction * max p`` outlined. It prints the weighted, high- and low-density errors
    against the package's ``score_error_stats`` for that step (``stats``: ``{step: stats}``,
    computed here when not given), the error by bands of ``|x1 + x2|`` (:data:`SSM_ERROR_BANDS`),
    and, where the reader clicks, the learned and exact score, the error, the relative error,
    the cosine and the density relative to the peak.
    Introduced in chapter 6 (low-density scores)."""
    from ncsn_edu.toy.distributions import GaussianMixture
    from ncsn_edu.toy.metrics import score_error_stats
    from ncsn_edu.toy.nets import model_at

    mixture = mixture or GaussianMixture.paper_toy()
    saved = sorted(int(s) for s in result["snapshots"])
    steps = saved if steps is None else [int(s) for s in steps]
    if not steps or any(s not in saved for s in steps):
        raise ValueError(f"steps must be saved training steps, some of {saved}")
    if lim <= 0 or n < 2 or not 0 < low_fraction < 1:
        raise ValueError("lim must be positive, n at least 2 and low_fraction in (0, 1)")
    if dtype not in ("float32", "float16"):
        raise ValueError("dtype must be 'float32' or 'float16'")
    models = {s: model_at(result, s) for s in steps}
    stats = dict(stats or {})
    keys = ("weighted_error", "high_density_error", "low_density_error", "ratio")
    package = []
    for s in steps:
        st = stats.get(s)
        if st is None or st.get("low_fraction", low_fraction) != low_fraction or st["error"].shape != (n, n):
            st = score_error_stats(models[s], mixture, lim=lim, n=n, low_fraction=low_fraction)
        package.append({k: float(st[k]) for k in keys})
    cfg = {"mixture": mixture_config(mixture), "lim": lim, "n": n, "arrows": 20, "low_fraction": low_fraction,
           "steps": steps, "networks": [export_network(models[s], dtype) for s in steps], "package": package,
           "initial": len(steps) - 1, "bands": list(SSM_ERROR_BANDS), "vmin": -2, "vmax": 2, "dtype": dtype}
    return LiveFigure("ssm_error", cfg, fallback=fallback, title=title)


def perturbed_figure(mixture, sigma: float = 3.0, lim: float = 8.0, sigma_min: float = 0.01, sigma_max: float = 20.0,
                     networks=None, sample_errors=None, network_dtype: str = "float16", fallback=None,
                     title: str = "") -> LiveFigure:
    """The noise-perturbed mixture ``q_sigma`` (``mixture.perturbed(sigma)``) live, for any ``sigma``
    on a log slider from ``sigma_min`` to ``sigma_max`` (its left end is ``sigma = 0``): the density
    and its exact score, and along the diagonal ``x1 = x2`` the density relative to its peak and the
    probability of the heaviest component; the ratio of the density at the midpoint of the means to
    that at the heaviest mean is printed. Introduced in chapter 1 (scores and Langevin dynamics).

    With ``networks`` (a dict ``{sigma: ScoreMLP}`` of networks trained by denoising score matching
    at those noise levels, chapter 4) the figure also shows the network trained at the level nearest
    to the slider's ``sigma`` (in ``log sigma``) against the exact score of ``q`` at that level, the
    first score component along the diagonal (learned, exact perturbed, clean), and the mean error
    ``|s_theta - grad log q_sigma|`` on a grid weighted by ``q_sigma``; ``sample_errors`` (a dict
    ``{sigma: value}``, optional) prints beside it the error the chapter measured on samples. The
    networks travel as ``network_dtype`` (float16 by default: a figure carries several).
    """
    from ncsn_edu.toy.nets import ScoreMLP

    if mixture.dim != 2 or lim <= 0:
        raise ValueError("the mixture must be two-dimensional and lim positive")
    if not (0 < sigma_min < sigma_max):
        raise ValueError("need 0 < sigma_min < sigma_max")
    if not (sigma == 0 or sigma_min <= sigma <= sigma_max):
        raise ValueError(f"sigma must be 0 or lie in [{sigma_min}, {sigma_max}]")
    means = mixture.means.double()
    heavy = int(mixture.weights.argmax())
    cfg = {"mixture": mixture_config(mixture), "lim": float(lim), "sigma": float(sigma), "sigma_min": float(sigma_min),
           "sigma_max": float(sigma_max), "heavy": heavy, "midpoint": [round(v, 6) for v in means.mean(0).tolist()],
           "mode": means[heavy].tolist(), "networks": []}
    if networks:
        entries = cfg["networks"]
        for s, net in sorted(networks.items()):
            if not (float(s) > 0) or not isinstance(net, ScoreMLP):
                raise ValueError("networks must map positive noise levels to ScoreMLPs")
            entry = {"sigma": float(s), "network": export_network(net, dtype=network_dtype)}
            if sample_errors and s in sample_errors:
                entry["sample_error"] = float(sample_errors[s])
            entries.append(entry)
    return LiveFigure("perturbed", cfg, fallback=fallback, title=title)
