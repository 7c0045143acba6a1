"""The report's sections, each from the tables (and images) it needs.

Every section opens with a plain-language "what this shows" (:mod:`nehmap.report.text`),
then its figures and tables, each with the CSV it comes from. A section whose tables
are missing says so in a note instead of failing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from nehmap.report import examples, figures, h3, overlays, paper, text
from nehmap.report.formatting import format_mean_sd, format_p_phrase, is_missing, model_label
from nehmap.report.html import (
    bullet_list,
    esc,
    figure,
    heading,
    html_table,
    note,
    paragraph,
    section,
    source_line,
    what_this_shows,
)
from nehmap.report.inputs import StudyInputs
from nehmap.report.methods import config_html, methods_html, versions_html
from nehmap.report.sensitivity import vessel_sensitivity_html

if TYPE_CHECKING:
    from nehmap.study.config import StudyConfig


@dataclass
class ReportContext:
    """What every section may use.

    Attributes:
        config: the study configuration.
        inputs: the study's tables and record.
        models: the study's model names as they appear in file names and tables.
        n_examples: how many example cases Figure 1 shows.
    """

    config: StudyConfig
    inputs: StudyInputs
    models: list[str]
    n_examples: int = 3

    @property
    def work_dir(self) -> Path:
        """The study's work folder."""
        return self.inputs.work_dir


def _table_or_note(ctx: ReportContext, name: str, render: Callable[[pd.DataFrame], str]) -> str:
    """``render(table)`` and its source line, or a note saying why the table is missing."""
    frame = ctx.inputs.table(name)
    if frame is None:
        return note(f"Not available: {ctx.inputs.missing_note(name)}")
    return render(frame) + source_line([f"{name}.csv"])


def _csv_table(ctx: ReportContext, name: str, caption: str) -> str:
    """A table printed exactly as its CSV (same rows and columns)."""
    return _table_or_note(
        ctx, name, lambda frame: html_table(frame, source=f"{name}.csv", caption=caption)
    )


def _figure_or_note(uri: str | None, caption: str, alt: str, missing: str) -> str:
    return figure(uri, caption, alt) if uri else note(missing)


def _n_cases(frame: pd.DataFrame | None, column: str = "case") -> int:
    return 0 if frame is None or column not in frame.columns else int(frame[column].nunique())


# --------------------------------------------------------------------------- summary


def _failed_count(errors: pd.DataFrame | None, cohort: str) -> int:
    """Failed cases of a cohort: task keys ``<cohort>/<case>`` or stages naming the cohort."""
    if errors is None or "case" not in errors.columns:
        return 0
    hit = errors["case"].astype(str).str.startswith(f"{cohort}/")
    if "stage" in errors.columns:
        hit |= errors["stage"].astype(str).str.contains(cohort, regex=False)
    return int(errors.loc[hit, "case"].nunique())


def cohort_table(ctx: ReportContext) -> str:
    """Cases selected, excluded and failed per cohort."""
    sizes = ctx.inputs.cohort_sizes()
    excluded = ctx.inputs.table("excluded")
    errors = ctx.inputs.table("errors")
    rows = []
    for name, cohort in ctx.config.cohorts.items():
        n_excluded = 0
        if excluded is not None and "cohort" in excluded.columns:
            n_excluded = int((excluded["cohort"].astype(str) == name).sum())
        rows.append(
            {
                "cohort": name,
                "collection": cohort.path,
                "selected": sizes.get(name, np.nan),
                "excluded": n_excluded,
                "failed": _failed_count(errors, name),
            }
        )
    frame = pd.DataFrame(rows, columns=["cohort", "collection", "selected", "excluded", "failed"])
    return html_table(
        frame,
        source="study.json",
        form="summary",
        caption="Cohorts",
        labels={"selected": "cases selected", "excluded": "exclusions", "failed": "cases failed"},
        formats={"selected": lambda v: "–" if is_missing(v) else str(int(v))},
    )


