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


# ------------------------------------------------- records: lock, strict JSON ----

def _record_many(results_dir: str, worker: int, n: int, start) -> None:
    """One of several processes recording into the same results file."""
    import os

    os.environ["PATCHBOOK_RESULTS"] = results_dir
    from patchbook.pages import results as res

    start.wait()
    for i in range(n):
        res.record("nb", f"worker {worker} quantity {i}", i, profile="smoke", params={"i": i})


def test_concurrent_records_lose_nothing(tmp_results):
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    n_workers, n = 4, 20
    start = ctx.Barrier(n_workers)
    procs = [ctx.Process(target=_record_many, args=(str(tmp_results), w, n, start)) for w in range(n_workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * n_workers
    got = {r["quantity"] for r in results.load("nb", "smoke")}
    assert got == {f"worker {w} quantity {i}" for w in range(n_workers) for i in range(n)}


def _strict(text: str):
    def refuse(name):
        raise ValueError(f"bare {name} in a results file")
    return json.loads(text, parse_constant=refuse)


def test_non_finite_numbers_are_written_as_null_and_flagged(tmp_results):
    nan, inf = float("nan"), float("inf")
    with pytest.warns(RuntimeWarning, match="non-finite"):
        rec = results.record("nb", "loss", np.float32(nan), profile="smoke", params={"lr": inf},
                             history=[1.0, nan, -inf])
    payload = _strict((tmp_results / "smoke" / "nb.json").read_text())
    (stored,) = payload["records"]
    assert stored["value"] is None and stored["params"]["lr"] is None and stored["history"] == [1.0, None, None]
    assert stored["non_finite"] == {"value": "nan", "params.lr": "inf", "history[1]": "nan", "history[2]": "-inf"}
    assert rec["non_finite"] == stored["non_finite"]
    results.record("nb", "top1", 0.5, profile="smoke")  # a finite record has no flag
    assert "non_finite" not in results.load("nb", "smoke")[-1]


@pytest.mark.parametrize("text, match", [
    ('{"notebook": "nb", "records": [', "Expecting value"),
    ('{"notebook": "nb", "records": [{"quantity": "q", "value": NaN}]}', "NaN"),
    ('[1, 2]', "'records' list"),
])
def test_a_corrupt_results_file_is_a_one_line_error_naming_it(tmp_results, text, match):
    path = tmp_results / "smoke" / "nb.json"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    for call in (lambda: results.load("nb", "smoke"), lambda: results.record("nb", "q", 1.0, profile="smoke")):
        with pytest.raises(results.ResultsError, match=match) as err:
            call()
        assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert path.read_text() == text  # never overwritten


def test_clear_starts_a_profile_afresh(tmp_results):
    for nb in ("a", "b"):
        results.record(nb, "q", 1.0, profile="smoke")
    results.record("a", "q", 1.0, profile="laptop")
    removed = results.clear("smoke")
    assert sorted(p.name for p in removed) == ["a.json", "b.json"]
    assert results.load("a", "smoke") == [] and results.load("b", "smoke") == []
    assert len(results.load("a", "laptop")) == 1
    results.record("a", "q", 1.0, profile="smoke")
    assert [p.name for p in results.clear("smoke", ["a", "missing"])] == ["a.json"]


# ------------------------------------------- where runs with overrides write ----

@pytest.fixture
def fake_papermill(monkeypatch):
    """papermill.execute_notebook replaced by a function noting where the
    kernel would record."""
    import os

    import papermill

    seen = {}

    def execute_notebook(nb, out, parameters, **kw):
        seen.update(results=os.environ["PATCHBOOK_RESULTS"], out=out, parameters=parameters)

    monkeypatch.setattr(papermill, "execute_notebook", execute_notebook)
    return seen


def test_runs_with_overrides_never_record_beside_the_book(tmp_results, fake_papermill):
    from patchbook.pages import execute

    out = execute.execute("data-overview", "smoke", {"seed": 3})
    assert fake_papermill["results"] == str(tmp_results / "overrides")
    assert out == tmp_results / "overrides" / "smoke" / "executed" / "data-overview.ipynb"
    assert (tmp_results / "overrides" / ".gitignore").read_text().strip().endswith("*")
    assert fake_papermill["parameters"] == {"profile": "smoke", "overrides": {"seed": 3}}


def test_runs_without_a_change_or_told_where_record_there(tmp_results, fake_papermill, tmp_path):
    from patchbook.pages import execute

    seed = profiles.resolve("data-overview", "smoke").seed
    execute.execute("data-overview", "smoke", {"seed": seed})  # the profile's own value
    assert fake_papermill["results"] == str(tmp_results)
    execute.execute("data-overview", "smoke")
    assert fake_papermill["results"] == str(tmp_results)
    execute.execute("data-overview", "smoke", {"seed": 3}, output=tmp_results)  # on purpose
    assert fake_papermill["results"] == str(tmp_results)
    execute.execute("data-overview", "smoke", {"seed": 3}, output=tmp_path / "elsewhere")
    assert fake_papermill["results"] == str(tmp_path / "elsewhere")
