"""A smoke build of the whole book, then every page opened in headless Chromium."""

import functools
import http.server
import re
import shutil
import threading
from pathlib import Path

import pytest
import yaml
from conftest import REPO

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def toc_files() -> list[str]:
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part.get("chapters", [])]
    return files


def is_notebook(f: str) -> bool:
    return f.startswith("notebooks/")


@pytest.fixture(scope="module")
def smoke_html(data_root) -> Path:
    from patchbook.pages.build import build, output_dir

    assert build("smoke") == 0, "jupyter-book build failed (warnings are errors, see the log above)"
    return output_dir("smoke") / "_build" / "html"


@pytest.mark.book
def test_smoke_book_builds(smoke_html):
    for f in toc_files():
        page = smoke_html / f"{f}.html"
        assert page.exists(), f"{page} missing"
        text = page.read_text()
        assert "Traceback" not in text, f"{f}: traceback in the page"
        if is_notebook(f):
            assert re.search(r"<img[^>]+src=", text), f"{f}: no figure"


@pytest.fixture(scope="module")
def server(smoke_html):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(smoke_html))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.mark.book
def test_pages_in_headless_chromium(server):
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed: `apt-get install chromium` (see README)")
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page()
        failed = []
        page.on("requestfailed", lambda r: failed.append(r.url) if r.url.startswith(server) else None)
        for f in toc_files():
            resp = page.goto(f"{server}/{f}.html", wait_until="load", timeout=60_000)
            assert resp is not None and resp.ok, f"{f}: HTTP {resp and resp.status}"
            main = page.locator("main").inner_text()
            assert len(main) > 200, f"{f}: page looks empty"
            outputs = page.locator(".cell_output").all_inner_texts()
            assert not any("Traceback" in o for o in outputs), f"{f}: error output in a cell"
            assert page.locator(".output.error, .output.traceback").count() == 0, f"{f}: error output"
            images = page.eval_on_selector_all(
                "main img", "els => els.map(e => [e.currentSrc, e.complete && e.naturalWidth > 0])")
            broken = [src for src, ok in images if not ok]
            assert not broken, f"{f}: images failed to load: {broken}"
            if is_notebook(f):
                assert images, f"{f}: no figure shown"
        browser.close()
        assert not failed, f"requests failed: {failed[:5]}"