ANALYSES = (
    ("Model agreement (Tables 1-2)", "agreement_cases"),
    ("ED vs NEH intensities (Tables 3-4)", "intensity_cases"),
    ("H1: rCBV per compartment (Figure 2, Table 5)", "rcbv_cases"),
    ("H2: rCBV in rims vs NEH (Figure 3)", "rims_cases"),
    ("H3: NEH vs recurrence (Tables 6-7, Figure 4)", "recurrence_cases"),
)


def analyses_table(ctx: ReportContext) -> str:
    """Cases (or subjects) analysed per analysis."""
    rows = []
    for title, name in ANALYSES:
        frame = ctx.inputs.table(name)
        count = "not run" if frame is None else str(_n_cases(frame))
        rows.append({"analysis": title, "cases": count})
    return html_table(
        pd.DataFrame(rows, columns=["analysis", "cases"]),
        source="tables",
        form="summary",
        caption="Cases analysed",
        numeric=["cases"],
        labels={"cases": "cases analysed"},
    )


def _glance_agreement(ctx: ReportContext) -> list[str]:
    summary = ctx.inputs.table("agreement_summary")
    if summary is None or not {"region", "metric", "mean", "sd"} <= set(summary.columns):
        return []
    parts = []
    for region in ("WT", "ET", "TC", "NEH"):
        row = summary[(summary["region"] == region) & (summary["metric"] == "dice")]
        if len(row):
            parts.append(f"{region} {format_mean_sd(row.iloc[0]['mean'], row.iloc[0]['sd'])}")
    if not parts:
        return []
    a = ctx.config.agreement
    return [
        f"<b>Agreement</b> ({esc(model_label(a.pred))} vs {esc(model_label(a.ref))}), "
        f"Dice: {esc('; '.join(parts))}."
    ]


def _glance_h1(ctx: ReportContext) -> list[str]:
    tests = ctx.inputs.table("rcbv_tests")
    if tests is None or not {"model", "test", "a", "b", "p_adjusted"} <= set(tests.columns):
        return []
    out = []
    for model in paper.ordered(tests["model"], ctx.models):
        sub = tests[tests["model"].astype(str) == model]
        order = sub[sub["test"] == "ordered_one_sided"]
        if order.empty:
            continue
        p = pd.to_numeric(order["p_adjusted"], errors="coerce")
        verdict = "supported" if bool((p < paper.ALPHA).all()) else "not supported"
        phrases = ", ".join(
            f"{esc(r['a'])} &gt; {esc(r['b'])} {esc(format_p_phrase(r['p_adjusted']))}"
            for _, r in order.iterrows()
        )
        out.append(
            f"<b>H1</b> ({esc(model_label(model))}): order ET &gt; NEH &gt; ED {verdict} "
            f"({phrases}; one-sided, Holm)."
        )
    return out


def _glance_h2(ctx: ReportContext) -> list[str]:
    tests = ctx.inputs.table("rims_tests")
    if tests is None or not {"test", "b", "p_adjusted"} <= set(tests.columns):
        return []
    rows = tests[tests["test"] == "paired_t_greater"]
    if rows.empty:
        return []
    phrases = ", ".join(
        f"vs {esc(str(r['b']).replace('_', ' '))} {esc(format_p_phrase(r['p_adjusted']))}"
        for _, r in rows.iterrows()
    )
    return [f"<b>H2</b>: NEH rCBV higher than the rims ({phrases}; one-sided, paired, Holm)."]


def _glance_h3(ctx: ReportContext) -> list[str]:
    tests = ctx.inputs.table("recurrence_tests")
    if tests is None or "metric" not in tests.columns:
        return []
    primary = h3.primary_rows(tests)
    if primary is not None:
        return [f"<b>H3</b> (primary test: distance-matched chance): {h3.primary_verdict(primary)}"]
    if "test" in tests.columns and (tests["test"].astype(str) == "chance_ratio").any():
        tests = tests[tests["test"].astype(str) == "chance_ratio"]
    if "p_value" in paper.one_sided_columns(tests):
        column, kind = "p_value", "one-sided"
    elif "p_two_sided" in tests.columns:
        column, kind = "p_two_sided", "two-sided"
    else:
        return []
    phrases = ", ".join(
        f"{esc(r['metric'])} {esc(format_p_phrase(r[column]))}" for _, r in tests.iterrows()
    )
    return [f"<b>H3</b>: pre-operative NEH vs recurrence, against chance: {phrases} ({kind})."]


