"""The live figure "perturbed" (chapters 1 and 4) in headless Chromium: what it draws and prints is
the package's q_sigma = GaussianMixture.perturbed(sigma), its score and responsibilities, and, with
networks, the forward pass of the exported ScoreMLPs (float16 weights) at the trained sigma nearest
to the slider's; moving the slider to a value on no grid and clicking a plot change what is drawn."""

from __future__ import annotations

import pytest
import torch
from live_pages import frames, pictures, show, state, trained_like

from ncsn_edu.figures import live
from ncsn_edu.toy.distributions import GaussianMixture
from ncsn_edu.toy.nets import ScoreMLP

pytestmark = pytest.mark.slow

def move_slider(drv, uid, position):
    drv.execute_script(f"var s = document.getElementById('{uid}').querySelector('input[name=sigma]');"
                       f"s.value = '{position}'; s.dispatchEvent(new Event('input'));")
    frames(drv)


def slider_sigma(position, lo=0.01, hi=20.0):
    """The sigma at a log slider position 0..1000 (ncsn_edu/figures/live_js/core.js, L.slider with log)."""
    return 0.0 if position == 0 else lo * (hi / lo) ** (position / 1000)


def diagonal(t):
    return torch.stack([t, t], 1)


def test_chapter_1_profile_and_ratio_are_the_packages(drv, tmp_path):
    mix = GaussianMixture.paper_toy(dtype=torch.float64)
    uid = show(drv, tmp_path, live.perturbed_figure(mix, sigma=3.0))
    for position in (None, 437, 0, 1000):
        if position is not None:
            move_slider(drv, uid, position)
        got = state(drv, uid)
        sigma = 3.0 if position is None else slider_sigma(position)
        assert got["sigma"] == pytest.approx(sigma, rel=1e-12, abs=0)
        q = mix.perturbed(sigma)
        t = torch.tensor(got["t"], dtype=torch.float64)
        assert torch.allclose(t, torch.linspace(-8, 8, 201, dtype=torch.float64), atol=1e-12)
        lp = q.log_prob(diagonal(t))
        assert torch.allclose(torch.tensor(got["density"], dtype=torch.float64), (lp - lp.max()).exp(),
                              rtol=1e-9, atol=1e-12), sigma
        assert torch.allclose(torch.tensor(got["p_heavy"], dtype=torch.float64), q.responsibilities(diagonal(t))[:, 1],
                              rtol=1e-9, atol=1e-12), sigma
        ends = torch.tensor([[0.0, 0.0], [5.0, 5.0]], dtype=torch.float64)
        ratio = (q.log_prob(ends[:1]) - q.log_prob(ends[1:])).exp().item()
        assert got["ratio"] == pytest.approx(ratio, rel=1e-9), sigma
        assert got["component_stds"] == pytest.approx(q.stds.tolist(), rel=1e-12)
        assert not under_legend(got, ("density", "p_heavy")), sigma
    assert drv.execute_script("return window.__errors") == []


def under_legend(got, curves):
    """The points of the profile's ``curves`` that its legend box hides, as (curve, t, value)."""
    g = got["profile"]
    x0, y0, w, h = g["legend"]
    hidden = []
    for name in curves:
        for t, v in zip(got["t"], got[name]):
            px = g["left"] + (t - g["xr"][0]) / (g["xr"][1] - g["xr"][0]) * g["w"]
            py = g["top"] + (g["yr"][1] - v) / (g["yr"][1] - g["yr"][0]) * g["h"]
            if x0 <= px <= x0 + w and y0 <= py <= y0 + h:
                hidden.append((name, t, v))
    return hidden


def dsm_like_nets():
    torch.manual_seed(0)
    return {0.5: trained_like(ScoreMLP(dim=2, hidden=32), seed=1),
            2.0: trained_like(ScoreMLP(dim=2, hidden=32), seed=2)}


def rounded(net):
    """The float16-rounded weights that the page runs, in float64."""
    out = ScoreMLP(dim=2, hidden=net.net[0].out_features).double()
    out.load_state_dict({k: v.half().double() for k, v in net.state_dict().items()})
    return out


def test_chapter_4_network_field_and_error_are_torchs(drv, tmp_path):
    """At a slider sigma between the trained levels the figure shows the nearest trained network (in
    log sigma); its profile and the weighted mean error equal PyTorch's on the same float16 weights."""
    mix = GaussianMixture.paper_toy(dtype=torch.float64)
    nets = dsm_like_nets()
    uid = show(drv, tmp_path, live.perturbed_figure(mix, sigma=1.0, networks=nets, sample_errors={0.5: 0.25}))
    for position, want in ((540, 0.5), (621, 2.0), (700, 2.0), (0, 0.5)):  # 621: sigma 1.12, nearer 2 in log sigma
        move_slider(drv, uid, position)
        got = state(drv, uid)
        sigma = slider_sigma(position)
        assert got["sigma_train"] == want, (sigma, got["sigma_train"])
        net, q = rounded(nets[want]), mix.perturbed(want)
        t = torch.tensor(got["t"], dtype=torch.float64)
        with torch.no_grad():
            assert torch.allclose(torch.tensor(got["learned"], dtype=torch.float64), net(diagonal(t))[:, 0],
                                  rtol=1e-9, atol=1e-9)
            assert torch.allclose(torch.tensor(got["exact_train"], dtype=torch.float64), q.score(diagonal(t))[:, 0],
                                  rtol=1e-10, atol=1e-10)
            assert torch.allclose(torch.tensor(got["exact"], dtype=torch.float64),
                                  mix.perturbed(sigma).score(diagonal(t))[:, 0], rtol=1e-10, atol=1e-10)
            assert torch.allclose(torch.tensor(got["clean"], dtype=torch.float64), mix.score(diagonal(t))[:, 0],
                                  rtol=1e-10, atol=1e-10)
            # mean |s_theta - grad log q| over the 50 x 50 cell centres of [-8, 8]^2, weighted by q at the trained sigma
            c = torch.linspace(-8, 8, 51, dtype=torch.float64)
            c = (c[:-1] + c[1:]) / 2
            grid = torch.cartesian_prod(c, c)
            w = q.log_prob(grid).exp()
            err = ((net(grid) - q.score(grid)).norm(dim=1) * w).sum() / w.sum()
        assert got["error"] == pytest.approx(err.item(), rel=1e-9)
    assert drv.execute_script("return window.__errors") == []


