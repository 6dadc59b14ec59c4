"""The results overview: one row per registry entry, the gap only where it
means something, grouped by part; the figure, the CSV and the timing table."""

from __future__ import annotations

import csv

import pytest
from markdown_it import MarkdownIt

from patchbook.pages import build, overview, results
from patchbook.pages.published import Published

BEST = Published("cifar10-table/sp-best", 82.5, "%", "best", "CIFAR-10, |D| = 2048, Q = 6, 80 epochs",
                 "thiry2021unreasonable", file="ablation_study/ablation_study_K.txt", line=3)
FINAL = Published("cifar10-table/sp-final", 82.0, "%", "final", "CIFAR-10, |D| = 2048, Q = 6, last epoch",
                  "thiry2021unreasonable", file="logs/a.log", line=9)
BOUND = Published("scattering-vs-convnets/mnist", 99.0, "%", "bound", "MNIST, scattering + SVM",
                  "bruna2013invariant", where="slide 7", relation=">")
PRINTED = Published("monet-comparisons/loss", 0.25, "", "printed", "Gram loss", "kerdreux2020interactive",
                    where="table 2")
UNQUOTED = Published("imagenet-table/top1", 88.0, "%", "printed", "ImageNet-1k", "thiry2021unreasonable",
                     where="table 3")
ENTRIES = [PRINTED, BOUND, BEST, FINAL, UNQUOTED]
PARTS = {"book/intro": "", "notebooks/scattering-vs-convnets": "Part 1: why invariance",
         "notebooks/cifar10-table": "Part 2: patch k-NN encoding",
         "notebooks/imagenet-table": "Part 2: patch k-NN encoding",
         "notebooks/monet-comparisons": "Part 3: style transfer with artists"}


@pytest.fixture
def records(tmp_results):
    results.record("cifar10-table", "top1 best", 80.0, profile="smoke", published=BEST, unit="%")
    results.record("cifar10-table", "top1 final", 79.0, profile="smoke", published=FINAL, unit="%")
    results.record("cifar10-table", "top1 final", 82.4, profile="paper", published=FINAL, unit="%")
    results.record("scattering-vs-convnets", "mnist", 98.7, profile="paper", published=BOUND, unit="%")
    results.record("monet-comparisons", "loss a", 0.3, profile="smoke", published=PRINTED)
    results.record("monet-comparisons", "loss b", 0.4, profile="smoke", published=PRINTED)
    results.record("monet-comparisons", "time", 12.0, profile="smoke", unit="s")
    results.record("dimensionality", "gone", 1.0, profile="smoke",
                   published=Published("dimensionality/old", 2.0, "", "printed", "s", "k", where="w"))
    results.record("ablations", "laptop only", 1.0, profile="laptop")
    return overview.collect("smoke")


def test_collect_reads_the_profile_and_committed_paper_runs(records):
    assert {(r["notebook"], r["profile"]) for r in records} == {
        ("cifar10-table", "smoke"), ("cifar10-table", "paper"), ("scattering-vs-convnets", "paper"),
        ("monet-comparisons", "smoke"), ("dimensionality", "smoke")}
    assert len(records) == 8


def test_collect_refuses_a_corrupt_results_file(records):
    path = results.results_file("cifar10-table", "smoke")
    path.write_text('{"records": [')                         # a truncated file: its rows would be lost
    with pytest.raises(results.ResultsError, match="not a valid results file"):
        overview.collect("smoke")


def test_one_claim_per_entry_in_book_order_with_measured_values(records):
    cs = overview.claims(records, ENTRIES, PARTS, "smoke")
    assert [c.entry.id for c in cs] == [BOUND.id, BEST.id, FINAL.id, UNQUOTED.id, PRINTED.id]
    by = {c.entry.id: c for c in cs}
    assert [c.part for c in cs] == ["Part 1: why invariance"] + ["Part 2: patch k-NN encoding"] * 3 + \
        ["Part 3: style transfer with artists"]
    assert by[BEST.id].profile == "smoke" and by[BEST.id].measured == 80.0
    assert by[FINAL.id].profile == "smoke" and by[FINAL.id].measured == 79.0  # the build's profile first
    assert by[BOUND.id].profile == "paper" and by[BOUND.id].measured == 98.7  # else committed paper runs
    assert by[UNQUOTED.id].records == [] and by[UNQUOTED.id].measured_text() == "not measured"
    assert by[PRINTED.id].measured is None and by[PRINTED.id].measured_text() == "0.3, 0.4"
    assert by[BEST.id].page == "notebooks/cifar10-table"
    assert overview.uncited(records, ENTRIES) == ["dimensionality/old"]


def test_gap_only_where_it_means_something(records):
    by = {c.entry.id: c for c in overview.claims(records, ENTRIES, PARTS, "smoke")}
    assert by[BEST.id].gap() is None and by[BEST.id].gap_text() == "scales differ"
    assert by[BOUND.id].gap() is None and by[BOUND.id].gap_text() == "a bound"
    assert by[PRINTED.id].gap_text() == "2 values"
    assert by[UNQUOTED.id].gap_text() == ""
    paper = {c.entry.id: c for c in overview.claims(records, ENTRIES, PARTS, "paper")}
    assert paper[FINAL.id].gap() == pytest.approx(82.4 - 82.0)
    assert paper[FINAL.id].gap_text() == "+0.4%"
    assert paper[BEST.id].records == []  # no paper run cites it: nothing is borrowed from smoke


