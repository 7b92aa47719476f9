"""One training step (ncsn_edu.images.train_step): its per-sample loss is the paper's
annealed denoising score matching loss, and a step is a gradient step on it (also for one
process's share of a global batch)."""

from __future__ import annotations

import torch
from image_train_helpers import TinyScore

from ncsn_edu.images.train_step import dsm_per_sample
from ncsn_edu.schedules import geometric_sigmas
from ncsn_edu.toy.losses import anneal_dsm_loss


def test_engine_loss_is_the_papers_anneal_dsm_loss():
    torch.manual_seed(0)
    net = TinyScore(1, 4, 10, 28)
    x = torch.rand(6, 1, 28, 28)
    sigmas = geometric_sigmas(1, 0.01, 10)
    labels = torch.tensor([0, 3, 9, 1, 5, 9])
    g = torch.Generator().manual_seed(5)
    ref = anneal_dsm_loss(net, x, sigmas, labels=labels, generator=g, reduction="none")
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(5))
    ours = dsm_per_sample(net, x, labels, z, sigmas)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-4)


def test_one_step_is_a_gradient_step_on_the_papers_loss():
    from ncsn_edu.images.train_step import make_step_fn
    from ncsn_edu.schedules import geometric_sigmas
    from ncsn_edu.toy.losses import anneal_dsm_loss

    sigmas = geometric_sigmas(1, 0.01, 10).float()
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    net, ref = TinyScore(1, 4, 10, 8), TinyScore(1, 4, 10, 8)
    ref.load_state_dict(net.state_dict())
    state = {"model": net, "optimizer": torch.optim.SGD(net.parameters(), lr=0.1), "step": 7}
    res = make_step_fn(sigmas, global_batch=6)(state, x, torch.Generator().manual_seed(3))
    # The reference draws its levels and noise from the same seed, in the same order.
    loss = anneal_dsm_loss(ref, x, sigmas, generator=torch.Generator().manual_seed(3))
    loss.backward()
    assert state["step"] == 8
    torch.testing.assert_close(res.loss, loss.detach())
    for (name, p), q in zip(net.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.detach(), q.detach() - 0.1 * q.grad, msg=name)
    # A process's share: rows 3-5 of the global batch, with the global batch's levels and noise.
    ref.zero_grad()
    part = make_step_fn(sigmas, global_batch=6, share=slice(3, 6))(
        {"model": ref, "optimizer": torch.optim.SGD(ref.parameters(), lr=0.0), "step": 0}, x[3:],
        torch.Generator().manual_seed(3))
    assert torch.equal(part.labels, res.labels[3:])
    full = anneal_dsm_loss(ref, x, sigmas, generator=torch.Generator().manual_seed(3), reduction="none")
    torch.testing.assert_close(part.per_sample, full[3:].detach())


# ----------------------------------------------------------------------------- EMA of the weights (NCSNv2)

def _ema_run(rate: float, steps: int = 3):
    """A tiny network trained ``steps`` SGD steps with an EMA at ``rate``; returns
    (the EMA, the weights after each step, the initial weights)."""
    from ncsn_edu.images.train_step import EMA, make_step_fn

    sigmas = geometric_sigmas(1, 0.01, 10).float()
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    net = TinyScore(1, 4, 10, 8)
    init = {k: p.detach().clone() for k, p in net.named_parameters()}
    state = {"model": net, "optimizer": torch.optim.SGD(net.parameters(), lr=0.1), "step": 0,
             "ema": EMA(net, rate)}
    step = make_step_fn(sigmas, global_batch=6)
    after = []
    for k in range(steps):
        step(state, x, torch.Generator().manual_seed(k))
        after.append({n: p.detach().clone() for n, p in net.named_parameters()})
    return state["ema"], after, init


def test_ema_update_is_the_closed_form():
    # After steps with weights theta_1..theta_k from theta_0, the average is
    # rate^k theta_0 + (1 - rate) sum_j rate^(k-j) theta_j (the recursion unrolled), computed
    # here in float64; the float32 recursion differs by a few ulps per step.
    rate = 0.9
    ema, after, init = _ema_run(rate, steps=3)
    for name, theta0 in init.items():
        ref = rate**3 * theta0.double()
        for j, th in enumerate(after, start=1):
            ref = ref + (1 - rate) * rate ** (3 - j) * th[name].double()
        torch.testing.assert_close(ema.shadow[name].double(), ref, rtol=0, atol=1e-6)
    # one step alone: rate * theta_0 + (1 - rate) theta_1
    ema1, after1, init1 = _ema_run(rate, steps=1)
    for name in init1:
        ref = rate * init1[name].double() + (1 - rate) * after1[0][name].double()
        torch.testing.assert_close(ema1.shadow[name].double(), ref, rtol=0, atol=1e-6)
        assert not torch.equal(ema1.shadow[name], after1[0][name])  # it is an average, not the weights


def test_ema_at_rate_zero_is_the_weights_and_its_model_carries_them():
    ema, after, _ = _ema_run(0.0, steps=3)
    for name, th in after[-1].items():
        assert torch.equal(ema.shadow[name], th), name  # 0 * ema + 1 * theta, exactly
    net = ema.averaged_model()
    for name, p in net.named_parameters():
        assert torch.equal(p, after[-1][name])
    assert net is not ema.model


def test_ema_state_dict_round_trips_and_keeps_the_buffers():
    from ncsn_edu.images.refinenet import CondRefineNetDilated
    from ncsn_edu.images.train_step import EMA

    sig = geometric_sigmas(5, 0.01, 6)
    net = CondRefineNetDilated(1, 4, 6, 8, conditioning="division", sigmas=sig)
    ema = EMA(net, 0.5)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    ema.update()
    sd = ema.state_dict()
    assert torch.equal(sd["sigmas"], net.sigmas)  # buffers come from the network
    other = EMA(CondRefineNetDilated(1, 4, 6, 8, conditioning="division", sigmas=sig), 0.5)
    other.load_state_dict(sd)
    assert all(torch.equal(other.shadow[k], ema.shadow[k]) for k in ema.shadow)
