"""The disk cache: entries hold no code, folders are private, and a cache
that cannot be written degrades to computing."""

from __future__ import annotations

import stat
import warnings

import numpy as np
import pytest
import torch

from patchbook import cache


class _Payload:
    """Runs code when unpickled: creates ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def test_memo_torch_never_runs_a_planted_pickle(tmp_cache, tmp_path):
    marker = tmp_path / "ran"
    path = cache.cache_path("t", {"k": 1}, ".pt")
    path.parent.mkdir(parents=True)
    torch.save({"x": _Payload(marker)}, path)
    out = cache.memo_torch("t", {"k": 1}, lambda: {"x": torch.ones(2)})
    assert not marker.exists(), "a pickle planted in the cache ran"
    assert torch.equal(out["x"], torch.ones(2))
    assert torch.equal(torch.load(path, weights_only=True)["x"], torch.ones(2))  # replaced


def test_memo_torch_round_trips_what_its_callers_store(tmp_cache):
    """The shapes style.decoder and the scattering page store: state dicts,
    budgets of numbers, strings and None, histories of lists and dicts."""
    model = torch.nn.Linear(3, 2)
    value = {"state_dict": model.state_dict(),
             "budget": {"kind": "adain", "steps": 3, "lr": 1e-4, "style": {}, "x": None, "ok": True,
                        "errors": [0.5, 0.25], "eval_losses_before": {"content": 1.5}},
             "history": [{"epoch": 1, "loss": 0.3}], "acc": 0.75, "pair": (1, 2)}
    calls = []

    def compute():
        calls.append(1)
        return value

    cache.memo_torch("t", {"k": 1}, compute)
    again = cache.memo_torch("t", {"k": 1}, compute)
    assert len(calls) == 1
    assert torch.equal(again["state_dict"]["weight"], model.weight.detach())
    assert again["budget"] == value["budget"] and again["history"] == value["history"]
    assert again["pair"] == (1, 2)


def test_memo_torch_refuses_what_it_could_not_read_back(tmp_cache):
    with pytest.raises(TypeError, match="numpy"):
        cache.memo_torch("t", {"k": 2}, lambda: {"x": np.arange(3)})
    assert not list(tmp_cache.rglob("*.pt"))


def test_cache_folders_and_entries_are_private(tmp_cache):
    cache.memo_arrays("t", {"k": 1}, lambda: {"x": np.arange(3)})
    cache.memo_torch("u", {"k": 1}, lambda: {"x": torch.ones(1)})
    for folder in (tmp_cache, tmp_cache / "t", tmp_cache / "u"):
        assert stat.S_IMODE(folder.stat().st_mode) & 0o077 == 0, folder
    for entry in tmp_cache.rglob("*.*"):
        assert stat.S_IMODE(entry.stat().st_mode) & 0o077 == 0, entry


def test_unwritable_cache_computes_with_one_warning(tmp_path, monkeypatch):
    """A cache that cannot be written (here: its folder would be under a file,
    which fails even for root) warns once and computes every time."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("PATCHBOOK_CACHE", str(blocker / "cache"))
    calls = []

    def compute():
        calls.append(1)
        return {"x": np.arange(3)}

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            assert np.array_equal(cache.memo_arrays("t", {"k": 1}, compute)["x"], np.arange(3))
        assert torch.equal(cache.memo_torch("t", {"k": 1}, lambda: {"x": torch.ones(1)})["x"], torch.ones(1))
    msgs = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(calls) == 2
    assert len(msgs) == 1 and "not writable" in msgs[0] and "without caching" in msgs[0]


# Files still loading pickles from writable folders, being rewritten in other
# branches (issue 18): remove an entry when its file is fixed.
PENDING: set[str] = set()


def test_nothing_in_src_deserialises_code():
    import re
    from pathlib import Path

    package = Path(cache.__file__).parent
    found = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).as_posix()
        if rel in PENDING:
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if (re.search(r"weights_only\s*=\s*False|\bpickle\.loads?\(|allow_pickle\s*=\s*True", code)
                    or ("torch.load(" in code and "weights_only=True" not in code)):
                found.append(f"{rel}:{i}: {line.strip()}")
    assert not found
