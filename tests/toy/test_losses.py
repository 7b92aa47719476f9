"""The score-matching losses checked against mathematics (PAPER.md, background section).

* exact score matching: the trace equals the autograd Jacobian's, and minimising it for a
  Gaussian recovers the maximum-likelihood mean and precision (tests/toy/test_gaussian_models.py);
* sliced score matching: unbiased for the exact objective (statistical test, 5 standard
  errors) for every projection distribution, plain and variance-reduced;
* denoising score matching: its minimiser is the score of the data convolved with
  N(0, sigma^2 I) (closed-form Gaussian optimum, and Vincent's identity for a mixture);
* the paper's annealed DSM: exact semantics, and sigma^2 times the loss of the optimal
  score is of order one at every level.
"""

import math

import pytest
import torch

from ncsn_edu.schedules import geometric_sigmas
from ncsn_edu.toy import losses
from ncsn_edu.toy.distributions import GaussianMixture
from ncsn_edu.toy.gaussian_models import LinearScore
from ncsn_edu.toy.losses import (
    anneal_dsm_loss,
    dsm_loss,
    sample_projections,
    score_matching_loss,
    sliced_score_matching_loss,
)
from ncsn_edu.toy.nets import ScoreMLP

F64 = torch.float64
N_SE = 5.0  # tolerance of every statistical test, in standard errors


def gen(seed):
    return torch.Generator().manual_seed(seed)


def small_mlp(dim, seed=0):
    torch.manual_seed(seed)  # parameter initialisation only
    return ScoreMLP(dim=dim, hidden=16).to(F64)


def jacobian_trace(score_fn, x):
    jac = torch.func.vmap(torch.func.jacrev(lambda xi: score_fn(xi[None])[0]))(x)  # (N, D, D)
    return jac.diagonal(dim1=1, dim2=2).sum(1), jac


# ---------------------------------------------------------------- exact score matching


def test_exact_sm_trace_equals_autograd_jacobian_trace():
    model = small_mlp(3)
    x = torch.randn(17, 3, generator=gen(1), dtype=F64)
    per = score_matching_loss(model, x, reduction="none")
    tr, _ = jacobian_trace(model, x)
    with torch.no_grad():
        expected = tr + 0.5 * (model(x) ** 2).sum(1)
    assert torch.allclose(per, expected, atol=1e-10)
    assert score_matching_loss(model, x).item() == pytest.approx(expected.mean().item(), abs=1e-10)


def test_exact_sm_of_linear_score_is_trace_plus_half_square():
    A = torch.randn(4, 4, generator=gen(2), dtype=F64)
    model = LinearScore(A, torch.randn(4, generator=gen(3), dtype=F64))
    x = torch.randn(50, 4, generator=gen(4), dtype=F64)
    assert torch.allclose(score_matching_loss(model, x, reduction="none"), model.exact_objective(x, "none").detach())
    # tr(A) enters, not the sum of all entries or tr(A^T A)
    expected = torch.trace(A) + 0.5 * ((x @ A.T + model.b.detach()) ** 2).sum(1).mean()
    assert score_matching_loss(model, x).item() == pytest.approx(expected.item(), rel=1e-12)


def test_exact_sm_on_image_shaped_batch():
    # s(x) = -x^3 elementwise: tr(J) = -3 sum x^2, computed over all pixels.
    x = torch.randn(5, 1, 2, 3, generator=gen(5), dtype=F64)
    per = score_matching_loss(lambda y: -(y**3), x, reduction="none")
    expected = -3 * (x**2).flatten(1).sum(1) + 0.5 * (x**6).flatten(1).sum(1)
    assert torch.allclose(per, expected)


def test_exact_sm_works_under_no_grad_and_gradients_flow():
    model = small_mlp(2)
    x = torch.randn(8, 2, generator=gen(6), dtype=F64)
    with torch.no_grad():
        value = score_matching_loss(model, x)
    assert torch.isfinite(value)
    score_matching_loss(model, x).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


# ---------------------------------------------------------------- projections


