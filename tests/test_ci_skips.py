"""Under CI every test must run: a skip fails the run (tests/conftest.py), except for
hardware CI lacks (CUDA); outside CI a skip stays a skip and says how to run the test.
Also the conftest's order of files for parallel runs (slow files first)."""

from __future__ import annotations

from pathlib import Path

import pytest
from missing_data import how_to_provide

#: Ten seconds or more on one core: parallel runs (dev.py test) start this file first.
pytestmark = pytest.mark.slow

pytest_plugins = ["pytester"]

CONFTEST = (Path(__file__).parent / "conftest.py").read_text()

TESTS = """
import pytest

def test_runs():
    pass

def test_needs_mnist():
    pytest.skip("data set missing: MNIST")

@pytest.mark.skipif(True, reason="needs a CUDA device")
def test_needs_cuda():
    pass

@pytest.fixture
def book():
    pytest.skip("the book is not built")

def test_needs_the_book(book):
    pass
"""

MODULE_SKIP = """
import pytest
pytest.importorskip("no_such_module_for_ncsn_edu")

def test_never_collected():
    pass
"""


@pytest.mark.parametrize("ci", ["", "true"])
def test_skips_fail_only_under_ci(pytester, monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_skips=TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider")
    if ci:
        # a skip in the test body fails it; one in a fixture is an error; CUDA may skip
        result.assert_outcomes(passed=1, failed=1, errors=1, skipped=1)
        result.stdout.fnmatch_lines(["*skipped under CI*"])
        assert result.ret == pytest.ExitCode.TESTS_FAILED
    else:
        result.assert_outcomes(passed=1, skipped=3)
        assert result.ret == pytest.ExitCode.OK


@pytest.mark.parametrize("ci", ["", "true"])
def test_a_module_skipped_under_ci_fails_the_run(pytester, monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_fine="def test_fine():\n    pass\n", test_module_skip=MODULE_SKIP)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=1)  # the other tests still run
    assert result.ret == (pytest.ExitCode.TESTS_FAILED if ci else pytest.ExitCode.OK)
    if ci:
        result.stdout.fnmatch_lines(["*modules skipped under CI*", "*no_such_module_for_ncsn_edu*"])


def test_skips_fail_a_parallel_run_under_ci(pytester, monkeypatch):
    # dev.py test runs the suite in parallel (pytest-xdist): workers collect and run the
    # tests, and the controller decides the exit status. A skipped test, and a skipped
    # module (which only a worker's collection sees), must fail the run there too.
    monkeypatch.setenv("CI", "true")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_skips=TESTS, test_module_skip=MODULE_SKIP)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--dist", "loadfile")
    result.assert_outcomes(passed=1, failed=1, errors=1, skipped=2)  # CUDA's skip and the module's
    result.stdout.fnmatch_lines(["*modules skipped under CI*", "*no_such_module_for_ncsn_edu*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_missing_data_messages_name_the_folder_and_the_command(dataset):
    message = how_to_provide(dataset)
    assert "python3 dev.py setup" in message and "shared" in message
    assert ("MNIST/raw" if dataset == "mnist" else "cifar10-jpeg") in message


def test_files_marked_slow_are_collected_first(pytester):
    # dev.py hands whole files to its parallel workers in the collected order: the long
    # files must go out first, the rest keep their order.
    pytester.makeconftest(CONFTEST)
    pytester.makeini('[pytest]\nmarkers =\n    slow: a slow file\n')
    slow = "import pytest\npytestmark = pytest.mark.slow\n\ndef test_one():\n    pass\n\ndef test_two():\n    pass\n"
    pytester.makepyfile(test_a="def test_a():\n    pass\n", test_m=slow, test_b="def test_b():\n    pass\n",
                        test_z=slow)
    result = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider")
    ids = [line for line in result.stdout.lines if "::" in line]
    assert ids == ["test_m.py::test_one", "test_m.py::test_two", "test_z.py::test_one", "test_z.py::test_two",
                   "test_a.py::test_a", "test_b.py::test_b"]
