"""The report's sections, each from the tables (and images) it needs.

Every section opens with a plain-language "what this shows" (:mod:`nehmap.report.text`),
then its figures and tables, each with the CSV it comes from. A section whose tables
are missing says so in a note instead of failing.

This module holds Figure 1, agreement, intensities, H1, H2, methods, cases and the
appendix; the summary is in :mod:`nehmap.report.summary_section`, H3 in
:mod:`nehmap.report.recurrence_section`, and what they share in
:mod:`nehmap.report.context` (all re-exported here).
"""

from __future__ import annotations

import pandas as pd

from nehmap.report import examples, figures, overlays, paper, text
from nehmap.report.context import (
    ReportContext,
    csv_table,
    figure1_choice,
    figure_or_note,
    table_or_note,
)
from nehmap.report.formatting import model_label
from nehmap.report.html import (
    bullet_list,
    esc,
    figure,
    heading,
    html_table,
    note,
    paragraph,
    section,
    what_this_shows,
)
from nehmap.report.methods import config_html, methods_html, versions_html
from nehmap.report.recurrence_section import recurrence_section
from nehmap.report.sensitivity import vessel_sensitivity_html
from nehmap.report.summary_section import summary_section

__all__ = [
    "ReportContext",
    "agreement_section",
    "appendix_section",
    "cases_section",
    "examples_section",
    "figure1_choice",
    "intensity_section",
    "methods_section",
    "rcbv_section",
    "recurrence_section",
    "rims_section",
    "summary_section",
]

# --------------------------------------------------------------------------- Figure 1


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
        csv_table(ctx, "table1_agreement_regions", f"Table 1: {pair}, tumour regions (mean ± SD)"),
        csv_table(ctx, "table2_agreement_neh", f"Table 2: {pair}, NEH (label 3, mean ± SD)"),
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
        table_or_note(ctx, "table3_intensity", lambda f: _table3(ctx, f)),
        table_or_note(ctx, "table4_mixed_models", lambda f: _table4(ctx, f)),
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
        figure_or_note(
            figures.rcbv_compartments_figure(cases, tests, ctx.models),
            text.CAPTION_FIGURE2,
            "rCBV per compartment",
            "Figure 2 is left out: no four-label model in the rCBV table.",
        ),
        figure_or_note(
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
        table_or_note(ctx, "rcbv_summary", lambda f: _table5(ctx, f)),
        csv_table(ctx, "rcbv_tests", "H1 tests per model"),
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
    return figure_or_note(
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
        csv_table(ctx, "rims_summary", "rCBV per rim and NEH (mean of the per-case means)"),
        csv_table(ctx, "rims_tests", "H2 tests"),
    ]
    return section("h2-rims", "H2: rCBV in peri-enhancing rims vs NEH (Figure 3)", parts)


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
