"""The slide map (book/slides.yaml) keeps every slide of the talk: each slide of
slides.txt has an entry, in order, and every page and section it names exists
in the pages' MyST sources (and in the built book, where one was built)."""

from __future__ import annotations

import hashlib
import html
import os
import re
from pathlib import Path

import pytest
import yaml
from conftest import REPO, missing

MAP = REPO / "book" / "slides.yaml"
KEYS = {"start", "title", "quote", "shows", "page", "section"}


def load_map() -> dict:
    return yaml.safe_load(MAP.read_text(encoding="utf-8"))


def find_talk(relative: str) -> Path | None:
    """slides.txt: ``$PATCHBOOK_TALK`` (the file), else ``<relative>`` under the
    folder holding the data root (``$PATCHBOOK_DATA/..``), else beside the
    checkout (``../shared``)."""
    candidates = []
    if os.environ.get("PATCHBOOK_TALK"):
        candidates.append(Path(os.environ["PATCHBOOK_TALK"]))
    if os.environ.get("PATCHBOOK_DATA"):
        candidates.append(Path(os.environ["PATCHBOOK_DATA"]).parent / relative)
    candidates += [REPO.parent / "shared" / relative, REPO.parents[1] / "shared" / relative]
    return next((p for p in candidates if p.is_file()), None)


@pytest.fixture(scope="module")
def talk() -> tuple[list[str], str]:
    path = find_talk(load_map()["source"]["file"])
    if path is None:
        missing("the talk's slides.txt was not found (set PATCHBOOK_TALK to it, or PATCHBOOK_DATA)")
    raw = path.read_bytes()
    return raw.decode("utf-8").splitlines(), hashlib.sha256(raw).hexdigest()


# ------------------------------------------------------------------ checks
def spans(slides: list[dict], n_lines: int) -> list[range]:
    """Lines (1-based) of each slide: from its start to the next slide's."""
    starts = [s["start"] for s in slides] + [n_lines + 1]
    return [range(a, b) for a, b in zip(starts, starts[1:])]


def slide_problems(lines: list[str], slides: list[dict]) -> list[str]:
    """What is wrong with ``slides`` as a reading of the talk's ``lines``."""
    text = [line.strip() for line in lines]
    problems = []
    starts = [s["start"] for s in slides]
    if starts != sorted(set(starts)):
        problems.append(f"slide starts are not strictly increasing: {starts}")
        return problems
    first = next(i for i, t in enumerate(text, 1) if t)
    if starts[0] != first:
        problems.append(f"the first slide starts at line {starts[0]}, the talk's text at line {first}")
    where: dict[int, int] = {}                    # line -> index of its slide
    for i, (s, lines_of) in enumerate(zip(slides, spans(slides, len(text)))):
        for n in lines_of:
            where[n] = i
        own = [n for n in lines_of if text[n - 1] == s["title"]]
        if len(own) != 1:
            problems.append(f"slide {i + 1} ({s['title']!r}, line {s['start']}): its title is on {len(own)} of "
                            f"its lines {lines_of.start}-{lines_of.stop - 1}, not one")
        if s["quote"] is not None and not [n for n in lines_of if text[n - 1] == s["quote"] and n not in own]:
            problems.append(f"slide {i + 1} ({s['title']!r}, line {s['start']}): no line {s['quote']!r} besides "
                            "its title")
    # a title that recurs in the talk recurs in the map: every occurrence is a slide of that title
    titles = {s["title"] for s in slides}
    for n, t in enumerate(text, 1):
        if t in titles and slides[where[n]]["title"] != t:
            problems.append(f"line {n} ({t!r}) is a slide title but lies in slide {where[n] + 1} "
                            f"({slides[where[n]]['title']!r}): a slide of that title is missing")
    # "Ours" marks the slides of the authors' own work: the line before it is a slide title
    for n, t in enumerate(text, 1):
        if t == "Ours":
            prev = max(m for m in range(1, n) if text[m - 1])
            if text[prev - 1] not in titles:
                problems.append(f"line {prev} ({text[prev - 1]!r}) heads an 'Ours' slide but is no slide's title")
    return problems


