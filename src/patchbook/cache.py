"""On-disk cache for expensive intermediates (decoded datasets, codes, models).

An entry is keyed by a hash of everything it depends on: the caller's
parameters, the fingerprint of the data it was computed from and the library's
code (:func:`code_version`), so a change in any of them recomputes it.
Entries are written atomically (temporary file, then rename), so an
interrupted run never leaves a half-written entry behind; folders are created
private to the user and entries are read as data only (``np.load`` without
pickles, ``torch.load(weights_only=True)``). A cache that cannot be written
is warned about once, and everything is computed without it.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import os
import re
import tempfile
import warnings
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
    init = base / "__init__.py"
    return init if init.exists() else base.with_suffix(".py")  # a data folder beside a module is no package


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


def private_dir(path: Path) -> Path:
    """Create the folder ``path`` and its missing parents private to the user
    (mode ``0o700``); an existing folder is left as it is."""
    path = Path(path)
    missing = []
    p = path
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:  # made by a concurrent process
            pass
    return path


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it.
    The file is private to the user (``0o600``, as :func:`tempfile.mkstemp`
    makes it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


_WARNED_UNWRITABLE: set[str] = set()


def warn_unwritable(exc: OSError) -> None:
    """Warn, once per process and cache folder, that the cache cannot be
    written and results are computed without caching."""
    root = str(cache_root())
    if root in _WARNED_UNWRITABLE:
        return
    _WARNED_UNWRITABLE.add(root)
    warnings.warn(f"patchbook: the cache {root} is not writable ({type(exc).__name__}: {exc}); "
                  "computing without caching (set PATCHBOOK_CACHE to a writable folder)",
                  RuntimeWarning, stacklevel=3)


def store(path: Path, write: Callable[[Path], None]) -> bool:
    """Write a cache entry atomically into a private folder; if the cache is
    not writable, warn once (:func:`warn_unwritable`) and return ``False``."""
    try:
        private_dir(path.parent)
        atomic_write(path, write)
        return True
    except OSError as exc:
        warn_unwritable(exc)
        return False


def _read_entry(path: Path, read: Callable[[Path], Any]) -> tuple[bool, Any]:
    """``(True, read(path))``, or ``(False, None)`` when the entry is absent or
    corrupt (a corrupt entry is removed, not trusted)."""
    try:
        if not path.is_file():
            return False, None
        return True, read(path)
    except Exception:  # noqa: BLE001 - any failure to read means: recompute
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass
        return False, None


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _write_npz(arrays: dict[str, np.ndarray]) -> Callable[[Path], None]:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    return write


def memo_arrays(
    namespace: str,
    key: dict,
    compute: Callable[[], dict[str, np.ndarray]],
    include_code: bool = True,
) -> dict[str, np.ndarray]:
    """Return the arrays ``compute()`` gives, from the cache when present.

    ``compute`` returns a dict of numpy arrays; they are stored in one ``.npz``
    (read back with ``allow_pickle=False``). Set ``include_code=False`` for
    entries that do not depend on the library's code (decoded images, say),
    so they survive code changes. An unwritable cache warns once and computes.
    """
    path = cache_path(namespace, key, ".npz", include_code=include_code)
    found, arrays = _read_entry(path, _read_npz)
    if found:
        return arrays
    arrays = compute()
    store(path, _write_npz(arrays))
    return arrays


def memo_torch(namespace: str, key: dict, compute: Callable[[], Any], include_code: bool = True) -> Any:
    """Like :func:`memo_arrays` for tensors, state dicts and containers of
    them: dicts, lists and tuples of tensors, numbers, strings, booleans and
    ``None``. Entries are read with ``torch.load(weights_only=True)``, so an
    entry planted in the cache can hold no code; a value that could not be read
    back that way is refused with a ``TypeError`` before it is stored."""
    path = cache_path(namespace, key, ".pt", include_code=include_code)
    found, value = _read_entry(path, lambda p: torch.load(p, weights_only=True))
    if found:
        return value
    value = compute()
    buf = io.BytesIO()
    torch.save(value, buf)
    try:
        torch.load(io.BytesIO(buf.getvalue()), weights_only=True)
    except Exception as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        what = f"it holds a {found.group(1)}" if found else f"{type(exc).__name__}"
        raise TypeError(f"memo_torch({namespace!r}) stores tensors and dicts, lists, tuples of tensors, "
                        f"Python numbers and strings only (read back with weights_only=True); {what}") from None
    store(path, lambda tmp: tmp.write_bytes(buf.getvalue()))
    return value
