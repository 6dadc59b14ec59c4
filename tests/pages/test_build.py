"""The book build: which pages re-execute and why, records started afresh,
the timing record and the rerun box; then a fixture book built for real."""

from __future__ import annotations

import datetime as dt
import json
import os
import textwrap
import time
from pathlib import Path

import nbformat
import pytest
from conftest import REPO

from patchbook import cache
from patchbook.pages import build

NOTEBOOK = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# {title}

```{{code-cell}} ipython3
{code}
```
"""


def write_notebook(path: Path, code: str, title: str = "A page") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(NOTEBOOK.format(title=title, code=textwrap.dedent(code).strip()))
    return path


# ------------------------------------------------------------- imports ----

def test_notebook_imports_reads_every_form_of_import():
    cells = [
        "import numpy as np\nimport patchbook.stats\n%matplotlib inline\n!ls",
        "from patchbook.pages import session, tables\nfrom patchbook.data import load, DataNotFoundError",
        "from patchbook import cache as c\nimport patchbook",
        "from patchbook.style.losses import gram\nfrom patchbook.invariance import scattering as sc",
        "def broken(:\n    pass",  # a cell that is no Python is skipped
    ]
    assert build.notebook_imports(cells) == {
        "stats", "pages.session", "pages.tables", "data", "cache", "", "style.losses", "invariance.scattering"}


def test_module_closure_is_the_reachable_set_of_imports_and_packages():
    graph = cache.import_graph()
    got = set(build.module_closure(["style.losses", "pages.session", "no.such.module"]))

    def parents(m):
        parts = m.split(".") if m else []
        return {".".join(parts[:i]) for i in range(len(parts))}

    todo, seen = ["style.losses", "pages.session"], set()  # brute force: a graph search
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += list(graph[m]) + [p for p in parents(m) if p in graph]
    assert got == seen
    assert {"style", "", "pages", "pages.results"} <= got and not any(m.startswith("patchknn") for m in got)


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    """A package laid out like patchbook (``alpha`` imports ``beta``; a
    ``style`` package), read by :mod:`patchbook.cache` in place of the real one."""
    pkg = tmp_path / "fake" / "patchbook"
    files = {
        "__init__.py": "",
        "alpha.py": "from patchbook import beta\n",
        "beta.py": "X = 1\n",
        "style/__init__.py": "",
        "style/brush.py": "from patchbook.style import paint\n",
        "style/paint.py": "Y = 2\n",
    }
    for name, text in files.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)
    monkeypatch.setattr(cache, "_PACKAGE", pkg)
    cache.import_graph.cache_clear()
    yield pkg
    cache.import_graph.cache_clear()


def test_a_data_folder_beside_a_module_does_not_hide_it(fake_package):
    (fake_package / "beta").mkdir()  # like pages/published/ (YAML files) beside pages/published.py
    assert build.source_file("beta") == fake_package / "beta.py"
    assert build.source_file("style") == fake_package / "style" / "__init__.py"
    assert build.source_file("") == fake_package / "__init__.py"
    assert set(build.module_hashes(["beta", "style"])) == {"beta", "style"}


def test_an_edit_re_runs_only_the_pages_that_import_it(fake_package, tmp_path):
    a = write_notebook(tmp_path / "nb" / "a.md", "from patchbook import alpha")
    s = write_notebook(tmp_path / "nb" / "s.md", "from patchbook.style import brush")

    def inputs():
        return {p: build.page_inputs(p, "smoke", data=tmp_path) for p in (a, s)}

    before = inputs()
    assert set(before[a]["modules"]) == {"", "alpha", "beta"}
    assert set(before[s]["modules"]) == {"", "style", "style.brush", "style.paint"}
    (fake_package / "style" / "paint.py").write_text("Y = 3  # a one-line style change\n")
    after = inputs()
    assert build.changes(before[a], after[a]) == []
    assert build.changes(before[s], after[s]) == ["library changed: patchbook.style.paint"]
    (fake_package / "beta.py").write_text("X = 2\n")  # imported by alpha: a transitive change
    again = inputs()
    assert build.changes(after[a], again[a]) == ["library changed: patchbook.beta"]
    assert build.changes(after[s], again[s]) == []


def test_changes_name_code_profile_registry_and_data():
    base = {"code": "c", "profile": {"name": "smoke", "values": "v"}, "modules": {"x": "1"},
            "registry": {"cifar10-table": "r"}, "data": {"MNIST": "d"}}
    assert build.changes(base, dict(base)) == []
    assert build.changes(base, {**base, "code": "c2"}) == ["its code changed"]
    assert build.changes(base, {**base, "profile": {"name": "smoke", "values": "w"}}) == ["its profile changed"]
    assert build.changes(base, {**base, "registry": {"cifar10-table": "s"}}) == \
        ["published values changed: cifar10-table"]
    assert build.changes(base, {**base, "data": {"MNIST": "e", "photos": "f"}}) == ["data changed: MNIST, photos"]
    assert build.changes(base, {**base, "modules": {}}) == ["library changed: patchbook.x"]


def test_profile_values_are_an_input(tmp_path):
    nb = write_notebook(tmp_path / "data-overview.md", "x = 1")  # a page with profiles
    smoke, laptop = build.page_inputs(nb, "smoke"), build.page_inputs(nb, "laptop")
    assert smoke["profile"]["values"] != laptop["profile"]["values"]
    assert build.changes(smoke, laptop) == ["its profile changed"]


def test_data_folders_from_records_and_loader_calls():
    records = [{"data": {"cifar10/train": "f1", "mnist/test": "f2"}},
               {"data": {"imagefolder:/elsewhere/set/train": "f3", "tiny-imagenet-100/val": "f4"}}]
    assert build.data_folders(records, ["x = data.load_photo(name)"]) == sorted(
        ["cifar10-jpeg", "cifar-10-batches-py", "MNIST", "/elsewhere/set", "tiny-imagenet-100", "photos"])
    assert build.data_folders([], ["from patchbook import data"]) == []
    assert build.data_folders([], ["w = load_conv_weights('vgg16')", "list_images('paintings')"]) == \
        ["paintings", "photos", "weights"]


def test_folder_stamp_changes_with_any_edit(tmp_path):
    root = tmp_path / "d"
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.jpg").write_bytes(b"12345")
    s0 = build.folder_stamp(root)
    assert build.folder_stamp(root) == s0
    (root / "a" / "x.jpg").write_bytes(b"123456")
    s1 = build.folder_stamp(root)
    (root / "a" / "y.jpg").write_bytes(b"1")
    s2 = build.folder_stamp(root)
    (root / "a" / "y.jpg").rename(root / "a" / "z.jpg")
    s3 = build.folder_stamp(root)
    assert len({s0, s1, s2, s3}) == 4
    assert build.folder_stamp(tmp_path / "none") == "missing"


def test_quoted_registry_files(monkeypatch, tmp_path):
    for name in ("cifar10-table", "ablations", "monet-comparisons"):
        (tmp_path / f"{name}.yaml").write_text("{}\n")
    monkeypatch.setattr(build, "registry_files", lambda: {p.stem: p for p in tmp_path.glob("*.yaml")})
    texts = ['published.get("cifar10-table/simplepatch-2048-best")', "nothing else"]
    assert build.quoted_registry("ablations", texts) == ["ablations", "cifar10-table"]


# ---------------------------------------------------------------- plan ----

def test_plan_says_why_each_page_runs(tmp_path):
    pages = {f"nb/{n}": write_notebook(tmp_path / "nb" / f"{n}.md", "x = 1") for n in "abcde"}
    force = tmp_path / "summary.md"
    force.write_text(NOTEBOOK.format(title="S", code="y = 2").replace(
        "---\n\n#", "mystnb:\n  execution_mode: force\n---\n\n#", 1))
    pages["summary"] = force
    inputs = {d: {"code": d} for d in pages}
    state = {d: {"inputs": {"code": d}, "records": True} for d in pages if d != "nb/a"}
    state["nb/d"]["inputs"] = {"code": "old"}
    cached = {str(p.resolve()) for d, p in pages.items() if d != "nb/b"}
    exist = {d: d != "nb/c" for d in pages}
    got = build.plan(pages, inputs, state, cached, exist)
    assert got == {
        "nb/a": ["no earlier execution at this profile"],
        "nb/b": ["no cached execution"],
        "nb/c": ["its records are missing"],
        "nb/d": ["its code changed"],
        "nb/e": [],
        "summary": ["executed on every build (execution_mode: force)"],
    }


def test_clear_records_drops_rerun_pages_and_orphans(tmp_results):
    for prof in ("smoke", "paper"):
        (tmp_results / prof / "build").mkdir(parents=True)
        for n in ("a", "b", "gone"):
            (tmp_results / prof / f"{n}.json").write_text('{"records": []}')
        (tmp_results / prof / "build" / "timing.json").write_text("{}")
    pages = ["notebooks/a", "notebooks/b"]
    removed = build.clear_records("smoke", ["notebooks/a"], pages)
    assert sorted(p.name for p in removed) == ["a.json", "gone.json"]
    assert sorted(p.name for p in (tmp_results / "smoke").glob("*.json")) == ["b.json"]
    assert (tmp_results / "smoke" / "build" / "timing.json").exists()
    build.clear_records("paper", ["notebooks/a"], pages)  # committed runs of other notebooks stay
    assert sorted(p.name for p in (tmp_results / "paper").glob("*.json")) == ["b.json", "gone.json"]


# -------------------------------------------------------------- timing ----

def test_timing_record_executed_cached_and_rerun_box(tmp_results):
    build.begin_timing("smoke", {"notebooks/a": ["its code changed"], "notebooks/b": []})
    now = dt.datetime.now(dt.timezone.utc)
    build.note_page("smoke", "notebooks/a", {"runtime": 12.0, "succeeded": True}, True, now)
    build.note_page("smoke", "notebooks/b", {"runtime": 30.0, "succeeded": True}, True, now)
    build.finish_timing("smoke", True)
    # The next build executes a again and reuses b's cached execution.
    build.begin_timing("smoke", {"notebooks/a": ["library changed: patchbook.stats"], "notebooks/b": []})
    a = build.note_page("smoke", "notebooks/a", {"runtime": 11.0, "succeeded": True}, True, now)
    old = now - dt.timedelta(days=1)
    b = build.note_page("smoke", "notebooks/b", {"runtime": 30.0, "succeeded": True}, False, old)
    rec = build.finish_timing("smoke", True)
    assert a["executed"] and a["reasons"] == ["library changed: patchbook.stats"]
    assert not b["executed"] and b["reasons"] == [] and b["executed_at"].startswith(old.date().isoformat())
    assert b["machine"] == rec["machine"] and b["load_average"] is not None  # carried from the build that ran it
    on_disk = json.loads(build.timing_file("smoke").read_text())
    assert on_disk["succeeded"] and on_disk["seconds"] >= 0 and "previous" not in on_disk
    assert set(on_disk["pages"]) == {"notebooks/a", "notebooks/b"}
    assert on_disk["profile"] == "smoke" and on_disk["hardware"]["cores"] == os.cpu_count()

    box = build.rerun_box("notebooks/b", "smoke")
    assert box["commands"] == [f"python -m patchbook run b --profile {p}" for p in ("smoke", "laptop", "paper")]
    times = "".join(t for _, t in box["times"])
    assert "smoke 30 s" in times and "laptop not timed here yet" in times and "paper not timed here yet" in times
    this = "".join(t for _, t in box["this_build"])
    assert this.startswith("This build (profile smoke) reused its execution of") and "(30 s)" in this
    this_a = "".join(t for _, t in build.rerun_box("notebooks/a", "smoke")["this_build"])
    assert "executed this page on" in this_a and "in 11 s" in this_a
    assert ("literal", "smoke") in box["this_build"]
    build.note_page("smoke", "notebooks/c", {"runtime": 4.0, "succeeded": False, "error": "CellExecutionError"},
                    True, now)
    failed = build.rerun_box("notebooks/c", "smoke")
    assert "failed to execute this page (CellExecutionError) after 4 s" in "".join(t for _, t in failed["this_build"])
    assert "smoke not timed here yet" in "".join(t for _, t in failed["times"])  # a failure is no timing


def test_execution_of_tells_a_cached_execution_in_any_time_zone(tmp_path, monkeypatch):
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    src = write_notebook(tmp_path / "p.md", "x = 1")
    jc = get_cache(str(tmp_path / "jc"))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    rec = jc.cache_notebook_bundle(CacheBundleIn(nb, str(src), data={"execution_seconds": 3.0}),
                                   check_validity=False)
    for tz in ("UTC", "America/Los_Angeles", "Asia/Tokyo"):
        monkeypatch.setenv("TZ", tz)
        time.tzset()
        started = time.time() + 1.0  # a build started after the cached execution
        cached = {"mtime": rec.created.timestamp(), "runtime": 3.0, "succeeded": True}  # as myst-nb reports it
        executed, when = build.execution_of(tmp_path / "jc", src, cached, started)
        assert not executed and abs(when.timestamp() - (started - 1.0)) < 120, tz
        fresh = {"mtime": time.time() + 2.0, "runtime": 1.0, "succeeded": True}
        assert build.execution_of(tmp_path / "jc", src, fresh, started)[0], tz
        failed = {"mtime": rec.created.timestamp(), "runtime": 1.0, "succeeded": False}
        assert build.execution_of(tmp_path / "jc", src, failed, started)[0], tz
    monkeypatch.delenv("TZ")
    time.tzset()


# ------------------------------------------------------ a fixture book ----

def fixture_book(root: Path) -> Path:
    (root / "notebooks").mkdir(parents=True)
    (root / "intro.md").write_text("# A fixture book\n\nTwo pages that import different modules.\n")
    (root / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n"
                                   "  - file: notebooks/alpha\n  - file: notebooks/beta\n")
    (root / "_config.yml").write_text(textwrap.dedent(f"""\
        title: fixture
        only_build_toc_files: true
        execute:
          execute_notebooks: cache
          timeout: 120
        sphinx:
          local_extensions:
            patchbook_book: {REPO / "book" / "_ext"}
        """))
    write_notebook(root / "notebooks" / "alpha.md", "from patchbook import stats\nprint(stats.__name__)", "Alpha")
    write_notebook(root / "notebooks" / "beta.md", "from patchbook import paths\nprint(paths.__name__)", "Beta")
    return root


def _timing() -> dict[str, tuple[bool, list[str]]]:
    pages = build.load_timing("smoke")["pages"]
    return {d: (e["executed"], e["reasons"]) for d, e in pages.items()}


@pytest.mark.book
@pytest.mark.slow
def test_fixture_book_re_executes_only_what_changed(tmp_path, tmp_results):
    root = fixture_book(tmp_path / "book")
    a, b = "notebooks/alpha", "notebooks/beta"
    assert build.build("smoke", root=root) == 0
    assert _timing() == {a: (True, ["no earlier execution at this profile"]),
                         b: (True, ["no earlier execution at this profile"])}
    assert (build.build_dir("smoke", root) / "html" / "notebooks" / "alpha.html").exists()

    assert build.build("smoke", root=root) == 0  # nothing changed: both from the cache
    assert _timing() == {a: (False, []), b: (False, [])}
    executed = nbformat.read(str(build.build_dir("smoke", root) / "jupyter_execute" / "notebooks" / "alpha.ipynb"), 4)
    assert [o.get("text") for c in executed.cells for o in c.get("outputs", [])] == ["patchbook.stats\n"]
    assert [c.cell_type for c in executed.cells] == ["markdown", "code"]  # the whole page, with the cached outputs

    # patchbook.stats changes (as if edited since alpha ran): only alpha re-executes.
    state_file = build.build_dir("smoke", root) / build.STATE_FILE
    state = json.loads(state_file.read_text())
    state["pages"][a]["inputs"]["modules"]["stats"] = "an older version"
    state_file.write_text(json.dumps(state))
    assert build.build("smoke", root=root) == 0
    assert _timing() == {a: (True, ["library changed: patchbook.stats"]), b: (False, [])}

    # beta's code changes: only beta re-executes.
    write_notebook(root / "notebooks" / "beta.md", "from patchbook import paths\nprint(paths.__doc__[:10])", "Beta")
    assert build.build("smoke", root=root) == 0
    assert _timing() == {a: (False, []), b: (True, ["its code changed"])}
    record = build.load_timing("smoke")
    assert record["succeeded"] and record["pages"][a]["seconds"] > 0
