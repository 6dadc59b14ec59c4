"""Every notebook under notebooks/ runs at the smoke profile (jupytext + papermill)."""

import json

import pytest

from patchbook.pages import execute as notebooks

NOTEBOOKS = notebooks.available()


@pytest.mark.notebook
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_at_smoke(name, data_root, tmp_path):
    out = notebooks.execute(name, "smoke", output=tmp_path, timeout=600)
    executed = json.loads(out.read_text())
    errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    results = tmp_path / "smoke" / f"{name}.json"
    assert results.exists(), f"{name} recorded no measured result"
    assert json.loads(results.read_text())["records"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_page_opens_with_the_slide_and_ends_with_what_was_measured(name):
    """Each slide page quotes its slide in a note before any code and closes
    with a "Measured" section (the data page has no slide); it compiles."""
    cells = notebooks.read(name).cells
    first_code = next(i for i, c in enumerate(cells) if c.cell_type == "code")
    intro = "\n".join(c.source for c in cells[:first_code] if c.cell_type == "markdown")
    if name != "data-overview":
        assert ":::{admonition} The slide" in intro, f"{name} does not open with the slide"
    headings = [l for c in cells if c.cell_type == "markdown" for l in c.source.splitlines() if l.startswith("## ")]
    assert headings and headings[-1].strip() == "## Measured", f"{name} does not end with a Measured section"
    assert cells[-1].cell_type == "code", f"{name}: the Measured section should end with the cell that reports it"
    for i, c in enumerate(cells):
        if c.cell_type == "code":
            compile("\n".join(l for l in c.source.splitlines() if not l.lstrip().startswith(("%", "!"))),
                    f"{name} cell {i}", "exec")


def test_cli_run_with_parameter(data_root, tmp_path):
    from patchbook.__main__ import main

    assert main(["run", "data-overview", "--profile", "smoke", "-p", "seed", "3", "--output", str(tmp_path)]) == 0
    recs = json.loads((tmp_path / "smoke" / "data-overview.json").read_text())["records"]
    assert all(r["params"]["seed"] == 3 for r in recs)


def test_cli_rejects_unknown_names(capsys):
    from patchbook.__main__ import main

    assert main(["run", "no-such-notebook", "--profile", "smoke"]) == 2
    assert "data-overview" in capsys.readouterr().err
    assert main(["run", "data-overview", "--profile", "smoke", "-p", "bogus", "1"]) == 2
    assert "n_show" in capsys.readouterr().err


MAX_CELL_LINES = 25


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_code_cells_are_short(name):
    """A page is prose, figures and a few calls: logic lives in the library."""
    long = [(i, len(c.source.splitlines())) for i, c in enumerate(notebooks.read(name).cells)
            if c.cell_type == "code" and len(c.source.splitlines()) > MAX_CELL_LINES]
    assert not long, f"{name}: code cells over {MAX_CELL_LINES} lines (cell index, lines): {long}"
