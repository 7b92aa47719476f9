"""The image chapters' live figures in a kernel (``ncsn_edu.figures.image_widgets``, issue 28).

The widgets are driven as a reader drives them: a control's ``.value`` is set (its observers
run at once, as in a kernel) and buttons are clicked with ``Button.click()`` (which calls the
click handlers). A chain runs in the widget's thread; ``box.wait()`` joins it. The network is a
small ``CondRefineNetDilated`` (ngf 4, 3 levels) with seeded weights, so a run of a few steps
takes well under a second; what is checked:

* denoise: the level is the nearest in log sigma, the shown denoised digit is
  ``x~ + sigma^2 s(x~, level)`` computed here directly, and with the exact score of a point mass
  Tweedie's step returns the clean digit (error ``|1 - sigma^2 / sigma_i^2|`` times the noise's);
* generate: a run equals ``ncsn_edu.sampling.annealed_langevin_dynamics`` with the same seed
  (the start and the noise from one generator), for the full schedule, a subset of levels, both
  step conventions and the single-level modes; Pause holds the chain and Resume ends where an
  uninterrupted run ends; Reset shows the start again;
* inpaint: a run equals Algorithm 2 (``annealed_langevin_inpainting``) for the same seed, and its
  known pixels equal the package's ``y = x + sigma_L z``; the masks hide what they say;
* every control changes the output; eps too large stops the chain and says it diverged, with no
  NaN printed; bad arguments raise clear errors;
* the widgets run in a real kernel (nbclient) with Colab's ipywidgets 7.7.1 first on the path (the
  test runs with 8 too when its parameter list says ``[7, 8]``); every other test uses the
  environment's ipywidgets 8.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ncsn_edu.figures import image_widgets as iw
from ncsn_edu.images.inpainting import annealed_langevin_inpainting, left_half_mask
from ncsn_edu.images.refinenet import CondRefineNetDilated
from ncsn_edu.sampling import annealed_langevin_dynamics

pytestmark = pytest.mark.slow  # about 20 s on one core: a kernel that imports torch, chains in threads
ROOT = Path(__file__).resolve().parents[2]
SIGMAS = torch.tensor([1.0, 0.1, 0.01])
CPU = torch.device("cpu")


def tiny_net(n_levels: int = 3, seed: int = 0) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CondRefineNetDilated(in_channels=1, ngf=4, num_classes=n_levels, image_size=28).eval()


@pytest.fixture(scope="module")
def net():
    return tiny_net()


@pytest.fixture(scope="module")
def digits():
    # stroke-like test images: a bright bar in a different place in each
    d = torch.zeros(3, 1, 28, 28)
    for k in range(3):
        d[k, 0, 6 + 5 * k : 10 + 5 * k, 5:23] = 1.0
        d[k, 0, 5:23, 12 + 3 * k : 15 + 3 * k] = 0.8
    return d


def package_chain(net, n, sigmas, eps, T, seed, convention, levels=None):
    """What a generate run must equal: the start and then the noise from one generator."""
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand((n, 1, 28, 28), generator=g)
    lev = torch.tensor(levels if levels is not None else range(len(sigmas)))
    with torch.no_grad():
        return annealed_langevin_dynamics(lambda x, lab: net(x, lev[lab]), x0, sigmas, eps, T, generator=g,
                                          convention=convention)


def run(box, timeout=60):
    box.controls["run"].click()
    assert box.wait(timeout), "the chain did not end"
    assert box.state.get("error") is None, box.state["error"]
    return box.state


# ----------------------------------------------------------------------------- denoise

def test_denoise_level_is_nearest_in_log_sigma_and_output_is_tweedie(net, digits):
    box = iw.denoise_widget(net, SIGMAS, digits, sigma=0.1, index=1, seed=3, device="cpu")
    # levels 1, 0.1, 0.01: 0.4 is nearer 0.1 on a line but nearer 1 in log; 0.035 nearer 0.01 on a
    # line but nearer 0.1 in log; 0.03 nearer 0.01 in log (|log 3| = 1.10 < |log 0.3| = 1.20)
    for sigma, level in [(0.4, 0), (0.25, 1), (0.035, 1), (0.03, 2), (0.01, 2), (1.0, 0)]:
        box.controls["sigma"].value = sigma
        st = box.state
        assert st["level"] == level, (sigma, st["level"])
        x = digits[1:2]
        z = torch.randn((1, 1, 28, 28), generator=torch.Generator().manual_seed(3))
        noisy = x + sigma * z
        with torch.no_grad():
            score = net(noisy, torch.tensor([level]))
        torch.testing.assert_close(st["noisy"], noisy, rtol=0, atol=0)
        torch.testing.assert_close(st["score"], score, rtol=0, atol=0)
        # float32 arithmetic of the same expression: equal to the last bit
        torch.testing.assert_close(st["denoised"], noisy + sigma**2 * score, rtol=0, atol=0)
        assert st["rms_denoised"] == pytest.approx((noisy + sigma**2 * score - x).pow(2).mean().sqrt().item())
        text = box.children[-1].value
        assert f"level {level + 1} " in text and "nan" not in text.lower()


class PointMassScore(torch.nn.Module):
    """The exact score of data that is one image ``x0``, perturbed at level ``i``:
    ``-(x - x0) / sigma_i^2`` (Tweedie's step from it returns ``x0`` at ``sigma = sigma_i``)."""

    def __init__(self, x0, sigmas):
        super().__init__()
        self.register_buffer("x0", x0)
        self.register_buffer("sigmas", torch.as_tensor(sigmas, dtype=torch.float32))

    def forward(self, x, labels):
        return -(x - self.x0) / self.sigmas[labels].view(-1, 1, 1, 1) ** 2


def test_denoise_with_the_exact_score_of_a_point_mass(digits):
    box = iw.denoise_widget(PointMassScore(digits[0:1], SIGMAS), SIGMAS, digits, sigma=0.1, seed=1, device="cpu")
    for sigma, level in [(0.1, 1), (1.0, 0), (0.01, 2), (0.2, 1), (0.05, 1)]:
        box.controls["sigma"].value = sigma
        st = box.state
        # x~ + sigma^2 (-(x~ - x) / sigma_i^2) - x = (1 - sigma^2 / sigma_i^2) sigma z exactly; the
        # rms of that is |1 - r| times the noise's rms (float32 rounding: relative 1e-5)
        ratio = sigma**2 / SIGMAS[level].item() ** 2
        assert st["rms_denoised"] == pytest.approx(abs(1 - ratio) * st["rms_noisy"], rel=1e-4, abs=1e-6), sigma
        if ratio == 1:
            assert st["rms_denoised"] < 1e-6


def test_denoise_controls_change_the_output(net, digits):
    box = iw.denoise_widget(net, SIGMAS, digits, sigma=0.1, device="cpu")
    before = box.state["denoised"].clone()
    for name, value in [("index", 2), ("sigma", 0.5), ("seed", 7)]:
        box.controls[name].value = value
        assert not torch.equal(box.state["denoised"], before), name
        before = box.state["denoised"].clone()
    assert box.children[1].children[0].children[1].value[:4] == b"\x89PNG"


# ----------------------------------------------------------------------------- generate

@pytest.mark.parametrize("convention", ["code", "paper"])
def test_generate_equals_the_packages_annealed_langevin(net, convention):
    box = iw.generate_widget(net, SIGMAS, n_images=4, n_steps_each=3, eps=1e-4, convention=convention, seed=5,
                             device="cpu")
    x0 = torch.rand((4, 1, 28, 28), generator=torch.Generator().manual_seed(5))
    assert torch.equal(box.state["x"], x0)  # the start is shown before Run
    st = run(box)
    assert st["done"] and st["t"] == 9
    torch.testing.assert_close(st["x"], package_chain(net, 4, SIGMAS, 1e-4, 3, 5, convention), rtol=0, atol=0)
    # a subset of levels: L = 2 is the first and the last level, the network at its own indices
    box.controls["n_levels"].value = 2
    st = run(box)
    expect = package_chain(net, 4, SIGMAS[[0, 2]], 1e-4, 3, 5, convention, levels=[0, 2])
    torch.testing.assert_close(st["x"], expect, rtol=0, atol=0)
    assert st["t"] == 6


def test_generate_shows_every_step_of_the_packages_chain(net, monkeypatch):
    # frames as often as steps come: each shows the state after t steps, as the package's chain has it
    monkeypatch.setattr(iw, "FRAME_SECONDS", 0.0)
    box = iw.generate_widget(net, SIGMAS, n_images=4, n_steps_each=2, eps=1e-3, seed=8, device="cpu")
    frames = []
    box.children[1].observe(lambda ch: frames.append((ch["new"], box.state["x"].clone())), names="value")
    st = run(box)
    g = torch.Generator().manual_seed(8)
    x0 = torch.rand((4, 1, 28, 28), generator=g)
    with torch.no_grad():
        _, states = annealed_langevin_dynamics(net, x0, SIGMAS, 1e-3, 2, generator=g, keep_every=1,
                                              convention="code")
    assert [t for t, _ in frames] == list(range(1, 7))  # steps 1..5 while running, 6 at the end
    for t, x in frames:
        torch.testing.assert_close(x, states[t], rtol=0, atol=0)
    assert st["t"] == 6


def test_generate_single_level_modes(net):
    base = tiny_net(1, seed=1)
    box = iw.generate_widget(net, SIGMAS, n_images=4, n_steps_each=2, eps=1e-4, seed=2, mode="single",
                             baseline=(base, torch.tensor([0.01])), device="cpu")
    st = run(box)
    # one level: L x T = 3 x 2 steps of plain Langevin with the baseline at its label 0
    torch.testing.assert_close(st["x"], package_chain(base, 4, torch.tensor([0.01]), 1e-4, 6, 2, "code"),
                               rtol=0, atol=0)
    assert st["t"] == 6
    assert "scores far from the data are not learned" in box.children[-1].value  # why the chains stay noise
    box.controls["mode"].value = "last"
    st = run(box)
    assert "not learned" not in box.children[-1].value
    torch.testing.assert_close(st["x"], package_chain(net, 4, SIGMAS[2:], 1e-4, 6, 2, "code", levels=[2]),
                               rtol=0, atol=0)


def test_single_mode_loads_the_books_baseline_by_default(net):
    from ncsn_edu.images.checkpoints import load_checkpoint
    from ncsn_edu.resources import resource_path

    box = iw.generate_widget(net, SIGMAS, n_images=4, n_steps_each=1, mode="single", device="cpu")
    base_net, levels, sigmas_run, steps = box.state["plan"]
    shipped, shipped_sigmas, _ = load_checkpoint(resource_path("mnist_baseline_sigma001.pt"))
    assert sigmas_run.tolist() == pytest.approx([0.01]) and levels == [0] and steps == 3  # L x T = 3 x 1
    for a, b in zip(base_net.state_dict().values(), shipped.state_dict().values()):
        assert torch.equal(a, b)


def test_a_baseline_that_cannot_be_read_is_reported_on_the_widget(net):
    class Unreadable:
        def __iter__(self):
            raise RuntimeError("cannot read checkpoint baseline.pt")

    box = iw.generate_widget(net, SIGMAS, n_images=4, n_steps_each=1, baseline=Unreadable(), device="cpu")
    box.controls["mode"].value = "single"
    assert "cannot run this mode" in box.children[-1].value and "cannot read checkpoint" in box.children[-1].value
    box.controls["run"].click()  # nothing to run: no thread, the message stays
    assert box.wait(5) and not box.chain.running and "cannot run this mode" in box.children[-1].value
    box.controls["mode"].value = "annealed"
    assert "press Run" in box.children[-1].value


def test_generate_every_control_changes_the_output(net):
    base = tiny_net(1, seed=1)
    box = iw.generate_widget(net, SIGMAS, n_images=4, n_steps_each=2, eps=1e-4, seed=0,
                             baseline=(base, torch.tensor([0.01])), device="cpu")
    reference = run(box)["x"].clone()
    changes = [("n_images", 5), ("n_levels", 2), ("n_steps_each", 3), ("eps", 1e-3), ("convention", "paper"),
               ("seed", 1), ("mode", "single"), ("mode", "last")]
    for name, value in changes:
        old = box.controls[name].value
        box.controls[name].value = value
        out = run(box)["x"]
        assert out.shape != reference.shape or not torch.allclose(out, reference), name
        box.controls[name].value = old
    torch.testing.assert_close(run(box)["x"], reference, rtol=0, atol=0)  # back where it was


def test_generate_pause_resume_and_reset(net):
    box = iw.generate_widget(net, SIGMAS, n_images=4, n_steps_each=10, eps=1e-4, seed=4, device="cpu")
    box.controls["run"].click()
    deadline = time.time() + 60
    while box.chain.t < 2 and time.time() < deadline:
        time.sleep(0.01)
    box.controls["pause"].click()
    assert box.chain.wait_paused(30), "Pause did not hold the chain"
    t = box.chain.t
    time.sleep(0.3)
    assert box.chain.t == t and box.chain.running and 0 < t < 30
    box.controls["run"].click()  # resumes
    assert box.wait(120) and box.state["done"]
    assert box.chain.paused_seconds >= 0.3  # left out of the time per step shown
    torch.testing.assert_close(box.state["x"], package_chain(net, 4, SIGMAS, 1e-4, 10, 4, "code"), rtol=0, atol=0)
    # Reset in the middle of a run: the chain stops and the start is shown again
    box.controls["run"].click()
    box.controls["reset"].click()
    assert not box.chain.running and box.state["t"] == 0 and not box.state["done"]
    torch.testing.assert_close(box.state["x"], torch.rand((4, 1, 28, 28), generator=torch.Generator().manual_seed(4)),
                               rtol=0, atol=0)
    assert "press Run" in box.children[-1].value


def test_generate_says_when_the_chain_diverges(net):
    # code convention at level 1: a = eps sigma_1^2 / sigma_L^2 = 0.1 x 10^4 = 1000 times the score
    box = iw.generate_widget(net, SIGMAS, n_images=4, n_steps_each=5, eps=0.1, seed=0, device="cpu")
    st = run(box)
    text = box.children[-1].value
    assert st["diverged"] is not None and not st.get("done"), text
    assert st["diverged"] < 5, st["diverged"]  # stopped within level 1, not after all 15 steps
    assert "diverged" in text and "lower \u03b5" in text and "nan" not in text.lower(), text
    # a network that returns NaN: "not finite", never a NaN printed
    nan_net = PointMassScore(torch.full((1, 1, 28, 28), float("nan")), SIGMAS)
    box = iw.generate_widget(nan_net, SIGMAS, n_images=4, n_steps_each=2, eps=1e-4, device="cpu")
    st = run(box)
    text = box.children[-1].value
    assert st["diverged"] is not None and "not finite" in text and "nan" not in text.lower(), text
    # the same network with a sensible eps ends normally and prints the pixels' range
    box = iw.generate_widget(net, SIGMAS, n_images=4, n_steps_each=2, eps=1e-4, device="cpu")
    st = run(box)
    assert st["done"] and st["diverged"] is None and "pixels from" in box.children[-1].value


# ----------------------------------------------------------------------------- inpaint

def test_preset_masks_hide_what_they_say():
    assert torch.equal(iw.preset_mask("right half"), left_half_mask((1, 28, 28)))
    assert iw.preset_mask("bottom half")[0, 14:].sum() == 0 and iw.preset_mask("bottom half")[0, :14].all()
    assert (1 - iw.preset_mask("centre square")).sum() == 14 * 14
    q = iw.preset_mask("random quarter", seed=3)
    assert (1 - q).sum() == 196 and not torch.equal(q, iw.preset_mask("random quarter", seed=4))
    r = iw.preset_mask("rectangle", rows=(2, 9), cols=(5, 20))
    assert (1 - r).sum() == 7 * 15 and r[0, 2:9, 5:20].sum() == 0
    assert iw.preset_mask("everything").sum() == 0
    with pytest.raises(ValueError, match="unknown mask"):
        iw.preset_mask("left ear")


@pytest.mark.parametrize("mask", ["right half", "random quarter", "rectangle"])
def test_inpaint_equals_algorithm_2_and_keeps_the_known_pixels(net, digits, mask):
    box = iw.inpaint_widget(net, SIGMAS, digits, index=2, mask=mask, n_completions=3, n_steps_each=2, eps=1e-4,
                            seed=6, device="cpu")
    if mask == "rectangle":
        box.controls["rows"].value, box.controls["cols"].value = (3, 12), (4, 20)
    st = run(box)
    m = iw.preset_mask(mask, 6, (3, 12), (4, 20))
    assert torch.equal(st["mask"], m)
    g = torch.Generator().manual_seed(6)
    with torch.no_grad():
        expect = annealed_langevin_inpainting(net, digits[2:3], m, SIGMAS, 1e-4, 2, n_completions=3, generator=g,
                                              convention="code")
    known = m.expand_as(expect).bool()
    assert st["completions"].shape == (1, 3, 1, 28, 28)
    torch.testing.assert_close(st["completions"][known], expect[known], rtol=0, atol=0)
    torch.testing.assert_close(st["completions"], expect, rtol=0, atol=0)
    # the known pixels are Algorithm 2's last y = x + sigma_L z: within a few sigma_L = 0.01 of the
    # digit (|z| < 6 for all 3 x 784 draws but with probability 1e-5)
    assert (st["completions"][known] - digits[2:3].expand_as(expect)[known]).abs().max() < 6 * 0.01


def test_inpaint_given_mask_classifier_and_every_control(net, digits):
    from ncsn_edu.images.mnist_classifier import load_classifier

    clf, _ = load_classifier()
    given = torch.ones(1, 28, 28)
    given[:, :, 20:] = 0
    box = iw.inpaint_widget(net, SIGMAS, digits, mask=given, n_completions=2, n_steps_each=2, eps=1e-4,
                            classifier=clf, labels=torch.tensor([4, 5, 6]), device="cpu")
    st = run(box)
    assert torch.equal(st["mask"], given)
    with torch.no_grad():
        p = torch.softmax(clf(st["completions"][0].clamp(0, 1)), dim=1)
    assert st["readings"][0] == p.argmax(1).tolist()
    assert st["readings"][1] == pytest.approx(p.max(1).values.tolist())
    text = box.children[-1].value
    assert "classifier reads" in text and "(the digit is a 4)" in text
    reference = st["completions"].clone()
    changes = [("index", 1), ("mask", "centre square"), ("n_completions", 3), ("n_levels", 2), ("n_steps_each", 3),
               ("eps", 1e-3), ("convention", "paper"), ("seed", 9)]
    for name, value in changes:
        old = box.controls[name].value
        box.controls[name].value = value
        out = run(box)["completions"]
        assert out.shape != reference.shape or not torch.allclose(out, reference), name
        box.controls[name].value = old
    box.controls["mask"].value = "rectangle"
    assert not box.controls["rows"].disabled
    reference = run(box)["completions"].clone()
    for name, value in [("rows", (0, 5)), ("cols", (20, 28))]:
        old = box.controls[name].value
        box.controls[name].value = value
        assert not torch.allclose(run(box)["completions"], reference), name
        box.controls[name].value = old


def test_bad_arguments_raise_clear_errors(net, digits):
    with pytest.raises(ValueError, match=r"shape \(N, 1, 28, 28\)"):
        iw.denoise_widget(net, SIGMAS, torch.rand(2, 28, 28))
    with pytest.raises(ValueError, match="index 5"):
        iw.denoise_widget(net, SIGMAS, digits, index=5)
    with pytest.raises(ValueError, match="sigma must lie"):
        iw.denoise_widget(net, SIGMAS, digits, sigma=3.0)
    with pytest.raises(ValueError, match="4..16"):
        iw.generate_widget(net, SIGMAS, n_images=20)
    with pytest.raises(ValueError, match="eps must be positive"):
        iw.generate_widget(net, SIGMAS, eps=0.0)
    with pytest.raises(ValueError, match="mode must be"):
        iw.generate_widget(net, SIGMAS, mode="single", baseline=False)
    with pytest.raises(ValueError, match="only 0"):
        iw.inpaint_widget(net, SIGMAS, digits, mask=torch.full((1, 28, 28), 0.5))
    with pytest.raises(ValueError, match="unknown mask"):
        iw.inpaint_widget(net, SIGMAS, digits, mask="left ear")


def test_level_subset_and_device_choice(monkeypatch):
    assert iw.level_subset(10, 10) == list(range(10))
    assert iw.level_subset(10, 1) == [9]
    assert iw.level_subset(10, 2) == [0, 9]
    assert iw.level_subset(10, 4) == [0, 3, 6, 9]  # round(j * 9 / 3)
    assert iw.level_subset(10, 3) == [0, 5, 9]  # 4.5 rounds up, as JavaScript's Math.round
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert iw.pick_device(None).type == "cuda"  # Colab's GPU when there is one
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert iw.pick_device(None).type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_generate_on_cuda_equals_the_package_there(net):
    box = iw.generate_widget(net, SIGMAS, n_images=4, n_steps_each=3, eps=1e-4, seed=5, device="cuda")
    st = run(box)
    cuda_net = tiny_net().cuda()
    g = torch.Generator(device="cuda").manual_seed(5)
    x0 = torch.rand((4, 1, 28, 28), generator=g, device="cuda")
    with torch.no_grad():
        expect = annealed_langevin_dynamics(cuda_net, x0, SIGMAS, 1e-4, 3, generator=g, convention="code")
    torch.testing.assert_close(st["x"], expect.cpu(), rtol=0, atol=0)


# ----------------------------------------------------------------------------- in a kernel, ipywidgets 7.7.1 and 8

COLAB_IPYWIDGETS = "7.7.1"
SETUP = """
import json, sys, torch, ipywidgets
sys.path.insert(0, {tests!r})
from test_image_widgets import SIGMAS, tiny_net, run
from ncsn_edu.figures import image_widgets as iw
net, digits = tiny_net(), torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
"""
SHOW = """
g = iw.generate_widget(net, SIGMAS, n_images=4, n_steps_each=2, eps=1e-4, device="cpu")
g
"""
DRIVE = """
d = iw.denoise_widget(net, SIGMAS, digits, device="cpu")
d.controls["sigma"].value = 0.4
a = run(g)["x"].clone()
g.controls["eps"].value = 1e-3
b = run(g)["x"]
p = iw.inpaint_widget(net, SIGMAS, digits, n_steps_each=2, eps=1e-4, device="cpu")
p.controls["mask"].value = "rectangle"
p.controls["rows"].value = (0, 10)
q = run(p)
print(json.dumps({"version": ipywidgets.__version__, "file": ipywidgets.__file__, "level": d.state["level"],
                  "changed": not torch.equal(a, b), "types": [type(w).__name__ for w in (d, g, p)],
                  "hidden": int((1 - q["mask"]).sum()), "done": bool(q["done"])}))
"""


def ipywidgets_7(request) -> Path:
    """Colab's ipywidgets 7.7.1 in the pytest cache, as ``tests/test_colab.py`` installs it
    (downloaded from PyPI on the first run only)."""
    cache = request.config.cache
    folder = Path(cache.mkdir(f"ipywidgets-{COLAB_IPYWIDGETS}"))
    if not (folder / "ipywidgets" / "__init__.py").is_file():
        r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
                            "--target", str(folder), f"ipywidgets=={COLAB_IPYWIDGETS}", "ipython_genutils==0.2.0"],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, f"could not install ipywidgets {COLAB_IPYWIDGETS} from PyPI:\n{r.stderr[-2000:]}"
    return folder


