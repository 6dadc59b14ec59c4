"""The registry of published values: every number this book compares with,
held once, with its provenance.

Entries live in ``published/<page>.yaml`` (``<page>`` the notebook that is
their home; other pages quote them by id), one mapping per entry::

    simplepatch-2048:                # id: "cifar10-table/simplepatch-2048"
      value: 82.70
      unit: "%"
      kind: best                     # best | final | printed | bound | data
      setting: "CIFAR-10, |D| = 2048, Q = 6, ..., 80 epochs, crop + flip"
      source: thiry2021unreasonable  # a key of book/references.bib
      file: ablation_study/ablation_study_K.txt   # the authors' file (louity/patches) ...
      line: 12                       # ... and line, for values read from logs
      where: "..."                   # for printed values: the slide or table that prints it
      relation: ">"                  # for bounds: the value is a bound, "> 99"
      note: "..."                    # anything a reader needs (optional)

Kinds: ``best`` (best test accuracy over the epochs of a log), ``final``
(after the last epoch), ``printed`` (as printed in the talk or the paper,
with ``where``), ``bound`` (a bound such as "> 99 %", with ``relation``),
``data`` (a value the authors saved in a data file, with ``file`` and
``where``: which array and entry).
Values are copied as the source prints them; nothing is averaged or rounded
into a new number. A bound has no gap: it is shown as a bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

KINDS = ("best", "final", "printed", "bound", "data")
RELATIONS = (">", ">=", "<", "<=")
_FIELDS = {"value", "unit", "kind", "setting", "source", "file", "line", "where", "relation", "note"}
KIND_TEXT = {"best": "best over epochs", "final": "after the last epoch", "printed": "as printed",
             "bound": "a bound", "data": "from the authors' data file"}


class RegistryError(ValueError):
    """A malformed registry entry or an unknown id."""


@dataclass(frozen=True)
class Published:
    """One published value (see the module docstring for the fields)."""

    id: str
    value: float
    unit: str
    kind: str
    setting: str
    source: str
    file: str | None = None
    line: int | None = None
    where: str | None = None
    relation: str | None = None
    note: str | None = None

    @property
    def page(self) -> str:
        """The notebook this entry belongs to."""
        return self.id.split("/", 1)[0]

    def text(self, digits: int | None = None) -> str:
        """The value as the source prints it (``"82.7"``, ``"> 99"``), with ``digits``
        decimals if given, and its unit."""
        v = f"{self.value:.{digits}f}" if digits is not None else f"{self.value:g}"
        unit = "" if not self.unit else (self.unit if self.unit == "%" else f" {self.unit}")
        return (f"{self.relation} " if self.relation else "") + v + unit

    def provenance(self) -> str:
        """Where the value comes from, in words: its kind and its file and line or slide."""
        if self.file:
            where = f"`{self.file}`" + (f" line {self.line}" if self.line else "")
            where += f", {self.where}" if self.where and not self.line else ""
        else:
            where = self.where or ""
        return f"{KIND_TEXT[self.kind]}, {where}" if where else KIND_TEXT[self.kind]

    def citation(self) -> str:
        """``{cite}`key` (kind, file:line)``: for a table cell or a sentence of a page."""
        return f"{{cite}}`{self.source}` ({self.provenance()})"

    def gap(self, measured: float) -> float | None:
        """``measured - value``; ``None`` for a bound (a bound has no gap)."""
        if self.kind == "bound" or measured is None or not math.isfinite(measured):
            return None
        return float(measured) - self.value

    def measured_of(self, *, best: float | None = None, final: float | None = None) -> float | None:
        """Of a measured run's best and final accuracy, the one this entry is
        compared with: best with best, final with final; a printed value or
        a bound is compared with the final one."""
        return best if self.kind == "best" else final

    def as_record(self) -> dict[str, Any]:
        """What a results record keeps of this entry."""
        return {"id": self.id, "value": self.value, "unit": self.unit, "kind": self.kind,
                "relation": self.relation, "source": self.source, "provenance": self.provenance()}


def _entry(page: str, key: str, d: Any) -> Published:
    eid = f"{page}/{key}"
    if not isinstance(d, dict):
        raise RegistryError(f"{eid}: expected a mapping of fields, got {d!r}")
    unknown = set(d) - _FIELDS
    if unknown:
        raise RegistryError(f"{eid}: unknown fields {sorted(unknown)}; fields are {sorted(_FIELDS)}")
    for f in ("value", "unit", "kind", "setting", "source"):
        if f not in d:
            raise RegistryError(f"{eid}: missing field {f!r}")
    if isinstance(d["value"], bool) or not isinstance(d["value"], (int, float)) or not math.isfinite(d["value"]):
        raise RegistryError(f"{eid}: value must be a finite number, got {d['value']!r}")
    kind = d["kind"]
    if kind not in KINDS:
        raise RegistryError(f"{eid}: kind must be one of {KINDS}, got {kind!r}")
    if (kind == "bound") != ("relation" in d):
        raise RegistryError(f"{eid}: a bound (and only a bound) has a relation")
    if "relation" in d and d["relation"] not in RELATIONS:
        raise RegistryError(f"{eid}: relation must be one of {RELATIONS}, got {d['relation']!r}")
    if kind in ("best", "final") and not ("file" in d and "line" in d):
        raise RegistryError(f"{eid}: a {kind} value comes from a log: give its file and line")
    if kind == "data" and not ("file" in d and "where" in d):
        raise RegistryError(f"{eid}: a data value names its file and where in it (array, entry)")
    if kind in ("printed", "bound") and "file" not in d and "where" not in d:
        raise RegistryError(f"{eid}: say where the value is printed (where: slide or table)")
    if "line" in d and (not isinstance(d["line"], int) or d["line"] < 1):
        raise RegistryError(f"{eid}: line must be a positive integer, got {d['line']!r}")
    return Published(id=eid, **{**d, "value": float(d["value"])})


@lru_cache(maxsize=1)
def registry() -> dict[str, Published]:
    """``{id: entry}`` of every registry file (validated)."""
    out: dict[str, Published] = {}
    folder = resources.files(__package__).joinpath("published")
    for f in sorted(folder.iterdir() if folder.is_dir() else [], key=lambda p: p.name):
        if not f.name.endswith(".yaml"):
            continue
        page = f.name[: -len(".yaml")]
        data = yaml.safe_load(f.read_text()) or {}
        if not isinstance(data, dict):
            raise RegistryError(f"published/{f.name}: expected a mapping of entries")
        for key, d in data.items():
            e = _entry(page, str(key), d)
            out[e.id] = e
    return out


def get(entry_id: str) -> Published:
    """The entry ``entry_id`` (``"<page>/<key>"``)."""
    try:
        return registry()[entry_id]
    except KeyError:
        page = entry_id.split("/", 1)[0]
        known = sorted(i for i in registry() if i.startswith(page + "/")) or sorted(registry())
        raise RegistryError(f"no published value {entry_id!r}; known ids: {known}") from None


def entries(page: str | None = None) -> list[Published]:
    """Every entry, or those whose home is ``page``."""
    return [e for e in registry().values() if page is None or e.page == page]
