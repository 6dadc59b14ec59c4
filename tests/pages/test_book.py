"""A smoke build of the whole book, then every page read in headless Chromium, as a reader would.

Each page must: load with no request off the book (math included: MathJax is
bundled), show its figures, hold no raw TeX after MathJax ran, no broken
escape ("\\|", "{cite}", an unrendered table), nothing wider than the main
column (code lines wrap, a wide table scrolls in its own box), and, for a
notebook, a rerun box whose executed notebook downloads. The results overview
fits a screen per part and offers its CSV.

Set ``PATCHBOOK_TEST_HTML`` to a built ``_build/html`` folder to read that
book instead of building one.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import threading
import urllib.request
from pathlib import Path

import pytest
import yaml
from conftest import REPO

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 800}
OVERVIEW = "summary/results-overview"

# Raw TeX left in the text of a page after MathJax ran.
TEX = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$\$|\\[A-Za-z]{2,}|\$[^$\s][^$\n]{0,80}\$")
# Markdown or MyST that was shown instead of rendered.
ESCAPES = re.compile(r"\\[|_*]|\{(cite|doc|ref|numref|eq|math|term|download|glue)(:[a-z]+)?\}|\|\s*-{3}")
# Markdown markup shown as text in prose (code excluded).
MARKUP = re.compile(r"`|\*\*")

# The text a reader sees in the main column. "prose": no code and no math at
# all (for raw TeX); "reader": prose and cell outputs (for broken escapes),
# without the code of cells and of code blocks in prose.
TEXT_JS = """(mode) => {
  const col = document.querySelector('article.bd-article') || document.querySelector('main');
  const skip = mode === 'prose'
    ? 'script, style, pre, code, .cell_input, mjx-container, mjx-assistive-mml'
    : 'script, style, .cell_input, mjx-container, mjx-assistive-mml, '
      + 'div.highlight:not(.cell_output *), code:not(.cell_output *)';
  const walker = document.createTreeWalker(col, NodeFilter.SHOW_TEXT);
  const out = [];
  while (walker.nextNode()) {
    const p = walker.currentNode.parentElement;
    if (p && !p.closest(skip)) out.push(walker.currentNode.nodeValue);
  }
  return out.join(' ');
}"""

# What sticks out of the main column: elements past its edges that no box
# scrolling inside the column holds, and code blocks that scroll sideways.
OVERFLOW_JS = """() => {
  const col = document.querySelector('article.bd-article') || document.querySelector('main');
  const box = col.getBoundingClientRect();
  const say = el => `<${el.tagName.toLowerCase()} class="${el.className}"> `
    + JSON.stringify((el.innerText || '').trim().slice(0, 60));
  const scroller = el => {
    for (let a = el.parentElement; a && a !== col; a = a.parentElement) {
      const s = getComputedStyle(a).overflowX;
      if (s === 'auto' || s === 'scroll') return a;
    }
    return null;
  };
  const bad = [];
  const doc = document.documentElement;
  if (doc.scrollWidth > doc.clientWidth + 2) bad.push(`the page scrolls sideways (${doc.scrollWidth} px)`);
  for (const el of col.querySelectorAll('*')) {
    if (el.closest('mjx-assistive-mml')) continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0 || getComputedStyle(el).position === 'fixed') continue;
    if (r.right <= box.right + 2 && r.left >= box.left - 2) continue;
    const s = scroller(el);
    if (s && s.getBoundingClientRect().right <= box.right + 2) continue;
    if (el.parentElement && bad.some(b => b.el === el.parentElement)) continue;
    bad.push({el, text: `${say(el)} is ${Math.round(r.right - box.right)} px wider than the column`});
  }
  for (const pre of col.querySelectorAll('pre')) {
    if (pre.clientWidth > 0 && pre.scrollWidth > pre.clientWidth + 2)
      bad.push(`a code line scrolls sideways: ${say(pre)}`);
  }
  return bad.map(b => typeof b === 'string' ? b : b.text).slice(0, 8);
}"""


def toc_files() -> list[str]:
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part.get("chapters", [])]
    return files


def is_notebook(f: str) -> bool:
    return f.startswith("notebooks/")


@pytest.fixture(scope="module")
def smoke_build(data_root) -> tuple[Path, int | None]:
    """The HTML folder of a smoke build and the build's exit code (``None``
    when ``PATCHBOOK_TEST_HTML`` names a book built earlier)."""
    if os.environ.get("PATCHBOOK_TEST_HTML"):
        return Path(os.environ["PATCHBOOK_TEST_HTML"]), None
    from patchbook.pages.build import build, build_dir

    rc = build("smoke")
    return build_dir("smoke") / "html", rc


@pytest.fixture(scope="module")
def smoke_html(smoke_build) -> Path:
    return smoke_build[0]


@pytest.mark.book
def test_smoke_book_builds(smoke_build):
    html, rc = smoke_build
    if rc is not None:
        from patchbook.pages.build import load_timing

        pages = (load_timing("smoke") or {}).get("pages", {})
        failed = sorted(d for d, e in pages.items() if not e.get("succeeded"))
        assert rc == 0, f"jupyter-book build failed (warnings are errors); pages that failed: {failed}"
    for f in toc_files():
        page = html / f"{f}.html"
        assert page.exists(), f"{page} missing"
        text = page.read_text()
        assert "Traceback" not in text, f"{f}: traceback in the page"
        if is_notebook(f):
            assert re.search(r"<img[^>]+src=", text), f"{f}: no figure"


@pytest.fixture(scope="module")
def server(smoke_html):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(smoke_html))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _browser_or_fail():
    """Playwright driving the system's Chromium (never a downloaded browser);
    skipped outside CI when either is missing, a failure in CI."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
        pytest.skip("Chromium is not installed: `apt-get install chromium` (see README)")
    try:
        import playwright.sync_api as playwright
    except ImportError:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("pip install playwright")
    return playwright


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read()


