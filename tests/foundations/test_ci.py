"""In CI (``CI=true``) a test whose data, compiler, browser or weights are
missing fails; elsewhere it is skipped (the fixtures of tests/conftest.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from conftest import REPO

NEEDS = """
def test_data(data_root): pass
def test_compiler(cxx): pass
def test_browser(chromium): pass
def test_weights(vgg16_weights): pass
"""


@pytest.mark.parametrize("ci, outcome", [("true", "4 errors"), ("", "4 skipped")])
def test_missing_requirements_fail_in_ci_and_skip_elsewhere(ci, outcome, tmp_path):
    shutil.copy(REPO / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_needs.py").write_text(NEEDS)
    env = {k: v for k, v in os.environ.items() if k not in ("PATCHBOOK_DATA", "CI")}
    env.update(CI=ci, CXX="no-such-compiler-xyz", PATCHBOOK_CHROMIUM=str(tmp_path / "no-chromium"),
               PATCHBOOK_CACHE=str(tmp_path / "cache"), PATCHBOOK_OFFLINE="1", HOME=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                           str(tmp_path / "test_needs.py")], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert outcome in proc.stdout, proc.stdout[-2000:]
    if ci:
        assert "CI=true" in proc.stdout and proc.returncode == 1


def test_ci_script_sets_ci_and_fails_without_chromium():
    script = (REPO / ".ci" / "run").read_text()
    assert "export CI=true" in script
    assert "warning: could not install chromium" not in script
    assert script.count("exit 1") >= 2
