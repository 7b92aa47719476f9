"""The project's own promises: dependencies listed once, notebooks stripped, the Colab
set-up cell everywhere, one repository address, every chapter in the table of contents."""

from __future__ import annotations

import json
import re

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib
from pathlib import Path

import pytest
import yaml
from test_packaging import load_dev

import ncsn_edu

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
SETUP_CELL = (ROOT / "book" / "_setup_cell.py").read_text().rstrip("\n")


def norm(req: str) -> str:
    return re.sub(r"\s+", "", req).lower().replace("_", "-")


def toc_files() -> list[str]:
    files = [TOC["root"]]
    for part in TOC.get("parts", []):
        for ch in part["chapters"]:
            files.append(ch["file"])
            files += [s["file"] for s in ch.get("sections", [])]
    return files


def notebooks() -> list[Path]:
    return sorted(p for p in (ROOT / "book").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def test_environment_yml_lists_the_package_dependencies():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {norm(r) for r in pip if not r.startswith("-e")}
    project = PYPROJECT["project"]
    wanted = {norm(r) for r in project["dependencies"] + project["optional-dependencies"]["book"]}
    assert listed == wanted
    assert "-e ." in pip


def test_required_dependencies_and_pins():
    deps = {re.split(r"[<>=!~ ]", d)[0].lower(): d for d in PYPROJECT["project"]["dependencies"]}
    for name in ["torch", "torchvision", "numpy", "matplotlib", "ipywidgets", "scikit-learn"]:
        assert name in deps
    assert norm(deps["ipywidgets"]) == "ipywidgets>=7.7,<9"  # Colab ships 7.7.1 (issue 32)
    assert "==" not in deps["torch"], "torch must not be pinned (the registry's build is the CUDA one)"
    assert any(norm(b) == "jupyter-book>=1,<2" for b in PYPROJECT["project"]["optional-dependencies"]["book"])


def test_one_repository_address():
    url = CONFIG["repository"]["url"]
    assert url == ncsn_edu.REPOSITORY == PYPROJECT["project"]["urls"]["Repository"]
    assert f'"{url}"' in SETUP_CELL


def test_toc_lists_existing_files_and_every_notebook():
    files = toc_files()
    for f in files:
        assert any((ROOT / f"{f}{ext}").exists() for ext in (".ipynb", ".md")), f"{f} is in _toc.yml but missing"
    in_toc = {ROOT / f"{f}.ipynb" for f in files}
    kept_out = {ROOT / p for p in CONFIG["exclude_patterns"] if p.endswith(".ipynb")}  # named, not built (yet)
    for nb in notebooks():
        assert nb in in_toc or nb in kept_out, f"{nb.relative_to(ROOT)} is not in _toc.yml"
    assert not kept_out & in_toc, "a chapter both in _toc.yml and excluded from the build"


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.name)
def test_notebook_is_stripped_and_starts_with_the_setup_cell(path):
    nb = json.loads(path.read_text())
    assert "widgets" not in nb.get("metadata", {}), "widget state must not be committed"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    for c in code:
        assert not c.get("outputs") and c.get("execution_count") is None, "outputs must be stripped"
    first = "".join(code[0]["source"]).rstrip("\n")
    assert first == SETUP_CELL, "the first code cell must be book/_setup_cell.py"
    assert nb["cells"][0]["cell_type"] == "markdown" and "".join(nb["cells"][0]["source"]).startswith("# ")


def test_setup_cell_never_touches_torch_numpy_or_ipywidgets():
    assert "--no-deps" in SETUP_CELL
    for pkg in ("torch", "numpy", "ipywidgets"):
        assert not re.search(rf"install[^\n]*\b{pkg}\b", SETUP_CELL)


def test_readme_commands_are_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    for cmd in ("python3 dev.py book", "python3 dev.py test"):
        assert cmd in readme and cmd in ci


def test_book_fails_on_errors_and_executes_every_chapter():
    assert CONFIG["execute"]["execute_notebooks"] == "force"
    assert CONFIG["execute"]["allow_errors"] is False
    assert CONFIG["sphinx"]["config"]["nb_execution_raise_on_error"] is True
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"


def test_ruff_is_configured_and_run_by_ci():
    ruff = PYPROJECT["tool"]["ruff"]
    assert ruff["line-length"] == 120 and ruff["target-version"] == "py310"
    assert {"E", "F", "W"} <= set(ruff["lint"]["select"])
    assert any(norm(r).startswith("ruff") for r in PYPROJECT["project"]["optional-dependencies"]["test"])
    steps = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert "python3 dev.py lint" in steps
    assert steps.index("python3 dev.py book") < steps.index("python3 dev.py lint") < steps.index("python3 dev.py test")


@pytest.mark.parametrize("extra,cpus,expected", [
    ([], 2, ["-n", "2", "--dist", "loadfile", "--no-loadscope-reorder"]),  # the 2-core CI machine: two workers
    ([], 16, ["-n", "4", "--dist", "loadfile", "--no-loadscope-reorder"]),  # at most four
    ([], 1, []),  # one core: serial
    (["-k", "sliders"], 2, ["-n", "2", "--dist", "loadfile", "--no-loadscope-reorder"]),
    (["-n", "0"], 8, []), (["-n3"], 8, []), (["--numprocesses=3"], 8, []), (["-p", "no:xdist"], 8, []),
    (["--dist", "load"], 8, []),
])
def test_dev_test_runs_the_suite_on_every_core_unless_told_otherwise(extra, cpus, expected):
    # What `python3 dev.py test` adds to pytest's arguments: parallel whole files, which
    # keeps the suite within two minutes on the 2-core machine; the caller's choice wins.
    assert load_dev().parallel_args(extra, cpus=cpus) == expected
