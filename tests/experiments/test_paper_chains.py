"""The paper's image chain and the shortened one (ncsn_edu.experiments.paper_chains): the
shortened chain (T = 25, four times the step) is *not* the paper's chain: at equilibrium on a
Gaussian level it is wider by a factor that :func:`stationary_spread_factor` predicts (1.29
against 1.05), checked on exact Gaussian scores (chapters 10, 11 and the capstone)."""

from __future__ import annotations

import math

import pytest
import torch

from ncsn_edu.experiments.paper_chains import stationary_spread_factor
from ncsn_edu.sampling import annealed_langevin_dynamics
from ncsn_edu.schedules import geometric_sigmas


def test_spread_factor_values():
    # a_i / sigma_i^2 = eps_code / sigma_L^2 = 0.2 for the paper's chain, 0.8 for the shortened one
    assert stationary_spread_factor(2e-5, 0.01) == pytest.approx(math.sqrt(1 / 0.9))
    assert stationary_spread_factor(8e-5, 0.01) == pytest.approx(math.sqrt(1 / 0.6))
    with pytest.raises(ValueError):
        stationary_spread_factor(2e-4, 0.01)  # a_i / sigma_i^2 = 2: unstable


@pytest.mark.parametrize("eps_code,steps", [(2e-5, 100), (8e-5, 25)])
def test_annealed_chain_spread_matches_the_gaussian_prediction(eps_code, steps):
    """Annealed Langevin in the official convention on the exact scores of N(m, sigma_i^2 I)
    (the perturbed distribution of a single point m): at the end of every level the spread
    around m is sigma_i times the predicted factor, for the paper's chain and the shortened
    one. Standard error of a std estimated from N draws: std / sqrt(2N)."""
    sigmas = geometric_sigmas(1.0, 0.01, 10)
    m = 0.3
    n, d = 64, 784
    score = lambda x, labels: -(x - m) / sigmas[labels].view(-1, 1) ** 2  # noqa: E731
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(n, d, generator=g, dtype=torch.float64)
    _, states = annealed_langevin_dynamics(score, x0, sigmas, eps_code, steps, g, keep_every=steps,
                                           convention="code")
    factor = stationary_spread_factor(eps_code, 0.01)
    for i, s in enumerate(sigmas.tolist()):
        spread = (states[i + 1] - m).std().item()
        se = s * factor / math.sqrt(2 * n * d)
        assert abs(spread - s * factor) < 5 * se, (i, spread, s * factor)


def test_shortened_chain_is_wider_than_the_paper_chain():
    ratio = stationary_spread_factor(8e-5, 0.01) / stationary_spread_factor(2e-5, 0.01)
    assert ratio == pytest.approx(1.2247, abs=1e-4)


def test_fig78_runs_both_networks_from_one_start_with_the_same_noise_at_their_levels():
    """record_fig78 on exact scores of N(m, 0.01^2 I): each network is called at its own level,
    both chains start from torch.rand seeded 1 and share the noise (equal networks give equal
    chains), and after the chain has mixed its spread around m is 0.01 times the spread factor
    of the code's step 2e-5 (a / sigma^2 = 0.2, factor 1.054). s.e. of a std from N draws: std / sqrt(2N)."""
    from ncsn_edu.experiments.paper_chains import record_fig78

    m, s = 0.4, 0.01
    seen = []

    def net(level):
        def score(x, labels):
            seen.append((level, labels.unique().tolist()))
            return -(x - m) / s**2
        return score

    out = record_fig78(net(9), 9, net(0), n_chains=64, n_steps=200, keep_every=50)
    assert {lev: labs for lev, labs in seen} == {0: [0], 9: [9]}
    assert torch.equal(out["start"], torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(1)))
    a, b = (out["states"][k] for k in ("baseline (sigma = 0.01 only)", "NCSN, last level only"))
    assert a.shape == (5, 64, 1, 28, 28) and torch.equal(a, b) and torch.equal(a[0], out["start"])
    spread = (a[-1] - m).std().item()  # (1 - 0.2)^200: the start is forgotten
    expected = s * stationary_spread_factor(2e-5, s)
    assert abs(spread - expected) < 5 * expected / math.sqrt(2 * a[-1].numel())


