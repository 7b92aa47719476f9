"""Plotting helpers shared by the chapters: densities and score fields on a 2D grid."""

from __future__ import annotations

import torch


def grid(lim: float = 8.0, n: int = 100):
    """An ``n x n`` grid over ``[-lim, lim]^2``: returns ``(X, Y, points)`` with
    ``points`` of shape ``(n*n, 2)``."""
    t = torch.linspace(-lim, lim, n)
    Y, X = torch.meshgrid(t, t, indexing="ij")
    return X, Y, torch.stack([X.flatten(), Y.flatten()], 1)


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
