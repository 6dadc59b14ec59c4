"""Build the book at a profile, re-executing notebooks when the library changes.

jupyter-cache keys an executed notebook on its cell sources only, so a change
in ``src/`` would leave stale outputs. :func:`build` stores the library's
:func:`~patchbook.cache.code_version` and the profile beside the cache and
clears the cache when either differs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from patchbook.cache import code_version
from patchbook.pages.profiles import PROFILE_NAMES
from patchbook.paths import repo_root


def output_dir(profile: str) -> Path:
    root = repo_root()
    assert root is not None
    return root if profile == "laptop" else root / "_build" / profile


def build(profile: str = "laptop", extra: list[str] | None = None) -> int:
    """Run ``jupyter-book build`` at ``profile``; returns its exit code.

    The laptop book lands in ``_build/html``; other profiles in
    ``_build/<profile>/_build/html``, each with its own execution cache.
    """

    if profile not in PROFILE_NAMES:
        raise SystemExit(f"unknown profile {profile!r}; choose one of {PROFILE_NAMES}")
    root = repo_root()
    if root is None:
        raise SystemExit("run this inside a patchbook checkout")
    out = output_dir(profile)
    build_dir = out / "_build"
    cache = build_dir / ".jupyter_cache"
    key_file = build_dir / ".patchbook-key"
    key = f"{code_version()} {profile}"
    if not key_file.exists() or key_file.read_text().strip() != key:
        if cache.exists():
            print(f"library or profile changed ({key}): clearing {cache}", flush=True)
            shutil.rmtree(cache)
        build_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PATCHBOOK_PROFILE=profile)
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(root), "-W", "-n", "--keep-going",
           "--path-output", str(out), "--all", *(extra or [])]
    print(" ".join(cmd), flush=True)
    rc = subprocess.call(cmd, env=env, cwd=root)
    if rc == 0:
        key_file.write_text(key + "\n")
    return rc