def test_shared_setting_is_said_once():
    s = ["CIFAR-10 ablation, the base run (|D| = 2048) with K = 10", "CIFAR-10 ablation, the base run (|D| = 2048) with K = 100",
         "CIFAR-10 ablation, the base run (|D| = 2048) with Q = 4"]
    assert overview.shared_setting(s) == "CIFAR-10 ablation, the base run (|D| = 2048) with "
    assert overview.shared_setting(s[:1]) == ""
    assert overview.shared_setting(["same setting for best", "same setting for best"]) == ""  # rows not empty
    assert overview.shared_setting(["MNIST, a", "MNIST, b"]) == ""  # too short to be worth it


def test_tables_group_by_part_and_page_and_render_as_markdown(records):
    cs = overview.claims(records, ENTRIES, PARTS, "smoke")
    md = overview.tables(cs)
    parts = [line for line in md.splitlines() if line.startswith("**")]
    assert parts == ["**Part 1: why invariance**: 1 claim, 1 measured.",
                     "**Part 2: patch k-NN encoding**: 3 claims, 2 measured.",
                     "**Part 3: style transfer with artists**: 1 claim, 1 measured."]
    assert md.count(":::{container} overview-part") == 3
    pages = [line for line in md.splitlines() if line.startswith("{doc}")]
    assert pages == ["{doc}`scattering-vs-convnets </notebooks/scattering-vs-convnets>`: 1 claim",
                     "{doc}`cifar10-table </notebooks/cifar10-table>`: 2 claims; all in the setting "
                     "*CIFAR-10, \\|D\\| = 2048, Q = 6, …*",
                     "{doc}`imagenet-table </notebooks/imagenet-table>`: 1 claim",
                     "{doc}`monet-comparisons </notebooks/monet-comparisons>`: 1 claim"]
    html = MarkdownIt("commonmark").enable("table").render(md)
    assert html.count("<table>") == 4 and html.count("<tr>") == 4 + len(cs)
    assert "|D| = 2048" in html and "\\|" not in html  # an escaped pipe renders as a pipe
    row = next(line for line in md.splitlines() if line.startswith("| 80 epochs"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells == ["80 epochs", "82.5%", "best", "{cite:t}`thiry2021unreasonable`, `ablation_study_K.txt`:3",
                     "80% (`smoke`)", "scales differ"]
    assert "> 99%" in md and "slide 7" in md and "not measured" in md
    data = Published("dimensionality/q2", 7.1, "dimensions", "printed", "s", "thiry2021unreasonable",
                     file="data/k_nns_cifar10", where="Idim[0]")
    assert overview.source_text(data) == "{cite:t}`thiry2021unreasonable`, `k_nns_cifar10`, Idim[0]"
    assert overview.tables([]) == "The registry of published values holds no entry yet."


def test_figure_plots_one_point_per_measured_claim(records):
    cs = overview.claims(records, ENTRIES, PARTS, "smoke")
    fig = overview.figure(cs)
    ax = fig.axes[0]
    points = [tuple(o.get_offsets()[0]) for o in ax.collections if len(o.get_offsets())]
    assert sorted(points) == sorted([(99.0, 98.7), (82.5, 80.0), (82.0, 79.0)])  # "%" claims only
    assert len(fig.axes) == 1  # the printed loss has two values: not a point
    assert overview.figure([c for c in cs if c.measured is None]) is None


def test_csv_holds_every_record(records, tmp_path):
    path = overview.write_csv(records, tmp_path / "r.csv")
    rows = list(csv.DictReader(open(path)))
    assert len(rows) == len(records) and tuple(rows[0]) == overview.CSV_COLUMNS
    final_paper = next(r for r in rows if r["profile"] == "paper" and r["published_id"] == FINAL.id)
    assert float(final_paper["gap"]) == pytest.approx(0.4)
    bound = next(r for r in rows if r["published_id"] == BOUND.id)
    assert bound["gap"] == "" and bound["published_relation"] == ">"
    assert all(r["gap"] == "" for r in rows if r["profile"] == "smoke")
    assert overview.download(path, tmp_path, "the CSV") == "{download}`the CSV </r.csv>`"


def test_timing_table(tmp_results):
    assert "No build timing record" in overview.timing_table(None, PARTS)
    timing = {"profile": "smoke", "machine": "a CPU (2 cores)", "hardware": {"cores": 2}, "started": "2026-12-01T10:00:00+00:00",
              "load_average_start": [3.0, 2.0, 1.0], "pages": {
                  "notebooks/cifar10-table": {"seconds": 100.0, "executed": True, "succeeded": True,
                                              "reasons": ["its code changed"], "executed_at": "2026-12-01"},
                  "notebooks/scattering-vs-convnets": {"seconds": 20.0, "executed": False, "succeeded": True,
                                                       "reasons": [], "executed_at": "2026-11-30T09:00:00"},
                  "notebooks/monet-comparisons": {"seconds": 5.0, "executed": True, "succeeded": False,
                                                  "error": "CellExecutionError", "reasons": []}}}
    md = overview.timing_table(timing, PARTS)
    rows = [line for line in md.splitlines() if line.startswith("| {doc}")]
    assert [r.split("`")[1].split(" ")[0] for r in rows] == [
        "scattering-vs-convnets", "cifar10-table", "monet-comparisons"]  # the order of the book
    assert "cached (2026-11-30)" in rows[0] and "executed" in rows[1] and "its code changed" in rows[1]
    assert "failed (CellExecutionError)" in rows[2]
    assert "add up to 2.1 min" in md and "load average 3.0 on 2 cores: a shared machine" in md and ":::{container} compact-table" in md


def test_overview_load_reads_the_registry_and_timing(records, monkeypatch):
    monkeypatch.setattr(overview.published, "entries", lambda: ENTRIES)
    build.begin_timing("smoke")
    ov = overview.Overview.load("smoke")
    assert len(ov.claims) == len(ENTRIES) and ov.timing["profile"] == "smoke"
    assert any(c.part.startswith("Part 2") for c in ov.claims)
