"""Under CI every test must run: a skip fails the run (tests/conftest.py), except for
hardware CI lacks (CUDA); outside CI a skip stays a skip and says how to run the test."""

from __future__ import annotations

from pathlib import Path

import pytest
from missing_data import how_to_provide

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


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_missing_data_messages_name_the_folder_and_the_command(dataset):
    message = how_to_provide(dataset)
    assert "python3 dev.py setup" in message and "shared" in message
    assert ("MNIST/raw" if dataset == "mnist" else "cifar10-jpeg") in message
