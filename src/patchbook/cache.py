"""On-disk cache for expensive intermediates (decoded datasets, codes, models).

An entry is keyed by a hash of everything it depends on: the caller's
parameters, the fingerprint of the data it was computed from and the library's
code (:func:`code_version`), so a change in any of them recomputes it.
Entries are written atomically (temporary file, then rename), so an
interrupted run never leaves a half-written entry behind.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from patchbook import __version__
from patchbook.paths import cache_root

_PACKAGE = Path(__file__).resolve().parent


def _module_file(module: str) -> Path:
    """The source file of ``module`` (dotted, relative to ``patchbook``; ``""``
    is the package itself)."""
    base = _PACKAGE.joinpath(*module.split(".")) if module else _PACKAGE
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def _resolve(module: str, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The ``patchbook`` modules an import statement of ``module`` names."""
    if isinstance(node, ast.Import):
        return [a.name[len("patchbook."):] for a in node.names if a.name.startswith("patchbook.")]
    if node.level:  # relative: from the package holding ``module``
        parts = module.split(".")
        is_pkg = _module_file(module).name == "__init__.py"
        base = parts if is_pkg else parts[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    elif node.module == "patchbook" or (node.module or "").startswith("patchbook."):
        target = node.module[len("patchbook."):] if node.module != "patchbook" else ""
    else:
        return []
    subs = [f"{target}.{a.name}" if target else a.name for a in node.names]
    found = [s for s in subs if _module_file(s).exists()]  # ``from patchbook.pkg import module``
    if len(found) < len(subs) and _module_file(target).exists():  # names defined in ``target`` itself
        found.append(target)
    return found


@lru_cache(maxsize=1)
def import_graph() -> dict[str, frozenset[str]]:
    """``{module: the patchbook modules it imports}`` for every module of the
    package, read from the source (nothing is imported)."""
    graph = {}
    for path in sorted(_PACKAGE.rglob("*.py")):
        rel = path.relative_to(_PACKAGE).with_suffix("")
        parts = list(rel.parts[:-1]) if rel.name == "__init__" else list(rel.parts)
        module = ".".join(parts)
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                deps.update(_resolve(module, node))
        deps.discard(module)
        graph[module] = frozenset(deps)
    return graph


def dependencies(*modules: str) -> list[str]:
    """``modules`` and every patchbook module they import, transitively (sorted)."""
    graph = import_graph()
    todo, seen = list(modules), set()
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        if m not in graph:
            raise ValueError(f"no module patchbook.{m}; modules are {sorted(graph)}")
        seen.add(m)
        todo.extend(graph[m])
    return sorted(seen)


@lru_cache(maxsize=None)
def source_hash(*modules: str) -> str:
    """A hash of the source of ``modules`` (dotted names under ``patchbook``,
    e.g. ``"patchknn.encoding"``) and of every patchbook module they import,
    transitively: the key of what a cache entry computed by those modules
    depends on, so an edit elsewhere in the library keeps it valid."""
    h = hashlib.sha256()
    for m in dependencies(*modules):
        h.update(m.encode() + b"\0")
        h.update(_module_file(m).read_bytes())
    return h.hexdigest()[:12]


@lru_cache(maxsize=1)
def code_version() -> str:
    """``<version>+<hash of every source file of the package>``: the library
    version recorded beside each measured result."""
    h = hashlib.sha256()
    for path in sorted(_PACKAGE.rglob("*.py")):
        h.update(str(path.relative_to(_PACKAGE)).encode())
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

    path = cache_path(namespace, key, ".pt", include_code=include_code)
    if path.exists():
        try:
            return torch.load(path, weights_only=False)
        except Exception:
            path.unlink(missing_ok=True)
    value = compute()
    atomic_write(path, lambda tmp: torch.save(value, tmp))
    return value
