"""The report's H3 section: primary test and why, calibration headline, matched placements."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from nehmap.report import h3
from nehmap.report.build import write_report
from nehmap.validate.recurrence_metrics import METRICS
from nehmap.validate.recurrence_tests import cohort_summary, cohort_tests
from test_report import _blob_labels, _config, _tables, _write_segment_case, save

CASES = ("BraTS2021_00001", "BraTS2021_00002", "BraTS2021_00003")


def _h3_tables(rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """Recurrence tables as nehmap writes them: matched and brain chance models."""
    rows = []
    for i in range(1, 8):
        for model in ("matched", "brain"):
            for spec in METRICS:
                value = rng.uniform(0.1, 0.6)
                ratio = rng.uniform(0.5, 2.0) if model == "matched" else rng.uniform(2, 4)
                rows.append(
                    {
                        "case": f"SUBJ-{i:02d}",
                        "recurrence_case": f"SUBJ-{i:02d}_2",
                        "metric": spec.name,
                        "paper_metric": spec.paper,
                        "unit": spec.unit,
                        "value": value,
                        "chance_expected": value / ratio,
                        "ratio": ratio,
                        "chance_rank": rng.uniform(0.6, 1.0),
                        "agreement": spec.agreement,
                        "chance_model": model,
                        "control_value": value * 0.8 if model == "matched" else np.nan,
                        "included": True,
                    }
                )
    cases = pd.DataFrame(rows)
    return {
        "recurrence_cases": cases,
        "recurrence_summary": cohort_summary(cases),
        "recurrence_tests": cohort_tests(cases),
    }


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("h3report")
    out, data = root / "out", root / "data"
    work = out / "work"
    for i, case in enumerate(CASES):
        _write_segment_case(work / "segment" / "perfusion", data, case, i - 1, t1c=True)
    labels = _blob_labels()
    folder = work / "recurrence" / "SUBJ-01"
    pneh = (np.roll(labels, 2, axis=1) == 3).astype(np.uint8)
    save(folder / "SUBJ-01_pneh.nii.gz", pneh)
    controls = np.zeros_like(pneh)
    controls[np.roll(pneh, 6, axis=0) > 0] = 1
    controls[np.roll(pneh, -6, axis=0) > 0] = 2
    save(folder / "SUBJ-01_matched-controls.nii.gz", controls)
    scan = work / "segment" / "recurrence" / "SUBJ-01_2"
    save(scan / "SUBJ-01_2_seg-unetrpp.nii.gz", labels)
    tables = {**_tables(np.random.default_rng(0)), **_h3_tables(np.random.default_rng(1))}
    (out / "tables").mkdir(parents=True)
    for name, frame in tables.items():
        frame.to_csv(out / "tables" / f"{name}.csv", index=False)
    config = _config(root, {"perfusion": {"path": "data"}, "recurrence": {"path": "rhuh"}})
    (out / "study.json").write_text(json.dumps({"study": config.name}, default=str))
    text = write_report(config, out, work).read_text(encoding="utf-8")
    return {"text": text, "tables": tables}


def _h3_text(html: str) -> str:
    start = html.index('id="h3-recurrence"')
    return html[start : html.index("<section", start + 10)]


def test_h3_section_names_the_primary_test_and_its_calibration(report):
    section = _h3_text(report["text"])
    assert "Primary H3 test." in section and "distance-matched" in section
    assert "as the paper" in section
    record = h3.calibration()
    assert record is not None and record["rows"]
    row = next(
        r
        for r in record["rows"]
        if (r["chance_model"], r["test"], r["metric"], r["scenario"], r["n"])
        == ("matched", "chance_rank", "any (Holm)", "H3 false (wall)", 24)
    )
    assert f"{100 * row['rate']:.1f} %" in section
    assert re.search(r"finds H3 in \d+\.\d %", section)
    # the primary rows, with Holm-adjusted p-values, straight from the tests table
    tests = report["tables"]["recurrence_tests"]
    primary = tests[tests["primary"]]
    assert len(primary) == 4
    assert "Holm-adjusted p" in section
    # the figure of pNEH, its matched placements and the recurrence
    assert 'alt="pNEH, matched placements and recurrence ET"' in section
    assert "Figure 4c" in section
    # the summary at a glance reports the primary test
    assert "primary test: distance-matched chance" in report["text"]


def test_table6_shows_the_papers_chance_ratios(report):
    section = _h3_text(report["text"])
    summary = report["tables"]["recurrence_summary"]
    brain = summary[(summary["chance_model"] == "brain") & (summary["scale"] == "ratio")]
    first = brain[brain["metric"] == "mean_edge_distance"].iloc[0]
    assert f"{first['mean']:.2f}" in section  # the brain ratios (2-4), not the matched ones


def test_calibration_headline_reads_the_record():
    record = {
        "benchmark": "bench",
        "rows": [
            {
                "chance_model": m,
                "test": t,
                "metric": "any (Holm)",
                "scenario": s,
                "n": 24,
                "rate": rate,
                "ci_low": rate - 0.01,
                "ci_high": rate + 0.01,
                "cohorts": 200,
            }
            for m, t, s, rate in (
                ("matched", "chance_rank", "H3 false (wall)", 0.045),
                ("matched", "chance_rank", "H3 false (away)", 0.0),
                ("matched", "chance_rank", "H3 true (90 %)", 0.935),
                ("brain", "paper", "H3 false (away)", 0.62),
            )
        ],
    }
    text = h3.calibration_headline(record)
    assert "rejects in 4.5 % (95 % CI 3.5-5.5 %)" in text
    assert "finds H3 in 93.5 %" in text and "rejects in 62.0 % of the cohorts" in text
    assert "200 simulated cohorts" in text
    assert "not found" in h3.calibration_headline({})


def test_all_h3_tests_table_keeps_every_row_and_names_the_columns_left_out(report):
    from nehmap.report.recurrence_section import ALL_TESTS_COLUMNS
    from test_report import parse

    csv = report["tables"]["recurrence_tests"]
    (table,) = [
        t
        for t in parse(report["text"]).tables
        if t["attrs"].get("data-source") == "recurrence_tests.csv"
        and t["attrs"].get("data-form") == "columns"
    ]
    assert table["columns"] == [c for c in ALL_TESTS_COLUMNS if c in csv.columns]
    assert len(table["rows"]) == len(csv)
    caption = re.search(r"All H3 tests \(tables/recurrence_tests\.csv; also there: ([^)]*)\)",
                        report["text"])  # fmt: skip
    left_out = [c for c in csv.columns if c not in ALL_TESTS_COLUMNS]
    assert caption is not None and caption.group(1).split(", ") == left_out
    # identifiers may break at their underscores, never inside a word
    assert "mean_<wbr>edge_<wbr>distance" in report["text"]


def test_primary_verdict_names_every_metric_sharing_the_smallest_p():
    """One metric with the smallest adjusted p is named alone; ties are all named."""
    one = pd.DataFrame(
        {"metric": ["dice", "mean_edge_distance"], "p_adjusted": [0.2, 0.01], "primary": True}
    )
    text = h3.primary_verdict(one)
    assert "supports H3" in text and "does not" not in text
    assert "p = 0.01" in text and "for mean_edge_distance." in text
    assert "dice" not in text
    tied = pd.DataFrame(
        {"metric": ["dice", "overlap", "edge"], "p_adjusted": [0.4, 0.4, 0.7], "primary": True}
    )
    text = h3.primary_verdict(tied)
    assert "does not support H3" in text
    assert "for dice and overlap." in text and "edge" not in text
    every = pd.DataFrame({"metric": ["dice", "edge"], "p_adjusted": [0.3, 0.3], "primary": True})
    assert "for every metric (dice and edge)." in h3.primary_verdict(every)
