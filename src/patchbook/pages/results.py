"""Measured results: every number a notebook reports as measured goes here.

:func:`record` upserts one quantity into ``results/<profile>/<notebook>.json``
with the profile, the parameters, the data fingerprints, the library version,
the hardware and the date. ``results/smoke`` and ``results/laptop`` are
rebuilt by the book; ``results/paper`` holds full-scale runs that users commit.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

import numpy as np

from patchbook.cache import atomic_write, code_version
from patchbook.data import loaded_fingerprints
from patchbook.pages.published import Published
from patchbook.paths import results_root
from patchbook.runtime import hardware


def _jsonable(value: Any) -> Any:
    try:

        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
    except ImportError:
        pass
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def results_file(notebook: str, profile: str) -> Path:
    return results_root() / profile / f"{notebook}.json"


def load(notebook: str, profile: str) -> list[dict[str, Any]]:
    """The records of ``notebook`` at ``profile`` (empty if none)."""
    path = results_file(notebook, profile)
    if not path.exists():
        return []
    return json.loads(path.read_text())["records"]


def record(notebook: str, quantity: str, value: Any, *, profile: str,
           params: dict | None = None, published: Published | None = None,
           unit: str | None = None, **meta: Any) -> dict[str, Any]:
    """Record a measured ``value`` of ``quantity`` and return the record.

    ``published`` is the registry entry (:mod:`patchbook.pages.published`)
    the value is compared with, if any; ``unit`` its unit (``"%"``,
    ``"s"``...). Extra keyword arguments (wall time, data description...)
    are stored as they are. A record of the same quantity from an earlier
    run is replaced.
    """
    if published is not None and not isinstance(published, Published):
        raise TypeError(f"published must be a registry entry (patchbook.pages.published.get(id)), "
                        f"not {published!r}: published values are held once, in the registry")
    rec = {
        "quantity": quantity,
        "value": _jsonable(value),
        "unit": unit,
        "published": None if published is None else published.as_record(),
        "profile": profile,
        "params": _jsonable(dict(params or {})),
        "data": loaded_fingerprints(),
        "version": code_version(),
        "hardware": hardware(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **_jsonable(meta),
    }
    path = results_file(notebook, profile)
    records = [r for r in load(notebook, profile) if r["quantity"] != quantity] + [rec]
    payload = {"notebook": notebook, "profile": profile, "records": records}
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(payload, indent=1)))
    return rec
