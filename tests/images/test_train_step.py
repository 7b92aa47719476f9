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
