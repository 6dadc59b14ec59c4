"""Measured results: every number a notebook reports as measured goes here.

:func:`record` upserts one quantity into ``results/<profile>/<notebook>.json``
with the profile, the parameters, the data fingerprints, the library version,
the hardware and the date. ``results/smoke`` and ``results/laptop`` are
rebuilt by the book (:func:`clear` starts a profile's records afresh);
``results/paper`` holds full-scale runs that users commit.

A results file is read, updated and replaced under an exclusive lock on its
folder, so processes recording into the same file lose nothing. Files are strict JSON: a non-finite number (NaN,
infinity) is written as ``null`` and named in the record's ``non_finite``
field, never as a bare ``NaN``; a file that is not valid JSON fails with a
one-line :class:`ResultsError` naming it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from patchbook.cache import atomic_write, code_version
from patchbook.data import loaded_fingerprints
from patchbook.pages.published import Published
from patchbook.paths import results_root
from patchbook.runtime import hardware


class ResultsError(ValueError):
    """A results file cannot be read as one."""


def _jsonable(value: Any, where: str, non_finite: dict[str, str]) -> Any:
    """``value`` as JSON-able Python; non-finite floats become ``None`` and
    are noted in ``non_finite`` (``{where: "nan" | "inf" | "-inf"}``)."""
    if isinstance(value, np.generic):
        value = value.item()
    elif isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        non_finite[where] = repr(value)
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v, f"{where}.{k}" if where else str(k), non_finite) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]", non_finite) for i, v in enumerate(value)]
    if isinstance(value, Path):
        return str(value)
    return value


def results_file(notebook: str, profile: str) -> Path:
    return results_root() / profile / f"{notebook}.json"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold the exclusive lock of the folder of the results file ``path``
    (a lock on the folder itself: no lock file is left beside the records)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def read(path: Path) -> list[dict[str, Any]]:
    """The records of the results file ``path`` (empty if there is none);
    :class:`ResultsError` if it is not a valid one."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    try:
        payload = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:
        raise ResultsError(f"{path} is not a valid results file ({exc}); delete it or restore it") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("records"), list):
        raise ResultsError(f"{path} is not a results file (expected a JSON object with a 'records' list)")
    return payload["records"]


def load(notebook: str, profile: str) -> list[dict[str, Any]]:
    """The records of ``notebook`` at ``profile`` (empty if none); a file
    that is not a valid results file raises :class:`ResultsError`."""
    return read(results_file(notebook, profile))


def record(notebook: str, quantity: str, value: Any, *, profile: str,
           params: dict | None = None, published: Published | None = None,
           unit: str | None = None, **meta: Any) -> dict[str, Any]:
    """Record a measured ``value`` of ``quantity`` and return the record.

    ``published`` is the registry entry (:mod:`patchbook.pages.published`)
    the value is compared with, if any; ``unit`` its unit (``"%"``,
    ``"s"``...). Extra keyword arguments (wall time, data description...)
    are stored as they are. A record of the same quantity from an earlier
    run is replaced. Non-finite numbers are stored as ``null`` and listed in
    the record's ``non_finite`` (``{"value": "nan"}``), with a warning.
    """
    if published is not None and not isinstance(published, Published):
        raise TypeError(f"published must be a registry entry (patchbook.pages.published.get(id)), "
                        f"not {published!r}: published values are held once, in the registry")
    non_finite: dict[str, str] = {}
    rec = {
        "quantity": quantity,
        "value": _jsonable(value, "value", non_finite),
        "unit": unit,
        "published": None if published is None else published.as_record(),
        "profile": profile,
        "params": _jsonable(dict(params or {}), "params", non_finite),
        "data": loaded_fingerprints(),
        "version": code_version(),
        "hardware": hardware(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **_jsonable(meta, "", non_finite),
    }
    if non_finite:
        rec["non_finite"] = non_finite
        warnings.warn(f"{notebook}: {quantity!r} has non-finite numbers ({non_finite}); recorded as null",
                      RuntimeWarning, stacklevel=2)
    path = results_file(notebook, profile)
    with _locked(path):
        records = [r for r in read(path) if r.get("quantity") != quantity] + [rec]
        text = json.dumps({"notebook": notebook, "profile": profile, "records": records},
                          indent=1, allow_nan=False)
        atomic_write(path, lambda tmp: tmp.write_text(text))
    return rec


def clear(profile: str, notebooks: list[str] | None = None) -> list[Path]:
    """Remove the records of ``profile`` (of every notebook, or of
    ``notebooks``) so that a build starts them afresh; returns the files
    removed. ``results/paper`` holds committed full-scale runs: clear it only
    on purpose."""
    folder = results_root() / profile
    paths = (sorted(folder.glob("*.json")) if notebooks is None
             else [results_file(nb, profile) for nb in notebooks])
    removed = []
    for path in paths:
        if not path.exists():
            continue
        with _locked(path):
            if path.exists():
                path.unlink()
                removed.append(path)
    return removed
