"""NCSN as a variance-exploding SDE (Song, Sohl-Dickstein, Kingma, Kumar, Ermon and Poole,
"Score-Based Generative Modeling through Stochastic Differential Equations", ICLR 2021).

* :class:`VESDE`: the noise levels ``sigma(t) = sigma_min (sigma_max / sigma_min)^t`` on
  ``t in [0, 1]``, the forward SDE ``dx = sqrt(d[sigma^2]/dt) dw``, its marginal standard
  deviation and the geometric ladder that discretises it.
* Samplers on a decreasing ladder of noise levels: :func:`reverse_diffusion_step` (the
  predictor), :func:`langevin_corrector_step` (the corrector) and :func:`pc_sampler`, whose
  corrector-only case is annealed Langevin dynamics (Algorithm 1 of the NCSN paper) and
  whose predictor-only case is reverse diffusion.
* The probability-flow ODE: :meth:`VESDE.ode_drift`, :func:`ode_sample` (noise to data with
  ``scipy.integrate.solve_ivp``) and :func:`ode_log_likelihood` (exact log-likelihood by the
  instantaneous change of variables).
* Divergences: :func:`divergence_exact` (one backward pass per dimension) and
  :func:`divergence_hutchinson` (one backward pass, unbiased), with the closed-form
  variance of Hutchinson's estimator, :func:`hutchinson_variance`.
* :func:`gaussian_chain_variance`: the exact variance the samplers reach on Gaussian data.

A score function here is ``score_fn(x, sigma)`` with ``sigma`` a float: the score of the
data perturbed by ``N(0, sigma^2 I)``. For the toy mixture that is
:func:`ncsn_edu.toy.distributions.perturbed_score_fn` (``mixture.perturbed(s).score(x)``); for a
network with ``condition="sigma"`` it is ``model.score_at``; :func:`ladder_score_fn` wraps a level-indexed network.
Introduced in chapter 13 (score SDEs).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ncsn_edu.sampling import step_coefficients


class VESDE:
    """The variance-exploding SDE ``dx = sqrt(d[sigma^2(t)]/dt) dw`` on ``t in [0, 1]`` with
    ``sigma(t) = sigma_min (sigma_max / sigma_min)^t``.

    Started at ``x(0) ~ q_{sigma_min}`` (the data perturbed by the smallest noise level),
    ``x(t) | x(0) ~ N(x(0), (sigma(t)^2 - sigma_min^2) I)``, so ``x(t) ~ q_{sigma(t)}``
    exactly: the marginals are the book's perturbed densities. (The SDE paper starts from
    the data itself and takes ``sigma(t)`` as the standard deviation, which is the same up
    to the small ``sigma_min``.)
    Introduced in chapter 13 (score SDEs).
    """

    def __init__(self, sigma_min: float, sigma_max: float):
        if not 0 < sigma_min < sigma_max:
            raise ValueError("need 0 < sigma_min < sigma_max")
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)
        self.log_ratio = math.log(self.sigma_max / self.sigma_min)

    def sigma(self, t):
        """``sigma(t) = sigma_min (sigma_max / sigma_min)^t`` (float or array)."""
        return self.sigma_min * np.exp(self.log_ratio * np.asarray(t, dtype=np.float64))

    def g2(self, t):
        """The squared diffusion ``g(t)^2 = d[sigma^2]/dt = 2 log(sigma_max/sigma_min) sigma(t)^2``."""
        return 2 * self.log_ratio * self.sigma(t) ** 2

    def marginal_std(self, t):
        """The standard deviation of ``x(t) - x(0)``: ``sqrt(sigma(t)^2 - sigma_min^2)``."""
        return np.sqrt(self.sigma(t) ** 2 - self.sigma_min**2)

    def ladder(self, n: int) -> torch.Tensor:
        """``sigma(t_i)`` at ``n`` equally spaced times from 1 down to 0: the geometric
        ladder ``sigma_max > ... > sigma_min`` (largest first, as the samplers take it)."""
        if n < 2:
            raise ValueError("a ladder needs at least 2 levels")
        return torch.as_tensor(self.sigma(np.linspace(1.0, 0.0, n)), dtype=torch.float64)

    def euler_maruyama(self, x0: torch.Tensor, n_steps: int, generator=None, keep_every: int | None = None):
        """Simulate the forward SDE from ``t = 0`` to ``t = 1`` with ``n_steps`` Euler-Maruyama
        steps ``x <- x + g(t_k) sqrt(dt) z``; returns ``x(1)``, or ``(x(1), states)`` with
        ``keep_every=k``: the start and every ``k``-th state (times ``0, k dt, 2k dt, ...``)."""
        x, dt = x0.clone(), 1.0 / n_steps
        states = [x.clone()] if keep_every else None
        for k in range(n_steps):
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            x = x + math.sqrt(self.g2(k * dt) * dt) * z
            if keep_every and (k + 1) % keep_every == 0:
                states.append(x.clone())
        return (x, states) if keep_every else x

    def ode_drift(self, score_fn, x: torch.Tensor, t: float) -> torch.Tensor:
        """The probability-flow ODE's drift ``dx/dt = -1/2 g(t)^2 s(x, sigma(t))``."""
        return -0.5 * float(self.g2(t)) * score_fn(x, float(self.sigma(t)))

    def prior_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log N(x; 0, sigma_max^2 I)``, the SDE paper's prior for ``q_{sigma_max}``."""
        d = x[0].numel()
        var = self.sigma_max**2
        return -0.5 * x.flatten(1).pow(2).sum(1) / var - 0.5 * d * math.log(2 * math.pi * var)

    def prior_sample(self, n: int, shape, generator=None, dtype=torch.float32) -> torch.Tensor:
        """``n`` draws of ``N(0, sigma_max^2 I)`` of the given per-sample ``shape``."""
        return self.sigma_max * torch.randn((n, *shape), generator=generator, dtype=dtype)