def summary_section(ctx: ReportContext) -> str:
    """Cohorts, cases analysed and the main results at a glance."""
    glance = [*_glance_agreement(ctx), *_glance_h1(ctx), *_glance_h2(ctx), *_glance_h3(ctx)]
    parts = [what_this_shows(text.WHAT_SUMMARY), cohort_table(ctx), analyses_table(ctx)]
    if glance:
        parts += [heading("At a glance"), bullet_list(glance, "glance")]
    return section("summary", "Summary", parts)


# --------------------------------------------------------------------------- Figure 1


def figure1_choice(ctx: ReportContext) -> tuple[str, Path, list[tuple[str, str]]] | None:
    """The Figure 1 cohort, its segment folder and chosen cases (figure and viewer)."""
    return examples.figure1_choice(
        ctx.work_dir,
        ("perfusion", "recurrence", *sorted(ctx.config.cohorts)),
        ctx.inputs.table("intensity_cases"),
        ctx.inputs.table("rcbv_cases"),
        ctx.models,
        ctx.n_examples,
    )


def _examples_figure(ctx: ReportContext) -> list[str]:
    choice = figure1_choice(ctx)
    if choice is None:
        return [
            note("No segmentation outputs were found under work/segment; Figure 1 is left out.")
        ]
    cohort, seg_root, chosen = choice
    rows = [(examples.load_case_maps(seg_root, case, ctx.models), why) for case, why in chosen]
    uri = overlays.examples_figure(rows) if rows else None
    if uri is None:
        return [note(f"No case of the {cohort} cohort has NEH to show; Figure 1 is left out.")]
    parts = [figure(uri, text.caption_figure1(cohort), "Example segmentations")]
    missing = [m.case for m, _ in rows if m.background is None]
    if missing:
        parts.append(note(f"No readable T1c for {', '.join(missing)}: shown on black."))
    return parts


def examples_section(ctx: ReportContext) -> str:
    """Figure 1: example segmentations of a few deterministically chosen cases."""
    parts = [what_this_shows(text.WHAT_EXAMPLES), *_examples_figure(ctx)]
    return section("examples", "Figure 1: example segmentations", parts)


# --------------------------------------------------------------------------- agreement


def agreement_section(ctx: ReportContext) -> str:
    """Tables 1-2: agreement between two networks."""
    a = ctx.config.agreement
    pair = f"{model_label(a.pred)} vs {model_label(a.ref)}"
    parts = [
        what_this_shows(text.what_agreement(pair, a.tolerance_mm)),
        _csv_table(ctx, "table1_agreement_regions", f"Table 1: {pair}, tumour regions (mean ± SD)"),
        _csv_table(ctx, "table2_agreement_neh", f"Table 2: {pair}, NEH (label 3, mean ± SD)"),
    ]
    return section("agreement", "Model agreement (Tables 1-2)", parts)


# --------------------------------------------------------------------------- intensities

TABLE4_LABELS = {
    "model": "Segmentation",
    "modality": "Modality",
    "estimate": "Effect estimate",
    "se": "SE",
    "z": "z",
    "F": "F",
    "p": "p",
    "n_cases": "cases",
    "interpretation": "Interpretation",
}


def _table3(ctx: ReportContext, frame: pd.DataFrame) -> str:
    table, headers = paper.table3(frame, ctx.models)
    return html_table(
        table,
        source="table3_intensity.csv",
        form="table3",
        caption="Table 3: mean intensity within ED and NEH per modality (mean ± SD over cases)",
        labels={"modality": "Modality", "label_name": "Label", **headers},
        numeric=list(headers),
    )


