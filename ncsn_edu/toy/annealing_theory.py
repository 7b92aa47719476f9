"""Closed-form targets for annealed Langevin dynamics on a two-mode Gaussian mixture.

:func:`side_mass` is where a sampler that had fully equilibrated at a noise level would
put its samples (the mass of the mixture on each side of the bisector between the two
means); :func:`equilibrium_side_fraction` evaluates it along a ladder of noise levels, and
:func:`langevin_stationary_variance` is the width that unadjusted Langevin dynamics with a
finite step actually reaches on a Gaussian.
"""

from __future__ import annotations

import torch

from ncsn_edu.toy.distributions import GaussianMixture


def side_mass(mixture: GaussianMixture) -> torch.Tensor:
    """The exact probability that a sample of a two-component isotropic mixture lies
    nearer to mean ``k`` than to the other mean, shape ``(2,)``.

    The two sides are the half-spaces split by the perpendicular bisector of the means,
    at distance ``d/2`` from each (``d`` = the distance between the means). A component of
    standard deviation ``s`` puts ``Phi(d / (2 s))`` of its mass on its own side, so side
    ``k`` holds ``w_k Phi(d/2s_k) + w_j Phi(-d/2s_j)``. This is what
    :func:`ncsn_edu.toy.distributions.mode_fractions` measures on samples.
    Belongs to chapter 7 (slow mixing).
    """
    if mixture.means.shape[0] != 2:
        raise ValueError("side_mass needs a mixture of exactly two components")
    half = 0.5 * torch.dist(mixture.means[0].double(), mixture.means[1].double())
    own = torch.special.ndtr(half / mixture.stds.double())  # each component's mass on its own side
    w = mixture.weights.double()
    return torch.stack([w[0] * own[0] + w[1] * (1 - own[1]), w[1] * own[1] + w[0] * (1 - own[0])])


def equilibrium_side_fraction(mixture: GaussianMixture, sigmas, convention: str = "perturbed") -> torch.Tensor:
    """:func:`side_mass` of component 1's side at every level of ``sigmas``, for the two
    definitions of the annealed densities in
    :func:`ncsn_edu.toy.distributions.annealed_score_fn`: ``"perturbed"`` (component
    standard deviations ``sqrt(s_k^2 + sigma^2)``) or ``"code"`` (standard deviation
    ``sigma`` itself). For the paper's toy and the code's convention this is
    ``0.2 Phi(-5 sqrt2 / sigma) + 0.8 Phi(5 sqrt2 / sigma)``.
    Introduced in chapter 7 (slow mixing)."""
    out = []
    for s in torch.as_tensor(sigmas, dtype=torch.float64).flatten().tolist():
        if convention == "perturbed":
            level = mixture.perturbed(s)
        elif convention == "code":
            level = GaussianMixture(mixture.means, s, mixture.weights, dtype=mixture.means.dtype)
        else:
            raise ValueError(f"convention must be 'perturbed' or 'code', got {convention!r}")
        out.append(side_mass(level)[1])
    return torch.stack(out)