@pytest.mark.parametrize("kind", ["gaussian", "rademacher", "sphere"])
def test_projections_have_identity_second_moment(kind):
    dim, n = 5, 40000
    v = sample_projections(n, dim, kind, gen(8), dtype=F64)
    assert v.shape == (n, dim)
    second = v.T @ v / n
    # each entry of v v^T has variance at most ~3 for these laws: 5 SE = 5 sqrt(3/n)
    assert (second - torch.eye(dim, dtype=F64)).abs().max().item() < N_SE * math.sqrt(3 / n)
    if kind == "rademacher":
        assert set(v.unique().tolist()) == {-1.0, 1.0}
    if kind == "sphere":
        assert torch.allclose(v.norm(dim=1), torch.full((n,), math.sqrt(dim), dtype=F64))
    assert torch.equal(v, sample_projections(n, dim, kind, gen(8), dtype=F64))  # seeded


def test_unknown_projection_raises():
    with pytest.raises(ValueError, match="projection kind"):
        sample_projections(3, 2, "uniform")


# ---------------------------------------------------------------- sliced score matching


def sliced_repeats(model, x, repeats, seed, **kw):
    """Per-point SSM values, ``repeats`` independent draws for each of the N points: (repeats, N)."""
    xr = x.repeat(repeats, 1)
    per = sliced_score_matching_loss(model, xr, generator=gen(seed), reduction="none", **kw)
    return per.detach().view(repeats, x.shape[0])


def mean_and_standard_error(values):
    """Mean over everything of a (repeats, N) table and its standard error, from the
    per-point variances (the N points are fixed, only the projections are random)."""
    r, n = values.shape
    var_of_point_means = values.var(0) / r
    return values.mean().item(), math.sqrt(var_of_point_means.sum().item()) / n


def linear_model(dim=4):
    # a contracting, non-symmetric A (tr(A) about -dim)
    A = 0.5 * torch.randn(dim, dim, generator=gen(10), dtype=F64) - torch.eye(dim, dtype=F64)
    return LinearScore(A, 0.5 * torch.randn(dim, generator=gen(11), dtype=F64))


@pytest.mark.parametrize("n_projections", [1, 3])
@pytest.mark.parametrize("variance_reduced", [False, True])
@pytest.mark.parametrize("kind", ["gaussian", "rademacher", "sphere"])
def test_sliced_estimator_is_unbiased_for_the_exact_objective(kind, variance_reduced, n_projections):
    model = linear_model()
    x = torch.randn(64, 4, generator=gen(12), dtype=F64)
    exact = model.exact_objective(x).item()
    values = sliced_repeats(model, x, 1500, seed=13, projection=kind, variance_reduced=variance_reduced,
                            n_projections=n_projections)
    mean, se = mean_and_standard_error(values)
    assert abs(mean - exact) < N_SE * se, (mean, exact, se)
    # power: the tolerance is small next to the trace term (a 5% error in it would fail)
    assert N_SE * se < 0.05 * abs(torch.trace(model.A).item())


def test_the_unbiasedness_test_catches_wrongly_scaled_projections(monkeypatch):
    # Unit-norm projections (E[v v^T] = I/D) make the estimator biased; the same
    # statistical test must reject them.
    model = linear_model()
    x = torch.randn(64, 4, generator=gen(12), dtype=F64)
    exact = model.exact_objective(x).item()
    right = losses.sample_projections

    def unit(n, dim, kind="gaussian", generator=None, device=None, dtype=None):
        v = right(n, dim, kind, generator, device, dtype)
        return v / math.sqrt(dim)

    monkeypatch.setattr(losses, "sample_projections", unit)
    mean, se = mean_and_standard_error(sliced_repeats(model, x, 1500, seed=13, projection="sphere"))
    assert abs(mean - exact) > 10 * N_SE * se


@pytest.mark.parametrize("variance_reduced", [False, True])
def test_sliced_single_projection_is_vJv_plus_half_square(variance_reduced):
    # With the projections reproduced from the same seed, each per-sample value is
    # v^T J v + 1/2 (v^T s)^2 (or + 1/2 ||s||^2), J from autograd, for a nonlinear model.
    model = small_mlp(3)
    x = torch.randn(9, 3, generator=gen(14), dtype=F64)
    per = sliced_score_matching_loss(model, x, projection="rademacher", variance_reduced=variance_reduced,
                                     generator=gen(15), reduction="none")
    v = sample_projections(9, 3, "rademacher", gen(15), dtype=F64)
    _, jac = jacobian_trace(model, x)
    with torch.no_grad():
        s = model(x)
        vjv = torch.einsum("ni,nij,nj->n", v, jac, v)
        second = 0.5 * (s**2).sum(1) if variance_reduced else 0.5 * (v * s).sum(1) ** 2
    assert torch.allclose(per, vjv + second, atol=1e-10)


