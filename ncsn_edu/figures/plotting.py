"""Plotting helpers shared by the chapters: densities and score fields on a 2D grid."""

from __future__ import annotations

import torch

from ncsn_edu.toy.domain import grid


def plot_density(ax, log_prob_fn, lim: float = 8.0, n: int = 100, cmap="Blues", **kwargs):
    """Shade ``exp(log_prob_fn(points))`` on an ``n x n`` grid (the paper uses 100 x 100)."""
    X, Y, pts = grid(lim, n)
    with torch.no_grad():
        p = log_prob_fn(pts).exp().reshape(n, n)
    mesh = ax.pcolormesh(X.numpy(), Y.numpy(), p.numpy(), cmap=cmap, shading="auto", **kwargs)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    return mesh


def plot_score_field(ax, score_fn, lim: float = 8.0, n: int = 20, normalize: bool = True, **kwargs):
    """Arrows of ``score_fn`` on an ``n x n`` grid (the paper uses 20 x 20).

    With ``normalize`` the arrows show direction only, scaled by ``log(1 + |s|)`` so
    that huge far-field scores do not hide the rest.
    """
    X, Y, pts = grid(lim, n)
    with torch.no_grad():
        s = score_fn(pts).detach().float()
    if normalize:
        norm = s.norm(dim=1, keepdim=True).clamp_min(1e-12)
        s = s / norm * torch.log1p(norm)
    kwargs.setdefault("color", "k")
    q = ax.quiver(X.numpy(), Y.numpy(), s[:, 0].reshape(n, n).numpy(), s[:, 1].reshape(n, n).numpy(), **kwargs)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    return q


def density_contours(ax, log_prob_fn, lim: float = 8.0, n: int = 100, levels: int = 4, color="0.75", **kwargs):
    """Grey contour lines of ``exp(log_prob_fn(points))`` on an ``n x n`` grid over
    ``[-lim, lim]^2``: the backdrop the chapters draw samples on (chapters 7 and 9)."""
    X, Y, pts = grid(lim, n)
    with torch.no_grad():
        p = log_prob_fn(pts).exp().reshape(n, n)
    kwargs.setdefault("linewidths", 0.8)
    return ax.contour(X.numpy(), Y.numpy(), p.numpy(), levels=levels, colors=color, **kwargs)


def scatter_samples(ax, x, title=None, log_prob_fn=None, lim: float = 8.0, contour_color="0.75",
                    title_fontsize=None, **kwargs):
    """Scatter 2D samples ``x`` (shape ``(N, 2)``) over ``[-lim, lim]^2``, optionally on the
    contours of ``log_prob_fn`` (see :func:`density_contours`). Rows that are not finite
    (a diverged chain) are left out. Introduced in chapter 7, used again in chapter 9."""
    if log_prob_fn is not None:
        density_contours(ax, log_prob_fn, lim=lim, color=contour_color)
    x = torch.as_tensor(x)
    ok = torch.isfinite(x).all(1)
    kwargs.setdefault("s", 2)
    kwargs.setdefault("alpha", 0.6)
    points = ax.scatter(x[ok, 0].numpy(), x[ok, 1].numpy(), **kwargs)
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", xlabel="$x_1$", ylabel="$x_2$")
    if title is not None:
        ax.set_title(title, **({} if title_fontsize is None else {"fontsize": title_fontsize}))
    return points


