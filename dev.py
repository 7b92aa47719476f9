#!/usr/bin/env python3
"""Set up the project and build the book or run the tests.

    python3 dev.py book   # create .venv, install, execute every chapter, build the site
    python3 dev.py test   # create .venv, install, run the whole test suite
    python3 dev.py lint   # run ruff (configured in pyproject.toml) on the code

Only Python 3.10+ with pip and venv is needed; everything else is installed into
``.venv`` (and, for the browser test, Debian's ``chromium`` when run as root), and
onnxruntime-web into ``node_modules`` by ``npm ci`` (Debian's ``nodejs`` and ``npm`` are
installed when missing and run as root).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")


def run(cmd, **kw):
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], **kw)


def ensure_env() -> None:
    """Create .venv and install the package with its book and test extras when
    pyproject.toml changed since the last install."""
    if sys.version_info < (3, 10):
        sys.exit("ncsn-edu needs Python 3.10 or newer")
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    stamp = VENV / ".ncsn-edu-installed"
    if not PY.exists():
        print(f"creating the environment in {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
    if not stamp.exists() or stamp.read_text().strip() != want:
        r = run([PY, "-m", "pip", "install", "-e", f"{ROOT}[book,test]"], cwd=ROOT)
        if r.returncode:
            sys.exit("installing the dependencies failed (see pip's message above)")
        stamp.write_text(want)


def link_offline_data() -> None:
    """Where an offline copy of MNIST sits beside the checkout (../shared/data), link it
    into data/ so that torchvision finds it instead of downloading."""
    shared = ROOT.parent / "shared" / "data"
    for name in ("MNIST", "FashionMNIST"):
        src, dst = shared / name, ROOT / "data" / name
        if (src / "raw").is_dir() and not dst.exists():
            dst.parent.mkdir(exist_ok=True)
            dst.symlink_to(src.resolve(), target_is_directory=True)
            print(f"linked {dst} -> {src.resolve()}")


def unpack_offline_cifar10() -> None:
    """Where the offline JPEG copy of CIFAR-10 sits beside the checkout
    (../shared/data/cifar10-jpeg/cifar10_jpeg.tar.gz), unpack it once into the ignored
    data/cifar10-jpeg/ (train/<class>/*.jpg, test/<class>/*.jpg), where ncsn_edu.images.data
    finds it. Unpacks into a temporary folder first, so an interrupted run leaves none."""
    import tarfile

    archive = ROOT.parent / "shared" / "data" / "cifar10-jpeg" / "cifar10_jpeg.tar.gz"
    dst = ROOT / "data" / "cifar10-jpeg"
    if not archive.is_file() or ((dst / "train").is_dir() and (dst / "test").is_dir()):
        return
    tmp = ROOT / "data" / ".cifar10-jpeg.unpacking"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    print(f"unpacking {archive} into {dst}", flush=True)
    with tarfile.open(archive) as tar:
        try:
            tar.extractall(tmp, filter="data")
        except TypeError:  # Python without extraction filters
            tar.extractall(tmp)
    if not ((tmp / "train").is_dir() and (tmp / "test").is_dir()):
        shutil.rmtree(tmp, ignore_errors=True)
        sys.exit(f"{archive} does not hold train/ and test/ folders")
    if dst.exists():
        shutil.rmtree(dst)
    tmp.rename(dst)


def ensure_chromium() -> None:
    """The slider test drives Debian's chromium through chromedriver."""
    if shutil.which("chromium") and shutil.which("chromedriver"):
        return
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run(["apt-get", "update", "-q"], env=env)
        r = run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium", "chromium-driver"], env=env)
        if r.returncode == 0:
            return
    print("warning: chromium and chromedriver are not installed; the browser test will be "
          "skipped (install Debian's chromium and chromium-driver packages to run it)", flush=True)


def ensure_node() -> bool:
    """npm installs onnxruntime-web, which the image chapters' live figures run in the browser:
    Debian's nodejs and npm are installed through apt when missing and this runs as root.
    Returns whether npm is there."""
    if shutil.which("npm"):
        return True
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run(["apt-get", "update", "-q"], env=env)
        run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "nodejs", "npm"], env=env)
    return bool(shutil.which("npm"))


def npm_ci(required: bool) -> None:
    """Install the pinned onnxruntime-web (package-lock.json) into node_modules/ with ``npm ci``
    when the lock file changed since the last install. The book's build copies its WebAssembly
    files into the site and fails without them (``required``); the tests only warn."""
    lock = ROOT / "package-lock.json"
    if not lock.is_file():
        return
    want = hashlib.sha256(lock.read_bytes()).hexdigest()
    stamp = ROOT / "node_modules" / ".ncsn-edu-installed"
    if stamp.is_file() and stamp.read_text().strip() == want:
        return
    ok = ensure_node()
    if ok:  # --ignore-scripts: no package in the lock needs its install script for the files shipped
        ok = run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=ROOT).returncode == 0
    if ok:
        stamp.write_text(want)
    elif required:
        sys.exit("installing onnxruntime-web with `npm ci` failed or npm is missing (install Node.js and npm, "
                 "then run `npm ci` in the repository)")
    else:
        print("warning: `npm ci` did not install onnxruntime-web; the live image figures' browser tests "
              "need it (install Node.js and npm, then run `npm ci`)", flush=True)


def env_for_children(tests: bool = False) -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    if tests:
        env.setdefault("MPLBACKEND", "Agg")
    else:
        # The chapters' kernels must keep matplotlib's inline backend to show figures.
        env.pop("MPLBACKEND", None)
    return env


#: Builds a wheel of the source folder it runs in into the folder ``sys.argv[1]`` with
#: setuptools' own PEP 517 backend (what pip calls), every setuptools deprecation warning
#: turned into an error: a pyproject.toml that setuptools deprecates fails the build the
#: day the warning appears, not the day setuptools stops building it (pip hides the warning).
STRICT_WHEEL_BUILD = """
import sys, warnings
from setuptools.warnings import SetuptoolsDeprecationWarning
warnings.simplefilter("error", SetuptoolsDeprecationWarning)
import setuptools.build_meta as backend
backend.build_wheel(sys.argv[1])
"""


def build_wheel_site(site: Path, python=PY, data: Path | None = None) -> Path:
    """Build ncsn_edu as a wheel and install it, without dependencies, into the folder
    ``site`` (for PYTHONPATH), failing on any setuptools deprecation warning
    (``STRICT_WHEEL_BUILD``). The wheel is built from a scratch copy of the sources with
    ``data`` (default: the checkout's data/) linked in, so nothing is written into the
    checkout and no stale build/ folder can slip old files into it."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(ROOT / name, src / name)
        shutil.copytree(ROOT / "ncsn_edu", src / "ncsn_edu", ignore=shutil.ignore_patterns("__pycache__"))
        (src / "data").symlink_to(Path(data or ROOT / "data").resolve(), target_is_directory=True)
        pip = [python, "-m", "pip", "--disable-pip-version-check", "-q"]
        r = run([python, "-c", STRICT_WHEEL_BUILD, tmp], cwd=src, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("ncsn_edu-*.whl"))
        if r.returncode or len(wheels) != 1:
            print(r.stdout[-4000:], r.stderr[-8000:], sep="\n", file=sys.stderr)
            sys.exit("building the ncsn_edu wheel failed, or setuptools warned that something in "
                     "pyproject.toml is deprecated (see its message above)")
        shutil.rmtree(site, ignore_errors=True)
        if run([*pip, "install", "--no-deps", "--no-index", "--target", site, wheels[0]], cwd=tmp).returncode:
            sys.exit("installing the ncsn_edu wheel failed (see pip's message above)")
    return Path(site)


def wheel_kernel_env(env: dict, site: Path) -> dict:
    """``env`` for kernels that import ncsn_edu from the wheel installed in ``site``
    (PYTHONPATH comes before the editable install), as after a reader's ``pip install .``
    or on Colab, so every book build proves that an installed package finds the book's
    committed results. Data sets still come from the checkout's data/ (NCSN_EDU_DATA)."""
    env = dict(env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH")) if p)
    env.setdefault("NCSN_EDU_DATA", str(ROOT / "data"))
    return env


def build_book() -> int:
    ensure_env()
    link_offline_data()
    unpack_offline_cifar10()
    npm_ci(required=True)
    env = wheel_kernel_env(env_for_children(), build_wheel_site(ROOT / "_build" / "wheel-site"))
    r = run([BIN / "jupyter-book", "build", ROOT, "--all", "-W", "--keep-going"], cwd=ROOT, env=env)
    if r.returncode == 0:
        print(f"\nThe book is built: open {ROOT / '_build' / 'html' / 'index.html'} in a browser.")
    else:
        print("\nThe book build failed: see the messages above (a chapter that raises fails it).")
    return r.returncode


def run_tests(extra) -> int:
    ensure_env()
    link_offline_data()
    unpack_offline_cifar10()
    ensure_chromium()
    npm_ci(required=False)
    return run([PY, "-m", "pytest", *parallel_args(extra), *extra], cwd=ROOT,
               env=env_for_children(tests=True)).returncode


def parallel_args(extra, cpus=None) -> list[str]:
    """pytest-xdist options for the suite: one worker per core (at most 4), whole test
    files per worker (``--dist loadfile``: a file's module and session fixtures, such as a
    trained toy model or a built test book, are made once). On a 2-core machine this runs
    the suite in about half the serial time. Files go out in the collected order, which
    puts the files marked ``slow`` first (tests/conftest.py). Nothing is added when the caller chose
    (``-n``, ``--numprocesses``, ``--dist``, ``-p no:xdist``) or when there is one core."""
    chosen = any(a in ("-n", "--dist", "no:xdist") or a.startswith(("-n", "--numprocesses", "--dist="))
                 for a in extra)
    if cpus is None:  # the cores this process may use (a container may allow fewer than the machine has)
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = min(cpus, 4)
    if chosen or workers < 2:
        return []
    return ["-n", str(workers), "--dist", "loadfile", "--no-loadscope-reorder"]


def lint() -> int:
    """Run ruff on the package, the tests and the scripts; non-zero on any violation."""
    ensure_env()
    return run([BIN / "ruff", "check", "ncsn_edu", "tests", "dev.py", "gpu"], cwd=ROOT).returncode


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["book", "test", "lint", "setup"], help="what to do")
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER, help="extra arguments for pytest (test only)")
    args = parser.parse_args(argv)
    start = time.time()
    if args.command == "book":
        code = build_book()
    elif args.command == "test":
        code = run_tests(args.pytest_args)
    elif args.command == "lint":
        code = lint()
    else:
        ensure_env()
        link_offline_data()
        unpack_offline_cifar10()
        npm_ci(required=False)
        code = 0
    print(f"[dev.py {args.command}] finished in {time.time() - start:.0f} s with exit code {code}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
