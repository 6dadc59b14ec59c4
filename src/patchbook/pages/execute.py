"""Running the book's notebooks: find them, execute them with papermill.

Notebooks are MyST Markdown files (jupytext format) under ``notebooks/``.
Papermill cannot read Markdown, so :func:`execute` reads the file with
jupytext and hands the notebook object to papermill with two parameters,
``profile`` and ``overrides`` (validated first with
:func:`patchbook.pages.profiles.resolve`). Runs whose overrides change the
profile's parameters record into ``results/overrides/`` unless told otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from patchbook.pages import profiles
from patchbook.paths import absolute, pin_environment, repo_root, results_root


class NotebookNotFound(ValueError):
    pass


def notebook_dir() -> Path:
    root = repo_root()
    if root is None:
        raise NotebookNotFound("Not inside a patchbook checkout: no notebooks/ folder found.")
    return root / "notebooks"


def available() -> list[str]:
    """Names (file stems) of the notebooks under ``notebooks/``."""
    return sorted(p.stem for p in notebook_dir().glob("*.md"))


def path_of(name: str) -> Path:
    name = Path(name).stem if name.endswith(".md") else name
    path = notebook_dir() / f"{name}.md"
    if not path.exists():
        raise NotebookNotFound(f"Unknown notebook {name!r}; notebooks: {available()}")
    return path


def read(name: str):
    """The notebook as an ``nbformat`` node (via jupytext)."""
    import jupytext

    nb = jupytext.read(path_of(name))
    ks = nb.metadata.setdefault("kernelspec", {})
    ks.setdefault("name", "python3")
    ks.setdefault("display_name", "Python 3")
    ks["language"] = "python"
    return nb


def overrides_root() -> Path:
    """Where runs with parameter overrides record by default:
    ``<results>/overrides`` (git-ignored), never beside the book's records."""
    return results_root() / "overrides"


def _ignored(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / ".gitignore"
    if not marker.exists():
        marker.write_text("# runs with parameter overrides (patchbook run -p ...): not the book's records\n*\n")


def execute(name: str, profile: str = "laptop", overrides: dict[str, Any] | None = None,
            output: str | os.PathLike | None = None, timeout: int | None = None,
            progress: bool = False) -> Path:
    """Execute a notebook at ``profile`` and return the executed ``.ipynb``.

    Results go to ``<output>/<profile>/<name>.json`` and the executed notebook
    to ``<output>/<profile>/executed/<name>.ipynb``. ``output`` defaults to the
    repository's ``results/``, or to ``results/overrides/`` when ``overrides``
    change a parameter of the profile, so such runs never mix with the book's
    records (pass ``output=results_root()`` to record them there).

    The kernel runs in ``notebooks/``; the data, cache and results folders are
    handed to it as absolute paths (:func:`patchbook.paths.pin_environment`).
    """
    import papermill

    name = path_of(name).stem
    overrides = dict(overrides or {})
    params = profiles.resolve(name, profile, overrides)  # fails early and clearly
    for k in overrides:
        overrides[k] = params[k]
    pin_environment()
    if output is not None:
        out_root = absolute(output)
    elif dict(params) != dict(profiles.resolve(name, profile)):
        out_root = overrides_root()
        _ignored(out_root)
    else:
        out_root = results_root()
    out_nb = out_root / profile / "executed" / f"{name}.ipynb"
    out_nb.parent.mkdir(parents=True, exist_ok=True)
    env_before = os.environ.get("PATCHBOOK_RESULTS")
    os.environ["PATCHBOOK_RESULTS"] = str(out_root)
    try:
        papermill.execute_notebook(
            read(name), str(out_nb),
            parameters={"profile": profile, "overrides": overrides},
            cwd=str(notebook_dir()), kernel_name="python3", language="python",
            progress_bar=progress, execution_timeout=timeout,
        )
    finally:
        if env_before is None:
            os.environ.pop("PATCHBOOK_RESULTS", None)
        else:
            os.environ["PATCHBOOK_RESULTS"] = env_before
    return out_nb
