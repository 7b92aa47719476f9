"""Chapter 13 (score SDEs): the VE SDE, the samplers and the probability-flow ODE against
closed forms. Tolerances are a few standard errors of the Monte Carlo estimates."""

import math

import pytest
import torch

from ncsn_edu.sampling import annealed_langevin_dynamics
from ncsn_edu.schedules import geometric_sigmas
from ncsn_edu.score_sde import (
    VESDE,
    CountingScore,
    divergence_exact,
    divergence_hutchinson,
    gaussian_chain_variance,
    hutchinson_variance,
    ladder_score_fn,
    langevin_corrector_step,
    ode_log_likelihood,
    ode_sample,
    pc_sampler,
    rademacher,
)
from ncsn_edu.toy.distributions import GaussianMixture
from ncsn_edu.toy.domain import uniform_starts


def gaussian_score(data_var):
    return lambda x, sigma: -x / (data_var + sigma**2)


def var_se(x):
    """The sample variance of the flat ``x`` and its standard error ``sqrt((m4 - v^2) / n)``."""
    x = x.flatten().double()
    c = x - x.mean()
    v = c.pow(2).mean()
    return v.item(), math.sqrt((c.pow(4).mean() - v**2).item() / len(x))


def test_ve_sde_marginal_variance_and_ladder():
    sde = VESDE(0.5, 10.0)
    t = torch.linspace(0, 1, 7).numpy()
    assert torch.allclose(torch.as_tensor(sde.marginal_std(t) ** 2), torch.as_tensor(sde.sigma(t) ** 2 - 0.25))
    assert sde.sigma(0) == pytest.approx(0.5) and sde.sigma(1) == pytest.approx(10.0)
    # g^2 = d sigma^2 / dt, checked by a finite difference
    h = 1e-6
    assert sde.g2(0.3) == pytest.approx((sde.sigma(0.3 + h) ** 2 - sde.sigma(0.3 - h) ** 2) / (2 * h), rel=1e-6)
    assert torch.allclose(sde.ladder(10).float(), geometric_sigmas(10.0, 0.5, 10))
    # Euler-Maruyama from x(0) ~ N(0, 1 + sigma_min^2) = q_{sigma_min} of N(0, 1) ends at q_{sigma_max}
    n, steps = 50_000, 500
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(n, 1, generator=g, dtype=torch.float64) * math.sqrt(1 + 0.25)
    x1 = sde.euler_maruyama(x0, steps, g)
    em_expected = 1 + 0.25 + sum(sde.g2(k / steps) / steps for k in range(steps))  # the left Riemann sum
    target = 1 + sde.sigma_max**2
    assert em_expected == pytest.approx(target, rel=1e-2)  # the discretisation bias is small at 500 steps
    v, se = var_se(x1)
    assert abs(v - em_expected) < 4 * se, (v, em_expected, se)


@pytest.mark.parametrize("kind", ["predictor", "pc", "pc_eps"])
def test_samplers_reach_the_gaussian_target_variance(kind):
    data_var, n = 1.0, 50_000
    sde = VESDE(0.1, 10.0)
    kw = {"predictor": dict(predictor=True, n_corrector=0),
          "pc": dict(predictor=True, n_corrector=1, snr=0.16),
          "pc_eps": dict(predictor=True, n_corrector=1, eps=2e-4)}[kind]
    sigmas = sde.ladder(200)
    start_var = data_var + 10.0**2
    g = torch.Generator().manual_seed(1)
    x = pc_sampler(gaussian_score(data_var), torch.randn(n, 1, generator=g, dtype=torch.float64) * math.sqrt(start_var),
                   sigmas, generator=g, **kw)
    predicted = gaussian_chain_variance(data_var, sigmas, start_var, **kw)
    target = data_var + 0.1**2
    # the closed-form variance of the discrete chain is close to the target ...
    assert predicted == pytest.approx(target, rel=0.03)
    # ... and the sampler's variance agrees with it within 4 standard errors
    v, se = var_se(x)
    assert abs(v - predicted) < 4 * se, (v, predicted, se)
    assert abs(x.mean().item()) < 4 * math.sqrt(v / n)