def image_grid(images, nrow: int, gap: int = 1, fill: float = 1.0):
    """One mosaic of ``images`` (shape ``(N, 1, H, W)``, values in [0, 1], clamped) in ``nrow``
    rows, each image framed by ``gap`` pixels of ``fill`` on every side (so ``2 * gap`` between
    neighbours). Returns a numpy array of shape ``(nrow * (H + 2 gap), ncol * (W + 2 gap))``."""
    import numpy as np

    images = torch.as_tensor(images)
    n, _, h, w = images.shape
    ncol = -(-n // nrow)
    ch, cw = h + 2 * gap, w + 2 * gap
    canvas = np.full((nrow * ch, ncol * cw), fill, dtype=np.float64)
    for k in range(n):
        r, c = divmod(k, ncol)
        canvas[r * ch + gap : r * ch + gap + h, c * cw + gap : c * cw + gap + w] = images[k, 0].clamp(0, 1).numpy()
    return canvas


def show_grid(ax, images, nrow: int, title=None, title_fontsize=10, gap: int = 1):
    """Draw :func:`image_grid` of ``images`` in grey on ``ax``, without ticks (chapter 10)."""
    im = ax.imshow(image_grid(images, nrow, gap=gap), cmap="gray", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=title_fontsize)
    return im


def show_image(ax, image, title=None, title_fontsize=8):
    """Draw one image (shape ``(1, H, W)``, clamped to [0, 1]) in grey on ``ax``, without ticks
    or frame gap: :func:`show_grid` of a single image (chapter 11)."""
    return show_grid(ax, torch.as_tensor(image)[None], 1, title, title_fontsize=title_fontsize, gap=0)


def density_contourf(ax, log_prob_fn, lim: float = 8.0, n: int = 100, levels: int = 8, cmap="Blues", **kwargs):
    """Filled contours of ``exp(log_prob_fn(points))`` on an ``n x n`` grid over ``[-lim, lim]^2``
    (the perturbed densities behind the samples and arrows of chapters 8 and 9)."""
    X, Y, pts = grid(lim, n)
    with torch.no_grad():
        p = log_prob_fn(pts).exp().reshape(n, n)
    return ax.contourf(X.numpy(), Y.numpy(), p.numpy(), levels=levels, cmap=cmap, **kwargs)


def plot_diagonal_profile(ax, mixture, sigma: float, lim: float = 8.0, n: int = 400):
    """Along the diagonal ``x1 = x2 = t``: the density of ``mixture.perturbed(sigma)`` relative to its
    peak there, and the probability of the heaviest component (chapter 1; the static picture of the
    live figure ``perturbed``)."""
    q = mixture.perturbed(sigma)
    t = torch.linspace(-lim, lim, n, dtype=q.means.dtype)
    diag = torch.stack([t, t], 1)
    log_q = q.log_prob(diag)
    ax.plot(t, (log_q - log_q.max()).exp(), label=r"density $q_\sigma$ / its peak")
    ax.plot(t, q.responsibilities(diag)[:, int(q.weights.argmax())], "--", label="p(heavy mode | x)")
    ax.set_xlabel("position $t$ on the diagonal $x_1 = x_2 = t$")
    ax.set_ylabel("value")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="upper left", fontsize=8)


def plot_diagonal_scores(ax, curves, lim: float = 8.0, n: int = 200):
    """The first score component along the diagonal ``x1 = x2 = t`` for each ``(score_fn, label,
    style)`` in ``curves``, a style being a dict of line settings (chapter 4)."""
    t = torch.linspace(-lim, lim, n)
    diag = torch.stack([t, t], 1)
    with torch.no_grad():
        for score_fn, label, style in curves:
            ax.plot(t, score_fn(diag)[:, 0].float(), label=label, **style)
    ax.set_ylim(-10, 10)
    ax.set_xlabel("position $t$ on the diagonal $x_1 = x_2 = t$")
    ax.set_ylabel("first score component")
    ax.legend(fontsize=8, loc="lower left")


def neighbour_figure(queries, reference, indices, distances, title, query_label="sample", cell: float = 1.1):
    """One row per query image: the query, then its nearest ``reference`` images
    (``indices``, ``(N, k)``) titled with their ``distances``. Each image is drawn in a
    square cell ``cell`` inches wide. Returns the figure (chapter 11's Figure 10 stand-in).
    """
    import matplotlib.pyplot as plt

    n, k = indices.shape
    fig, axes = plt.subplots(n, k + 1, figsize=(cell * (k + 1), cell * n + 0.6), squeeze=False)
    for r in range(n):
        show_image(axes[r, 0], queries[r], query_label if r == 0 else None)
        for c in range(k):
            show_image(axes[r, c + 1], reference[int(indices[r, c])], f"d = {float(distances[r, c]):.2f}")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
