"""The live figure "langevin" (chapter 1) mounted in headless Chromium: the numbers its box prints
are the fractions, the spread and the closed form computed from the chains it shows, and the step
size slider, the steps control and a click on the plot change what is drawn."""

from __future__ import annotations

import math
import time

import pytest
import torch
from live_pages import frames, pictures, show, state

from ncsn_edu.figures import live
from ncsn_edu.toy.closed_forms import langevin_stationary_variance
from ncsn_edu.toy.distributions import GaussianMixture, nearest_component

pytestmark = pytest.mark.slow


def wait_for(drv, uid, steps, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        got = state(drv, uid)
        if got["t"] >= steps:
            return got
        frames(drv, 5)
    raise AssertionError(f"the chains did not reach {steps} steps in {timeout} s")


def test_printed_numbers_are_those_of_the_chains_shown(drv, tmp_path):
    mix = GaussianMixture.paper_toy(dtype=torch.float64)
    uid = show(drv, tmp_path, live.langevin_figure(mix, n=600, step_size=1.0, n_steps=60))
    got = wait_for(drv, uid, 60)
    x = torch.tensor(got["points"], dtype=torch.float64)
    k = nearest_component(mix, x)
    assert got["fractions"] == pytest.approx([(k == 0).double().mean().item(), (k == 1).double().mean().item()])
    off = (x - mix.means[k]).flatten()
    var, m4 = (off**2).mean().item(), (off**4).mean().item()
    assert got["spread"] == pytest.approx(var, rel=1e-9)
    assert got["spread_se"] == pytest.approx(math.sqrt((m4 - var**2) / off.numel()), rel=1e-9)
    assert got["stationary"] == pytest.approx(langevin_stationary_variance(1.0).item(), rel=1e-12)
    # and the chains have settled at the closed form v / (1 - eps / (4 v)) = 4/3, within 4 standard errors
    assert abs(var - 4 / 3) < 4 * got["spread_se"]
    assert drv.execute_script("return window.__errors") == []


def test_controls_and_click_change_the_picture(drv, tmp_path):
    mix = GaussianMixture.paper_toy()
    uid = show(drv, tmp_path, live.langevin_figure(mix, n=300, n_steps=40))
    wait_for(drv, uid, 40)
    first = pictures(drv, uid)
    drv.execute_script(f"var s = document.getElementById('{uid}').querySelector('input[name=step_size]');"
                       "s.value = '733.5'; s.dispatchEvent(new Event('input'));")
    frames(drv, 5)
    moved = state(drv, uid)
    assert moved["step_size"] != pytest.approx(0.1) and pictures(drv, uid) != first
    drv.execute_script(f"var c = document.getElementById('{uid}').querySelector('canvas'); c.scrollIntoView();"
                       "var r = c.getBoundingClientRect(); c.dispatchEvent(new MouseEvent('click', "
                       "{clientX: r.left + 0.5 * r.width, clientY: r.top + 0.3 * r.height, bubbles: true}));")
    frames(drv, 3)
    clicked = state(drv, uid)
    assert clicked["start"] != "uniform" and clicked["t"] < 40
    # The clicked run ends at step 40; with another number of steps the same start and noise end
    # elsewhere. Comparing both ends keeps a busy machine from comparing two pictures of the same
    # step by chance.
    wait_for(drv, uid, 40)
    before_steps = pictures(drv, uid)
    drv.execute_script(f"var s = document.getElementById('{uid}').querySelector('input[name=n_steps]');"
                       "s.value = '300'; s.dispatchEvent(new Event('input'));")
    steps = state(drv, uid)["n_steps"]
    assert steps != 40
    wait_for(drv, uid, steps)
    assert pictures(drv, uid) != before_steps
    assert drv.execute_script("return window.__errors") == []