def test_the_other_tests_run_ipywidgets_8():
    import ipywidgets

    assert ipywidgets.__version__.split(".")[0] == "8", ipywidgets.__version__


@pytest.mark.parametrize("major", [7])  # 8: the tests above (a kernel of its own costs 8 s of CPU)
def test_widgets_run_in_a_kernel_with_colabs_ipywidgets(request, tmp_path, major):
    # A real kernel: the widgets' comms are open, and the chain's thread sends its frames through them.
    import nbformat
    from nbclient import NotebookClient

    env = {k: v for k, v in os.environ.items() if k not in ("NCSN_EDU_STATIC",)}
    path = [str(ROOT)] + ([str(ipywidgets_7(request))] if major == 7 else [])
    env["PYTHONPATH"] = os.pathsep.join(path[::-1] + [p for p in [env.get("PYTHONPATH")] if p])
    cells = [SETUP.format(tests=str(Path(__file__).parent)), SHOW, DRIVE]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True).execute(env=env, cwd=str(tmp_path))
    for cell in nb.cells:
        errs = [(o["ename"], o["evalue"]) for o in cell.outputs if o["output_type"] == "error"]
        assert not errs, errs
    views = [o for o in nb.cells[1].outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert views, nb.cells[1].outputs  # the cell shows the widget, not a text repr of it
    text = "".join(o.get("text", "") for o in nb.cells[2].outputs if o["output_type"] == "stream")
    got = json.loads(text.strip().splitlines()[-1])
    assert got["version"].split(".")[0] == str(major), got
    if major == 7:
        assert got["version"] == COLAB_IPYWIDGETS and Path(got["file"]).is_relative_to(ipywidgets_7(request)), got
    assert got["level"] == 0 and got["changed"] and got["types"] == ["VBox"] * 3, got
    assert got["hidden"] == 10 * 14 and got["done"], got  # rows 0-9, columns 7-20