def test_variance_reduction_lowers_the_variance():
    model = linear_model()
    x = torch.randn(64, 4, generator=gen(16), dtype=F64)
    plain = sliced_repeats(model, x, 500, seed=17, projection="gaussian").var(0).mean()
    reduced = sliced_repeats(model, x, 500, seed=17, projection="gaussian", variance_reduced=True).var(0).mean()
    assert reduced < 0.5 * plain


def test_sliced_on_image_shaped_batch_matches_exact_in_expectation():
    # s(x) = -x^3 on (N, 1, 2, 2): exact objective known, projections over 4 pixels.
    x = torch.randn(32, 1, 2, 2, generator=gen(18), dtype=F64)
    fn = lambda y: -(y**3)  # noqa: E731
    exact = score_matching_loss(fn, x).item()
    per = sliced_score_matching_loss(fn, x.repeat(800, 1, 1, 1), generator=gen(19), reduction="none")
    mean, se = mean_and_standard_error(per.view(800, 32))
    assert abs(mean - exact) < N_SE * se


# ---------------------------------------------------------------- denoising score matching


def test_dsm_minimiser_for_gaussian_data_is_the_perturbed_score():
    # Data N(m, c^2 I). The best linear score under DSM at sigma is the score of
    # N(m, (c^2 + sigma^2) I): A = -I/(c^2+sigma^2), b = m/(c^2+sigma^2); the clean
    # score (A = -I/c^2) is ruled out by far.
    c, sigma, n = 1.0, 0.5, 50000
    m = torch.tensor([2.0, -1.0], dtype=F64)
    x = m + c * torch.randn(n, 2, generator=gen(20), dtype=F64)
    model = LinearScore(torch.zeros(2, 2, dtype=F64), torch.zeros(2, dtype=F64))
    opt = torch.optim.LBFGS(model.parameters(), max_iter=100, line_search_fn="strong_wolfe")

    def closure():  # same noise every evaluation: a deterministic quadratic objective
        opt.zero_grad()
        loss = dsm_loss(model, x, sigma, generator=gen(21))
        loss.backward()
        return loss

    opt.step(closure)
    var = c**2 + sigma**2
    # least-squares standard error of each coefficient ~ resid_std / (sqrt(n) std(x~)),
    # resid_std = c / (sigma sqrt(var)): about 0.007 here
    se = (c / (sigma * math.sqrt(var))) / (math.sqrt(n) * math.sqrt(var))
    with torch.no_grad():
        assert (model.A + torch.eye(2, dtype=F64) / var).abs().max().item() < N_SE * se
        # b has the extra spread of the mean: SE of intercept ~ se * sqrt(1 + |m|^2/var)
        assert (model.b - m / var).abs().max().item() < N_SE * se * math.sqrt(1 + (m**2).sum().item() / var)
        assert (model.A + torch.eye(2, dtype=F64) / c**2).abs().max().item() > 20 * se


def recorded(score_fn, store):
    def fn(y, *args):
        store.append(y.detach().clone())
        return score_fn(y, *args) if args else score_fn(y)

    return fn


def cross_term(mixture, sigma, candidate_optimum, n=40000, seed=22):
    """Vincent's identity: DSM(s* + d) - DSM(s*) = E[(s* - target) . d] + 1/2 E||d||^2
    and the cross term vanishes exactly when s* is the perturbed score. Returns the
    cross term's per-sample values for the fixed perturbation d(x) = 0.2 x."""
    x = mixture.sample(n, gen(seed))
    delta = lambda y: 0.2 * y  # noqa: E731
    seen = []
    base = dsm_loss(recorded(candidate_optimum, seen), x, sigma, generator=gen(seed + 1), reduction="none")
    moved = dsm_loss(lambda y: candidate_optimum(y) + delta(y), x, sigma, generator=gen(seed + 1), reduction="none")
    half_sq = 0.5 * (delta(seen[0]) ** 2).sum(1)
    return moved - base - half_sq


@pytest.mark.parametrize("sigma", [0.3, 1.0, 3.0])
def test_dsm_minimiser_for_mixture_data_is_the_exact_perturbed_score(sigma):
    mix = GaussianMixture.paper_toy(dtype=F64)
    c = cross_term(mix, sigma, mix.perturbed(sigma).score)
    assert abs(c.mean().item()) < N_SE * c.std().item() / math.sqrt(len(c))


