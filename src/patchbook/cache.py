"""On-disk cache for expensive intermediates (decoded datasets, codes, models).

An entry is keyed by a hash of everything it depends on: the caller's
parameters, the fingerprint of the data it was computed from and the library's
code (:func:`code_version`), so a change in any of them recomputes it.
Entries are written atomically (temporary file, then rename), so an
interrupted run never leaves a half-written entry behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import __version__
from .paths import cache_root


@lru_cache(maxsize=1)
def code_version() -> str:
    """``<version>+<hash of the package's source files>``.

    The hash makes a cache entry (or a cached notebook) stale as soon as the
    library code changes, not only at a release.
    """
    h = hashlib.sha256()
    pkg = Path(__file__).resolve().parent
    for path in sorted(pkg.rglob("*.py")):
        h.update(str(path.relative_to(pkg)).encode())
        h.update(path.read_bytes())
    return f"{__version__}+{h.hexdigest()[:12]}"


def stable_hash(obj: Any, length: int = 16) -> str:
    """A hash of a JSON-able object that does not depend on dict order."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def cache_path(namespace: str, key: dict, suffix: str, include_code: bool = True) -> Path:
    """The file an entry ``key`` of ``namespace`` lives in."""
    full = dict(key)
    if include_code:
        full["_code"] = code_version()
    return cache_root() / namespace / f"{stable_hash(full)}{suffix}"


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def memo_arrays(
    namespace: str,
    key: dict,
    compute: Callable[[], dict[str, np.ndarray]],
    include_code: bool = True,
) -> dict[str, np.ndarray]:
    """Return the arrays ``compute()`` gives, from the cache when present.

    ``compute`` returns a dict of numpy arrays; they are stored in one ``.npz``.
    Set ``include_code=False`` for entries that do not depend on the library's
    code (decoded images, say), so they survive code changes.
    """
    path = cache_path(namespace, key, ".npz", include_code=include_code)
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as f:
                return {k: f[k] for k in f.files}
        except Exception:  # a corrupt entry is recomputed, not trusted
            path.unlink(missing_ok=True)
    arrays = compute()
    atomic_write(path, lambda tmp: np.savez(open(tmp, "wb"), **arrays))
    return arrays


def memo_torch(namespace: str, key: dict, compute: Callable[[], Any], include_code: bool = True) -> Any:
    """Like :func:`memo_arrays` for anything ``torch.save`` can store."""
    import torch

    path = cache_path(namespace, key, ".pt", include_code=include_code)
    if path.exists():
        try:
            return torch.load(path, weights_only=False)
        except Exception:
            path.unlink(missing_ok=True)
    value = compute()
    atomic_write(path, lambda tmp: torch.save(value, tmp))
    return value