def test_the_committed_fig78_chains_start_from_the_recorded_uniform_noise():
    from ncsn_edu.experiments.paper_chains import load_chains
    from ncsn_edu.resources import resource_path

    d = load_chains(resource_path("mnist_single_level_chains.pt"))
    start = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(d["start_seed"]))
    assert torch.equal(d["start"], start) and d["n_steps"] == 1000
    for states in d["states"].values():  # the start, then every 250 steps
        assert states.shape == (5, 2, 1, 28, 28) and torch.equal(states[0], start)
        assert (states[-1] - start).abs().mean() > 0.1  # 1,000 steps moved the chains far from their start


class _PointMass(torch.nn.Module):
    """The exact score of N(m, sigma_i^2 I) at level i, as a network ``model(x, labels)``."""

    def __init__(self, sigmas, m=0.3):
        super().__init__()
        self.sigmas, self.m = torch.as_tensor(sigmas, dtype=torch.float32), m

    def forward(self, x, labels):
        return -(x - self.m) / self.sigmas[labels].view(-1, 1, 1, 1) ** 2


def test_fig4_keeps_every_kth_level_and_the_denoised_output_of_the_same_chain():
    from ncsn_edu.experiments.paper_chains import record_fig4

    sigmas = geometric_sigmas(1.0, 0.01, 6)
    model = _PointMass(sigmas)
    full = record_fig4(model, sigmas, n_chains=3, eps_code=2e-5, n_steps_each=4, seed=1)
    some = record_fig4(model, sigmas, n_chains=3, eps_code=2e-5, n_steps_each=4, seed=1, final_denoise=True,
                       levels_per_state=2)
    assert full["states"].shape[0] == 7 and some["states"].shape[0] == 4  # the start, then levels 2, 4, 6
    assert torch.equal(some["states"], full["states"][::2])
    last = full["states"][-1].float()
    # Tweedie's step at the last level moves the chain to the point mass's mean m = 0.3
    # (float16 storage: about 1e-3 relative)
    expect = last + sigmas[-1].item() ** 2 * model(last, torch.full((3,), 5))
    assert torch.allclose(some["denoised"].float(), expect, atol=2e-3)
    assert (some["denoised"].float() - 0.3).abs().max() < 2e-3
    assert "denoised" not in full


def test_fig4_with_the_checkpoints_own_sampler_reads_its_settings(tmp_path, monkeypatch):
    import ncsn_edu.images.checkpoints as ckpts
    from ncsn_edu.experiments import paper_chains

    sigmas = geometric_sigmas(1.0, 0.01, 4)
    cfg = {"dataset": "mnist", "sample_eps": 3e-5, "sample_steps_each": 2, "sample_denoise": True}
    monkeypatch.setattr(ckpts, "load_checkpoint", lambda path: (_PointMass(sigmas), sigmas, cfg))
    torch.save({"step": 7}, tmp_path / "c.pt")
    out = tmp_path / "chain.pt"
    assert paper_chains.main([str(tmp_path / "c.pt"), "fig4", "--own-sampler", "--n-chains", "2",
                              "--levels-per-state", "2", "--out", str(out)]) == 0
    d = paper_chains.load_chains(out)
    assert (d["eps_code"], d["n_steps_each"], d["final_denoise"], d["checkpoint_step"]) == (3e-5, 2, True, 7)
    assert d["states"].shape == (3, 2, 1, 28, 28) and d["denoised"].shape == (2, 1, 28, 28)
    assert paper_chains.main([str(tmp_path / "c.pt"), "fig78", "--own-sampler", "--baseline", "x",
                              "--out", str(out)]) == 1
