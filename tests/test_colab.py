"""The book as Colab runs it (issue 32): every chapter in a fresh runtime where only Colab's
packages are installed and ncsn_edu comes from its set-up cell.

Colab gives each notebook its own runtime, so no data set is on disk, and it ships
ipywidgets 7.7.1, whose front end shows no ipywidgets 8 widget. This file plays that:

* the package is a wheel built by ``dev.build_wheel_site`` (setuptools' deprecation
  warnings are errors there, so a deprecated ``pyproject.toml`` fails here) and installed
  with ``--no-deps`` into a folder of its own;
* the kernel starts in a working folder outside the checkout, with ``HOME`` an empty
  folder and ``NCSN_EDU_DATA`` unset, so the data root is an empty ``~/.cache/ncsn_edu/data``;
* the network is off (a ``sitecustomize`` refuses every name lookup and connection but
  the kernel's own loopback), so every MNIST access that lets torchvision download must
  end in ``DatasetDownloadError``, the network error; a ``FileNotFoundError`` means the
  chapter never asked torchvision to download;
* the picture slider is driven in a kernel with ipywidgets 8 (the venv's) and in one with
  Colab's ipywidgets 7.7.1 (installed once with ``--no-deps`` into the pytest cache).

Each chapter's set-up cell, its import cell and its first cell that reads MNIST run in
one kernel, followed by the slider with ipywidgets 8 (one kernel for all of them keeps the
test short); the slider with ipywidgets 7.7.1 runs in a second kernel. Every other MNIST
access is checked in the source: no chapter passes ``download=`` anything but ``True``.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
from email.parser import Parser
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from packaging.requirements import Requirement

pytestmark = pytest.mark.slow  # kernels and a wheel build: tens of seconds

ROOT = Path(__file__).resolve().parents[1]
COLAB_IPYWIDGETS = "7.7.1"
#: a call that reads a data set torchvision can download, in a cell that names MNIST
DATA_ACCESS = re.compile(r"\b(image_dataset|read_image_set|load_images)\(")
MNIST = re.compile(r"[\"']mnist[\"']")

#: On the kernel's path as ``sitecustomize``: no network but the loopback the kernel talks on.
OFFLINE = '''
import socket
_getaddrinfo, _create_connection = socket.getaddrinfo, socket.create_connection
_LOCAL = ("localhost", "127.0.0.1", "::1", "0.0.0.0", "", None)

def _refuse(host):
    raise socket.gaierror(socket.EAI_NONAME, f"Name or service not known: {host} (offline test)")

def getaddrinfo(host, *a, **k):
    if host not in _LOCAL:
        _refuse(host)
    return _getaddrinfo(host, *a, **k)

def create_connection(address, *a, **k):
    if address[0] not in _LOCAL:
        _refuse(address[0])
    return _create_connection(address, *a, **k)

socket.getaddrinfo, socket.create_connection = getaddrinfo, create_connection
'''

SLIDER = '''
import ipywidgets
import matplotlib.pyplot as plt
from ncsn_edu.figures.sliders import slider

calls = []
def draw(v):  # a figure whose grey level is its value
    calls.append(v)
    fig = plt.figure(figsize=(1, 1))
    fig.patch.set_facecolor((v, v, v))
    return fig

box = slider(draw, [0.1, 0.5, 0.9], name="sigma", static=False, initial=1)
box
'''
MOVE = '''
control, out = box.children
control.value = 2
print(json.dumps({"version": ipywidgets.__version__, "file": ipywidgets.__file__, "calls": calls,
                  "label": control.label, "type": type(box).__name__}))
'''


def load_dev():
    spec = importlib.util.spec_from_file_location("ncsn_dev", ROOT / "dev.py")
    dev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dev)
    return dev


def chapters() -> list[Path]:
    return sorted((ROOT / "book").rglob("*.ipynb"))


def code_cells(path: Path) -> list[str]:
    nb = json.loads(path.read_text())
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def python_of(cell: str) -> str:
    """A cell's Python: IPython's magics and shell lines commented out."""
    return "\n".join("#" + line if line.lstrip().startswith(("%", "!")) else line for line in cell.splitlines())


def test_no_chapter_forbids_torchvision_to_download():
    # every data-set access in every chapter, also those the kernel below never reaches
    bad = []
    for path in chapters():
        for k, cell in enumerate(code_cells(path)):
            for node in ast.walk(ast.parse(python_of(cell))):
                if isinstance(node, ast.Call):
                    for kw in node.keywords:
                        if kw.arg == "download" and not (isinstance(kw.value, ast.Constant) and kw.value.value is True):
                            bad.append(f"{path.relative_to(ROOT)} code cell {k}: {ast.unparse(node)[:100]}")
    assert not bad, ("on Colab no data set is on disk: let torchvision download it (leave download= out)\n"
                     + "\n".join(bad))


def mnist_chapters() -> list[tuple[Path, list[str], str]]:
    """(chapter, its set-up and import cells, its first cell that reads MNIST)."""
    out = []
    for path in chapters():
        cells = code_cells(path)
        first = next((c for c in cells if DATA_ACCESS.search(c) and MNIST.search(c)
                      and not c.lstrip().startswith("RERUN")), None)
        if first is not None:
            out.append((path, [c for c in cells[:2] if c is not first], first))
    return out


@pytest.fixture(scope="module")
def colab(tmp_path_factory, request):
    """The environment of a fresh Colab runtime with the package installed from a wheel."""
    base = tmp_path_factory.mktemp("colab")
    site = load_dev().build_wheel_site(base / "site", python=sys.executable)
    offline = base / "offline"
    offline.mkdir()
    (offline / "sitecustomize.py").write_text(OFFLINE)
    (base / "home").mkdir()
    content = base / "content"  # Colab's working folder
    content.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("NCSN_EDU_DATA", "NCSN_EDU_STATIC", "PYTHONPATH", "MPLBACKEND")}
    # matplotlib's font cache where it already is (a fresh HOME would rebuild it: seconds)
    mpl = Path(os.environ.get("MPLCONFIGDIR") or Path.home() / ".config" / "matplotlib")
    env.update(HOME=str(base / "home"), MPLCONFIGDIR=str(mpl), PYTHONPATH=os.pathsep.join([str(offline), str(site)]))
    return {"site": site, "env": env, "content": content, "base": base}


def run_kernel(colab, sources, extra_path=None, timeout=300):
    """Run ``sources`` as the cells of one notebook in a fresh kernel of the Colab
    environment; errors are kept in the outputs, not raised."""
    env = dict(colab["env"])
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join([str(extra_path), env["PYTHONPATH"]])
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(colab["content"])}})
    client.execute(env=env, cwd=str(colab["content"]))
    return nb


def errors(cell) -> list[tuple[str, str]]:
    return [(o["ename"], o["evalue"]) for o in cell.outputs if o["output_type"] == "error"]


def stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o["output_type"] == "stream")


def test_the_wheel_keeps_colabs_ipywidgets(colab):
    # `pip install -e .` (README, capstone) must not replace Colab's ipywidgets 7.7.1
    (meta,) = colab["site"].glob("ncsn_edu-*.dist-info/METADATA")
    reqs = [Requirement(r) for r in Parser().parsestr(meta.read_text()).get_all("Requires-Dist")]
    (widgets,) = [r for r in reqs if r.name == "ipywidgets"]
    for version in (COLAB_IPYWIDGETS, "8.1.5"):
        assert widgets.specifier.contains(version), f"{widgets} would replace ipywidgets {version}"


@pytest.fixture(scope="module")
def colab_runtime(colab):
    """One fresh kernel of the Colab environment: where it imports from, then every MNIST
    chapter's set-up cell, import cell and first MNIST cell, then the picture slider with
    the environment's ipywidgets (8)."""
    found = mnist_chapters()
    where = ("import json, os, ncsn_edu\nfrom ncsn_edu.resources import data_root\n"
             "print(json.dumps({'package': ncsn_edu.__file__, 'cwd': os.getcwd(), 'data_root': str(data_root()),"
             " 'data': os.listdir(data_root()) if data_root().is_dir() else []}))")
    sources = [code_cells(found[0][0])[0], where]
    spans = []
    for _, setup, first in found:
        spans.append((len(sources), len(sources) + len(setup)))
        sources += setup + [first]
    slider_at = len(sources)
    sources += ["import json", SLIDER, MOVE]
    nb = run_kernel(colab, sources)
    return {"nb": nb, "found": found, "spans": spans, "slider": nb.cells[slider_at:]}


