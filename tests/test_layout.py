"""The package's layout (issue 26): commands at the top, the library in folders by role.

* every module of the package imports;
* the imports between the package's modules form no cycle, and no module in a folder imports a
  command (the top's runnable modules);
* the top holds at most 12 modules, at least three folders hold the rest, and the README and the
  module map in ``ncsn_edu/__init__.py`` name every folder;
* no old flat module path (``ncsn_edu.distributions``, ``ncsn_edu/live_js``, ...) is left in any
  tracked file, since there are no compatibility aliases.

``python tests/test_layout.py`` prints the import graph, one module a line.
"""

from __future__ import annotations

import ast
import importlib
import io
import re
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ncsn_edu"

#: What a user runs: ``python -m ncsn_edu.<name>``.
COMMANDS = ("train_images", "train_cifar", "sample_images", "evaluate_images", "benchmark")

#: Where the flat modules of the old layout went (no alias is left behind).
MOVED = {
    "distributions": "toy.distributions", "losses": "toy.losses", "gaussian_models": "toy.gaussian_models",
    "closed_forms": "toy.closed_forms", "annealing_theory": "toy.annealing_theory", "noise_scales": "toy.noise_scales",
    "toy_nets": "toy.nets", "training": "toy.training", "toy_metrics": "toy.metrics",
    "gradient_noise": "toy.gradient_noise", "refinenet": "images.refinenet", "resnet_score": "images.resnet_score",
    "inpainting": "images.inpainting", "data": "images.data", "presets": "images.presets",
    "seeding": "images.seeding", "devices": "images.devices", "image_batches": "images.batches",
    "train_step": "images.train_step", "checkpoints": "images.checkpoints", "precision": "images.precision",
    "official": "images.official", "metrics": "images.metrics", "mnist_classifier": "images.mnist_classifier",
    "plotting": "figures.plotting", "sliders": "figures.sliders", "live": "figures.live",
    "manifold_experiment": "experiments.manifold", "low_density_experiment": "experiments.low_density",
    "paper_chains": "experiments.paper_chains", "score_sde_experiment": "experiments.sde_mnist",
    "timing": "experiments.timing", "live_benchmark": "experiments.live_benchmark",
}


def module_files(package: Path = PACKAGE) -> dict[str, Path]:
    """``{dotted name: file}`` for every module of the package (``ncsn_edu.toy.losses``, ...)."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """``{module: the package's modules it imports}``, read from every ``import`` and ``from ...
    import`` line (at any depth: also the imports inside functions). ``from pkg import name``
    counts as an import of ``pkg.name`` when that is a module, else of ``pkg``."""
    files = module_files(package)
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            else:
                continue
            deps.update(t for t in targets if t in files and t != name)
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first = last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def folder_of(module: str) -> str | None:
    """The folder a module lives in (``toy`` for ``ncsn_edu.toy.losses``), None at the top."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()) else None


def test_every_module_imports():
    names = sorted(module_files())
    assert len(names) > 40
    for name in names:
        importlib.import_module(name)


def test_no_import_cycle():
    assert find_cycle(import_graph()) is None


def test_the_cycle_finder_finds_a_planted_cycle(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "room").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "room" / "__init__.py").write_text("")
    (pkg / "top.py").write_text("from pkg.room import a\n")
    (pkg / "room" / "a.py").write_text("def f():\n    from ..room import b\n")
    (pkg / "room" / "b.py").write_text("from pkg import top\n")
    graph = import_graph(pkg)
    assert graph["pkg.room.a"] == {"pkg.room.b"} and graph["pkg.room.b"] == {"pkg.top"}
    assert find_cycle(graph) is not None
    (pkg / "room" / "b.py").write_text("import os\n")
    assert find_cycle(import_graph(pkg)) is None


def test_no_folder_imports_a_command():
    graph = import_graph()
    commands = {f"ncsn_edu.{c}" for c in COMMANDS}
    bad = sorted((m, d) for m, deps in graph.items() if folder_of(m) for d in deps & commands)
    assert not bad, f"library modules importing commands: {bad}"


