"""The results overview collects every record and computes gaps."""

from patchbook.pages import overview, results


def test_overview_lists_every_record_with_gap(tmp_results):
    results.record("a", "top1", 80.0, profile="laptop", published=82.5, source="Paper", unit="%")
    results.record("a", "time", 12.0, profile="laptop", unit="s")
    results.record("b", "top1", 86.0, profile="paper", published=86.7, source="Paper", unit="%")
    results.record("c", "top1", 1.0, profile="smoke")
    rows = overview.collect("laptop")
    assert {(r["notebook"], r["quantity"], r["profile"]) for r in rows} == {
        ("a", "top1", "laptop"), ("a", "time", "laptop"), ("b", "top1", "paper")}
    gaps = {(r["notebook"], r["quantity"]): overview.gap(r) for r in rows}
    assert abs(gaps[("a", "top1")] - (-2.5)) < 1e-12
    assert gaps[("a", "time")] is None
    table = overview.markdown_table(rows)
    assert table.count("\n") == 2 + len(rows) - 1
    assert "82.5 % (Paper)" in table and "-2.5" in table