# ----------------------------------------------------------------------------- samplers

def reverse_diffusion_step(score_fn, x, sigma: float, sigma_next: float, generator=None):
    """One reverse-diffusion (predictor) step from level ``sigma`` down to ``sigma_next``:
    ``x <- x + (sigma^2 - sigma_next^2) s(x, sigma) + sqrt(sigma^2 - sigma_next^2) z``,
    the reverse of the forward step that adds ``N(0, (sigma^2 - sigma_next^2) I)``.
    Introduced in chapter 13 (score SDEs)."""
    if not sigma > sigma_next >= 0:
        raise ValueError("the predictor steps down: need sigma > sigma_next >= 0")
    d = sigma**2 - sigma_next**2
    z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return x + d * score_fn(x, sigma) + math.sqrt(d) * z


def langevin_corrector_step(score_fn, x, sigma: float, snr: float, generator=None):
    """One Langevin corrector step at level ``sigma`` with the SDE paper's step rule:
    ``eps = 2 (snr ||z|| / ||s||)^2`` (norms per sample, averaged over the batch), then
    ``x <- x + eps s(x, sigma) + sqrt(2 eps) z``. ``snr`` is the ratio of the drift's size
    to the noise's size it aims for.
    Introduced in chapter 13 (score SDEs)."""
    if snr <= 0:
        raise ValueError("snr must be positive")
    s = score_fn(x, sigma)
    z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    s_norm = s.flatten(1).norm(dim=1).mean()
    z_norm = z.flatten(1).norm(dim=1).mean()
    eps = 2 * (snr * z_norm / s_norm) ** 2
    return x + eps * s + torch.sqrt(2 * eps) * z


