"""Build the book at a profile, re-executing only the pages whose inputs changed.

jupyter-cache keys an executed notebook on its code cells only. :func:`build`
also keeps, for every page, the inputs it was last executed with
(:func:`page_inputs`) and re-executes a page when one of them changed:

- its code cells;
- its profile: the name and the values of ``profiles/<page>.py`` at it;
- the library modules it imports, transitively (:func:`patchbook.cache.dependencies`,
  with the packages holding them): each module's own source, so an edit of a
  style module re-executes the style pages and no other;
- the registry files of published values it or those modules quote by id;
- the data it reads: the data-root folders of the datasets its last execution
  loaded (the data layer records them) and, where its code calls their
  loaders, the paintings, photographs and weights.

A re-executed page starts its records afresh (its ``results/<profile>/<page>.json``
is removed first), so no record survives that the page no longer writes.

Each build writes a timing record, ``results/<profile>/build/timing.json``
(per page: seconds, whether this build executed it or reused the cache, and
why; the profile, the hardware, the date): the Sphinx extension
``book/_ext/patchbook_book.py`` fills it page by page (:func:`begin_timing`,
:func:`note_page`, :func:`finish_timing`), adds the rerun box to every page
(:func:`rerun_box`), and the results overview shows it.
"""

from __future__ import annotations

import ast
import datetime as _dt
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import yaml

from patchbook import cache
from patchbook.pages import profiles
from patchbook.pages.tables import duration
from patchbook.paths import data_root, repo_root, results_root
from patchbook.runtime import describe_hardware, hardware

try:  # jupyter-book's execution cache and notebook format: only a book build needs them
    import nbformat
    from jupyter_cache import get_cache
except ImportError:  # pragma: no cover
    get_cache = nbformat = None

STATE_FILE = ".patchbook-pages.json"
PLAN_ENV = "PATCHBOOK_BUILD_PLAN"

# Data-root folders of each dataset of :func:`patchbook.data.load` (its ``_LAYOUTS``).
DATASET_FOLDERS = {
    "mnist": ("MNIST",),
    "cifar10": ("cifar10-jpeg", "cifar-10-batches-py"),
    "tiny-imagenet-100": ("tiny-imagenet-100",),
}
# Data-root folders read by the loaders of images and weights.
LOADER_FOLDERS = {
    "load_painting": ("paintings",),
    "load_photo": ("photos",),
    "list_images": ("paintings", "photos"),
    "load_conv_weights": ("weights",),
}


# ------------------------------------------------------------------ places ----

def output_dir(profile: str, root: Path | None = None) -> Path:
    """The folder ``jupyter-book --path-output`` builds into: the repository
    for ``laptop`` (the book lands in ``_build/html``), else ``_build/<profile>``."""
    root = Path(root) if root is not None else _root()
    return root if profile == "laptop" else root / "_build" / profile


def build_dir(profile: str, root: Path | None = None) -> Path:
    """``<output_dir>/_build``: the HTML, the execution cache, the executed notebooks."""
    return output_dir(profile, root) / "_build"


def download_dir(profile: str, root: Path | None = None) -> Path:
    """Where pages put files the reader downloads (inside the book's source
    folder, as Sphinx requires)."""
    return build_dir(profile, root) / "downloads"


def timing_file(profile: str) -> Path:
    """The build timing record of ``profile``."""
    return results_root() / profile / "build" / "timing.json"


def _root() -> Path:
    root = repo_root()
    if root is None:
        raise SystemExit("run this inside a patchbook checkout")
    return root


# ------------------------------------------------------------------- pages ----

def toc_parts(root: Path | None = None) -> dict[str, str]:
    """``{docname: caption of its part}`` of every file of ``_toc.yml``, in
    the order of the book (the root page gets ``""``)."""
    root = Path(root) if root is not None else _root()
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    out = {toc["root"]: ""}
    for part in toc.get("parts", []):
        for chapter in part.get("chapters", []):
            out[chapter["file"]] = part.get("caption", "")
    for chapter in toc.get("chapters", []):
        out[chapter["file"]] = ""
    return out


def _front_matter(path: Path) -> dict[str, Any]:
    text = path.read_text()
    if not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    if end < 0:
        return {}
    return yaml.safe_load(text[3:end]) or {}


