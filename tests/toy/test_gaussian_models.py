"""The Gaussian score models of chapter 2 (ncsn_edu.toy.gaussian_models): the model is the
Gaussian's score, and fitting it by exact score matching recovers the maximum-likelihood
Gaussian."""

import pytest
import torch

from ncsn_edu.toy.gaussian_models import GaussianScoreModel, fit_score_matching, gaussian_ml_estimate
from ncsn_edu.toy.losses import score_matching_loss

F64 = torch.float64


def gen(seed):
    return torch.Generator().manual_seed(seed)


def correlated_gaussian_data(n, seed, ill_conditioned=False):
    """Data from N(m, C) with a non-diagonal C: moderate, or (ill_conditioned) a random
    C = A A^T whose sample precision has condition number about 200."""
    m = torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    if ill_conditioned:
        g = gen(seed)
        A = torch.randn(3, 3, generator=g, dtype=F64)
        return torch.randn(n, 3, generator=g, dtype=F64) @ A.T + m
    C = torch.tensor([[2.0, 0.6, 0.0], [0.6, 1.0, -0.3], [0.0, -0.3, 0.5]], dtype=F64)
    return torch.randn(n, 3, generator=gen(seed), dtype=F64) @ torch.linalg.cholesky(C).T + m


@pytest.mark.parametrize("seed,ill", [(0, False), (1, False), (0, True)])
def test_score_matching_recovers_the_maximum_likelihood_gaussian(seed, ill):
    n = 400
    x = correlated_gaussian_data(n, seed, ill)
    mean_ml, prec_ml = gaussian_ml_estimate(x)
    model = GaussianScoreModel(3, dtype=F64)  # starts at N(0, I), far from the answer
    fit_score_matching(model, x)
    with torch.no_grad():
        assert (model.mu - mean_ml).abs().max().item() < 1e-3
        assert (model.precision - prec_ml).abs().max().item() < 1e-3
        # The answer is the inverse of the 1/N covariance, not of the unbiased 1/(N-1) one:
        # the two differ by P/N, well above the tolerance, so the test tells them apart.
        prec_unbiased = torch.linalg.inv(torch.cov(x.T))
        assert (model.precision - prec_unbiased).abs().max().item() > 5e-3
        # and the minimum value is -tr(P)/2 (plug P = S^-1 into -tr P + tr(P^2 S)/2)
        assert score_matching_loss(model, x).item() == pytest.approx(-0.5 * torch.trace(prec_ml).item(), abs=1e-8)


def test_gaussian_score_model_is_the_gaussian_score():
    mean = torch.tensor([0.5, -1.0], dtype=F64)
    prec = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=F64)
    model = GaussianScoreModel(2, mean, prec, dtype=F64)
    x = torch.randn(6, 2, generator=gen(7), dtype=F64)
    with torch.no_grad():
        assert torch.allclose(model.precision, prec)
        assert torch.allclose(model(x), -(x - mean) @ prec)
        ref = torch.distributions.MultivariateNormal(mean, precision_matrix=prec)
        assert torch.allclose(model.log_prob(x), ref.log_prob(x))
    xg = x.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(ref.log_prob(xg).sum(), xg)
    assert torch.allclose(model(x).detach(), auto)
    with pytest.raises(Exception):
        GaussianScoreModel(2, mean, -prec, dtype=F64)  # not positive definite