def pc_sampler(score_fn, x, sigmas, predictor: bool = True, n_corrector: int = 1, snr: float | None = 0.16,
               eps: float | None = None, generator=None, final_denoise: bool = False):
    """Predictor-corrector sampling down a decreasing ladder ``sigmas`` (largest first).

    At each level ``sigma_i``: ``n_corrector`` Langevin corrector steps at ``sigma_i``, then
    (if ``predictor``) one reverse-diffusion step to ``sigma_{i+1}`` (none after the last
    level). The corrector's step follows the SDE paper's ``snr`` rule, or, when ``eps`` is
    given, the NCSN rule ``alpha_i = eps sigma_i^2 / sigma_L^2`` in the paper's form
    ``x + alpha_i/2 s + sqrt(alpha_i) z``: then ``predictor=False`` *is* annealed Langevin
    dynamics (:func:`ncsn_edu.sampling.annealed_langevin_dynamics`, the same noise draws and
    the same samples). ``n_corrector=0`` is reverse diffusion alone. The result samples
    ``q_{sigma_L}``; ``final_denoise`` adds Tweedie's step ``x + sigma_L^2 s(x, sigma_L)``.
    Score evaluations: ``(L - 1)`` predictor steps plus ``L * n_corrector`` corrector steps
    (plus one for ``final_denoise``).
    Introduced in chapter 13 (score SDEs).
    """
    sig = [float(s) for s in torch.as_tensor(sigmas, dtype=torch.float64).flatten().tolist()]
    if len(sig) < 1 or any(b >= a for a, b in zip(sig[:-1], sig[1:])) or sig[-1] <= 0:
        raise ValueError("sigmas must be positive and strictly decreasing (largest first)")
    if n_corrector < 0 or (n_corrector > 0 and eps is None and snr is None):
        raise ValueError("n_corrector must be >= 0 and the corrector needs snr or eps")
    x = x.clone()
    with torch.no_grad():
        for i, sigma in enumerate(sig):
            if eps is not None:
                drift, noise = step_coefficients(eps, sigma, sig[-1], "paper")
            for _ in range(n_corrector):
                if eps is None:
                    x = langevin_corrector_step(score_fn, x, sigma, snr, generator)
                else:
                    z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
                    x = x + drift * score_fn(x, sigma) + noise * z
            if predictor and i + 1 < len(sig):
                x = reverse_diffusion_step(score_fn, x, sigma, sig[i + 1], generator)
        if final_denoise:
            x = x + sig[-1] ** 2 * score_fn(x, sig[-1])
    return x


def ladder_score_fn(model, sigmas):
    """``score_fn(x, sigma)`` for a level-indexed network ``model(x, labels)`` that only
    knows the levels ``sigmas``; asking for another sigma is an error.
    Introduced in chapter 13 (score SDEs)."""
    table = torch.as_tensor(sigmas, dtype=torch.float64).flatten().tolist()

    def score_fn(x, sigma):
        i = min(range(len(table)), key=lambda k: abs(math.log(table[k] / sigma)))
        if abs(math.log(table[i] / sigma)) > 1e-5:
            raise ValueError(f"sigma = {sigma:g} is not one of the network's levels")
        return model(x, torch.full((x.shape[0],), i, dtype=torch.long, device=x.device))

    return score_fn


class CountingScore:
    """Wrap ``score_fn(x, sigma)`` and count its calls (score evaluations per sample).
    Introduced in chapter 13 (score SDEs)."""

    def __init__(self, score_fn):
        self.score_fn, self.calls = score_fn, 0

    def __call__(self, x, sigma):
        self.calls += 1
        return self.score_fn(x, sigma)


# ----------------------------------------------------------------------------- divergences

