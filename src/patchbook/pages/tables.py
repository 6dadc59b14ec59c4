"""Markdown a page shows: tables, bullet lists and formatted numbers.

Every function returns :class:`Md`, a string that Jupyter displays as
Markdown, so a cell can end with ``tables.table(...)`` and a test can read
the text.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence


class Md(str):
    """Markdown text: a ``str`` that Jupyter renders as Markdown."""

    def _repr_markdown_(self) -> str:
        return str(self)


def escape(text: Any) -> str:
    """``text`` safe inside a Markdown table cell (``|`` escaped, no newlines)."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def number(value: Any, digits: int = 1, unit: str = "") -> str:
    """A number with ``digits`` decimals and thousands separators (``"–"`` for
    ``None`` or NaN); other values as they are."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    text = f"{value:,}" if isinstance(value, int) else f"{value:,.{digits}f}"
    return text + unit


def duration(seconds: float) -> str:
    """``"42 s"``, ``"3.5 min"`` or ``"2.1 h"``."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    if seconds > 5400:
        return f"{seconds / 3600:.1f} h"
    if seconds > 90:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.0f} s"


def table(rows: Iterable[Sequence[Any] | Mapping[str, Any]], header: Sequence[str] | None = None,
          digits: int = 1) -> Md:
    """A Markdown table. ``rows`` are sequences (then ``header`` names the
    columns) or mappings (then ``header`` picks and orders their keys;
    default: the first row's keys). Numbers get ``digits`` decimals; cells
    are escaped, except text already wrapped in backticks or holding a
    ``{cite}`` role."""
    rows = list(rows)
    if rows and isinstance(rows[0], Mapping):
        header = list(header or rows[0].keys())
        rows = [[r.get(h) for h in header] for r in rows]
    if header is None:
        raise ValueError("table() needs a header for rows given as sequences")

    def cell(v: Any) -> str:
        s = number(v, digits)
        return s if "{cite}" in s else escape(s)

    lines = ["| " + " | ".join(escape(h) for h in header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        if len(r) != len(header):
            raise ValueError(f"a row has {len(r)} cells for {len(header)} columns: {list(r)}")
        lines.append("| " + " | ".join(cell(v) for v in r) + " |")
    return Md("\n".join(lines))


def bullets(lines: Iterable[str]) -> Md:
    """A Markdown bullet list."""
    return Md("\n".join(f"- {line}" for line in lines))


def paragraphs(texts: Iterable[str]) -> Md:
    """Paragraphs separated by blank lines (empty texts skipped)."""
    return Md("\n\n".join(t for t in texts if t))
