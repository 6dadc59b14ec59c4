"""The book's Sphinx extension: a build timing record and a rerun box on every page.

- ``builder-inited``: starts the timing record of the build's profile
  (``$PATCHBOOK_PROFILE``), with the plan of :func:`patchbook.pages.build.build`
  when it ran the build.
- ``doctree-read`` (after myst-nb executed a page or took it from the cache,
  before Sphinx collects download links): adds the page's execution to the
  record and, to each page that has profiles, a box "Rerun this page" with
  the commands, its measured time and a download of the executed notebook.
- ``build-finished``: closes the record.

The logic is in :mod:`patchbook.pages.build`, where it is tested.
"""

from __future__ import annotations

import os
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx

from patchbook.pages import build, profiles


def _profile() -> str:
    return os.environ.get("PATCHBOOK_PROFILE", "laptop")


def _begin(app: Sphinx) -> None:
    plan_file = os.environ.get(build.PLAN_ENV)
    plan = build._read_json(Path(plan_file), None) if plan_file else None
    app.patchbook_started = build.begin_timing(_profile(), plan)["started_unix"]


def _exec_data(app: Sphinx, docname: str) -> dict | None:
    from myst_nb.sphinx_ import NbMetadataCollector

    return NbMetadataCollector.get_doc_data(app.env).get(docname, {}).get("exec_data")


def _inline(pieces: list[tuple[str, str]]) -> list[nodes.Node]:
    return [nodes.literal(t, t) if kind == "literal" else nodes.Text(t) for kind, t in pieces]


def _executed_notebook(app: Sphinx, docname: str) -> Path:
    """The executed notebook myst-nb writes beside the HTML build."""
    return Path(app.env.mystnb_config.output_folder).joinpath(*docname.split("/")).with_suffix(".ipynb")


def _box(app: Sphinx, docname: str) -> nodes.admonition:
    box = build.rerun_box(docname, _profile())
    node = nodes.admonition(classes=["rerun"])
    node += nodes.title("", "Rerun this page")
    commands = "\n".join(box["commands"])
    node += nodes.literal_block(commands, commands, language="bash")
    node += nodes.paragraph("", "", *_inline(box["times"]))
    executed = _executed_notebook(app, docname)
    link = addnodes.download_reference("", "", reftarget="/" + os.path.relpath(executed, app.srcdir),
                                       refdoc=docname)
    link += nodes.literal("", f"{box['page']}.ipynb", classes=["xref", "download"])
    node += nodes.paragraph("", "", *_inline(box["this_build"]), nodes.Text(" The executed notebook: "), link,
                            nodes.Text("."))
    return node


def _page(app: Sphinx, doctree: nodes.document) -> None:
    docname = app.env.docname
    exec_data = _exec_data(app, docname)
    if not exec_data:
        return
    source = Path(app.env.doc2path(docname))
    cache_dir = Path(app.env.mystnb_config.execution_cache_path)
    executed, at = build.execution_of(cache_dir, source, exec_data, getattr(app, "patchbook_started", 0.0))
    build.note_page(_profile(), docname, exec_data, executed, at)
    if not executed:  # myst-nb wrote the notebook without the cached outputs
        build.write_cached_notebook(cache_dir, _executed_notebook(app, docname))
    if build.page_name(docname) not in profiles.notebooks():
        return
    section = next(iter(doctree.findall(nodes.section)), doctree)
    section += _box(app, docname)


def _finish(app: Sphinx, exception: Exception | None) -> None:
    # With -W every warning fails the build; Sphinx sets statuscode only after this event.
    build.finish_timing(_profile(), exception is None and not getattr(app, "_warncount", 0))


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", _begin)
    app.connect("doctree-read", _page, priority=400)  # before Sphinx's download collector (500)
    app.connect("build-finished", _finish)
    return {"version": "1", "parallel_read_safe": False, "parallel_write_safe": True}