def _table4(ctx: ReportContext, frame: pd.DataFrame) -> str:
    units = "intensity units" if ctx.config.intensity.normalise in ("none", "") else "SD units"
    return html_table(
        paper.table4(frame, units),
        source="table4_mixed_models.csv",
        form="columns",
        caption="Table 4: NEH - ED difference, linear mixed-effects model per model and modality",
        labels=TABLE4_LABELS,
        numeric=["estimate", "se", "z", "F", "p", "n_cases"],
    )


def intensity_section(ctx: ReportContext) -> str:
    """Tables 3-4: ED versus NEH intensities."""
    parts = [
        what_this_shows(text.WHAT_INTENSITIES),
        _table_or_note(ctx, "table3_intensity", lambda f: _table3(ctx, f)),
        _table_or_note(ctx, "table4_mixed_models", lambda f: _table4(ctx, f)),
    ]
    return section("intensities", "ED vs NEH intensities (Tables 3-4)", parts)


# --------------------------------------------------------------------------- H1


def _table5(ctx: ReportContext, frame: pd.DataFrame) -> str:
    table = paper.table5(frame, ctx.models)
    if table.empty:
        return note("The rCBV summary holds no NEH compartment.")
    return html_table(
        table,
        source="rcbv_summary.csv",
        form="table5",
        caption="Table 5: mean rCBV within NEH per model and consensus level (mean ± SD over cases)",
        labels={
            "method": "Method",
            "compartment": "Compartment",
            "mean_sd": "NEH mean rCBV",
            "median_of_means": "median",
            "n_cases": "cases",
        },
        numeric=["mean_sd", "median_of_means", "n_cases"],
    )


def _rcbv_figures(ctx: ReportContext) -> list[str]:
    cases, tests = ctx.inputs.table("rcbv_cases"), ctx.inputs.table("rcbv_tests")
    if cases is None or not {"model", "compartment", "mean"} <= set(cases.columns):
        return [note(f"Figure 2 not available: {ctx.inputs.missing_note('rcbv_cases')}")]
    return [
        _figure_or_note(
            figures.rcbv_compartments_figure(cases, tests, ctx.models),
            text.CAPTION_FIGURE2,
            "rCBV per compartment",
            "Figure 2 is left out: no four-label model in the rCBV table.",
        ),
        _figure_or_note(
            figures.consensus_figure(cases, tests, ctx.models),
            text.CAPTION_FIGURE2B,
            "rCBV per consensus level",
            "Figure 2b is left out: no two-level consensus map in the rCBV table.",
        ),
    ]


def rcbv_section(ctx: ReportContext) -> str:
    """H1: Figure 2, the consensus-level panel, Table 5 and the tests."""
    parts = [
        what_this_shows(text.WHAT_RCBV),
        *_rcbv_figures(ctx),
        _table_or_note(ctx, "rcbv_summary", lambda f: _table5(ctx, f)),
        _csv_table(ctx, "rcbv_tests", "H1 tests per model"),
        vessel_sensitivity_html(
            ctx.inputs.table("rcbv_vessel_sensitivity"),
            ctx.models,
            "excluded" if ctx.config.rcbv.exclude_vessels else "kept",
            ctx.config.rcbv.vessel_percentile,
        ),
    ]
    return section("h1-rcbv", "H1: rCBV per compartment (Figure 2, Table 5)", parts)


# --------------------------------------------------------------------------- H2


def _rims_figure(ctx: ReportContext) -> str:
    cases, tests = ctx.inputs.table("rims_cases"), ctx.inputs.table("rims_tests")
    if cases is None or not {"case", "region", "mean"} <= set(cases.columns):
        return note(f"Figure 3 not available: {ctx.inputs.missing_note('rims_cases')}")
    return _figure_or_note(
        figures.rims_figure(cases, tests),
        text.CAPTION_FIGURE3,
        "rCBV in rims and NEH",
        "Figure 3 is left out: the rim table holds no region.",
    )


