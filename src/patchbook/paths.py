"""Where things live: data root, cache, results and the repository root.

Every location can be set with an environment variable so the notebooks run
offline and in CI:

``PATCHBOOK_DATA``
    data root (datasets, paintings, photographs, weights); default
    ``$PATCHBOOK_CACHE/data`` (``~/.cache/patchbook/data`` when
    ``PATCHBOOK_CACHE`` is unset), where torchvision downloads land.
``PATCHBOOK_CACHE``
    cache of decoded arrays and expensive intermediates
    (default ``~/.cache/patchbook``).
``PATCHBOOK_RESULTS``
    folder of measured results (default ``<repo>/results``).

A relative path in these variables is resolved once, against the working
directory of the first process that imports :mod:`patchbook.paths`, and
written back to the environment as an absolute path
(:func:`pin_environment`): the notebook kernels that process starts run in
``notebooks/`` and inherit the same folders.
"""

from __future__ import annotations

import os
from pathlib import Path

_ROOT_MARKERS = ("_toc.yml", "pyproject.toml")
VARIABLES = ("PATCHBOOK_DATA", "PATCHBOOK_CACHE", "PATCHBOOK_RESULTS")


def absolute(path: str | os.PathLike) -> Path:
    """``path`` with ``~`` expanded, made absolute against the working directory
    (not resolving symbolic links)."""
    return Path(os.path.abspath(Path(path).expanduser()))


def pin_environment() -> dict[str, str]:
    """Make the path variables (:data:`VARIABLES`) that are set absolute in
    ``os.environ``, so child processes (notebook kernels, which run in
    ``notebooks/``) see the folders this process sees; returns the set ones."""
    pinned = {}
    for var in VARIABLES:
        value = os.environ.get(var)
        if value:
            pinned[var] = os.environ[var] = str(absolute(value))
    return pinned


def _env_path(var: str) -> Path | None:
    value = os.environ.get(var)
    return absolute(value) if value else None


def repo_root(start: Path | None = None) -> Path | None:
    """The patchbook repository holding ``start`` (default: the cwd), if any."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if all((folder / m).exists() for m in _ROOT_MARKERS) and (folder / "notebooks").is_dir():
            return folder
    return source_checkout()  # an editable install's source tree


def source_checkout() -> Path | None:
    """The checkout this package is imported from (an editable install), if any."""
    src_root = Path(__file__).resolve().parents[2]
    if all((src_root / m).exists() for m in _ROOT_MARKERS):
        return src_root
    return None


def inside_checkout(path: str | os.PathLike) -> Path | None:
    """The patchbook checkout (the working directory's or the package's) that
    ``path`` lies in, if any."""
    target = Path(os.path.realpath(absolute(path)))
    for root in {r for r in (repo_root(), source_checkout()) if r is not None}:
        if target == root or root in target.parents:
            return root
    return None


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root, absolute: ``root`` if given, else ``$PATCHBOOK_DATA``,
    else ``$PATCHBOOK_CACHE/data`` (``~/.cache/patchbook/data`` when
    ``PATCHBOOK_CACHE`` is unset), where torchvision downloads land."""
    if root is not None:
        return absolute(root)
    return _env_path("PATCHBOOK_DATA") or cache_root() / "data"


def cache_root() -> Path:
    """The cache folder, absolute: ``$PATCHBOOK_CACHE`` or ``~/.cache/patchbook``."""
    return _env_path("PATCHBOOK_CACHE") or Path.home() / ".cache" / "patchbook"


def results_root() -> Path:
    """The results folder, absolute: ``$PATCHBOOK_RESULTS`` or ``<repo>/results``."""
    env = _env_path("PATCHBOOK_RESULTS")
    if env is not None:
        return env
    root = repo_root()
    return (root if root is not None else Path.cwd().resolve()) / "results"


pin_environment()
