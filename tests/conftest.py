"""Shared fixtures: the data root, an isolated cache and results folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parents[1]


def _data_root() -> Path | None:
    env = os.environ.get("PATCHBOOK_DATA")
    if env and Path(env).is_dir():
        return Path(env)
    return None


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real data root (``$PATCHBOOK_DATA``); tests needing it are skipped without it."""
    root = _data_root()
    if root is None:
        pytest.skip("PATCHBOOK_DATA is not set to a data root (see README: offline data)")
    return root


@pytest.fixture
def tmp_results(tmp_path, monkeypatch) -> Path:
    """Results written by the test land in a temporary folder."""
    monkeypatch.setenv("PATCHBOOK_RESULTS", str(tmp_path / "results"))
    return tmp_path / "results"


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("PATCHBOOK_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of tests on tiny tensors: the thread
    pool's overhead dominates them on a shared machine."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