def test_commands_run_as_modules_at_the_top():
    for c in COMMANDS:
        text = (PACKAGE / f"{c}.py").read_text()
        assert 'if __name__ == "__main__":' in text, c


def test_top_holds_at_most_twelve_modules_and_folders_hold_the_rest():
    top = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert len(top) <= 12, top
    assert set(COMMANDS) <= set(top)
    folders = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    assert len(folders) >= 3 and {"toy", "images", "figures", "experiments"} <= set(folders), folders
    readme = (ROOT / "README.md").read_text()
    init_doc = importlib.import_module("ncsn_edu").__doc__
    for folder in folders:
        assert f"`ncsn_edu/{folder}/`" in readme, f"the README's layout table misses {folder}/"
        assert f"``{folder}/``" in init_doc, f"the module map in ncsn_edu/__init__.py misses {folder}/"


def old_path_pattern() -> re.Pattern:
    names = "|".join(sorted(MOVED, key=len, reverse=True))
    return re.compile(
        rf"ncsn_edu\.(?:{names})(?![\w])|ncsn_edu/(?:{names})\.py|from ncsn_edu import (?:{names})\b|ncsn_edu/live_js"
        .encode())


def readable_parts(path: Path):
    """``(name, bytes)`` of a file, and of each member of a zip archive (``.npz``, ``.pt``),
    decompressed: a command recorded in a compressed result must be found too."""
    yield str(path.relative_to(ROOT)), path.read_bytes()
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            for member in z.namelist():
                data = z.read(member)
                yield f"{path.relative_to(ROOT)}:{member}", data
                if member.endswith(".npy"):  # numpy keeps text as UTF-32: read it as text
                    array = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
                    if array.dtype.kind in "US":
                        yield f"{path.relative_to(ROOT)}:{member}", "\n".join(map(str, array.flat)).encode()


def test_no_old_flat_path_is_left():
    """Not in code, chapters, docs, scripts, nor in the commands recorded in committed results
    (also inside compressed ones, as ``data/mnist_pc_samples.npz``)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    pattern = old_path_pattern()
    me = Path(__file__).resolve().relative_to(ROOT).as_posix()
    hits = []
    for rel in filter(None, files.decode().split("\0")):
        path = ROOT / rel
        if rel == me or not path.is_file():
            continue
        for where, data in readable_parts(path):
            for m in pattern.finditer(data):
                hits.append(f"{where}: {m.group().decode()}")
    assert not hits, "old flat module paths:\n" + "\n".join(hits[:40])
    for old in MOVED:
        assert not (PACKAGE / f"{old}.py").exists()
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(f"ncsn_edu.{old}")


@pytest.mark.parametrize("line", ["from ncsn_edu.distributions import GaussianMixture",
                                  "python -m ncsn_edu.paper_chains data/x.pt fig4", "see ncsn_edu/live_js/core.js",
                                  "from ncsn_edu import plotting", "ncsn_edu/toy_nets.py"])
def test_the_old_path_pattern_catches_old_paths(line):
    assert old_path_pattern().search(line.encode())


@pytest.mark.parametrize("line", ["from ncsn_edu.toy.distributions import GaussianMixture",
                                  "python -m ncsn_edu.experiments.paper_chains", "ncsn_edu/figures/live_js/core.js",
                                  "ncsn_edu.results", "from ncsn_edu.images import data",
                                  "~/.cache/ncsn_edu/data"])
def test_the_old_path_pattern_passes_new_paths(line):
    assert not old_path_pattern().search(line.encode())


if __name__ == "__main__":
    for module, deps in sorted(import_graph().items()):
        print(module.removeprefix("ncsn_edu."), "->", ", ".join(sorted(d.removeprefix("ncsn_edu.") for d in deps)))


def test_no_module_imports_a_private_name_of_another():
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("ncsn_edu")):
                bad += [f"{path.relative_to(ROOT)}: {a.name} from {node.module}" for a in node.names
                        if a.name.startswith("_") and a.name != "__version__"]
    assert bad == []