@pytest.mark.parametrize("sigma", [1.0, 3.0])
def test_dsm_identity_rejects_the_clean_score(sigma):
    # power of the test above: the clean score is not DSM's minimiser, and the same
    # statistic says so by many standard errors (at small sigma the two are too close
    # to tell apart with this many samples)
    mix = GaussianMixture.paper_toy(dtype=F64)
    wrong = cross_term(mix, sigma, mix.score)
    assert abs(wrong.mean().item()) > 2 * N_SE * wrong.std().item() / math.sqrt(len(wrong))


def test_dsm_value_at_the_optimum_for_gaussian_data():
    # For N(m, c^2 I) in D dims, DSM(s*) = D c^2 / (2 sigma^2 (c^2 + sigma^2)).
    c, sigma, n, d = 1.0, 0.2, 40000, 3
    x = c * torch.randn(n, d, generator=gen(23), dtype=F64)
    opt_score = lambda y: -y / (c**2 + sigma**2)  # noqa: E731
    per = dsm_loss(opt_score, x, sigma, generator=gen(24), reduction="none")
    expected = d * c**2 / (2 * sigma**2 * (c**2 + sigma**2))
    assert abs(per.mean().item() - expected) < N_SE * per.std().item() / math.sqrt(n)


# ---------------------------------------------------------------- annealed DSM (paper)


def test_anneal_dsm_with_one_given_level_is_sigma_squared_times_dsm():
    sig = geometric_sigmas(1.0, 0.01, 10).to(F64)
    model = small_mlp(2)
    cond = lambda y, labels: model(y) * (1 + labels[:, None].to(y.dtype))  # noqa: E731
    x = torch.randn(33, 2, generator=gen(25), dtype=F64)
    for i in (0, 4, 9):
        labels = torch.full((33,), i, dtype=torch.long)
        a = anneal_dsm_loss(cond, x, sig, labels=labels, generator=gen(26), reduction="none")
        d = dsm_loss(lambda y: cond(y, labels), x, sig[i].item(), generator=gen(26), reduction="none")
        assert torch.allclose(a, sig[i] ** 2 * d, rtol=1e-10)


def test_anneal_dsm_semantics_per_sample():
    # One uniform random level per sample, x~ = x + sigma z, per-sample loss
    # 1/2 ||sigma s(x~) + z||^2 (= sigma^2 * 1/2 ||s + z/sigma||^2), batch mean.
    sig = torch.tensor([2.0, 0.5, 0.1], dtype=F64)
    x = torch.randn(3000, 2, generator=gen(27), dtype=F64)
    seen_x, seen_labels = [], []

    def score(y, labels):
        seen_x.append(y.detach().clone())
        seen_labels.append(labels.clone())
        return torch.sin(y) * (labels[:, None] + 1)

    per = anneal_dsm_loss(score, x, sig, generator=gen(28), reduction="none")
    labels = seen_labels[0]
    s_lab = sig[labels][:, None]
    z = (seen_x[0] - x) / s_lab
    with torch.no_grad():
        expected = 0.5 * ((s_lab * score(seen_x[0], labels) + z) ** 2).sum(1)
    assert torch.allclose(per, expected, rtol=1e-10)
    # z is standard normal and the levels are uniform over the list
    assert abs(z.mean().item()) < 0.05 and abs(z.std().item() - 1) < 0.03
    counts = torch.bincount(labels, minlength=3).to(F64)
    assert ((counts - 1000).abs() < N_SE * math.sqrt(1000 * 2 / 3)).all()
    # the mean is the batch mean, and the same seed gives the same loss
    assert anneal_dsm_loss(score, x, sig, generator=gen(28)).item() == pytest.approx(per.mean().item())