def test_every_mnist_chapter_asks_torchvision_to_download_in_a_fresh_runtime(colab, colab_runtime):
    nb, found, spans = colab_runtime["nb"], colab_runtime["found"], colab_runtime["spans"]
    names = [p.stem for p, _, _ in found]
    assert {"04_denoising_score_matching", "08_noise_conditional_networks", "10_mnist_ncsn"} <= set(names), names
    seen = json.loads(stdout(nb.cells[1]).strip().splitlines()[-1])
    assert Path(seen["package"]).is_relative_to(colab["site"]), seen  # the wheel, not the checkout
    assert not Path(seen["cwd"]).is_relative_to(ROOT)
    assert Path(seen["data_root"]).is_relative_to(colab["base"] / "home") and seen["data"] == [], seen
    for (path, _, _), (start, stop) in zip(found, spans):
        for k in range(start, stop):  # the set-up and import cells run as they are
            assert not errors(nb.cells[k]), (path.name, nb.cells[k].source[:200], errors(nb.cells[k]))
        got = errors(nb.cells[stop])
        assert got, f"{path.name}: its first MNIST cell ran without MNIST on disk and without network"
        ename, evalue = got[0]
        assert ename == "DatasetDownloadError" and "could not download" in evalue, (
            f"{path.name}: in a fresh runtime its first MNIST cell must try torchvision's download and, "
            f"offline, fail on the network; it raised {ename}: {evalue[:400]}")


