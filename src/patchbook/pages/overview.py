"""The results overview: every measured quantity of every notebook in one table.

Reads ``results/<profile>/*.json`` of the current build and, when present,
committed full-scale results under ``results/paper/``.
"""

from __future__ import annotations

import json
import numbers
from pathlib import Path
from typing import Any

from patchbook.paths import results_root


def collect(profile: str, root: Path | None = None) -> list[dict[str, Any]]:
    """Records of ``profile`` (and of ``paper`` when it is another profile),
    each with its notebook name, sorted by notebook then quantity order."""
    base = Path(root) if root is not None else results_root()
    rows: list[dict[str, Any]] = []
    for prof in dict.fromkeys([profile, "paper"]):
        for path in sorted((base / prof).glob("*.json")):
            try:
                payload = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            for rec in payload.get("records", []):
                rows.append({"notebook": payload.get("notebook", path.stem), **rec})
    return rows


def gap(rec: dict[str, Any]) -> float | None:
    """``measured - published`` when both are numbers and the published
    value is not a bound, else ``None``."""
    v, p = rec.get("value"), rec.get("published") or {}
    if p.get("kind") == "bound" or not isinstance(p.get("value"), numbers.Real):
        return None
    if isinstance(v, numbers.Real) and not isinstance(v, bool):
        return float(v) - float(p["value"])
    return None


def _fmt(x: Any) -> str:
    if x is None:
        return ""
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, numbers.Integral):
        return f"{x:,}"
    if isinstance(x, numbers.Real):
        ax = abs(float(x))
        return f"{x:.3g}" if ax < 1e-2 or ax >= 1e4 else f"{x:.4g}" if ax < 100 else f"{x:.1f}"
    if isinstance(x, (list, dict)):
        text = json.dumps(x)
        return text if len(text) < 40 else text[:37] + "..."
    return str(x).replace("|", "/")


def _where(rec: dict[str, Any]) -> str:
    hw = rec.get("hardware") or {}
    machine = hw.get("gpu") or f"{hw.get('cores', '?')}-core CPU"
    return f"{machine}, {str(rec.get('date', ''))[:10]}"


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table: notebook, quantity, published (source), measured,
    profile, gap (measured - published) and where/when it was measured."""
    lines = [
        "| notebook | quantity | published (source) | measured | profile | gap | measured on |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        unit = f" {r['unit']}" if r.get("unit") else ""
        p = r.get("published") or {}
        pub = ""
        if p:
            pub = (f"{p['relation']} " if p.get("relation") else "") + _fmt(p.get("value")) + unit
            pub += f" ({p.get('provenance', '')}; {p.get('source', '')})"
        g = gap(r)
        lines.append(
            f"| {r['notebook']} | {_fmt(r['quantity'])} | {pub} | {_fmt(r.get('value'))}{unit} "
            f"| {r.get('profile', '')} | {'' if g is None else f'{g:+.3g}'} | {_where(r)} |"
        )
    return "\n".join(lines)