def notebook_pages(root: Path | None = None) -> dict[str, Path]:
    """``{docname: source}`` of the pages of the book that are notebooks
    (MyST Markdown with a ``kernelspec``), in the order of the book."""
    root = Path(root) if root is not None else _root()
    pages = {}
    for doc in toc_parts(root):
        path = root / f"{doc}.md"
        if path.exists() and "kernelspec" in _front_matter(path):
            pages[doc] = path
    return pages


def page_name(docname: str) -> str:
    """``notebooks/cifar10-table`` -> ``cifar10-table``: the name ``python -m
    patchbook run`` and the profiles know a page by."""
    return docname.rsplit("/", 1)[-1]


def always_executed(path: Path) -> bool:
    """Whether the page asks to be executed on every build (``mystnb:
    execution_mode: force``, as the results overview does)."""
    return (_front_matter(path).get("mystnb") or {}).get("execution_mode") == "force"


def code_cells(path: Path) -> list[str]:
    """The sources of the code cells of a MyST notebook."""
    import jupytext

    nb = jupytext.read(path)
    return [c.source for c in nb.cells if c.cell_type == "code"]


# ------------------------------------------------------------ page inputs ----

def _sha(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()[:16]


def _python(source: str) -> str:
    """A cell's source with IPython magics and shell escapes blanked out."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def notebook_imports(sources: Iterable[str]) -> set[str]:
    """The patchbook modules (dotted, relative to ``patchbook``; ``""`` the
    package itself) that code cells import."""
    graph = cache.import_graph()
    found: set[str] = set()
    for source in sources:
        try:
            tree = ast.parse(_python(source))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == "patchbook" or alias.name.startswith("patchbook."):
                        found.add(alias.name[len("patchbook."):] if "." in alias.name else "")
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                if node.module != "patchbook" and not node.module.startswith("patchbook."):
                    continue
                base = node.module[len("patchbook."):] if node.module != "patchbook" else ""
                for alias in node.names:  # ``from patchbook.pkg import module``, or a name of ``base``
                    sub = f"{base}.{alias.name}" if base else alias.name
                    found.add(sub if sub in graph else base)
    return found


def _parents(module: str) -> list[str]:
    parts = module.split(".") if module else []
    return [".".join(parts[:i]) for i in range(len(parts))]


def module_closure(modules: Iterable[str]) -> list[str]:
    """``modules``, every patchbook module they import, transitively, and the
    packages holding them (whose ``__init__`` Python runs first); sorted.
    Names that are no module of the package are dropped."""
    graph = cache.import_graph()
    todo = {m for m in modules if m in graph}
    seen: set[str] = set()
    while todo - seen:
        new = cache.dependencies(*(todo - seen))
        seen.update(new)
        todo = seen | {p for m in seen for p in _parents(m) if p in graph}
    return sorted(seen)


def source_file(module: str) -> Path:
    """The source file of a patchbook module: ``<name>/__init__.py`` for a
    package, else ``<name>.py`` (a data folder beside a module, such as
    ``pages/published/``, does not hide the module)."""
    path = cache._module_file(module)
    return path if path.exists() else path.parent.with_suffix(".py")


def module_hashes(modules: Iterable[str]) -> dict[str, str]:
    """``{module: hash of its own source file}``."""
    return {m: _sha(source_file(m).read_bytes()) for m in modules}


def registry_files() -> dict[str, Path]:
    """``{home page: its registry file}`` of the published values."""
    folder = resources.files("patchbook.pages").joinpath("published")
    if not folder.is_dir():
        return {}
    return {f.name[:-5]: Path(str(f)) for f in folder.iterdir() if f.name.endswith(".yaml")}


def quoted_registry(page: str, texts: Iterable[str]) -> list[str]:
    """The registry files (home pages) whose ids ``"<home>/<key>"`` appear in
    ``texts``, and the page's own."""
    text = "\n".join(texts)
    homes = registry_files()
    return sorted(h for h in homes if h == page or f"{h}/" in text)


def data_folders(records: list[dict[str, Any]], texts: Iterable[str]) -> list[str]:
    """The data-root folders a page reads: those of the datasets its records
    say it loaded (``record["data"]``: ``{"<dataset>/<split>": fingerprint}``),
    and those of the image and weight loaders its code calls. A dataset
    ``imagefolder:<path>`` is read from ``<path>``."""
    folders: set[str] = set()
    for rec in records:
        for key in rec.get("data") or {}:
            name = key.rsplit("/", 1)[0]
            if name.startswith("imagefolder:"):
                folders.add(name.split(":", 1)[1])
            else:
                folders.update(DATASET_FOLDERS.get(name, (name,)))
    text = "\n".join(texts)
    for loader, where in LOADER_FOLDERS.items():
        if re.search(rf"\b{loader}\s*\(", text):
            folders.update(where)
    return sorted(folders)


def folder_stamp(path: Path) -> str:
    """A hash of the names, sizes and modification times of every file under
    ``path`` (``"missing"`` if there is none): cheap (0.2 s for 60,000 files)
    and changed by any edit, addition or removal."""
    path = Path(path)
    if path.is_file():
        st = path.stat()
        return _sha(f"{st.st_size} {st.st_mtime_ns}")
    if not path.is_dir():
        return "missing"
    h = hashlib.sha256()
    for folder, dirs, files in os.walk(path):
        dirs.sort()
        rel = os.path.relpath(folder, path)
        for f in sorted(files):
            st = os.stat(os.path.join(folder, f))
            h.update(f"{rel}/{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def page_inputs(path: Path, profile: str, records: list[dict[str, Any]] | None = None,
                data: Path | None = None) -> dict[str, Any]:
    """What an execution of the notebook at ``path`` depends on (see the
    module docstring): ``{"code", "profile", "modules", "registry", "data"}``,
    each a hash or a mapping ``{name: hash}``. ``records`` are those of the
    page's last execution (for the datasets it loaded); ``data`` the data root."""
    path = Path(path)
    name = page_name(path.stem)
    cells = code_cells(path)
    modules = module_closure(notebook_imports(cells))
    texts = cells + [source_file(m).read_text() for m in modules if m != "data"]
    values = profiles.table(name).get(profile) if name in profiles.notebooks() else None
    root = Path(data) if data is not None else data_root()
    homes = registry_files()
    return {
        "code": _sha("\0".join(cells)),
        "profile": {"name": profile, "values": None if values is None else cache.stable_hash(values)},
        "modules": module_hashes(modules),
        "registry": {h: _sha(homes[h].read_bytes()) for h in quoted_registry(name, texts)},
        "data": {f: folder_stamp(root / f) for f in data_folders(records or [], texts)},
    }


def changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Why a page whose last execution had inputs ``old`` must re-run with
    ``new``, in words (empty when nothing changed)."""
    why = []
    if old.get("code") != new.get("code"):
        why.append("its code changed")
    if old.get("profile") != new.get("profile"):
        why.append("its profile changed")
    for key, what in (("modules", "library"), ("registry", "published values"), ("data", "data")):
        a, b = old.get(key) or {}, new.get(key) or {}
        changed = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        if changed:
            why.append(f"{what} changed: {', '.join(changed) if key != 'modules' else _modules(changed)}")
    return why


def _modules(names: list[str]) -> str:
    return ", ".join(f"patchbook.{m}" if m else "patchbook" for m in names)


def plan(pages: dict[str, Path], inputs: dict[str, dict[str, Any]], state: dict[str, Any],
         cached: set[str], records_exist: dict[str, bool]) -> dict[str, list[str]]:
    """``{docname: reasons}`` of the pages to re-execute (reasons empty: reuse
    the cache). ``state`` holds each page's inputs at its last execution and
    whether it wrote records (``{"inputs", "records"}``); ``cached`` the
    sources jupyter-cache holds an execution of; ``records_exist`` whether
    each page's records file is there now."""
    out = {}
    for doc, path in pages.items():
        last = state.get(doc)
        if always_executed(path):
            why = ["executed on every build (execution_mode: force)"]
        elif last is None:
            why = ["no earlier execution at this profile"]
        else:
            why = changes(last["inputs"], inputs[doc])
            if not why and str(Path(path).resolve()) not in cached:
                why = ["no cached execution"]
            if not why and last.get("records") and not records_exist.get(doc):
                why = ["its records are missing"]
        out[doc] = why
    return out


# ----------------------------------------------------------------- records ----

def records_file(docname: str, profile: str) -> Path:
    return results_root() / profile / f"{page_name(docname)}.json"


def load_records(docname: str, profile: str) -> list[dict[str, Any]]:
    """The records a page wrote at ``profile`` (empty if none, or unreadable)."""
    try:
        return json.loads(records_file(docname, profile).read_text()).get("records", [])
    except (OSError, ValueError):
        return []


def clear_records(profile: str, rerun: Iterable[str], pages: Iterable[str]) -> list[Path]:
    """Remove the records of the pages that will re-run (``rerun``, docnames)
    and, except at ``paper`` (whose records are committed runs), of notebooks
    that are no page of the book; returns the files removed. (Written here
    until :mod:`patchbook.pages.results` has such a helper.)"""
    folder = results_root() / profile
    names = {page_name(d) for d in pages}
    doomed = {records_file(d, profile) for d in rerun}
    if profile != "paper" and folder.is_dir():
        doomed |= {p for p in folder.glob("*.json") if p.stem not in names}
    removed = []
    for p in sorted(doomed):
        if p.exists():
            p.unlink()
            removed.append(p)
    return removed


# ------------------------------------------------------------ jupyter-cache ----

def cached_sources(cache_dir: Path) -> set[str]:
    """The notebook sources jupyter-cache at ``cache_dir`` holds an execution of."""
    if not Path(cache_dir).exists():
        return set()
    return {str(Path(r.uri).resolve()) for r in get_cache(str(cache_dir)).list_cache_records()}


def forget(cache_dir: Path, sources: Iterable[Path]) -> int:
    """Drop jupyter-cache's executions of ``sources``, so that the build
    executes them again; returns how many were dropped."""
    if not Path(cache_dir).exists():
        return 0
    wanted = {str(Path(s).resolve()) for s in sources}
    jc = get_cache(str(cache_dir))
    doomed = [r.pk for r in jc.list_cache_records() if str(Path(r.uri).resolve()) in wanted]
    for pk in doomed:
        jc.remove_cache(pk)
    return len(doomed)


# ------------------------------------------------------------------ timing ----

def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return default


def _write_json(path: Path, payload: Any) -> None:
    cache.atomic_write(Path(path), lambda tmp: tmp.write_text(json.dumps(payload, indent=1)))


def load_timing(profile: str) -> dict[str, Any] | None:
    """The last build timing record of ``profile``, or ``None``."""
    return _read_json(timing_file(profile), None)


def begin_timing(profile: str, reasons: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """Start this build's timing record. Pages keep their entry from the last
    record until this build reads them (:func:`note_page`); ``reasons`` is
    :func:`plan`'s answer when the build was planned by :func:`build`."""
    last = load_timing(profile) or {}
    record = {"profile": profile, "hardware": hardware(), "machine": describe_hardware(),
              "started": _now(), "started_unix": time.time(), "finished": None, "seconds": None,
              "succeeded": None, "load_average_start": list(os.getloadavg()),
              "planned": reasons, "pages": {}, "previous": last.get("pages", {})}
    _write_json(timing_file(profile), record)
    return record


def cached_record(cache_dir: Path, source: Path, mtime: float):
    """jupyter-cache's record of the execution of ``source`` that myst-nb
    reused, recognised by ``exec_data["mtime"]`` (for a reused execution,
    the record's creation time, stored naive in UTC, read as local time);
    ``None`` if there is none."""
    if not Path(cache_dir).exists():
        return None
    wanted = str(Path(source).resolve())
    for r in get_cache(str(cache_dir)).list_cache_records():
        if str(Path(r.uri).resolve()) == wanted and r.created.tzinfo is None \
                and abs(r.created.timestamp() - mtime) < 1e-3:
            return r
    return None


def execution_of(cache_dir: Path, source: Path, exec_data: dict[str, Any],
                 started: float) -> tuple[bool, _dt.datetime]:
    """Whether this build (started at unix time ``started``) executed the
    notebook ``source`` or reused jupyter-cache's execution of it, and when
    that execution was made (UTC). Looks the record up (:func:`cached_record`)
    so that the answer holds in any time zone."""
    mtime = float(exec_data.get("mtime") or 0)
    if not exec_data.get("succeeded"):  # a failed execution is never cached
        return True, _dt.datetime.now(_dt.timezone.utc)
    record = cached_record(cache_dir, source, mtime)
    if record is not None:
        made = record.created.replace(tzinfo=_dt.timezone.utc)
        return made.timestamp() >= started, made
    return mtime >= started, _dt.datetime.fromtimestamp(mtime, _dt.timezone.utc)


def write_cached_notebook(cache_dir: Path, path: Path) -> bool:
    """Merge into the notebook at ``path`` (the one myst-nb writes beside the
    build, without outputs when it reused an execution) the outputs that
    jupyter-cache holds for it; returns whether it held them."""
    nb = nbformat.read(str(path), as_version=4)
    try:
        _, merged = get_cache(str(cache_dir)).merge_match_into_notebook(nb)
    except KeyError:
        return False
    nbformat.write(merged, str(path))
    return True


def note_page(profile: str, docname: str, exec_data: dict[str, Any], executed: bool,
              executed_at: _dt.datetime) -> dict[str, Any]:
    """Add a page to this build's timing record and return its entry:
    ``seconds`` of its last execution (myst-nb's ``exec_data["runtime"]``),
    ``executed`` (by this build) or not (its execution was reused from the
    cache), ``executed_at``, the hardware and load average of that execution
    and, when this build executed it, why."""
    record = load_timing(profile) or begin_timing(profile)
    previous = (record.get("previous") or {}).get(docname) or {}
    entry = {
        "seconds": exec_data.get("runtime"),
        "executed": executed,
        "succeeded": bool(exec_data.get("succeeded")),
        "error": exec_data.get("error"),
        "executed_at": executed_at.isoformat(timespec="seconds"),
        "reasons": ((record.get("planned") or {}).get(docname) or []) if executed else [],
    }
    if executed:
        entry.update(hardware=record["hardware"], machine=record["machine"], load_average=os.getloadavg()[1])
    else:  # the cached execution: where and how loaded, as the build that made it recorded
        entry.update({k: previous.get(k) for k in ("hardware", "machine", "load_average")})
        if entry["seconds"] is None:
            entry["seconds"] = previous.get("seconds")
    record["pages"][docname] = entry
    _write_json(timing_file(profile), record)
    return entry


def finish_timing(profile: str, succeeded: bool) -> dict[str, Any] | None:
    """Close this build's timing record: finish time, wall seconds, outcome."""
    record = load_timing(profile)
    if record is None:
        return None
    record.update(finished=_now(), seconds=time.time() - float(record["started_unix"]), succeeded=succeeded,
                  load_average_end=list(os.getloadavg()))
    record.pop("previous", None)
    _write_json(timing_file(profile), record)
    return record


# -------------------------------------------------------------- rerun box ----

def rerun_commands(page: str) -> list[str]:
    """The commands that execute ``page`` at each profile."""
    return [f"python -m patchbook run {page} --profile {p}" for p in profiles.PROFILE_NAMES]


def _entry_of(profile: str, docname: str) -> dict[str, Any] | None:
    record = load_timing(profile) or {}
    entry = (record.get("pages") or {}).get(docname) or (record.get("previous") or {}).get(docname)
    return entry if entry and entry.get("seconds") is not None and entry.get("succeeded", True) else None


def rerun_box(docname: str, profile: str) -> dict[str, Any]:
    """What the rerun box of a page says, as ``{"page", "commands", "times",
    "this_build"}``; ``times`` and ``this_build`` are lists of ``(kind,
    text)`` pieces of a sentence, ``kind`` ``"text"`` or ``"literal"``:
    the page's measured time at each profile (from the timing records of the
    builds found here, with the machine where it differs from this build's),
    and how this build got the page: executed (when, how long, the load) or
    reused from the cache."""
    page = page_name(docname)
    here = load_timing(profile) or {}
    machine = here.get("machine") or describe_hardware()
    times: list[tuple[str, str]] = [("text", f"Measured on {machine}: ")]
    for i, p in enumerate(profiles.PROFILE_NAMES):
        entry = _entry_of(p, docname)
        times.append(("literal", p))
        if entry is None:
            times.append(("text", " not timed here yet"))
        else:
            other = entry.get("machine") and entry["machine"] != machine
            times.append(("text", f" {duration(entry['seconds'])}" + (f" (on {entry['machine']})" if other else "")))
        times.append(("text", ", " if i < len(profiles.PROFILE_NAMES) - 1 else "."))
    entry = (here.get("pages") or {}).get(docname)
    if not entry or entry.get("seconds") is None:
        this = [("text", "This build did not time this page at profile "), ("literal", profile), ("text", ".")]
    else:
        date = str(entry.get("executed_at", ""))[:10]
        this = [("text", "This build (profile "), ("literal", profile), ("text", ") ")]
        if not entry.get("succeeded", True):
            this.append(("text", f"failed to execute this page ({entry.get('error') or 'an error'}) "
                                 f"after {duration(entry['seconds'])}."))
        elif entry.get("executed"):
            load = entry.get("load_average")
            cores = (entry.get("hardware") or {}).get("cores") or os.cpu_count() or 1
            busy = ""
            if load is not None:
                busy = f", load average {load:.1f}"
                if load > cores:
                    busy += f" on {cores} cores (a shared machine: the time is an upper bound)"
            this.append(("text", f"executed this page on {date} in {duration(entry['seconds'])}{busy}."))
        else:
            this.append(("text", f"reused its execution of {date} ({duration(entry['seconds'])}) from the cache."))
    return {"page": page, "commands": rerun_commands(page), "times": times, "this_build": this}


# ------------------------------------------------------------------- build ----

def build(profile: str = "laptop", extra: list[str] | None = None, root: Path | None = None) -> int:
    """Run ``jupyter-book build`` at ``profile``, re-executing only the pages
    whose inputs changed; returns its exit code.

    The laptop book lands in ``_build/html``; other profiles in
    ``_build/<profile>/_build/html``, each with its own execution cache.
    """
    if profile not in profiles.PROFILE_NAMES:
        raise SystemExit(f"unknown profile {profile!r}; choose one of {profiles.PROFILE_NAMES}")
    root = Path(root) if root is not None else _root()
    bdir = build_dir(profile, root)
    jcache = bdir / ".jupyter_cache"
    bdir.mkdir(parents=True, exist_ok=True)
    state_path = bdir / STATE_FILE
    state = _read_json(state_path, {})
    if state.get("profile") != profile:
        state = {"profile": profile, "pages": {}}
    pages = notebook_pages(root)
    t0 = time.perf_counter()
    inputs = {d: page_inputs(p, profile, load_records(d, profile)) for d, p in pages.items()}
    reasons = plan(pages, inputs, state["pages"], cached_sources(jcache),
                   {d: records_file(d, profile).exists() for d in pages})
    rerun = [d for d, why in reasons.items() if why]
    for d in pages:
        print(f"  {d}: " + ("; ".join(reasons[d]) if reasons[d] else "unchanged, from the cache"), flush=True)
    print(f"{len(rerun)} of {len(pages)} pages to execute (planned in {time.perf_counter() - t0:.1f} s)",
          flush=True)
    clear_records(profile, rerun, pages)
    forget(jcache, [pages[d] for d in rerun])
    plan_file = bdir / ".patchbook-plan.json"
    _write_json(plan_file, reasons)
    env = dict(os.environ, PATCHBOOK_PROFILE=profile, **{PLAN_ENV: str(plan_file)})
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(root), "-W", "-n", "--keep-going",
           "--path-output", str(output_dir(profile, root)), "--all", *(extra or [])]
    print(" ".join(cmd), flush=True)
    rc = subprocess.call(cmd, env=env, cwd=root)
    timing = (load_timing(profile) or {}).get("pages", {})
    for d, path in pages.items():
        entry = timing.get(d)
        if entry and entry.get("succeeded"):
            state["pages"][d] = {"inputs": page_inputs(path, profile, load_records(d, profile)),
                                 "records": records_file(d, profile).exists()}
        else:  # failed, or not read: execute it next time
            state["pages"].pop(d, None)
    _write_json(state_path, state)
    surprise = [d for d, e in timing.items() if e.get("executed") and not reasons.get(d)]
    if surprise:
        print(f"warning: jupyter-cache re-executed pages the plan did not: {surprise}", flush=True)
    return rc
