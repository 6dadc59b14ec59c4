"""Shared fixtures: the data root, the compiler, Chromium, the weights, an
isolated cache and results folder.

A test whose requirement (data, compiler, browser, weights) is missing is
skipped on a developer's machine and fails in CI (``CI=true``, which CI sets):
a green CI run means every test ran.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import patchbook.paths  # noqa: F401 - pins relative PATCHBOOK_* to absolute, against pytest's directory

os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
CHROMIUM = os.environ.get("PATCHBOOK_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def missing(reason: str) -> None:
    """Skip the calling test because ``reason``; in CI, fail it instead."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: a test whose requirement is missing fails, it is not skipped)",
                    pytrace=False)
    pytest.skip(reason)


def _data_root() -> Path | None:
    env = os.environ.get("PATCHBOOK_DATA")
    if env and Path(env).is_dir():
        return Path(os.path.abspath(Path(env).expanduser()))
    return None


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real data root (``$PATCHBOOK_DATA``, absolute); without it the test
    is skipped (fails in CI)."""
    root = _data_root()
    if root is None:
        missing("PATCHBOOK_DATA is not set to a data root (see README: Data, offline)")
    return root


@pytest.fixture(scope="session")
def cxx() -> str:
    """The C++ compiler the native kernel is built with (``$CXX`` or ``g++``)."""
    found = shutil.which(os.environ.get("CXX", "g++"))
    if found is None:
        missing(f"no C++ compiler {os.environ.get('CXX', 'g++')!r} on PATH (apt-get install g++)")
    return found


@pytest.fixture(scope="session")
def chromium() -> str:
    """Headless Chromium and playwright, for the browser test of the book."""
    if not Path(CHROMIUM).exists():
        missing("Chromium is not installed: `apt-get install chromium` (see README)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing("playwright is not installed: pip install playwright")
    return CHROMIUM


@pytest.fixture(scope="session")
def vgg16_weights() -> dict:
    """The ImageNet-trained VGG16 convolutional weights (a state dict)."""
    from patchbook.data import DataNotFoundError, load_conv_weights

    try:
        return load_conv_weights("vgg16")
    except DataNotFoundError as exc:
        reason = f"no VGG16 weights: {str(exc).splitlines()[0]}"
    missing(reason)


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