def test_clicking_reads_the_network_and_the_exact_score_there(drv, tmp_path):
    mix = GaussianMixture.paper_toy(dtype=torch.float64)
    nets = dsm_like_nets()
    uid = show(drv, tmp_path, live.perturbed_figure(mix, sigma=2.0, networks=nets))
    before = pictures(drv, uid)
    drv.execute_script(f"var c = document.getElementById('{uid}').querySelectorAll('canvas')[1];"
                       "c.scrollIntoView(); var r = c.getBoundingClientRect();"
                       "c.dispatchEvent(new MouseEvent('click', {clientX: r.left + 0.6 * r.width,"
                       " clientY: r.top + 0.3 * r.height, bubbles: true}));")
    frames(drv)
    got = state(drv, uid)
    after = pictures(drv, uid)
    assert got["click"] is not None and all(a != b for a, b in zip(before, after))
    ro = got["readout"]
    p = torch.tensor([ro["point"]], dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(torch.tensor(ro["learned"], dtype=torch.float64), rounded(nets[2.0])(p)[0], rtol=1e-9,
                              atol=1e-9)
    assert torch.allclose(torch.tensor(ro["exact_train"], dtype=torch.float64), mix.perturbed(2.0).score(p)[0])
    assert torch.allclose(torch.tensor(ro["score"], dtype=torch.float64), mix.perturbed(2.0).score(p)[0])
    assert ro["p_heavy"] == pytest.approx(mix.perturbed(2.0).responsibilities(p)[0, 1].item(), rel=1e-9)


@pytest.mark.parametrize("with_networks", [False, True])
def test_slider_and_click_change_the_picture(drv, tmp_path, with_networks):
    mix = GaussianMixture.paper_toy()
    import matplotlib.pyplot as plt

    static, ax = plt.subplots(figsize=(1, 1))
    fig = live.perturbed_figure(mix, networks=dsm_like_nets() if with_networks else None, fallback=static)
    uid = show(drv, tmp_path, fig)
    # the static picture is in the page and hidden once the live figure is built
    assert drv.execute_script(f"return document.getElementById('{uid}').querySelector('.ncsn-live-fallback')"
                              ".style.display") == "none"
    first = pictures(drv, uid)
    move_slider(drv, uid, 613)  # sigma = 1.06, on no grid of the chapters
    moved = pictures(drv, uid)
    assert moved[0] != first[0]  # the density and score at the new sigma
    assert state(drv, uid)["sigma"] == pytest.approx(slider_sigma(613))
    drv.execute_script(f"var c = document.getElementById('{uid}').querySelector('canvas'); c.scrollIntoView();"
                       "var r = c.getBoundingClientRect(); c.dispatchEvent(new MouseEvent('click', "
                       "{clientX: r.left + 0.3 * r.width, clientY: r.top + 0.4 * r.height, bubbles: true}));")
    frames(drv)
    clicked = state(drv, uid)
    assert clicked["click"] is not None and clicked["readout"]["density_rel"] > 0
    assert pictures(drv, uid)[0] != moved[0]  # a marker where the reader clicked
    # the keyboard moves the slider too
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    drv.find_element(By.CSS_SELECTOR, f"#{uid} input[name=sigma]").send_keys(Keys.ARROW_RIGHT)
    frames(drv)
    assert state(drv, uid)["sigma"] > clicked["sigma"]
    assert drv.execute_script("return window.__errors") == []


def test_constructor_rejects_bad_settings():
    mix = GaussianMixture.paper_toy()
    with pytest.raises(ValueError):
        live.perturbed_figure(mix, sigma=50.0)
    with pytest.raises(ValueError):
        live.perturbed_figure(mix, sigma_min=0.0)
    with pytest.raises(ValueError):
        live.perturbed_figure(GaussianMixture([[0.0, 0.0, 0.0]]))
    with pytest.raises(ValueError):
        live.perturbed_figure(mix, networks={0.0: ScoreMLP()})


@pytest.mark.parametrize("with_networks", [False, True])
def test_the_shared_live_checks_pass(live_drv, tmp_path, with_networks):
    """The checks every live figure must pass (tests/live_checks.py): sliders off-grid redraw in
    their handler, a click changes the state, the static picture hides, no console error or request."""
    import matplotlib.pyplot as plt
    from live_checks import check_live_figures

    static, ax = plt.subplots(figsize=(1, 1))
    fig = live.perturbed_figure(GaussianMixture.paper_toy(), networks=dsm_like_nets() if with_networks else None,
                                fallback=static)
    page = tmp_path / "perturbed.html"
    page.write_text(f"<!doctype html><html><head><meta charset='utf-8'></head><body>{fig._repr_html_()}</body></html>")
    assert check_live_figures(live_drv, page.as_uri()) == 1
