"""The results overview: one row per headline claim, the records as a CSV, the build's times.

A headline claim is an entry of the registry of published values
(:mod:`patchbook.pages.published`). Its measured value comes from the records
that cite it (``record["published"]["id"]``), at the profile of the build,
else from committed full-scale runs (``results/paper/``). The gap
``measured - published`` is shown only where it means something: not for a
bound, and only when the measured run is at the published scale (profile
``paper``); otherwise the row says that the scales differ.
"""

from __future__ import annotations

import csv
import json
import math
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import matplotlib.pyplot as plt

from patchbook.pages import build, published, results
from patchbook.pages.published import Published
from patchbook.pages.tables import Md, duration, escape
from patchbook.paths import repo_root, results_root

SAME_SCALE = "paper"  # the profile whose settings are the published ones
OTHER_PART = "Other pages"


# ----------------------------------------------------------------- records ----

def collect(profile: str, root: Path | None = None) -> list[dict[str, Any]]:
    """Records of ``profile`` (and of ``paper`` when it is another profile),
    each with its notebook name, sorted by notebook then quantity order. A
    file that is not a valid results file raises
    :class:`~patchbook.pages.results.ResultsError` (never skipped: the
    overview would silently lose its rows)."""
    base = Path(root) if root is not None else results_root()
    rows: list[dict[str, Any]] = []
    for prof in dict.fromkeys([profile, SAME_SCALE]):
        for path in sorted((base / prof).glob("*.json")):
            for rec in results.read(path):
                rows.append({"notebook": path.stem, **rec})
    return rows