def myst_headings(path: Path) -> list[str]:
    """Heading texts of a MyST Markdown file, outside its front matter and
    fenced blocks (code cells)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if lines and lines[0].strip() == "---":
        end = next((i for i, line in enumerate(lines[1:], 1) if line.strip() == "---"), 0)
        lines = lines[end + 1:]
    out, fence = [], None
    for line in lines:
        m = re.match(r"^\s*(`{3,}|~{3,})", line)
        if m:
            mark = m.group(1)
            if fence is None:
                fence = mark
            elif mark.startswith(fence[0]) and len(mark) >= len(fence) and not line.strip()[len(mark):].strip():
                fence = None
            continue
        h = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if fence is None and h:
            out.append(h.group(2))
    return out


def toc_files() -> list[str]:
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part.get("chapters", [])]
    return files


def section_problems(slides: list[dict], root: Path = REPO) -> list[str]:
    """Pages missing from the sources and sections missing from their pages."""
    problems, cache = [], {}
    for i, s in enumerate(slides):
        src = root / f"{s['page']}.md"
        if not src.exists():
            problems.append(f"slide {i + 1} ({s['title']!r}): no page {s['page']}.md")
            continue
        heads = cache.setdefault(src, myst_headings(src))
        if s["section"] not in heads:
            problems.append(f"slide {i + 1} ({s['title']!r}): {s['page']} has no heading {s['section']!r}")
    return problems


# Sphinx's smart quotes, undone before comparing
PLAIN = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"',
                       "\u2013": "--", "\u2014": "---"})


def html_headings(page: Path) -> list[str]:
    """Heading texts of a built HTML page (tags, anchor marks and smart quotes removed)."""
    found = re.findall(r"<h([1-6])[^>]*>(.*?)</h\1>", page.read_text(encoding="utf-8"), flags=re.S)
    return [" ".join(html.unescape(re.sub(r"<[^>]+>", "", body)).replace("¶", "").split()).rstrip("#").strip()
            .translate(PLAIN) for _, body in found]


def as_html_text(section: str) -> str:
    """A MyST heading as its built text: inline math ``$x$`` becomes ``\\(x\\)``."""
    return " ".join(re.sub(r"\$([^$]+)\$", r"\\(\1\\)", section).split()).translate(PLAIN)


def built_books() -> list[Path]:
    roots = [REPO / "_build" / "html"] + sorted((REPO / "_build").glob("*/_build/html"))
    return [r for r in roots if r.is_dir()]


# ------------------------------------------------------------------- tests
def test_the_map_is_well_formed():
    m = load_map()
    assert set(m["source"]) == {"file", "sha256"}
    toc = set(toc_files())
    for i, s in enumerate(m["slides"], 1):
        assert set(s) == KEYS, f"slide {i}: keys {sorted(s)}, expected {sorted(KEYS)}"
        assert isinstance(s["start"], int) and s["title"] and s["shows"], f"slide {i}: {s}"
        assert s["page"] in toc, f"slide {i} ({s['title']!r}): {s['page']} is not in _toc.yml"


def test_every_slide_of_the_talk_has_an_entry(talk):
    lines, digest = talk
    assert digest == load_map()["source"]["sha256"], (
        "slides.txt is not the text the slide map was read from: read the talk again and update book/slides.yaml")
    assert slide_problems(lines, load_map()["slides"]) == []


def test_every_page_and_section_exists_in_the_sources():
    assert section_problems(load_map()["slides"]) == []


def test_every_section_exists_in_the_built_book():
    books = built_books()
    if not books:
        pytest.skip("no built book under _build/ (the sources are checked without one)")
    checked = 0
    for book in books:
        for s in load_map()["slides"]:
            page, src = book / f"{s['page']}.html", REPO / f"{s['page']}.md"
            if not page.exists() or page.stat().st_mtime < src.stat().st_mtime:
                continue  # not built, or built from an older source
            assert as_html_text(s["section"]) in html_headings(page), f"{page}: no heading {s['section']!r}"
            checked += 1
    if not checked:
        pytest.skip("the built book is older than every mapped page's source")


# ---------------------------------------------- the checks catch what they should
TALK = ["", "Title one", "", "Part A", "", "Repeated", "", "Ours", "", "- first", "", "Repeated", "", "Ours",
        "", "- second", "", "Last"]


def entry(start, title, quote=None):
    return {"start": start, "title": title, "quote": quote, "shows": "x", "page": "p", "section": "s"}


def test_slide_problems_find_a_missing_repeated_slide_and_a_wrong_quote():
    good = [entry(2, "Title one", "Part A"), entry(6, "Repeated", "- first"), entry(12, "Repeated", "- second"),
            entry(18, "Last")]
    assert slide_problems(TALK, good) == []
    missing = [good[0], good[1], good[3]]
    assert any("('Repeated', line 6): its title is on 2 of its lines" in p for p in slide_problems(TALK, missing))
    assert any("line 6 ('Repeated') is a slide title but lies in slide 1" in p
               for p in slide_problems(TALK, [entry(2, "Title one", "Part A"), entry(12, "Repeated"), good[3]]))
    swapped = [good[0], entry(6, "Repeated", "- second"), good[2], good[3]]
    assert any("no line '- second'" in p for p in slide_problems(TALK, swapped))
    late = [entry(4, "Part A")] + good[1:]
    assert any("the first slide starts at line 4, the talk's text at line 2" in p
               for p in slide_problems(TALK, late))
    untitled = [good[0], good[1], entry(12, "Last"), good[3]]
    assert any("its title is on 0" in p for p in slide_problems(TALK, untitled))
    assert any("heads an 'Ours' slide" in p for p in slide_problems(TALK, [entry(2, "Title one")]))


def test_headings_are_read_outside_code_cells(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("---\nkernelspec:\n  name: python3\n---\n\n# Title\n\n```{code-cell} ipython3\n# a comment\n"
                    "```\n\n## The weight $\\alpha$\n\n````md\n## inside a fence\n````\n### Deep ##\n")
    assert myst_headings(page) == ["Title", "The weight $\\alpha$", "Deep"]
    slides = [{**entry(1, "t"), "page": "p", "section": "Deep"},
              {**entry(2, "t"), "page": "p", "section": "a comment"},
              {**entry(3, "t"), "page": "q", "section": "Title"}]
    found = section_problems(slides, tmp_path)
    assert len(found) == 2 and "no heading 'a comment'" in found[0] and "no page q.md" in found[1]
    built = tmp_path / "p.html"
    built.write_text('<h2>The weight <span class="math">\\(\\alpha\\)</span><a class="headerlink">#</a></h2>'
                     "<h3>One image\u2019s code</h3>")
    assert as_html_text("The weight $\\alpha$") in html_headings(built)
    assert as_html_text("One image's code") in html_headings(built)
