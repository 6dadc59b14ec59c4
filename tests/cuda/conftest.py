"""CUDA tests: each compares a CUDA path of the library with its CPU path on
the same inputs. Skipped (and listed as skipped by ``-ra``) without a GPU.

``PATCHBOOK_CUDA_TEST_DEVICE=cpu`` runs them with the CPU standing in for the
GPU: the comparisons are then trivial, but every call is exercised, so the
tests themselves are checked on a machine without a GPU.
"""

import os

import pytest
import torch

DEVICE = os.environ.get("PATCHBOOK_CUDA_TEST_DEVICE", "cuda")


def pytest_collection_modifyitems(config, items):
    if DEVICE != "cuda" or torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device: the cuda tests run on a GPU machine (benchmarks/gpu_check.sh)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def device() -> str:
    """The device the CUDA paths run on (``cuda``; ``cpu`` to check the tests)."""
    return DEVICE
