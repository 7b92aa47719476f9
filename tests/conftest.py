import os
import sys
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")

# The suite's folders mirror the package's (toy/, images/, figures/, experiments/, plus book/ for the
# site); test modules are imported by path (--import-mode=importlib, pyproject.toml), so two folders
# may hold files of the same name. The helper modules beside this file (browser, live_checks,
# small_book, fake_cifar, image_train_helpers, missing_data, live_pages) are imported by name from any
# folder.
sys.path.insert(0, str(Path(__file__).parent))

import pytest  # noqa: E402
import torch  # noqa: E402

# The tests' networks are small: one thread is faster than two for them, and it stays
# fast when something else runs on a 2-core machine (two threads then slow down several
# times waiting for each other).
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread in every test (a test may raise it), restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

@pytest.fixture(scope="session")
def _fake_mnist_roots():
    return {}


@pytest.fixture
def mnist_root(request, _fake_mnist_roots, tmp_path_factory):
    """A folder with a small fake MNIST in MNIST's own files (``write_fake_mnist``), written once
    per size in a session. Its size is the closest ``fake_mnist(n_train=..., n_test=...)`` mark
    (the test's, else its module's ``pytestmark``), else write_fake_mnist's default (256, 64)."""
    from image_train_helpers import write_fake_mnist

    mark = request.node.get_closest_marker("fake_mnist")
    size = {"n_train": 256, "n_test": 64, **(mark.kwargs if mark else {})}
    key = (size["n_train"], size["n_test"])
    if key not in _fake_mnist_roots:
        root = tmp_path_factory.mktemp(f"mnist_{key[0]}_{key[1]}")
        write_fake_mnist(root, **size)
        _fake_mnist_roots[key] = root
    return _fake_mnist_roots[key]


@pytest.fixture
def fake_weights(tmp_path):
    """A stand-in for the Inception weights file of ``evaluate_images``."""
    path = tmp_path / "inception.pth"
    path.write_bytes(b"stand-in")  # only its existence is checked before the (stubbed) metric
    return path


def pytest_collection_modifyitems(config, items):
    """The files marked ``slow`` (pytestmark = pytest.mark.slow) first, otherwise in the
    collected order. ``dev.py test`` hands whole files to its parallel workers in this
    order (--no-loadscope-reorder), so the longest files start first and the short ones
    fill in at the end instead of one long file running alone while the other core waits."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)


#: Under CI (CI=true, as CI services set it) every test must run: CI has ../shared
#: beside the clone, dev.py links or unpacks the data sets from it, installs chromium as
#: root, and .ci/run builds the book before testing. A skip there means a test that CI
#: should have run did not, so it fails the run. The one exception is a test that needs
#: hardware CI lacks; its skip reason says so with one of these words.
CI_MAY_SKIP_FOR = ("CUDA",)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def _fail_skip_under_ci(report) -> None:
    if not (report.skipped and in_ci()) or hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report)
    if any(word in reason for word in CI_MAY_SKIP_FOR):
        return
    report.outcome = "failed"
    report.longrepr = (f"skipped under CI (CI={os.environ.get('CI')}), where every test must run; "
                       f"the skip said:\n{reason}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_skip_under_ci(outcome.get_result())


class _ModuleSkipsUnderCI:
    """Notes each whole module skipped under CI (pytest.skip(allow_module_level=True),
    importorskip): failing its collection would stop the run, so the run fails at its end.
    Only the process that decides the run's exit status keeps them: in a parallel run
    (pytest-xdist) that is the controller, to which the workers pass skipped collection
    reports; a worker (``config.workerinput``) leaves them to it."""

    def __init__(self, config):
        self.config = config
        self.lines: list[str] = []

    def pytest_collectreport(self, report):
        if not (report.skipped and in_ci()) or hasattr(self.config, "workerinput"):
            return
        reason = _skip_reason(report)
        line = f"{report.nodeid}: {reason}"
        if not any(word in reason for word in CI_MAY_SKIP_FOR) and line not in self.lines:
            self.lines.append(line)


def pytest_configure(config):
    config.addinivalue_line("markers", "fake_mnist(n_train, n_test): the size of the mnist_root fixture's data set")
    config.pluginmanager.register(_ModuleSkipsUnderCI(config), "ncsn_edu_module_skips_under_ci")


def _module_skips(config) -> list[str]:
    plugin = config.pluginmanager.get_plugin("ncsn_edu_module_skips_under_ci")
    return plugin.lines if plugin is not None else []


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    skipped = _module_skips(config)
    if skipped:
        terminalreporter.section("modules skipped under CI, where every test must run", red=True)
        for line in skipped:
            terminalreporter.line(line)


def pytest_sessionfinish(session, exitstatus):
    if _module_skips(session.config) and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
