"""Where things live: data root, cache, results and the repository root.

Every location can be set with an environment variable so the notebooks run
offline and in CI:

``PATCHBOOK_DATA``
    data root (datasets, paintings, photographs, weights).
``PATCHBOOK_CACHE``
    cache of decoded arrays and expensive intermediates
    (default ``~/.cache/patchbook``).
``PATCHBOOK_RESULTS``
    folder of measured results (default ``<repo>/results``).
"""

from __future__ import annotations

import os
from pathlib import Path

_ROOT_MARKERS = ("_toc.yml", "pyproject.toml")


def repo_root(start: Path | None = None) -> Path | None:
    """The patchbook repository holding ``start`` (default: the cwd), if any."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if all((folder / m).exists() for m in _ROOT_MARKERS) and (folder / "notebooks").is_dir():
            return folder
    # Fall back to the source tree of an editable install.
    src_root = Path(__file__).resolve().parents[2]
    if all((src_root / m).exists() for m in _ROOT_MARKERS):
        return src_root
    return None


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: ``root`` if given, else ``$PATCHBOOK_DATA``, else
    ``~/.cache/patchbook/data`` (where torchvision downloads land)."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("PATCHBOOK_DATA")
    if env:
        return Path(env).expanduser()
    return cache_root() / "data"


def cache_root() -> Path:
    """The cache folder, ``$PATCHBOOK_CACHE`` or ``~/.cache/patchbook``."""
    env = os.environ.get("PATCHBOOK_CACHE")
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "patchbook"
    return path


def results_root() -> Path:
    """The results folder, ``$PATCHBOOK_RESULTS`` or ``<repo>/results``."""
    env = os.environ.get("PATCHBOOK_RESULTS")
    if env:
        return Path(env).expanduser()
    root = repo_root()
    return (root if root is not None else Path.cwd()) / "results"
