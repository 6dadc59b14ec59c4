"""The registry of published values: well-formed entries, each quoted by a
page, none typed as a literal in a page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from patchbook.pages import published
from patchbook.pages.execute import read
from patchbook.pages.published import Published, RegistryError, _entry

REPO = Path(__file__).resolve().parents[2]
PAGES = sorted((REPO / "notebooks").glob("*.md")) + sorted((REPO / "book").glob("*.md")) + \
    sorted((REPO / "summary").glob("*.md"))
LIBRARY_PAGES = [p for p in (REPO / "src/patchbook/pages").rglob("*.py") if p.name != "published.py"]
BIB = (REPO / "book/references.bib").read_text()
ENTRIES = sorted(published.registry().values(), key=lambda e: e.id)


def test_entry_rules():
    ok = {"value": 82.7, "unit": "%", "kind": "best", "setting": "s", "source": "k", "file": "logs/a.log", "line": 4}
    assert _entry("p", "a", ok).id == "p/a"
    bad = [
        ({**ok, "kind": "mean"}, "kind must be"),
        ({k: v for k, v in ok.items() if k != "line"}, "file and line"),
        ({**ok, "value": "82.7"}, "finite number"),
        ({**ok, "kind": "bound", "where": "slide"}, "relation"),
        ({**ok, "relation": ">"}, "relation"),
        ({**ok, "colour": "red"}, "unknown fields"),
        ({"value": 1.0, "unit": "%", "kind": "printed", "setting": "s", "source": "k"}, "where"),
        ({"value": 7.1, "unit": "", "kind": "data", "setting": "s", "source": "k", "file": "data/x"}, "where in it"),
    ]
    d = _entry("p", "d", {"value": 7.1, "unit": "", "kind": "data", "setting": "s", "source": "k",
                          "file": "data/x", "where": "Idim[0]"})
    assert d.provenance() == "from the authors' data file, `data/x`, Idim[0]"
    for d, msg in bad:
        with pytest.raises(RegistryError, match=msg):
            _entry("p", "a", d)


def test_bound_has_no_gap_and_like_is_compared_with_like():
    b = Published("p/b", 99.0, "%", "bound", "MNIST", "k", where="slide", relation=">")
    assert b.text() == "> 99%" and b.gap(99.4) is None
    best = Published("p/x", 82.7, "%", "best", "s", "k", file="f", line=1)
    final = Published("p/y", 82.6, "%", "final", "s", "k", file="f", line=1)
    assert best.measured_of(best=80.0, final=79.0) == 80.0
    assert final.measured_of(best=80.0, final=79.0) == 79.0
    assert best.gap(80.0) == pytest.approx(-2.7)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.id)
def test_entry_is_well_formed_and_cited(entry):
    assert f"{{{entry.source}," in BIB, f"{entry.id}: source {entry.source!r} is not a key of book/references.bib"
    assert (REPO / "notebooks" / f"{entry.page}.md").exists() or (REPO / "book" / f"{entry.page}.md").exists(), \
        f"{entry.id}: no page {entry.page!r}"


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.id)
def test_entry_is_quoted_by_a_page(entry):
    texts = [p.read_text() for p in PAGES + LIBRARY_PAGES]
    assert any(entry.id in t for t in texts), f"{entry.id} is quoted by no page"


def _checked_text(path: Path) -> str:
    """A page's code cells and its prose outside admonition boxes (the slide
    and log boxes quote their sources' own numbers)."""
    if path.parent.name == "notebooks":
        cells = read(path.stem).cells
        parts = [c.source if c.cell_type == "code" else c.source for c in cells]
    else:
        parts = [path.read_text()]
    text = "\n".join(parts)
    return re.sub(r":::\{admonition\}.*?\n:::", "", text, flags=re.S)


def test_no_registry_number_is_typed_in_a_page():
    raw = {}
    for f in sorted((REPO / "src/patchbook/pages/published").glob("*.yaml")):
        for key, d in (yaml.safe_load(f.read_text()) or {}).items():
            v = d["value"]
            if isinstance(v, float) and not float(v).is_integer():
                raw[f"{f.stem}/{key}"] = v
    values = {f"{v:g}" for v in raw.values()}
    found = []
    for path in PAGES:
        text = _checked_text(path)
        for m in re.finditer(r"(?<![\w.])\d+\.\d+(?![\w.])", text):
            if m.group(0) in values or f"{float(m.group(0)):g}" in values:
                line = text[: m.start()].count("\n") + 1
                found.append(f"{path.relative_to(REPO)} (text line {line}): {m.group(0)}")
    assert not found, "published numbers typed in pages (read them from the registry):\n" + "\n".join(found)