def rims_section(ctx: ReportContext) -> str:
    """H2: Figure 3 and the rim tests."""
    parts = [
        what_this_shows(text.what_rims(list(ctx.config.rims.rims_mm))),
        _rims_figure(ctx),
        _csv_table(ctx, "rims_summary", "rCBV per rim and NEH (mean of the per-case means)"),
        _csv_table(ctx, "rims_tests", "H2 tests"),
    ]
    return section("h2-rims", "H2: rCBV in peri-enhancing rims vs NEH (Figure 3)", parts)


# --------------------------------------------------------------------------- H3

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
            _figure_or_note(
                figures.recurrence_ratio_figure(paper.included_rows(cases)),
                text.CAPTION_FIGURE4B,
                "Recurrence metric ratios",
                "Figure 4b is left out: no finite ratio to chance in recurrence_cases.csv.",
            )
        )
    tests = ctx.inputs.table("recurrence_tests")
    return [
        *parts,
        _table_or_note(ctx, "recurrence_tests", _table7),
        _tests_note(tests),
        _csv_table(ctx, "recurrence_tests", "All H3 tests (tables/recurrence_tests.csv)")
        if tests is not None
        else "",
    ]


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


# --------------------------------------------------------------------------- methods, cases


def methods_section(ctx: ReportContext) -> str:
    """Methods generated from the configuration, and software versions."""
    body = f'<div class="methods">{methods_html(ctx.config)}{versions_html()}</div>'
    return section("methods", "Methods", [body, config_html(ctx.config)])


def _case_list(ctx: ReportContext, name: str, none_text: str) -> str:
    frame = ctx.inputs.table(name)
    if frame is not None:
        return html_table(frame, source=f"{name}.csv")
    if name in ctx.inputs.tables:
        return paragraph(none_text)
    return note(f"Not available: {ctx.inputs.missing_note(name)}")


def cases_section(ctx: ReportContext) -> str:
    """Excluded cases with reasons, failed cases with messages."""
    parts = [
        what_this_shows(text.WHAT_CASES),
        heading("Excluded cases"),
        _case_list(ctx, "excluded", "No case was excluded."),
        heading("Failed cases"),
        _case_list(ctx, "errors", "No case failed."),
    ]
    return section("cases", "Excluded and failed cases", parts)


SHOWN_ELSEWHERE = frozenset(
    {
        "table1_agreement_regions",
        "table2_agreement_neh",
        "rcbv_tests",
        "rims_summary",
        "rims_tests",
        "recurrence_tests",
        "excluded",
        "errors",
    }
)
PER_CASE = frozenset(
    {"agreement_cases", "intensity_cases", "rcbv_cases", "rims_cases", "recurrence_cases"}
)
APPENDIX_MAX_ROWS = 300


def appendix_section(ctx: ReportContext) -> str:
    """The cohort tables as in their CSVs, and the per-case CSVs by name."""
    parts = [what_this_shows(text.WHAT_APPENDIX)]
    for name, frame in sorted(ctx.inputs.tables.items()):
        if name in SHOWN_ELSEWHERE or name in PER_CASE or frame.empty:
            continue
        if len(frame) > APPENDIX_MAX_ROWS:
            parts.append(note(f"tables/{name}.csv has {len(frame)} rows: open the CSV."))
        else:
            parts.append(html_table(frame, source=f"{name}.csv", caption=f"tables/{name}.csv"))
    listed = [
        f"tables/{esc(name)}.csv: {len(ctx.inputs.tables[name])} rows"
        for name in sorted(PER_CASE)
        if name in ctx.inputs.tables
    ]
    if listed:
        parts += [heading("Per-case tables"), bullet_list(listed)]
    parts += [note(problem) for _, problem in sorted(ctx.inputs.problems.items())]
    return section("appendix", "Appendix: cohort tables", parts)