@pytest.mark.parametrize("snr", [0.16, 0.316])
def test_langevin_corrector_step_follows_the_snr_rule(snr):
    """The SDE paper's corrector: a Langevin step ``x + eps s + sqrt(2 eps) z`` whose drift is ``snr``
    times its noise in size (batch-mean norms). The step's own ``z`` is redrawn from the same seed,
    and ``eps`` is read off the update by least squares, without the rule's formula."""
    x = torch.randn(64, 3, 5, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3
    s = -x / 10.0
    new = langevin_corrector_step(lambda y, sigma: -y / 10.0, x, 3.0, snr, generator=torch.Generator().manual_seed(1))
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    basis = torch.stack([s.flatten(), z.flatten()], 1)
    a, b = torch.linalg.lstsq(basis, (new - x).flatten()[:, None]).solution.flatten().tolist()
    assert torch.allclose(new, x + a * s + b * z, atol=1e-10)  # the update lies in the span of s and z
    assert b == pytest.approx(math.sqrt(2 * a), rel=1e-8)  # the Langevin pairing of drift and noise
    drift = a * s.flatten(1).norm(dim=1).mean()
    noise = b * z.flatten(1).norm(dim=1).mean()
    assert (drift / noise).item() == pytest.approx(snr, rel=1e-8)


def test_corrector_only_is_annealed_langevin_and_evaluations_are_counted():
    mix = GaussianMixture.paper_toy()
    sigmas = geometric_sigmas(20.0, 1.0, 5)
    levels = [mix.perturbed(s) for s in sigmas.tolist()]
    x0 = uniform_starts(64, generator=torch.Generator().manual_seed(0))
    score = CountingScore(lambda x, s: mix.perturbed(s).score(x))
    a = pc_sampler(score, x0, sigmas, predictor=False, n_corrector=7, eps=0.1,
                   generator=torch.Generator().manual_seed(3))
    b = annealed_langevin_dynamics(lambda x, lab: levels[lab[0]].score(x), x0, sigmas, 0.1, 7,
                                   torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert score.calls == 5 * 7
    score.calls = 0
    pc_sampler(score, x0, sigmas, predictor=True, n_corrector=2, generator=torch.Generator().manual_seed(3))
    assert score.calls == 4 + 5 * 2
    # a level-indexed network asked for a sigma it does not know
    fn = ladder_score_fn(lambda x, lab: x * 0 + lab[:, None].float(), sigmas)
    assert fn(x0, float(sigmas[2]))[0, 0].item() == 2
    with pytest.raises(ValueError):
        fn(x0, 3.3)


def test_ode_log_likelihood_matches_the_exact_log_density():
    mix = GaussianMixture.paper_toy(dtype=torch.float64)
    sde = VESDE(1.0, 20.0)
    x = mix.perturbed(1.0).sample(40, torch.Generator().manual_seed(0))
    x = torch.cat([x, torch.tensor([[0.0, 0.0], [6.0, -4.0]], dtype=torch.float64)])  # two low-density points
    exact = lambda y, s: mix.perturbed(s).score(y)  # noqa: E731
    prior = mix.perturbed(20.0).log_prob  # the exact q_{sigma_max}
    logp, x1, nfev = ode_log_likelihood(exact, sde, x, prior_log_prob=prior, rtol=1e-7, atol=1e-7)
    truth = mix.perturbed(1.0).log_prob(x)
    assert (logp - truth).abs().max().item() < 1e-3
    assert nfev > 10
    # The paper's Gaussian prior N(0, sigma_max^2 I) is only an approximation of q_{sigma_max}. The ODE
    # does not depend on the prior, so the two likelihoods differ by the prior's error at the end
    # points, e(x1) = log N(x1; 0, 400 I) - log q_20(x1), q_20 = sum_k w_k N(mu_k, 401 I). That error
    # lies between two closed forms: log q_20 >= sum_k w_k log N(x; mu_k, 401 I) (Jensen) and
    # log q_20 <= max_k log N(x; mu_k, 401 I). With sigma_min's density in the prior instead the error
    # is about |x1|^2 / 2 ~ 400.
    logp_g, _, _ = ode_log_likelihood(exact, sde, x, rtol=1e-7, atol=1e-7)
    low, high = prior_error_band(mix, 20.0, x1)
    err = logp_g - logp
    assert ((err >= low - 1e-6) & (err <= high + 1e-6)).all(), (err, low, high)
    assert (logp_g - truth).abs().max().item() < high.abs().max().item() + low.abs().max().item() + 1e-3
    # on the data it is not negligible (about 0.1 to 0.6 nats here), nor large
    assert 1e-2 < (logp_g - truth).abs().max().item() < 1.0
    # the ODE maps the data to t = 1 and back again to where they started (away from the saddle
    # between the modes, where the backward flow separates nearby paths)
    x0, _ = ode_sample(exact, sde, x1[:40], rtol=1e-8, atol=1e-8)
    assert (x0 - x[:40]).abs().max().item() < 1e-4


def gaussian_log_density(x, mean, var):
    """``log N(x; mean, var I)`` per row of ``x`` (any trailing shape), written out."""
    d = x[0].numel()
    sq = (x - mean).flatten(1).pow(2).sum(1)
    return -sq / (2 * var) - d / 2 * math.log(2 * math.pi * var)


def prior_error_band(mix, sigma_max, x):
    """Closed-form bounds on ``log N(x; 0, sigma_max^2 I) - log q_{sigma_max}(x)`` for a mixture of
    isotropic Gaussians with equal stds s: q = sum_k w_k N(mu_k, (s^2 + sigma_max^2) I) has a log-density
    between sum_k w_k log N_k (Jensen) and max_k log N_k."""
    prior = gaussian_log_density(x, 0.0, sigma_max**2)
    comps = torch.stack([gaussian_log_density(x, mu, s**2 + sigma_max**2)
                         for mu, s in zip(mix.means, mix.stds.tolist())], 1)
    return prior - comps.max(1).values, prior - (comps * mix.weights).sum(1)


@pytest.mark.parametrize("sigma_min, sigma_max, shape", [(1.0, 20.0, (2,)), (0.01, 50.0, (3, 4, 4))])
def test_prior_log_prob_is_the_gaussian_of_sigma_max(sigma_min, sigma_max, shape):
    """The VE SDE's prior is N(0, sigma_max^2 I), whatever the sample's shape: against its closed form
    (and torch's own Normal), at points at the prior's scale and far from it."""
    sde = VESDE(sigma_min, sigma_max)
    g = torch.Generator().manual_seed(0)
    x = sde.prior_sample(64, shape, g, dtype=torch.float64)
    x = torch.cat([x, 0.1 * x[:4], 3 * x[:4]])
    got = sde.prior_log_prob(x)
    assert got.shape == (len(x),) and got.dtype == torch.float64
    want = gaussian_log_density(x, 0.0, sigma_max**2)
    assert torch.allclose(got, want, rtol=0, atol=1e-9)
    normal = torch.distributions.Normal(torch.zeros((), dtype=x.dtype), torch.tensor(sigma_max, dtype=x.dtype))
    normal = normal.log_prob(x).flatten(1).sum(1)
    assert torch.allclose(got, normal, rtol=0, atol=1e-9)
    # its samples are the prior's: the mean of -log p over the draws is the entropy (d/2) log(2 pi e var),
    # with standard error sqrt(d/2 / n) (|x|^2 / var is chi-square with d degrees of freedom)
    d, n = math.prod(shape), 4000
    draws = sde.prior_sample(n, shape, g, dtype=torch.float64)
    entropy = d / 2 * math.log(2 * math.pi * math.e * sigma_max**2)
    assert abs(-sde.prior_log_prob(draws).mean().item() - entropy) < 4 * math.sqrt(d / 2 / n)


def test_the_gaussian_prior_is_close_to_the_toys_q_sigma_max():
    """Chapter 13's likelihood uses N(0, 20^2 I) for q_20 of the paper's toy: the error at samples of
    q_20 lies in the closed-form band of ``prior_error_band`` and is below one nat at nearly all of
    them; its mean over q_20 is -KL(q_20 || prior), between -sum_k w_k KL(N_k || prior) (convexity)
    and 0, to four standard errors."""
    mix = GaussianMixture.paper_toy(dtype=torch.float64)
    sde = VESDE(1.0, 20.0)
    q = mix.perturbed(20.0)
    x = q.sample(20_000, torch.Generator().manual_seed(1))
    err = sde.prior_log_prob(x) - q.log_prob(x)
    low, high = prior_error_band(mix, 20.0, x)
    assert ((err >= low - 1e-9) & (err <= high + 1e-9)).all()
    assert (err.abs() < 1.0).double().mean().item() > 0.99
    v, var = 1 + 20.0**2, 20.0**2  # KL(N(mu, v I) || N(0, var I)) = (d/2)(v/var - 1 - log(v/var)) + |mu|^2/(2 var)
    kl_bound = sum(w * ((v / var - 1 - math.log(v / var)) + mu.pow(2).sum().item() / (2 * var))
                   for w, mu in zip(mix.weights.tolist(), mix.means))
    se = err.std().item() / math.sqrt(len(x))
    assert -kl_bound - 4 * se < err.mean().item() < 4 * se, (err.mean().item(), kl_bound, se)


def test_hutchinson_mean_and_variance():
    A = torch.tensor([[1.5, -0.7], [2.0, -0.4]], dtype=torch.float64)
    assert hutchinson_variance(A, "rademacher") == pytest.approx((-0.7 + 2.0) ** 2)
    assert hutchinson_variance(A, "gaussian") == pytest.approx(2 * (1.5**2 + 0.4**2 + 2 * 0.65**2))
    n = 40_000
    x = torch.randn(n, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    fn = lambda y: y @ A.T + torch.sin(y).sum(1, keepdim=True) * 0  # noqa: E731  (Jacobian A everywhere)
    _, div = divergence_exact(fn, x[:5])
    assert torch.allclose(div, torch.full((5,), A.trace().item(), dtype=torch.float64))
    g = torch.Generator().manual_seed(1)
    probes = {"rademacher": rademacher((n, 2), g), "gaussian": torch.randn(n, 2, generator=g, dtype=torch.float64)}
    for probe, v in probes.items():
        _, est = divergence_hutchinson(fn, x, v)
        var = hutchinson_variance(A, probe)
        assert abs(est.mean().item() - A.trace().item()) < 4 * math.sqrt(var / n), probe
        v_hat, se = var_se(est)
        assert abs(v_hat - var) < 4 * se + 1e-12, (probe, v_hat, var, se)
    # a non-linear field in 3-D: the estimator is unbiased for the exact divergence at every point
    B = torch.tensor([[0.3, 1.0, -2.0], [0.5, -1.0, 0.2], [1.0, 0.0, 0.7]], dtype=torch.float64)
    field = lambda y: torch.tanh(y @ B.T)  # noqa: E731
    x0 = torch.tensor([[0.2, -0.1, 0.4]], dtype=torch.float64).expand(n, 3)
    _, exact_div = divergence_exact(field, x0[:1])
    _, est = divergence_hutchinson(field, x0, rademacher((n, 3), g))
    J = torch.autograd.functional.jacobian(lambda y: field(y[None])[0], x0[0])
    assert abs(est.mean().item() - exact_div.item()) < 4 * math.sqrt(hutchinson_variance(J, "rademacher") / n)
