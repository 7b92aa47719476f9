"""The two homes: committed results (found by resource_path however NCSN_EDU_DATA is set)
and data sets (data_root, which NCSN_EDU_DATA moves)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ncsn_edu import resources

ROOT = Path(__file__).resolve().parents[1]


def tracked_results() -> list[str]:
    """Every file git tracks under data/, relative to data/: the committed results."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "data"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        pytest.skip(f"not a git checkout, so the committed results cannot be listed: {err}")
    names = [Path(p).relative_to("data").as_posix() for p in out.decode().split("\0") if p]
    assert names, "git tracks no file under data/"
    return names


def test_results_are_found_wherever_ncsn_edu_data_points(tmp_path, monkeypatch):
    # Catches results looked up under data_root(): pointing NCSN_EDU_DATA at a folder of
    # data sets (as the data-set messages advise) used to hide every committed result.
    monkeypatch.setenv("NCSN_EDU_DATA", str(tmp_path))
    assert resources.data_root() == tmp_path
    for name in tracked_results():
        assert resources.resource_path(name).samefile(ROOT / "data" / name), name
    with pytest.raises(FileNotFoundError, match="data/README.md"):
        resources.resource_path("no_such_result.pt")


def test_data_sets_default_to_the_checkout_data_folder(monkeypatch):
    monkeypatch.delenv("NCSN_EDU_DATA", raising=False)
    assert resources.data_root() == ROOT / "data"
    assert resources.results_root() == ROOT / "data"