def divergence_exact(fn, x: torch.Tensor):
    """``(fn(x), div fn(x))`` for ``fn`` mapping ``(N, D)`` to ``(N, D)`` row by row: the
    trace of the Jacobian from ``D`` backward passes (cheap for the toy's ``D = 2``).
    Introduced in chapter 13 (score SDEs)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        f = fn(x)
        div = torch.zeros(x.shape[0], dtype=f.dtype, device=x.device)
        for j in range(x.shape[1]):
            div = div + torch.autograd.grad(f[:, j].sum(), x, retain_graph=True)[0][:, j]
    return f.detach(), div.detach()


def divergence_hutchinson(fn, x: torch.Tensor, v: torch.Tensor):
    """``(fn(x), v^T J v)`` with ``J`` the Jacobian of ``fn`` at each row of ``x`` and one
    probe ``v`` per row (``E[v v^T] = I``): Hutchinson's unbiased estimate of the
    divergence, from one backward pass whatever the dimension (the trick of chapter 3's
    sliced score matching).
    Introduced in chapter 13 (score SDEs)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        f = fn(x)
        vjp = torch.autograd.grad((f * v).sum(), x)[0]
    return f.detach(), (vjp * v).flatten(1).sum(1).detach()


def rademacher(shape, generator=None, dtype=torch.float64) -> torch.Tensor:
    """Independent ``+-1`` entries with probability 1/2 each.
    Introduced in chapter 13 (score SDEs)."""
    return torch.randint(0, 2, shape, generator=generator).to(dtype) * 2 - 1


def hutchinson_variance(A, probe: str = "rademacher") -> float:
    """The variance of ``v^T A v`` over the probe ``v``, in closed form. With ``S = (A +
    A^T)/2`` (only the symmetric part enters ``v^T A v``): Gaussian probes give
    ``2 sum_ij S_ij^2``; Rademacher probes give ``2 sum_{i != j} S_ij^2`` (``v_i^2 = 1``
    removes the diagonal's noise; for a 2x2 matrix it is ``(A_12 + A_21)^2``).
    Introduced in chapter 13 (score SDEs)."""
    A = torch.as_tensor(A, dtype=torch.float64)
    S = (A + A.T) / 2
    if probe == "gaussian":
        return float(2 * (S**2).sum())
    if probe == "rademacher":
        return float(2 * ((S**2).sum() - (torch.diagonal(S) ** 2).sum()))
    raise ValueError("probe must be 'rademacher' or 'gaussian'")


# ----------------------------------------------------------------------------- the probability-flow ODE

def _as_numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().double().numpy().ravel()


