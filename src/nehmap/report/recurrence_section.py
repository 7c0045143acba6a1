"""The report's H3 section: pre-operative NEH against the recurrence (Figure 4, Tables 6-7).

It opens with the primary test (distance-matched chance, see :mod:`nehmap.report.h3`),
then Figure 4 (the warped pNEH on the recurrence scan), Table 6 (the spatial metrics),
Figure 4b (their ratios to chance) and Table 7 (the paper's permutation tests).
"""

from __future__ import annotations

import pandas as pd

from nehmap.report import examples, figures, h3, overlays, paper, text
from nehmap.report.context import ReportContext, figure_or_note, table_or_note
from nehmap.report.html import (
    figure,
    html_table,
    note,
    paragraph,
    section,
    source_line,
    what_this_shows,
)

__all__ = ["TABLE6_LABELS", "TABLE7_LABELS", "recurrence_section"]


TABLE7_LABELS = {
    "p_value": "one-sided p",
    "p_greater": "one-sided p (mean > chance)",
    "p_less": "one-sided p (mean < chance)",
    "p_two_sided": "two-sided p",
    "alternative": "direction",
}


def _recurrence_figure(ctx: ReportContext) -> str:
    files = examples.find_pneh_files(ctx.work_dir)
    cases = ctx.inputs.table("recurrence_cases")
    included = None if cases is None else paper.included_rows(cases)
    subject, by_metric = examples.pick_recurrence_subject(sorted(files), included)
    maps = None
    if subject is not None:
        scan_id = examples.recurrence_scan_ids(cases).get(subject)
        model = ctx.config.recurrence.recurrence_model
        maps = examples.load_recurrence_maps(ctx.work_dir, subject, files[subject], model, scan_id)
    if maps is None:
        return note(
            "Figure 4 is left out: no warped pre-operative NEH with a matching recurrence "
            "segmentation was found under work/recurrence."
        )
    caption = text.caption_figure4(maps.subject, by_metric, maps.sources)
    out = figure(overlays.recurrence_figure(maps), caption, "Warped pNEH on recurrence ET")
    matched = h3.matched_controls_figure(maps)
    if matched is not None:
        out += figure(matched, h3.CAPTION_MATCHED, "pNEH, matched placements and recurrence ET")
    return out


def _primary_block(ctx: ReportContext) -> list[str]:
    """Which H3 test is primary and why, its calibration headline and its result."""
    tests = ctx.inputs.table("recurrence_tests")
    rows = h3.primary_rows(tests)
    parts = [paragraph(h3.WHY_PRIMARY, raw=True), paragraph(h3.calibration_headline(), raw=True)]
    if rows is None:
        parts.append(
            note(
                "The primary test is not in recurrence_tests.csv: the run used no "
                "distance-matched chance model (chance = matched)."
            )
        )
        return parts
    parts.append(paragraph(h3.primary_verdict(rows), raw=True))
    shown = rows[[c for c in h3.PRIMARY_COLUMNS if c in rows.columns]]
    parts.append(
        html_table(
            shown,
            source="recurrence_tests.csv",
            form="h3primary",
            caption="Primary H3 test: distance-matched chance rank, Holm across four metrics",
            labels=h3.PRIMARY_COLUMNS,
        )
    )
    return parts


TABLE6_LABELS = {
    "metric": "Metric",
    "paper_metric": "paper's name",
    "unit": "unit",
    "value": "value (mean ± SD)",
    "ratio": "ratio to chance (mean ± SD)",
    "n": "subjects",
}
SUMMARY_COLUMNS = {"metric", "scale", "mean", "sd", "n"}


def _table6(ctx: ReportContext, cases: pd.DataFrame | None) -> str:
    """Table 6 from ``recurrence_summary.csv`` when present, else from the per-case CSV."""
    summary = paper.paper_chance_rows(ctx.inputs.table("recurrence_summary"), keep_blank=True)
    if summary is not None and SUMMARY_COLUMNS <= set(summary.columns):
        table, source, form = (
            paper.table6_from_summary(summary),
            "recurrence_summary.csv",
            "table6s",
        )
    elif cases is not None and {"metric", "value"} <= set(cases.columns):
        table, source, form = paper.table6(cases), "recurrence_cases.csv", "table6"
    else:
        return note(f"Table 6 not available: {ctx.inputs.missing_note('recurrence_cases')}")
    html = html_table(
        table,
        source=source,
        form=form,
        caption="Table 6: spatial metrics of pNEH against the recurrence ET, mean ± SD over subjects",
        labels=TABLE6_LABELS,
        numeric=["value", "ratio", "n"],
    )
    return html + source_line([source])


def _table7(frame: pd.DataFrame) -> str:
    rows = paper.table7_rows(frame)
    return html_table(
        rows[paper.table7_columns(rows)],
        source="recurrence_tests.csv",
        form="table7",
        caption="Table 7: permutation tests of the spatial metrics (the paper's tests)",
        labels=TABLE7_LABELS,
    )


def _tests_note(tests: pd.DataFrame | None) -> str:
    kinds = (
        set() if tests is None or "test" not in tests.columns else set(tests["test"].astype(str))
    )
    if not {"paper", "chance_ratio", "chance_rank"} <= kinds:
        return ""
    return paragraph(text.RECURRENCE_TESTS, raw=True)


def _recurrence_tables(ctx: ReportContext) -> list[str]:
    cases = paper.paper_chance_rows(ctx.inputs.table("recurrence_cases"))
    parts = [_table6(ctx, cases)]
    if cases is not None and {"metric", "ratio"} <= set(cases.columns):
        parts.append(
            figure_or_note(
                figures.recurrence_ratio_figure(paper.included_rows(cases)),
                text.CAPTION_FIGURE4B,
                "Recurrence metric ratios",
                "Figure 4b is left out: no finite ratio to chance in recurrence_cases.csv.",
            )
        )
    tests = ctx.inputs.table("recurrence_tests")
    return [
        *parts,
        table_or_note(ctx, "recurrence_tests", _table7),
        _tests_note(tests),
        table_or_note(ctx, "recurrence_tests", _all_tests) if tests is not None else "",
    ]


ALL_TESTS_COLUMNS = (
    "chance_model", "metric", "test", "primary", "baseline", "alternative",
    "observed_mean", "observed_sd", "null_mean", "p_value", "p_two_sided", "p_adjusted",
    "n", "note",
)  # fmt: skip
"""Columns of recurrence_tests.csv printed in the report's "All H3 tests" table (the
others repeat these or hold the same value on every row); the CSV has them all."""


def _all_tests(frame: pd.DataFrame) -> str:
    """Every row of recurrence_tests.csv, with :data:`ALL_TESTS_COLUMNS` (those present)."""
    shown = [c for c in ALL_TESTS_COLUMNS if c in frame.columns]
    left_out = [c for c in frame.columns if c not in shown]
    caption = "All H3 tests (tables/recurrence_tests.csv"
    caption += f"; also there: {', '.join(left_out)})" if left_out else ")"
    return html_table(frame[shown], source="recurrence_tests.csv", form="columns", caption=caption)


def recurrence_section(ctx: ReportContext) -> str:
    """H3: Figure 4, Tables 6-7 and the ratio distributions."""
    parts = [
        what_this_shows(text.WHAT_RECURRENCE),
        *_primary_block(ctx),
        _recurrence_figure(ctx),
        *_recurrence_tables(ctx),
    ]
    title = "H3: pre-operative NEH vs recurrence (Tables 6-7, Figure 4)"
    return section("h3-recurrence", title, parts)
