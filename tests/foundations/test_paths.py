"""Paths are resolved once, to absolute, and reach the notebook kernels so;
nothing is downloaded into the checkout; the README states the defaults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from patchbook import data, paths


def test_relative_variables_are_pinned_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATCHBOOK_DATA", "rel/data")
    monkeypatch.setenv("PATCHBOOK_CACHE", "../c")
    monkeypatch.setenv("PATCHBOOK_RESULTS", "~/r")
    assert paths.data_root() == tmp_path / "rel" / "data"
    pinned = paths.pin_environment()
    assert os.environ["PATCHBOOK_DATA"] == str(tmp_path / "rel" / "data")
    assert os.environ["PATCHBOOK_CACHE"] == str(tmp_path.parent / "c")
    assert os.environ["PATCHBOOK_RESULTS"] == str(Path.home() / "r")
    assert pinned["PATCHBOOK_DATA"] == os.environ["PATCHBOOK_DATA"]
    monkeypatch.chdir(tmp_path / "..")  # a later change of directory changes nothing
    assert paths.data_root() == tmp_path / "rel" / "data"
    assert paths.cache_root() == tmp_path.parent / "c"


def test_default_data_root_is_under_the_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("PATCHBOOK_DATA", raising=False)
    monkeypatch.setenv("PATCHBOOK_CACHE", str(tmp_path))
    assert paths.data_root() == tmp_path / "data"
    monkeypatch.delenv("PATCHBOOK_CACHE")
    assert paths.data_root() == Path.home() / ".cache" / "patchbook" / "data"
    assert paths.data_root("x").is_absolute()


def test_readme_states_the_real_defaults():
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Data, offline"):text.index("## Profiles and reruns")]
    assert "$PATCHBOOK_CACHE/data" in section
    assert "~/.cache/patchbook" in section


def test_child_processes_see_the_folders_of_the_first_process(tmp_path):
    """Kernels run in notebooks/: a relative variable set for the parent must
    name the same folder there."""
    (tmp_path / "notebooks").mkdir()
    child = "from patchbook import paths; print(paths.data_root()); print(paths.cache_root())"
    parent = ("import subprocess, sys; import patchbook.paths; "
              f"print(subprocess.run([sys.executable, '-c', {child!r}], cwd='notebooks', "
              "capture_output=True, text=True, check=True).stdout, end='')")
    env = {**os.environ, "PATCHBOOK_DATA": "data", "PATCHBOOK_CACHE": "cache"}
    out = subprocess.run([sys.executable, "-c", parent], cwd=tmp_path, env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    assert [Path(p).resolve() for p in out] == [(tmp_path / "data").resolve(), (tmp_path / "cache").resolve()]


def _fake_checkout(folder: Path) -> Path:
    (folder / "notebooks").mkdir(parents=True)
    for marker in ("_toc.yml", "pyproject.toml"):
        (folder / marker).write_text("")
    return folder


@pytest.mark.parametrize("variable", ["PATCHBOOK_DATA", "PATCHBOOK_CACHE"])
def test_nothing_is_downloaded_into_the_checkout(variable, tmp_path, monkeypatch):
    import torchvision

    clone = _fake_checkout(tmp_path / "clone")
    calls = []

    def fake_download(root, train, download):
        calls.append(root)
        (Path(root) / "MNIST" / "raw").mkdir(parents=True, exist_ok=True)

    monkeypatch.setattr(torchvision.datasets, "MNIST", fake_download)
    monkeypatch.delenv("PATCHBOOK_OFFLINE", raising=False)
    monkeypatch.delenv("PATCHBOOK_DATA", raising=False)
    monkeypatch.chdir(clone)
    monkeypatch.setenv(variable, "shared/data" if variable == "PATCHBOOK_DATA" else ".cache")
    with pytest.raises(data.DataNotFoundError, match="inside the patchbook checkout") as err:
        data.load_dataset("mnist", "train")
    assert "\n" in str(err.value) and "PATCHBOOK_DATA" in str(err.value)
    assert not calls
    assert not (clone / "shared").exists() and not (clone / ".cache").exists()


def test_downloads_outside_the_checkout_still_happen(tmp_path, monkeypatch):
    import torchvision

    calls = []
    monkeypatch.setattr(torchvision.datasets, "MNIST", lambda root, train, download: calls.append(root))
    monkeypatch.delenv("PATCHBOOK_OFFLINE", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(data.DataNotFoundError, match="not found"):
        data.load_dataset("mnist", "train", root=tmp_path / "elsewhere")
    assert calls == [str(tmp_path / "elsewhere")] * 2


def test_execute_hands_absolute_paths_to_the_kernel(tmp_path, monkeypatch):
    """What papermill gets: the kernel's environment and working directory."""
    import papermill

    from patchbook.pages import execute

    seen = {}

    def fake_execute(nb, out, parameters, cwd, **kw):
        seen.update({v: os.environ.get(v) for v in paths.VARIABLES}, cwd=cwd)

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("PATCHBOOK_DATA", os.path.relpath(tmp_path / "data", REPO))
    monkeypatch.setenv("PATCHBOOK_CACHE", os.path.relpath(tmp_path / "cache", REPO))
    execute.execute("data-overview", "smoke", output=os.path.relpath(tmp_path / "out", REPO))
    assert Path(seen["cwd"]) == REPO / "notebooks"
    assert seen["PATCHBOOK_DATA"] == str(tmp_path / "data")
    assert seen["PATCHBOOK_CACHE"] == str(tmp_path / "cache")
    assert seen["PATCHBOOK_RESULTS"] == str(tmp_path / "out")


@pytest.mark.notebook
def test_relative_data_root_works_in_a_real_kernel(data_root, tmp_path, monkeypatch):
    """The probe of the issue: a relative PATCHBOOK_DATA (and PATCHBOOK_CACHE)
    from the checkout's root, the kernel running in notebooks/."""
    from patchbook.pages import execute

    monkeypatch.chdir(REPO)
    monkeypatch.setenv("PATCHBOOK_DATA", os.path.relpath(data_root, REPO))
    monkeypatch.setenv("PATCHBOOK_CACHE", os.path.relpath(paths.cache_root(), REPO))
    out = execute.execute("data-overview", "smoke", output=tmp_path, timeout=600)
    cells = json.loads(out.read_text())["cells"]
    assert not [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert json.loads((tmp_path / "smoke" / "data-overview.json").read_text())["records"]
