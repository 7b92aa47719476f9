"""Chapter 3: the variance of the sliced score matching gradient with respect to the parameters,
measured by ncsn_edu.toy.gradient_noise, against the closed form for a linear score."""

import pytest
import torch

from ncsn_edu.toy.closed_forms import sliced_gradient_variances
from ncsn_edu.toy.gaussian_models import LinearScore
from ncsn_edu.toy.gradient_noise import gradient_draws, gradient_variance
from ncsn_edu.toy.losses import sliced_score_matching_loss


def _linear(D=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    A = 0.6 * torch.randn(D, D, generator=gen, dtype=torch.float64) - torch.eye(D, dtype=torch.float64)  # non-symmetric
    return LinearScore(A, 0.3 * torch.randn(D, generator=gen, dtype=torch.float64))


@pytest.mark.parametrize("variance_reduced", [False, True])
def test_gradient_variance_matches_the_closed_form_at_single_points(variance_reduced):
    model = _linear()
    points = torch.tensor([[0.1, -0.2, 0.0], [0.8, 0.3, -0.5], [2.0, -1.5, 1.0]], dtype=torch.float64)
    with torch.no_grad():
        plain_cf, vr_cf = sliced_gradient_variances(model.A, model.b, points)
    closed = vr_cf if variance_reduced else plain_cf
    for k, x in enumerate(points):
        g = torch.Generator().manual_seed(20 + k)
        loss = lambda m: sliced_score_matching_loss(m, x[None], variance_reduced=variance_reduced, generator=g)  # noqa: E731
        # 1,000 draws: the estimate's relative standard error is about 0.035 * sqrt(3) = 0.06 at each
        # point (0.031 to 0.046 measured with 3,000 draws), so a closed form 25% off lies 4 standard
        # errors away, and swapping the plain and variance-reduced closed forms (at points 1 and 2:
        # 21.5 or 250 against 12) about 7 to 360.
        out = gradient_variance(model, loss, 1_000)
        assert abs(out["total"] - closed[k].item()) < 4 * out["se"], (k, out, closed[k].item())


def test_gradient_variance_of_a_batch_mean_is_the_mean_of_the_point_variances_over_n():
    model = _linear(D=2, seed=1)
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    # 500 draws: relative standard error about 0.035 * sqrt(6) = 0.085, so the 4-standard-error band is
    # +-34%, and a variance of the mean not divided by n^2 = 64 (or divided by n = 8 only) falls far outside
    out = gradient_variance(model, lambda m: sliced_score_matching_loss(m, x, generator=g), 500)
    with torch.no_grad():
        plain_cf, _ = sliced_gradient_variances(model.A, model.b, x)
    assert abs(out["total"] - plain_cf.sum().item() / len(x) ** 2) < 4 * out["se"]


def test_closed_form_at_the_exact_normal_score():
    # s = -x: the gain of VR is (D + 1)(|x|^4 - |x|^2), negative only inside the unit ball
    D = 2
    A, b = -torch.eye(D, dtype=torch.float64), torch.zeros(D, dtype=torch.float64)
    x = torch.tensor([[0.0, 0.0], [0.5, 0.0], [1.0, 0.0], [2.0, 0.0]], dtype=torch.float64)
    plain, vr = sliced_gradient_variances(A, b, x)
    r2 = (x**2).sum(1)
    assert torch.allclose(vr, torch.full_like(vr, 6.0))
    assert torch.allclose(plain - vr, (D + 1) * (r2**2 - r2))


def test_gradient_draws_leave_stored_gradients_alone_and_reject_bad_input():
    model = _linear(D=2)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    draws = gradient_draws(model, lambda m: sliced_score_matching_loss(m, torch.ones(4, 2, dtype=torch.float64),
                                                                      generator=torch.Generator().manual_seed(0)), 3)
    assert draws.shape == (3, 2 * 2 + 2)
    assert all(torch.equal(p.grad, torch.ones_like(p)) for p in model.parameters())
    with pytest.raises(ValueError):
        gradient_draws(model, lambda m: m.A.sum(), 1)
    with pytest.raises(ValueError):
        sliced_gradient_variances(torch.eye(2), torch.zeros(3), torch.zeros(1, 2))