def check_page(page, server: str, f: str) -> list[str]:
    """What is wrong with the page ``f`` as a reader meets it (empty: nothing)."""
    problems = []
    resp = page.goto(f"{server}/{f}.html", wait_until="load", timeout=60_000)
    if resp is None or not resp.ok:
        return [f"HTTP {resp and resp.status}"]
    has_math = page.locator("article .math, article mjx-container").count() > 0
    typeset = page.evaluate("() => window.MathJax && MathJax.startup && MathJax.startup.promise"
                            " ? MathJax.startup.promise.then(() => true) : false")
    if has_math and not typeset:
        problems.append("the page has math but MathJax did not load")
    if page.locator("article mjx-merror").count():
        problems.append(f"MathJax errors: {page.locator('article mjx-merror').all_inner_texts()[:3]}")
    if len(page.locator("main").inner_text()) <= 200:
        problems.append("the page looks empty")
    outputs = page.locator(".cell_output").all_inner_texts()
    if any("Traceback" in o for o in outputs) or page.locator(".output.error, .output.traceback").count():
        problems.append("error output in a cell")
    images = page.eval_on_selector_all("main img", "els => els.map(e => [e.currentSrc, e.complete && e.naturalWidth > 0])")
    broken = [src for src, ok in images if not ok]
    if broken:
        problems.append(f"images failed to load: {broken}")
    if is_notebook(f) and not images:
        problems.append("no figure shown")
    prose = page.evaluate(TEXT_JS, "prose")
    tex = sorted({m.group(0) for m in TEX.finditer(prose)})
    if tex:
        problems.append(f"raw TeX in the text: {tex[:6]}")
    markup = sorted({prose[max(0, m.start() - 25):m.end() + 25] for m in MARKUP.finditer(prose)})
    if markup:
        problems.append(f"Markdown shown as text: {markup[:4]}")
    reader = page.evaluate(TEXT_JS, "reader")
    escapes = sorted({reader[max(0, m.start() - 25):m.end() + 25] for m in ESCAPES.finditer(reader)})
    if escapes:
        problems.append(f"broken escapes: {escapes[:4]}")
    problems += [f"overflow: {o}" for o in page.evaluate(OVERFLOW_JS)]
    if is_notebook(f):
        problems += check_rerun_box(page, server, f)
    if f == OVERVIEW:
        problems += check_overview(page, server)
    return problems


def check_rerun_box(page, server: str, f: str) -> list[str]:
    name = f.rsplit("/", 1)[-1]
    box = page.locator("div.admonition.rerun")
    if box.count() != 1:
        return [f"{box.count()} rerun boxes, expected 1"]
    text = box.inner_text()
    problems = [f"rerun box lacks `{c}`" for c in
                (f"python -m patchbook run {name} --profile {p}" for p in ("smoke", "laptop", "paper"))
                if c not in text]
    links = box.locator("a.download").evaluate_all("els => els.map(e => e.href)")
    if len(links) != 1 or not links[0].endswith(f"{name}.ipynb"):
        return problems + [f"rerun box: no download of {name}.ipynb ({links})"]
    nb = json.loads(_fetch(links[0]))
    if not any(c.get("outputs") for c in nb.get("cells", []) if c.get("cell_type") == "code"):
        problems.append("the downloaded notebook has no outputs: not the executed one")
    return problems


def check_overview(page, server: str) -> list[str]:
    problems = []
    links = page.locator("article a.download").evaluate_all("els => els.map(e => e.href)")
    csvs = [u for u in links if u.endswith(".csv")]
    if not csvs:
        problems.append("no CSV download of the records")
    else:
        header = _fetch(csvs[0]).decode().splitlines()[0]
        if not header.startswith("notebook,quantity,value"):
            problems.append(f"the CSV has an unexpected header: {header[:60]}")
    # Each part of the talk takes at most a screen: its box, or a table outside any box.
    heights = page.evaluate("""() => [...document.querySelectorAll('article .overview-part, article table')]
        .filter(e => e.matches('.overview-part') || !e.closest('.overview-part'))
        .map(e => Math.round(e.getBoundingClientRect().height))""")
    tall = [h for h in heights if h > VIEWPORT["height"]]
    if tall:
        problems.append(f"parts taller than a screen ({VIEWPORT['height']} px): {tall}")
    return problems


@pytest.mark.book
def test_pages_in_headless_chromium(server):
    playwright = _browser_or_fail()
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=VIEWPORT)
        failed, offsite = [], []
        page.on("requestfailed", lambda r: failed.append(r.url) if r.url.startswith(server) else None)
        page.on("request", lambda r: None if r.url.startswith((server, "data:", "blob:", "about:"))
                else offsite.append(r.url))
        problems = {}
        for f in toc_files():
            found = check_page(page, server, f)
            if found:
                problems[f] = found
        browser.close()
    report = "\n".join(f"{f}:\n  " + "\n  ".join(ps) for f, ps in problems.items())
    assert not problems, f"pages as a reader meets them:\n{report}"
    assert not offsite, f"requests off the book (it must read offline): {sorted(set(offsite))[:5]}"
    assert not failed, f"requests failed: {failed[:5]}"
