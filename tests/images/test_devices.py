"""ncsn_edu.images.devices: the device a run picks, the auto options, and each process's share of a
global batch under torchrun's variables (the two-process runs themselves: tests/test_train_images.py)."""

import pytest
import torch

from ncsn_edu.images.devices import Processes, auto_on, resolve_device, start_processes


def test_devices_resolve_by_name_and_rank():
    auto = resolve_device("auto", 1)
    assert auto == (torch.device("cuda:1") if torch.cuda.is_available() else torch.device("cpu"))
    assert resolve_device("cpu", 3) == torch.device("cpu")
    assert resolve_device("cuda", 2) == torch.device("cuda:2")
    assert resolve_device("cuda:0", 2) == torch.device("cuda:0")


def test_auto_options_are_on_for_cuda_only():
    cpu, gpu = torch.device("cpu"), torch.device("cuda:0")
    assert [auto_on(o, cpu) for o in ("auto", "on", "bf16", "off")] == [False, True, True, False]
    assert [auto_on(o, gpu) for o in ("auto", "on", "bf16", "off")] == [True, True, True, False]


def test_the_processes_shares_tile_the_global_batch():
    rows = torch.arange(12)
    parts = [rows[Processes(4, r, torch.device("cpu")).share(12)] for r in range(4)]
    assert torch.equal(torch.cat(parts), rows)
    assert all(len(p) == 3 for p in parts)
    assert Processes(4, 0, torch.device("cpu")).is_main and not Processes(4, 2, torch.device("cpu")).is_main


def test_one_process_without_torchrun_and_a_clear_error_for_an_uneven_batch(monkeypatch):
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    procs = start_processes("cpu", 16)
    assert (procs.world, procs.rank, procs.distributed, procs.is_main) == (1, 0, False, True)
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(ValueError, match="not divisible by the 3 processes"):
        start_processes("cpu", 16)
