import os

os.environ.setdefault("MPLBACKEND", "Agg")

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

#: Under CI (CI=true, as CI services set it) every test must run: CI has ../shared
#: beside the clone, dev.py links or unpacks the data sets from it, installs chromium as
#: root, and .ci/run builds the book before testing. A skip there means a test that CI
#: should have run did not, so it fails the run. The one exception is a test that needs
#: hardware CI lacks; its skip reason says so with one of these words.
CI_MAY_SKIP_FOR = ("CUDA",)
_SKIPPED_MODULES = pytest.StashKey[list]()


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


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    # A whole module skipped (pytest.skip(allow_module_level=True), importorskip): failing
    # its collection would stop the run, so it is noted here and fails the run at its end.
    outcome = yield
    report = outcome.get_result()
    if report.skipped and in_ci():
        reason = _skip_reason(report)
        if not any(word in reason for word in CI_MAY_SKIP_FOR):
            collector.config.stash.setdefault(_SKIPPED_MODULES, []).append(f"{report.nodeid}: {reason}")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    skipped = config.stash.get(_SKIPPED_MODULES, [])
    if skipped:
        terminalreporter.section("modules skipped under CI, where every test must run", red=True)
        for line in skipped:
            terminalreporter.line(line)


def pytest_sessionfinish(session, exitstatus):
    if session.config.stash.get(_SKIPPED_MODULES, []) and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