def _number(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(float(x))


def fmt(x: Any) -> str:
    """A value for a table cell: 4 significant digits, thousands separators."""
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
    return str(x)


def _unit(unit: str | None) -> str:
    return "" if not unit else unit if unit == "%" else f" {unit}"


# ------------------------------------------------------------------ claims ----

@dataclass
class Claim:
    """A registry entry and the records that cite it at one profile."""

    entry: Published
    part: str
    page: str  # docname of the entry's home page ("" if it is no page of the book)
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def profile(self) -> str | None:
        return self.records[0].get("profile") if self.records else None

    @property
    def measured(self) -> float | None:
        """The measured value, when exactly one numeric record cites the entry."""
        values = [r.get("value") for r in self.records]
        return float(values[0]) if len(values) == 1 and _number(values[0]) else None

    @property
    def same_scale(self) -> bool:
        """Whether the measured run is at the published settings."""
        return self.profile == SAME_SCALE

    def gap(self) -> float | None:
        """``measured - published`` where it means something (see the module
        docstring), else ``None``."""
        if not self.same_scale or self.measured is None:
            return None
        unit = self.records[0].get("unit")
        if unit is not None and unit != self.entry.unit:
            return None
        return self.entry.gap(self.measured)

    def gap_text(self) -> str:
        """The gap cell: a signed number, or why there is none."""
        if not self.records:
            return ""
        if self.entry.kind == "bound":
            return "a bound"
        if len(self.records) > 1:
            return f"{len(self.records)} values"
        g = self.gap()
        if g is not None:
            return f"{g:+.3g}{_unit(self.entry.unit)}"
        if not self.same_scale:
            return "scales differ"
        return ""

    def measured_text(self) -> str:
        if not self.records:
            return "not measured"
        return ", ".join(fmt(r.get("value")) + _unit(r.get("unit")) for r in self.records)


def page_parts(parts: dict[str, str]) -> dict[str, tuple[str, str]]:
    """``{page name: (docname, part caption)}`` from :func:`build.toc_parts`."""
    return {build.page_name(doc): (doc, caption) for doc, caption in parts.items()}


def claims(records: Iterable[dict[str, Any]], entries: Iterable[Published], parts: dict[str, str],
           profile: str) -> list[Claim]:
    """One :class:`Claim` per registry entry, in the order of the book (part,
    page, then registry order), with the records that cite it at ``profile``,
    else at ``paper``."""
    citing: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for r in records:
        pid = (r.get("published") or {}).get("id")
        if pid:
            citing.setdefault(pid, {}).setdefault(r.get("profile"), []).append(r)
    where = page_parts(parts)
    order = {name: i for i, name in enumerate(where)}
    out = []
    for e in entries:
        doc, part = where.get(e.page, ("", OTHER_PART))
        by_profile = citing.get(e.id, {})
        recs = by_profile.get(profile) or by_profile.get(SAME_SCALE) or []
        out.append(Claim(e, part or OTHER_PART, doc, recs))
    return sorted(out, key=lambda c: order.get(c.entry.page, len(order)))  # stable: registry order kept


def uncited(records: Iterable[dict[str, Any]], entries: Iterable[Published]) -> list[str]:
    """Ids that records cite but the registry no longer holds."""
    known = {e.id for e in entries}
    return sorted({pid for r in records if (pid := (r.get("published") or {}).get("id")) and pid not in known})


def source_text(e: Published) -> str:
    """``{cite:t}`key`` and where in the source: the file (its name) and
    line, the file and what in it, or the slide or table."""
    if e.file:
        where = f"`{escape(Path(e.file).name)}`" + (f":{e.line}" if e.line else "")
        if e.where and not e.line:
            where += f", {escape(e.where)}"
    else:
        where = escape(e.where or "")
    return f"{{cite:t}}`{e.source}`" + (f", {where}" if where else "")


def shared_setting(settings: Sequence[str], min_chars: int = 24) -> str:
    """The longest start, up to a space, that all ``settings`` share ("" if
    it is under ``min_chars``, if it would leave a setting empty, or for a
    single setting): said once above a page's claims, so that each row
    keeps only what differs."""
    if len(settings) < 2:
        return ""
    head = os.path.commonprefix(list(settings))
    head = head[: head.rfind(" ") + 1]
    if len(head.strip()) < min_chars or any(not t[len(head):].strip() for t in settings):
        return ""
    return head


def claims_table(rows: Sequence[Claim], shared: str = "") -> Md:
    """The Markdown table of some claims: the claim (its published setting,
    less the ``shared`` start said above the table), published, kind,
    source, measured (with its profile), gap."""
    lines = ["| claim (published setting) | published | kind | source | measured | gap |",
             "|---|---|---|---|---|---|"]
    for c in rows:
        claim = c.entry.setting[len(shared):] if shared else c.entry.setting
        measured = escape(c.measured_text()) + (f" (`{c.profile}`)" if c.profile else "")
        lines.append(" | ".join([f"| {escape(claim)}", escape(c.entry.text()), c.entry.kind,
                                 source_text(c.entry), measured, c.gap_text() + " |"]))
    return Md("\n".join(lines))


def by_part(rows: Sequence[Claim]) -> dict[str, list[Claim]]:
    """Claims grouped by part of the talk, parts in the order of the book."""
    out: dict[str, list[Claim]] = {}
    for c in rows:
        out.setdefault(c.part, []).append(c)
    return out


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'s' if n != 1 else ''}"


def page_block(rows: Sequence[Claim]) -> Md:
    """A page's claims: a line naming the page (a link), how many claims and
    the setting they share, then their table."""
    c0 = rows[0]
    page = f"{{doc}}`{build.page_name(c0.page)} </{c0.page}>`" if c0.page else f"`{escape(c0.entry.page)}`"
    shared = shared_setting([c.entry.setting for c in rows])
    head = f"{page}: {_count(len(rows), 'claim')}" + (f"; all in the setting *{escape(shared.strip())} …*"
                                                      if shared else "")
    return Md(head + "\n\n" + claims_table(rows, shared))


def tables(rows: Sequence[Claim]) -> Md:
    """Per part of the talk: a title line (how many claims, how many
    measured) and, in a box of class ``overview-part`` (which
    book/_static/patchbook.css keeps within a screen, scrolling inside), a
    block per page (:func:`page_block`)."""
    if not rows:
        return Md("The registry of published values holds no entry yet.")
    out = []
    for part, cs in by_part(rows).items():
        measured = sum(1 for c in cs if c.records)
        pages: dict[str, list[Claim]] = {}
        for c in cs:
            pages.setdefault(c.entry.page, []).append(c)
        blocks = "\n\n".join(page_block(p) for p in pages.values())
        out.append(f"**{escape(part)}**: {_count(len(cs), 'claim')}, {measured} measured.\n\n"
                   f":::{{container}} overview-part\n\n{blocks}\n\n:::")
    return Md("\n\n".join(out))