def test_anneal_dsm_weighting_makes_every_level_order_one_for_the_optimal_score():
    # sigma^2 DSM_sigma(s*) = D/2 - sigma^2/2 E||s*(x~)||^2 (Tweedie), which for data of
    # per-coordinate scale c >= sigma lies in [D/4, D/2]. Unweighted, the levels differ
    # by a factor ~ 1/sigma^2 (10^4 over the paper's schedule).
    sig = geometric_sigmas(1.0, 0.01, 10).to(F64)
    mix = GaussianMixture.paper_toy(dtype=F64)
    n, d = 4000, 2
    x = mix.sample(n, gen(29))
    weighted, unweighted = [], []
    for i in range(len(sig)):
        s_i = sig[i].item()
        exact = mix.perturbed(s_i).score
        labels = torch.full((n,), i, dtype=torch.long)
        seen = []
        per = anneal_dsm_loss(recorded(lambda y, lab: exact(y), seen), x, sig, labels=labels,
                              generator=gen(30 + i), reduction="none")
        mean, se = per.mean().item(), per.std().item() / math.sqrt(n)
        tweedie = d / 2 - s_i**2 / 2 * (exact(seen[0]) ** 2).sum(1)
        assert abs(mean - tweedie.mean().item()) < N_SE * math.hypot(se, tweedie.std().item() / math.sqrt(n))
        assert d / 4 - N_SE * se < mean < d / 2 + N_SE * se
        weighted.append(mean)
        unweighted.append(mean / s_i**2)
    assert max(weighted) / min(weighted) < 2.5
    assert max(unweighted) / min(unweighted) > 1e3


# ---------------------------------------------------------------- devices and bad input


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_losses_run_on_device_with_a_cpu_generator(device):
    model = ScoreMLP(dim=2, hidden=8).to(device)
    x = torch.randn(16, 2, device=device)
    sig = geometric_sigmas(1.0, 0.01, 10)
    values = [
        score_matching_loss(model, x),
        sliced_score_matching_loss(model, x, 2, "sphere", True, generator=gen(31)),
        dsm_loss(model, x, 0.1, generator=gen(32)),
        anneal_dsm_loss(lambda y, lab: model(y), x, sig, generator=gen(33)),
    ]
    for v in values:
        assert v.device.type == torch.device(device).type and v.ndim == 0 and torch.isfinite(v)
    # seeded: the same generator seed gives the same loss
    again = anneal_dsm_loss(lambda y, lab: model(y), x, sig, generator=gen(33))
    assert again.item() == values[-1].item()


def test_bad_input_raises_clear_errors():
    model = ScoreMLP(dim=2, hidden=8)
    x = torch.randn(4, 2)
    with pytest.raises(ValueError, match="sigma"):
        dsm_loss(model, x, 0.0)
    with pytest.raises(ValueError, match="n_projections"):
        sliced_score_matching_loss(model, x, n_projections=0)
    with pytest.raises(ValueError, match="labels"):
        anneal_dsm_loss(lambda y, lab: model(y), x, [1.0, 0.1], labels=torch.tensor([0, 1, 2, 0]))
    with pytest.raises(ValueError, match="sigmas"):
        anneal_dsm_loss(lambda y, lab: model(y), x, [1.0, -0.1])
    with pytest.raises(ValueError, match="shape"):
        score_matching_loss(model, torch.randn(4))
    with pytest.raises(ValueError, match="shaped like"):
        dsm_loss(lambda y: y[:, :1], x, 0.1)
    with pytest.raises(ValueError, match="reduction"):
        dsm_loss(model, x, 0.1, reduction="sum")


def test_dsm_accepts_a_per_sample_sigma_tensor():
    model = small_mlp(2)
    x = torch.randn(10, 2, generator=gen(34), dtype=F64)
    a = dsm_loss(model, x, 0.5, generator=gen(35))
    b = dsm_loss(model, x, torch.full((10, 1), 0.5, dtype=F64), generator=gen(35))
    assert torch.allclose(a, b)


@pytest.mark.parametrize("D", [2, 50])
def test_weighted_optimal_dsm_loss_is_about_d_over_2_not_one(D):
    """Chapter 4: sigma^2 times the DSM loss of the exact score of N(0, c^2 I_D) is D c^2 / (2 (c^2 + sigma^2)),
    about D/2 for sigma << c (one only because the toy has D = 2)."""
    c = 1.5
    gauss = GaussianMixture(torch.zeros(1, D), c, dtype=torch.float64)
    x = gauss.sample(20_000, torch.Generator().manual_seed(D))
    for k, sigma in enumerate([0.05, 1.5]):
        per = sigma**2 * dsm_loss(gauss.perturbed(sigma).score, x, sigma, generator=torch.Generator().manual_seed(k),
                                  reduction="none")
        theory = D * c**2 / (2 * (c**2 + sigma**2))
        se = per.std().item() / math.sqrt(len(per))
        assert abs(per.mean().item() - theory) < 4 * se, (D, sigma, per.mean(), theory)
