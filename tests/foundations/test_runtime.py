"""Devices, threads and seeds (patchbook.runtime)."""

import pytest
import torch

from patchbook.runtime import (
    cpu_threads,
    describe_hardware,
    hardware,
    resolve_device,
    seed_everything,
)


def test_resolve_device():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="'auto', 'cpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")


def test_cpu_threads_restores_the_setting():
    before = torch.get_num_threads()
    with cpu_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_seed_everything_replays_torch_draws():
    seed_everything(5)
    a = torch.rand(3)
    seed_everything(5)
    assert torch.equal(a, torch.rand(3))


def test_hardware_names_the_machine():
    hw = hardware()
    assert hw["cores"] >= 1 and hw["torch"] == torch.__version__
    assert describe_hardware()