@pytest.fixture(scope="module")
def ipywidgets_7(request, tmp_path_factory):
    """Colab's ipywidgets 7.7.1 (and ipython_genutils, which it imports) in a folder of the
    pytest cache: downloaded from PyPI on the first run only (every run without the cache)."""
    cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    name = f"ipywidgets-{COLAB_IPYWIDGETS}"
    folder = Path(cache.mkdir(name)) if cache is not None else tmp_path_factory.mktemp(name)
    if not (folder / "ipywidgets" / "__init__.py").is_file():
        r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                            "--no-deps", "--target", str(folder), f"ipywidgets=={COLAB_IPYWIDGETS}",
                            "ipython_genutils==0.2.0"], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, f"could not install ipywidgets {COLAB_IPYWIDGETS} from PyPI:\n{r.stderr[-2000:]}"
    return folder


@pytest.mark.parametrize("major", [7, 8])
def test_picture_slider_works_with_colabs_ipywidgets_and_with_8(request, colab, major):
    if major == 7:  # a kernel of its own, with Colab's ipywidgets first on the path
        cells = run_kernel(colab, ["import json", SLIDER, MOVE],
                           extra_path=request.getfixturevalue("ipywidgets_7")).cells
    else:  # the kernel above, with the environment's ipywidgets 8
        cells = request.getfixturevalue("colab_runtime")["slider"]
    for cell in cells:
        assert not errors(cell), errors(cell)
    got = json.loads(stdout(cells[2]).strip().splitlines()[-1])
    assert got["version"].split(".")[0] == str(major), got
    if major == 7:
        assert got["version"] == COLAB_IPYWIDGETS and Path(got["file"]).is_relative_to(
            request.getfixturevalue("ipywidgets_7"))
    # drawn once for the initial value, then once for the new one, with the value the label shows
    assert got["calls"] == [0.5, 0.9] and got["label"] == "0.9" and got["type"] == "VBox", got
    # the cell shows a widget (a view of the box's model), not a text repr of it
    views = [o for o in cells[1].outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert views and views[0]["data"]["application/vnd.jupyter.widget-view+json"]["model_id"], cells[1].outputs
