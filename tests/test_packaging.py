"""A package installed from a wheel (as `pip install .` or Colab's set-up cell installs
it) finds every committed result, from any working folder and whatever NCSN_EDU_DATA
says, and its wheel carries no data set. The wheel is built and installed by the same
dev.py function that `python3 dev.py book` runs every chapter against."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

from test_resources import tracked_results

ROOT = Path(__file__).resolve().parents[1]

#: Files a data set leaves in data/ whose names look like results (the extensions and
#: depths the package-data patterns take): the wheel must carry none of them.
DECOYS = [
    "MNIST/processed.pt", "FashionMNIST/raw.npz", "cifar-10-batches-py/batches.json", ".cifar10-jpeg.unpacking/x.md",
    "cifar10-jpeg/README.md", "cifar10-jpeg/train/airplane/0000.png", "cifar10/test.npz",
    "celeba/list_attr_celeba.csv", "cache/cifar10-train-0123abcd.npz",
]


def load_dev():
    spec = importlib.util.spec_from_file_location("ncsn_dev", ROOT / "dev.py")
    dev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dev)
    return dev


def _mirror(src: Path, dst: Path, below: list[str]) -> None:
    """dst as a copy of the folder src made of links, except that every folder on the way
    to a decoy (``below``: decoy paths relative to src) is a real folder, so that writing a
    decoy never writes through a link into the real data set."""
    dst.mkdir()
    for child in src.iterdir():
        inner = [d.split("/", 1)[1] for d in below if "/" in d and d.split("/", 1)[0] == child.name]
        if inner and child.is_dir():
            _mirror(child, dst / child.name, inner)
        else:
            (dst / child.name).symlink_to(child.resolve())


def data_with_decoys(tmp: Path) -> Path:
    """data/ as a build sees it (every entry of the real one linked in, so the data sets
    present here count too), with the decoy data-set files added. The real data/ is left
    exactly as it was: a decoy written through a link would corrupt a real data set (a stray
    ``0000.png`` in the CIFAR-10 copy makes every reader of it fail)."""
    real = ROOT / "data"
    before = {rel for rel in DECOYS if (real / rel).exists()}
    data = tmp / "data"
    _mirror(real, data, DECOYS)
    for rel in DECOYS:
        path = data / rel
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"data set, not a result")
    written = {rel for rel in DECOYS if (real / rel).exists()} - before
    assert not written, f"decoys written into the real data/: {sorted(written)}"
    return data


CHECK = """
import json, os, sys
from pathlib import Path
import ncsn_edu
from ncsn_edu.resources import data_root, resource_path
names = json.loads(sys.argv[1])
out = {"package": ncsn_edu.__file__, "found": {n: str(resource_path(n)) for n in names},
       "data_root_env": str(data_root())}
del os.environ["NCSN_EDU_DATA"]
out["data_root_default"] = str(data_root())
out["found_default"] = {n: str(resource_path(n)) for n in names}
from ncsn_edu.figures.live import library_js
out["live_js"] = len(library_js(["langevin"]))
print(json.dumps(out))
"""


def test_a_wheel_install_finds_every_result_and_carries_no_data_set(tmp_path):
    names = tracked_results()
    site = load_dev().build_wheel_site(tmp_path / "site", python=sys.executable, data=data_with_decoys(tmp_path))

    # What the wheel holds (its RECORD lists every file): the results are exactly the
    # files git tracks under data/, and every module of the package is there.
    record = (next(site.glob("ncsn_edu-*.dist-info")) / "RECORD").read_text().splitlines()
    held = {line.split(",")[0] for line in record}
    results = {p.removeprefix("ncsn_edu/results/") for p in held if p.startswith("ncsn_edu/results/")}
    assert not results - set(names), (
        f"the wheel carries files git does not track under data/ (data sets or scratch files): "
        f"{sorted(results - set(names))}; exclude their folder in pyproject.toml's "
        f"[tool.setuptools.exclude-package-data], or commit them if they are results")
    assert not set(names) - results, (
        f"the wheel lacks committed results: {sorted(set(names) - results)}; a result under data/ "
        f"must match [tool.setuptools.package-data] in pyproject.toml (extend its patterns)")
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "ncsn_edu").rglob("*.py")}
    assert not modules - held, (f"the wheel lacks modules (list a new sub-package in pyproject.toml's "
                                f"[tool.setuptools] packages): {sorted(modules - held)}")
    scripts = {p.relative_to(ROOT).as_posix() for p in (ROOT / "ncsn_edu" / "figures" / "live_js").glob("*.js")}
    assert scripts and not scripts - held, (f"the wheel lacks the live figures' JavaScript (pyproject.toml's "
                                            f"package-data for ncsn_edu): {sorted(scripts - held)}")

    # A fresh interpreter outside the checkout, importing only the installed copy, with
    # NCSN_EDU_DATA pointing at an empty folder and then unset.
    (tmp_path / "empty").mkdir()
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = dict(os.environ, PYTHONPATH=str(site), NCSN_EDU_DATA=str(tmp_path / "empty"), HOME=str(tmp_path / "home"))
    r = subprocess.run([sys.executable, "-c", CHECK, json.dumps(names)], cwd=work, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert Path(out["package"]).is_relative_to(site)
    assert out["live_js"] > 1000  # the installed package reads its own live-figure scripts
    assert Path(out["data_root_env"]) == tmp_path / "empty"
    assert Path(out["data_root_default"]) == tmp_path / "home" / ".cache" / "ncsn_edu" / "data"
    for found in (out["found"], out["found_default"]):
        for name in names:
            path = Path(found[name])
            assert path.is_relative_to(site), (name, path)
            assert path.read_bytes() == (ROOT / "data" / name).read_bytes(), name


def test_book_kernels_import_the_wheel(tmp_path):
    # dev.py book runs every chapter with this environment: the kernels (started in
    # book/) must import ncsn_edu from the wheel, not from the checkout.
    dev = load_dev()
    site = tmp_path / "site" / "ncsn_edu"
    site.mkdir(parents=True)
    (site / "__init__.py").write_text("WHEEL = True\n")
    env = dev.wheel_kernel_env(dict(os.environ, PYTHONPATH=str(ROOT)), site.parent)
    assert env["NCSN_EDU_DATA"] == os.environ.get("NCSN_EDU_DATA", str(ROOT / "data"))
    r = subprocess.run([sys.executable, "-c", "import ncsn_edu; print(ncsn_edu.WHEEL)"], cwd=ROOT / "book",
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "True", r.stderr[-2000:]
