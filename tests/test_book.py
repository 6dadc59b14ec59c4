"""A smoke build of the whole book: every page of the table of contents is built."""

import re

import pytest
import yaml

from conftest import REPO


def _toc_files():
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part.get("chapters", [])]
    return files


@pytest.mark.book
def test_smoke_book_builds(data_root):
    from patchbook.book import build, output_dir

    assert build("smoke") == 0, "jupyter-book build failed (warnings are errors)"
    html = output_dir("smoke") / "_build" / "html"
    for f in _toc_files():
        page = html / f"{f}.html"
        assert page.exists(), f"{page} missing"
        text = page.read_text()
        assert "Traceback" not in text and 'class="output traceback' not in text
        if f.startswith("notebooks/"):
            assert re.search(r"<img[^>]+src=", text), f"{f}: no figure"
