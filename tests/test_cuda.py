"""CUDA checks of the image engine (issue 12). Every test here skips without a CUDA
device, so CI (CPU only) skips them cleanly; `gpu/session.sh` runs them on the lent GPU.

What they check, and what each would catch:

* exact resume on CUDA in fp32 with deterministic kernels: per-step seeding that is not
  device-safe (a CPU generator used for CUDA noise, or a generator state not restored);
* ``--amp auto`` on the GPU is what its compute capability calls for (bf16 from 8.0,
  fp16 with a gradient scaler on 7.x), and the fp16 path resumes bit for bit (issue 20);
* resume with bf16 + channels-last + torch.compile: the resumed losses stay within a
  measured tolerance of the uninterrupted run (compiled bf16 kernels are not bit-exact);
* the fast path against fp32 eager on real CIFAR-10 batches: a broken autocast region,
  a channels-last copy that drops gradients, or a compile graph break that changes the loss;
* the annealed sampler and inpainting on CUDA against the exact Gaussian answers;
* `torchrun --nproc_per_node=1` with NCCL equals a single process.

The measured figures are written as JSON lines to `$NCSN_EDU_CUDA_REPORT` when it is set
(the GPU session collects them); tolerances are stated next to each assertion.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

# Deterministic cuBLAS needs this before CUDA is initialised (set again by gpu/session.sh).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import pytest  # noqa: E402
import torch  # noqa: E402

#: The device under test. `NCSN_EDU_TEST_DEVICE=cpu` rehearses the whole file on a CPU
#: (gloo instead of NCCL; slow compilation), which is how gpu/session.sh was prepared.
DEVICE = os.environ.get("NCSN_EDU_TEST_DEVICE", "cuda")
pytestmark = [pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(),
                                 reason="needs a CUDA device (run by gpu/session.sh)"),
              pytest.mark.fake_mnist(n_train=256, n_test=64)]  # the size of mnist_root (tests/conftest.py)

HELPER = Path(__file__).parent / "image_train_helpers.py"


def report(name: str, **values) -> None:
    """Print a measured figure and append it to $NCSN_EDU_CUDA_REPORT when set."""
    line = json.dumps({"test": name, **values})
    print(line)
    path = os.environ.get("NCSN_EDU_CUDA_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def cuda_cfg(root, out, **kw):
    from ncsn_edu.images.presets import TrainConfig

    base = dict(dataset="mnist", out=str(out), data_root=str(root), ngf=16, batch_size=32, n_iters=12,
                ckpt_every=4, log_every=1, test_every=6, test_batches=1, sample_every=10_000, sample_n=4,
                sample_steps_each=2, progress=False, device=DEVICE, amp="off", channels_last="off", compile="off",
                tensorboard="off")
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture
def deterministic():
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark,
              torch.backends.cudnn.deterministic)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    yield
    torch.use_deterministic_algorithms(before[0])
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before[1], before[2]


def _resume_pair(root, tmp_path, **kw):
    """An uninterrupted 12-step run and the same run stopped after 5 and 4 steps and resumed."""
    from ncsn_edu.images import trainer

    quiet = dict(log=lambda *a: None)
    full = trainer.train(cuda_cfg(root, tmp_path / "a", **kw), **quiet)
    parts = [trainer.train(cuda_cfg(root, tmp_path / "b", max_steps_this_run=k, **kw), **quiet) for k in (5, 4, None)]
    assert [p["step"] for p in parts] == [5, 9, 12]
    return full["losses"], sum((p["losses"] for p in parts), [])


def test_resume_is_bit_exact_on_cuda_in_fp32(mnist_root, tmp_path, deterministic):
    from ncsn_edu.images.checkpoints import read_checkpoint

    a, b = _resume_pair(mnist_root, tmp_path)
    report("resume_fp32_deterministic", losses_equal=a == b, max_abs_diff=max(abs(x - y) for x, y in zip(a, b)))
    assert a == b  # bit for bit: the same kernels on the same inputs
    wa = read_checkpoint(tmp_path / "a" / "checkpoint.pt")["model"]
    wb = read_checkpoint(tmp_path / "b" / "checkpoint.pt")["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_auto_precision_is_the_devices_and_fp16_resumes_exactly(mnist_root, tmp_path, deterministic):
    """--amp auto on this GPU is the choice its compute capability calls for (issue 20),
    and the fp16 path with its gradient scaler resumes bit for bit with deterministic
    kernels (the scaler's state travels in the checkpoint)."""
    from ncsn_edu.images import precision, trainer
    from ncsn_edu.images.checkpoints import read_checkpoint
    from ncsn_edu.images.presets import TrainConfig

    dev = torch.device(DEVICE)
    cap = precision.device_capability(dev)
    speed = trainer.Speed(TrainConfig(), dev)
    report("auto_precision", device=torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
           capability=cap, precision=speed.precision.name, compile=speed.compile)
    if dev.type == "cuda":
        want = "bf16" if cap >= (8, 0) else "fp16" if cap >= (7, 0) else "fp32"
        assert speed.precision.name == want and speed.compile == (want == "bf16")
    a, b = _resume_pair(mnist_root, tmp_path, amp="fp16")
    state = read_checkpoint(tmp_path / "b" / "checkpoint.pt")
    skipped = trainer.read_metrics(tmp_path / "a" / "metrics.csv")["skipped_steps"][1][-1]
    report("resume_fp16_scaler", losses_equal=a == b, scale=state["scaler"]["scale"], skipped_steps=skipped)
    assert state["config"]["precision"] == "fp16" and a == b


def test_ncsnv2_options_resume_bit_exact_on_cuda(mnist_root, tmp_path, deterministic):
    """EMA of the weights and the division network (issue 27) on the device: the run resumes bit
    for bit (fp32, deterministic kernels), the average included, and stays finite."""
    from ncsn_edu.images.checkpoints import load_checkpoint, read_checkpoint

    kw = dict(ema=0.999, divide_by_sigma=True, n_sigmas=20, sigma_begin=16.88, sample_denoise=True)
    a, b = _resume_pair(mnist_root, tmp_path, **kw)
    ea = read_checkpoint(tmp_path / "a" / "checkpoint.pt")["ema"]
    eb = read_checkpoint(tmp_path / "b" / "checkpoint.pt")["ema"]
    same = all(torch.equal(ea[k], eb[k]) for k in ea)
    report("resume_ncsnv2_options", losses_equal=a == b, ema_equal=same, last_loss=a[-1])
    assert a == b and same and all(math.isfinite(x) for x in a)
    model, sigmas, _ = load_checkpoint(tmp_path / "a" / "checkpoint.pt", device=DEVICE)
    assert model.conditioning == "division" and torch.equal(model.sigmas, sigmas)


def test_resume_with_bf16_channels_last_and_compile(mnist_root, tmp_path):
    a, b = _resume_pair(mnist_root, tmp_path, amp="bf16", channels_last="on", compile="on")
    rel = [abs(x - y) / abs(x) for x, y in zip(a, b)]
    report("resume_fast_path", max_rel_diff=max(rel), mean_rel_diff=sum(rel) / len(rel))
    # Compiled bf16 kernels may differ run to run in the last bits; bf16 keeps 8 bits of
    # mantissa (relative rounding 2^-9 = 0.2%), and 12 Adam steps at lr 1e-3 do not amplify
    # that past a few times the rounding: 2% would flag a resume that restored the wrong state.
    assert max(rel) < 0.02


def test_fast_path_matches_fp32_on_real_cifar10(tmp_path):
    """Mean loss over 60 steps, fp32 eager vs bf16 + channels-last + compile, same batches
    and noise, on real CIFAR-10 images (the offline JPEG copy or torchvision's original)."""
    from ncsn_edu import benchmark

    try:
        from ncsn_edu.images.data import image_dataset

        image_dataset("cifar10", train=True, download=False)
    except (FileNotFoundError, RuntimeError, OSError) as err:
        pytest.skip(f"no CIFAR-10 copy: {err}")
    out = tmp_path / "agree.json"
    rc = benchmark.main(["--dataset", "cifar10", "--ngf", "32", "--batch-size", "64", "--steps", "5", "--warmup", "3",
                         "--sample-batch", "16", "--sample-evals", "2", "--agreement-steps", "60", "--data", "real",
                         "--device", DEVICE,
                         "--out", str(out)])
    res = json.loads(out.read_text())
    report("fast_path_agreement_cifar10_ngf32", **res.get("agreement", {}))
    assert rc == 0, res.get("agreement")


def test_annealed_sampler_and_inpainting_on_cuda_match_the_gaussian_answers():
    """For data N(mu, s^2 I) the perturbed score at level sigma is -(x - mu) / (s^2 + sigma^2).
    Annealed Langevin ends near N(mu, s^2 + sigma_L^2) (up to the discretisation bias, which
    is the closed form of the linear chain), and inpainting leaves the known pixels at the
    last level's noisy observation."""
    from ncsn_edu.images.inpainting import annealed_langevin_inpainting, left_half_mask
    from ncsn_edu.sampling import annealed_langevin_dynamics, step_coefficients

    dev = torch.device(DEVICE)
    mu, s = 0.5, 0.2
    sigmas = torch.tensor([1.0, 0.5, 0.25, 0.1])

    def score(x, labels):
        var = s**2 + sigmas.to(x.device)[labels].view(-1, *[1] * (x.ndim - 1)) ** 2
        return -(x - mu) / var

    g = torch.Generator(device=dev).manual_seed(0)
    x0 = torch.rand(4096, 1, 8, 8, generator=g, device=dev)
    eps, T = 2e-3, 200
    x = annealed_langevin_dynamics(score, x0, sigmas, eps, T, generator=g, convention="code")
    # Stationary variance of the linear chain x' = x - d x / v + n z at the last level.
    v = s**2 + sigmas[-1].item() ** 2
    d, n = step_coefficients(eps, sigmas[-1].item(), sigmas[-1].item(), "code")
    a = 1 - d / v
    var_stat = n**2 / (1 - a**2)
    var = x.var().item()
    se = var_stat * math.sqrt(2 / x.numel())  # std of a sample variance of Gaussian values
    report("annealed_sampler_cuda", var=var, var_closed_form=var_stat, se=se, mean=x.mean().item())
    assert abs(x.mean().item() - mu) < 5 * math.sqrt(var_stat / x.numel())
    assert abs(var - var_stat) < 5 * se

    images = torch.full((64, 1, 8, 8), mu, device=dev)
    mask = left_half_mask((1, 8, 8)).to(dev)
    out = annealed_langevin_inpainting(score, images, mask, sigmas, eps, T, n_completions=2, generator=g,
                                       convention="code")
    known = out[..., :4]
    # Known pixels are the last level's observation y = x + sigma_L z: mean mu, std sigma_L.
    report("inpainting_cuda", known_std=known.std().item(), sigma_L=sigmas[-1].item())
    assert abs(known.std().item() - sigmas[-1].item()) < 5 * sigmas[-1].item() / math.sqrt(2 * known.numel())
    unknown = out[..., 4:]
    assert abs(unknown.var().item() - var_stat) < 5 * var_stat * math.sqrt(2 / unknown.numel())


def test_torchrun_one_process_with_nccl_equals_a_single_process(mnist_root, tmp_path):
    from ncsn_edu import train_images as ti
    from ncsn_edu.images import trainer

    args = ["--dataset", "mnist", "--data-root", str(mnist_root), "--ngf", "8", "--batch-size", "16",
            "--n-iters", "3", "--ckpt-every", "3", "--log-every", "1", "--test-batches", "0",
            "--sample-every", "100000", "--sample-n", "2", "--sample-steps-each", "1", "--device", DEVICE,
            "--amp", "off", "--channels-last", "off",
            "--compile", "off", "--no-progress"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(Path(__file__).parents[1]),
                                                                    os.environ.get("PYTHONPATH")])))
    env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # only for the CPU rehearsal (gloo)
    env.setdefault("OMP_NUM_THREADS", "1")  # a busy CPU rehearsal thrashes with spinning OpenMP threads
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
                        "-m", "ncsn_edu.train_images", *args, "--out", str(tmp_path / "ddp")],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert ti.main([*args, "--out", str(tmp_path / "one")]) == 0
    a = trainer.read_metrics(tmp_path / "ddp" / "metrics.csv")["loss"][1]
    b = trainer.read_metrics(tmp_path / "one" / "metrics.csv")["loss"][1]
    report("torchrun_nccl_1proc", ddp_losses=a, single_losses=b)
    # One NCCL process all-reduces to itself: the same update up to kernel non-determinism.
    assert a == pytest.approx(b, rel=1e-4)
