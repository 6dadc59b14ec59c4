"""The results overview collects every record and computes gaps."""

from patchbook.pages import overview, results
from patchbook.pages.published import Published

PUB = Published("a/top1", 82.5, "%", "best", "a setting", "thiry2021unreasonable", file="logs/a.log", line=3)
BOUND = Published("b/top1", 86.7, "%", "bound", "another", "thiry2021unreasonable", where="slide", relation=">")


def test_overview_lists_every_record_with_gap(tmp_results):
    results.record("a", "top1", 80.0, profile="laptop", published=PUB, unit="%")
    results.record("a", "time", 12.0, profile="laptop", unit="s")
    results.record("b", "top1", 86.0, profile="paper", published=BOUND, unit="%")
    results.record("c", "top1", 1.0, profile="smoke")
    rows = overview.collect("laptop")
    assert {(r["notebook"], r["quantity"], r["profile"]) for r in rows} == {
        ("a", "top1", "laptop"), ("a", "time", "laptop"), ("b", "top1", "paper")}
    gaps = {(r["notebook"], r["quantity"]): overview.gap(r) for r in rows}
    assert abs(gaps[("a", "top1")] - (-2.5)) < 1e-12
    assert gaps[("a", "time")] is None
    assert gaps[("b", "top1")] is None  # a bound has no gap
    table = overview.markdown_table(rows)
    assert table.count("\n") == 2 + len(rows) - 1
    assert "82.5 % (best over epochs, `logs/a.log` line 3; thiry2021unreasonable)" in table and "-2.5" in table
    assert "> 86.7 %" in table
