"""The report's summary section: cohorts, cases analysed, and the main results at a glance."""

from __future__ import annotations

import numpy as np
import pandas as pd

from nehmap.report import h3, paper, text
from nehmap.report.context import ReportContext, n_cases
from nehmap.report.formatting import format_mean_sd, format_p_phrase, is_missing, model_label
from nehmap.report.html import bullet_list, esc, heading, html_table, section, what_this_shows

__all__ = ["ANALYSES", "analyses_table", "cohort_table", "summary_section"]


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
        count = "not run" if frame is None else str(n_cases(frame))
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