def figure(rows: Sequence[Claim], max_panels: int = 3):
    """Measured against published, one panel per unit (the commonest first):
    a point per claim with one measured value; colour by part; filled when
    measured at the published scale, hollow when not; a triangle for a bound.
    Returns the figure (``None`` if no claim has a measured value)."""
    pts = [c for c in rows if c.measured is not None]
    if not pts:
        return None
    units: dict[str, list[Claim]] = {}
    for c in pts:
        units.setdefault(c.entry.unit, []).append(c)
    panels = sorted(units.items(), key=lambda kv: -len(kv[1]))[:max_panels]
    colours = {p: f"C{i}" for i, p in enumerate(dict.fromkeys(c.part for c in rows))}
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.2), squeeze=False)
    for ax, (unit, cs) in zip(axes[0], panels):
        lo = min(min(c.entry.value, c.measured) for c in cs)
        hi = max(max(c.entry.value, c.measured) for c in cs)
        pad = 0.05 * (hi - lo or abs(hi) or 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.6", lw=0.8, ls="--", zorder=0)
        for c in cs:
            ax.scatter(c.entry.value, c.measured, marker="^" if c.entry.kind == "bound" else "o", s=28,
                       color=colours[c.part], facecolors=colours[c.part] if c.same_scale else "none")
        ax.set(xlabel=f"published ({unit or 'no unit'})", ylabel=f"measured ({unit or 'no unit'})")
        ax.set_aspect("equal", adjustable="datalim")
    for part, colour in colours.items():
        axes[0][0].scatter([], [], color=colour, s=20, label=part)
    axes[0][0].legend(loc="best", fontsize=7)
    fig.suptitle("Measured against published (hollow: not at the published scale; triangle: a bound)",
                 fontsize=8)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------- CSV ----

CSV_COLUMNS = ("notebook", "quantity", "value", "unit", "profile", "published_id", "published_value",
               "published_kind", "published_relation", "published_source", "gap", "date", "machine",
               "version", "params", "data", "meta")


def csv_rows(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per record (:data:`CSV_COLUMNS`); ``gap`` only where it
    means something (a number measured at the published scale against a
    value that is not a bound); everything else a record holds, as JSON in ``meta``."""
    out = []
    for r in records:
        p = r.get("published") or {}
        gap = None
        if r.get("profile") == SAME_SCALE and p.get("kind") != "bound" and _number(r.get("value")) \
                and _number(p.get("value")) and r.get("unit") == p.get("unit"):
            gap = float(r["value"]) - float(p["value"])
        hw = r.get("hardware") or {}
        value = r.get("value")
        rest = {k: v for k, v in r.items() if k not in {"notebook", "quantity", "value", "unit", "profile",
                                                        "published", "date", "hardware", "version", "params",
                                                        "data"}}
        out.append({
            "notebook": r.get("notebook"), "quantity": r.get("quantity"),
            "value": json.dumps(value) if isinstance(value, (list, dict)) else value, "unit": r.get("unit"),
            "profile": r.get("profile"), "published_id": p.get("id"), "published_value": p.get("value"),
            "published_kind": p.get("kind"), "published_relation": p.get("relation"),
            "published_source": p.get("source"), "gap": gap, "date": r.get("date"),
            "machine": hw.get("gpu") or (f"{hw.get('cpu')} ({hw.get('cores')} cores)" if hw else None),
            "version": r.get("version"), "params": json.dumps(r.get("params") or {}, sort_keys=True),
            "data": json.dumps(r.get("data") or {}, sort_keys=True), "meta": json.dumps(rest, sort_keys=True),
        })
    return out


def write_csv(records: Iterable[dict[str, Any]], path: Path) -> Path:
    """Write every record as a row of a CSV file (:func:`csv_rows`); returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        w.writerows(csv_rows(records))
    return path


def download(path: Path, root: Path, text: str) -> str:
    """A MyST ``{download}`` link to ``path`` (inside the book's folder ``root``)."""
    return f"{{download}}`{text} </{Path(path).resolve().relative_to(Path(root).resolve()).as_posix()}>`"


# ------------------------------------------------------------------ timing ----

def timing_table(timing: dict[str, Any] | None, parts: dict[str, str]) -> Md:
    """The pages of a build timing record (:mod:`patchbook.pages.build`):
    seconds of each page's last execution, whether this build executed it
    (and why) or reused its cached execution (and from when), in the order of
    the book; then the sum, what a cold build of these pages costs."""
    if not timing or not timing.get("pages"):
        return Md("No build timing record at this profile yet: it is written by `python -m patchbook book`.")
    pages = timing["pages"]
    lines = ["| page | seconds | this build | why |", "|---|---|---|---|"]
    total = 0.0
    for doc in [d for d in parts if d in pages] + [d for d in pages if d not in parts]:
        e = pages[doc]
        secs = e.get("seconds")
        total += secs or 0.0
        if not e.get("succeeded"):
            done = f"failed ({escape(e.get('error') or 'error')})"
        else:
            done = "executed" if e.get("executed") else f"cached ({str(e.get('executed_at', ''))[:10]})"
        lines.append(f"| {{doc}}`{build.page_name(doc)} </{doc}>` | {duration(secs)} | {done} "
                     f"| {escape('; '.join(e.get('reasons') or []))} |")
    load = (timing.get("load_average_start") or [None])[0]
    cores = (timing.get("hardware") or {}).get("cores") or 1
    busy = ""
    if load is not None:
        busy = f" (load average {load:.1f}" + (f" on {cores} cores: a shared machine, so times are upper bounds)"
                                               if load > cores else ")")
    head = (f"Build at profile `{timing.get('profile')}` on {escape(timing.get('machine', 'an unrecorded machine'))}, "
            f"started {str(timing.get('started', ''))[:16].replace('T', ' ')} UTC{busy}. The pages' last "
            f"executions add up to {duration(total)}: the time of a cold build of these pages.")
    return Md(head + "\n\n:::{container} compact-table\n\n" + "\n".join(lines) + "\n\n:::")


# ---------------------------------------------------------------- the page ----

@dataclass
class Overview:
    """Everything the results overview page shows, at one profile."""

    profile: str
    records: list[dict[str, Any]]
    claims: list[Claim]
    uncited: list[str]
    timing: dict[str, Any] | None
    parts: dict[str, str]

    @classmethod
    def load(cls, profile: str, root: Path | None = None) -> "Overview":
        """The records of ``profile`` (and ``paper``), the registry and the
        build timing record; ``root`` is the book's folder."""
        records = collect(profile)
        entries = published.entries()
        parts = build.toc_parts(root)
        return cls(profile, records, claims(records, entries, parts, profile), uncited(records, entries),
                   build.load_timing(profile), parts)

    def summary(self, csv_path: Path, root: Path | None = None) -> Md:
        """One paragraph: how many claims and records, and the CSV download
        (``csv_path`` inside the book's folder ``root``, default the repository)."""
        root = Path(root) if root is not None else repo_root()
        measured = sum(1 for c in self.claims if c.records)
        text = (f"**{len(self.claims)} headline claims**, {measured} of them measured by this build or by "
                f"committed full-scale runs; **{len(self.records)} records** in all: "
                + download(csv_path, root, f"records-{self.profile}.csv") + ".")
        if self.uncited:
            text += f" Records cite ids the registry no longer holds: {escape(', '.join(self.uncited))}."
        return Md(text)

    def tables(self) -> Md:
        return tables(self.claims)

    def figure(self):
        return figure(self.claims)

    def timing_table(self) -> Md:
        return timing_table(self.timing, self.parts)
