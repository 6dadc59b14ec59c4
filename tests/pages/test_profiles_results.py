"""Profiles, results records and the disk cache."""

import json

import numpy as np
import pytest

from patchbook import cache
from patchbook.pages import profiles, results
from patchbook.pages.published import Published


def test_every_profile_module_is_complete():
    for nb in profiles.notebooks():
        table = profiles.table(nb)
        assert set(table) == set(profiles.PROFILE_NAMES), nb
        keys = set(table["laptop"])
        for p in profiles.PROFILE_NAMES:
            assert set(table[p]) == keys, f"{nb}: profile {p} has different parameters"


def test_every_notebook_has_profiles_and_one_parameters_cell():
    import jupytext

    from patchbook.pages import execute as notebooks

    for nb in notebooks.available():
        assert nb in profiles.notebooks(), f"notebooks/{nb}.md has no profiles module"
        cells = jupytext.read(notebooks.path_of(nb)).cells
        tagged = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{nb}: expected one cell tagged parameters, found {len(tagged)}"
        assert "profile" in tagged[0].source and "overrides" in tagged[0].source


def test_resolve_overrides_and_errors():
    p = profiles.resolve("data-overview", "smoke", {"seed": "3"})
    assert p.seed == 3 and p["profile"] == "smoke"
    with pytest.raises(profiles.ProfileError, match="laptop"):
        profiles.resolve("data-overview", "huge")
    with pytest.raises(profiles.ProfileError, match="n_show"):
        profiles.resolve("data-overview", "smoke", {"nshow": 3})
    with pytest.raises(profiles.ProfileError, match="expects a int"):
        profiles.resolve("data-overview", "smoke", {"seed": "three"})
    with pytest.raises(profiles.ProfileError, match="data-overview"):
        profiles.resolve("no-such-notebook", "smoke")


def test_record_upserts_with_metadata(tmp_results):
    pub = Published("nb/top1", 80.0, "%", "printed", "a setting", "thiry2021unreasonable", where="a slide")
    results.record("nb", "top1", np.float32(0.5), profile="smoke", params={"a": 1}, published=pub)
    with pytest.raises(TypeError, match="registry entry"):
        results.record("nb", "top1", 0.5, profile="smoke", published=0.8)
    results.record("nb", "top1", 0.6, profile="smoke")
    results.record("nb", "top5", 0.9, profile="smoke")
    payload = json.loads((tmp_results / "smoke" / "nb.json").read_text())
    recs = {r["quantity"]: r for r in payload["records"]}
    assert set(recs) == {"top1", "top5"}
    assert recs["top1"]["value"] == 0.6
    for key in ("profile", "params", "data", "version", "hardware", "date"):
        assert key in recs["top1"]


def test_memo_arrays_computes_once(tmp_cache):
    calls = []

    def compute():
        calls.append(1)
        return {"x": np.arange(3)}

    a = cache.memo_arrays("t", {"k": 1}, compute)
    b = cache.memo_arrays("t", {"k": 1}, compute)
    c = cache.memo_arrays("t", {"k": 2}, compute)
    assert len(calls) == 2
    assert np.array_equal(a["x"], b["x"]) and np.array_equal(c["x"], a["x"])


def test_corrupt_cache_entry_is_recomputed(tmp_cache):
    cache.memo_arrays("t", {"k": 1}, lambda: {"x": np.arange(3)})
    (path,) = (tmp_cache / "t").glob("*.npz")
    path.write_bytes(b"garbage")
    out = cache.memo_arrays("t", {"k": 1}, lambda: {"x": np.arange(4)})
    assert len(out["x"]) == 4


def test_code_version_has_source_hash():
    v = cache.code_version()
    assert v.startswith("0.") and "+" in v
