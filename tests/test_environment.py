"""The conda environment and pyproject.toml pin the same packages."""

import re
import tomllib

import yaml
from conftest import REPO


def _norm(req: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", req)
    assert m, req
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def test_environment_matches_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = dict(_norm(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"])
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    listed = dict(_norm(r) for r in pip if not r.startswith("-e"))
    assert listed == wanted, (
        f"environment.yml and pyproject.toml disagree:\n only in environment.yml: "
        f"{sorted(set(listed.items()) - set(wanted.items()))}\n only in pyproject.toml: "
        f"{sorted(set(wanted.items()) - set(listed.items()))}"
    )


def test_required_pins():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = dict(_norm(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"])
    assert reqs["torch"] == "==2.14.1"
    assert reqs["torchvision"] == "==0.29.1"
    assert reqs["kymatio"] == "==0.3.0"
    assert reqs["scipy"] == "<1.17"
    assert reqs["jupyter-book"] == "==1.0.4.post1"


def test_book_excludes_build_outputs():
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    excluded = config["exclude_patterns"]
    for folder in (".venv", "_build", "results"):
        assert folder in excluded