def ode_sample(score_fn, sde: VESDE, x1: torch.Tensor, rtol: float = 1e-5, atol: float = 1e-5, method: str = "RK45"):
    """Integrate the probability-flow ODE from ``t = 1`` (``x1``, e.g. prior samples) down to
    ``t = 0`` with ``scipy.integrate.solve_ivp``; the whole batch is one system. Returns
    ``(x0, nfev)`` where ``nfev`` is the number of drift (score) evaluations.
    Introduced in chapter 13 (score SDEs)."""
    from scipy.integrate import solve_ivp

    shape, dtype = x1.shape, x1.dtype

    def f(t, y):
        x = torch.as_tensor(y, dtype=dtype).view(shape)
        with torch.no_grad():
            return _as_numpy(sde.ode_drift(score_fn, x, t))

    sol = solve_ivp(f, (1.0, 0.0), _as_numpy(x1), method=method, rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    return torch.as_tensor(sol.y[:, -1], dtype=dtype).view(shape), sol.nfev


def ode_log_likelihood(score_fn, sde: VESDE, x0: torch.Tensor, prior_log_prob=None, rtol: float = 1e-6,
                       atol: float = 1e-6, divergence: str = "exact", probes: torch.Tensor | None = None,
                       method: str = "RK45"):
    """Exact log-likelihood of ``x0`` under the model defined by the probability-flow ODE.

    Integrates ``x`` and ``delta = int_0^t div f(x(s), s) ds`` from ``t = 0`` to ``1``
    together (``solve_ivp``), then ``log p_0(x0) = log p_1(x(1)) + delta(1)`` (the
    instantaneous change of variables). ``prior_log_prob`` is ``log p_1`` (default the
    paper's ``N(0, sigma_max^2 I)``). ``divergence="exact"`` takes the Jacobian's trace;
    ``"hutchinson"`` uses ``v^T J v`` with the fixed ``probes`` (one per sample, drawn once
    per integration as in the SDE paper). Returns ``(log_p, x1, nfev)``.
    Introduced in chapter 13 (score SDEs)."""
    from scipy.integrate import solve_ivp

    if divergence not in ("exact", "hutchinson"):
        raise ValueError("divergence must be 'exact' or 'hutchinson'")
    if divergence == "hutchinson" and (probes is None or probes.shape != x0.shape):
        raise ValueError("hutchinson needs probes of the shape of x0")
    prior_log_prob = sde.prior_log_prob if prior_log_prob is None else prior_log_prob
    n, dtype = x0.shape[0], x0.dtype
    size = x0.numel()

    def f(t, y):
        x = torch.as_tensor(y[:size], dtype=dtype).view(x0.shape)

        def drift(z):
            return sde.ode_drift(score_fn, z, t)

        if divergence == "exact":
            dx, div = divergence_exact(drift, x.flatten(1))
        else:
            dx, div = divergence_hutchinson(drift, x.flatten(1), probes.flatten(1).to(dtype))
        return np.concatenate([_as_numpy(dx), _as_numpy(div)])

    y0 = np.concatenate([_as_numpy(x0), np.zeros(n)])
    sol = solve_ivp(f, (0.0, 1.0), y0, method=method, rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    x1 = torch.as_tensor(sol.y[:size, -1], dtype=dtype).view(x0.shape)
    delta = torch.as_tensor(sol.y[size:, -1], dtype=torch.float64)
    return prior_log_prob(x1).double() + delta, x1, sol.nfev


# ----------------------------------------------------------------------------- closed forms on a Gaussian

def gaussian_chain_variance(data_var: float, sigmas, start_var: float, predictor: bool = True,
                            n_corrector: int = 0, snr: float | None = None, eps: float | None = None) -> float:
    """The exact per-coordinate variance that :func:`pc_sampler` ends with when the data are
    ``N(0, data_var)`` (so ``q_sigma = N(0, data_var + sigma^2)`` and the score is
    ``-x / (data_var + sigma^2)``) and the start has variance ``start_var``.

    Every step is linear in ``x`` plus independent noise, so the variance follows a
    recursion: a predictor step from ``sigma`` to ``sigma'`` with ``d = sigma^2 - sigma'^2``
    maps ``V`` to ``(1 - d/v)^2 V + d`` (``v = data_var + sigma^2``); a corrector step with
    step ``e`` maps ``V`` to ``(1 - e/v)^2 V + 2 e``. For the ``snr`` rule ``e`` is taken at
    its large-batch value: the batch-mean norms of ``z`` and of ``s = -x/v`` (with ``V`` the
    current variance of ``x``) have the ratio ``v / sqrt(V)``, so ``e = 2 snr^2 v^2 / V``;
    for the NCSN rule ``e = eps sigma^2 / (2 sigma_L^2)``. The target is
    ``data_var + sigma_L^2``; the difference is the discretisation bias.
    Introduced in chapter 13 (score SDEs)."""
    sig = [float(s) for s in torch.as_tensor(sigmas, dtype=torch.float64).flatten().tolist()]
    V = float(start_var)
    for i, sigma in enumerate(sig):
        v = data_var + sigma**2
        for _ in range(n_corrector):
            e = eps * sigma**2 / (2 * sig[-1] ** 2) if eps is not None else 2 * snr**2 * v**2 / V
            V = (1 - e / v) ** 2 * V + 2 * e
        if predictor and i + 1 < len(sig):
            d = sigma**2 - sig[i + 1] ** 2
            V = (1 - d / v) ** 2 * V + d
    return V
