"""The method paper's Tables 3-7, reshaped from the study's CSV tables.

Each function takes a CSV table and returns a table of display text (every cell already
formatted with :mod:`nehmap.report.formatting`), ready for
:func:`nehmap.report.html.html_table`. Tables 1 and 2 need no reshaping: the study
writes them in the paper's form already (``table1_agreement_regions.csv``,
``table2_agreement_neh.csv``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from nehmap.report.formatting import (
    MISSING,
    format_mean_sd,
    format_number,
    format_p,
    is_missing,
    model_label,
)

MODALITY_ORDER = ("flair", "t1c", "t1", "t2")
MODALITY_LABELS = {"flair": "FLAIR", "t1c": "T1c", "t1": "T1", "t2": "T2", "rcbv": "rCBV"}
CONSENSUS_LEVELS = ("NEH-low", "NEH-high", "NEH-low+high")
ALPHA = 0.05
"""Significance level of the plain-language interpretations."""


def modality_label(name: str) -> str:
    """Display name of a modality (``flair`` -> ``FLAIR``)."""
    return MODALITY_LABELS.get(str(name).lower(), str(name))


def ordered(values: Sequence[str], preferred: Sequence[str]) -> list[str]:
    """Unique ``values`` with those in ``preferred`` first, in that order, then the rest."""
    unique = list(dict.fromkeys(str(v) for v in values))
    head = [p for p in preferred if p in unique]
    return head + [v for v in unique if v not in head]


def _count_text(counts: pd.Series) -> str:
    finite = counts.dropna().astype(int)
    if finite.empty:
        return "n = 0"
    low, high = int(finite.min()), int(finite.max())
    return f"n = {low}" if low == high else f"n = {low}–{high}"


def table3(summary: pd.DataFrame, models: Sequence[str] = ()) -> tuple[pd.DataFrame, dict]:
    """Table 3: mean ± SD over cases of the mean ED and NEH intensity per modality.

    Parameters
    ----------
    summary : pd.DataFrame
        ``table3_intensity.csv`` (model, modality, label_name, mean_of_means, sd,
        n_cases).
    models : Sequence[str]
        Preferred column order of the models.

    Returns
    -------
    tuple[pd.DataFrame, dict]
        The table (columns ``modality``, ``label_name``, then one per model) and the
        header text of each model column.
    """
    model_order = ordered(summary["model"], models)
    modalities = ordered(summary["modality"], MODALITY_ORDER)
    labels = ordered(summary["label_name"], ("ED", "NEH"))
    lookup = {
        (str(r.model), str(r.modality), str(r.label_name)): r
        for r in summary.itertuples(index=False)
    }
    rows = []
    for modality in modalities:
        for label in labels:
            row = {"modality": modality_label(modality), "label_name": label}
            for model in model_order:
                r = lookup.get((model, modality, label))
                row[model] = MISSING if r is None else format_mean_sd(r.mean_of_means, r.sd)
            if any(row[m] != MISSING for m in model_order):
                rows.append(row)
    headers = {
        m: f"{model_label(m)} mean ± SD ({_count_text(summary.loc[summary['model'] == m, 'n_cases'])})"
        for m in model_order
    }
    return pd.DataFrame(rows, columns=["modality", "label_name", *model_order]), headers


def _interpretation(row: pd.Series, units: str) -> str:
    estimate, p = row.get("estimate"), row.get("p")
    if is_missing(estimate) or is_missing(p):
        note = row.get("note")
        return str(note) if not is_missing(note) else "not estimable"
    if float(p) >= ALPHA:
        return f"not significant (p ≥ {ALPHA:g})"
    sign = "<" if float(estimate) < 0 else ">"
    return f"NEH {sign} ED by {abs(float(estimate)):.3g} {units}"


def table4(tests: pd.DataFrame, units: str = "intensity units") -> pd.DataFrame:
    """Table 4: the mixed-model NEH - ED effect per model and modality, in CSV row order.

    Columns ``model``, ``modality``, ``estimate``, ``se``, ``z``, ``F``, ``p``,
    ``n_cases`` (those present in the CSV) and ``interpretation``.
    """
    columns = [c for c in ("estimate", "se", "z", "F", "p", "n_cases") if c in tests.columns]
    rows = []
    for _, r in tests.iterrows():
        row = {"model": model_label(r["model"]), "modality": modality_label(r["modality"])}
        for c in columns:
            if c == "p":
                row[c] = format_p(r[c])
            elif c == "n_cases":
                row[c] = MISSING if is_missing(r[c]) else str(int(r[c]))
            else:
                row[c] = format_number(r[c])
        row["interpretation"] = _interpretation(r, units)
        rows.append(row)
    return pd.DataFrame(rows, columns=["model", "modality", *columns, "interpretation"])


def table5(summary: pd.DataFrame, models: Sequence[str] = ()) -> pd.DataFrame:
    """Table 5: mean ± SD of the per-case mean rCBV within NEH, per model and level.

    Four-label models contribute their ``NEH`` compartment, consensus models (two-level
    maps) their ``NEH-low``, ``NEH-high`` and ``NEH-low+high`` compartments.
    """
    keep = summary[summary["compartment"].isin(("NEH", *CONSENSUS_LEVELS))]
    rows = []
    for model in ordered(keep["model"], models):
        sub = keep[keep["model"] == model].set_index("compartment")
        for compartment in ("NEH", *CONSENSUS_LEVELS):
            if compartment not in sub.index:
                continue
            r = sub.loc[compartment]
            rows.append(
                {
                    "method": model_label(model),
                    "compartment": compartment,
                    "mean_sd": format_mean_sd(r["mean_of_means"], r["sd"]),
                    "median_of_means": format_number(r.get("median_of_means", np.nan)),
                    "n_cases": MISSING if is_missing(r["n_cases"]) else str(int(r["n_cases"])),
                }
            )
    return pd.DataFrame(
        rows, columns=["method", "compartment", "mean_sd", "median_of_means", "n_cases"]
    )


UNIT_LABELS = {"mm3": "mm³", "fraction": "fraction", "mm": "mm"}


PAPER_CHANCE_MODEL = "brain"
"""The chance model of the paper's Tables 6 and 7 (placement anywhere in the brain)."""


def paper_chance_rows(frame: pd.DataFrame | None, keep_blank: bool = False) -> pd.DataFrame | None:
    """The rows of the paper's chance model when a table holds several (``chance_model``).

    Tables without the column, or without rows of the paper's model, come back whole;
    with ``keep_blank``, rows without a model (the raw values of the summary) are kept.
    """
    if frame is None or "chance_model" not in frame.columns:
        return frame
    models = frame["chance_model"].fillna("").astype(str)
    if not (models == PAPER_CHANCE_MODEL).any():
        return frame
    keep = models == PAPER_CHANCE_MODEL
    if keep_blank:
        keep |= models == ""
    return frame[keep]


def metric_units(metric: str) -> str:
    """Units of a recurrence metric's raw value, guessed from its name."""
    name = metric.lower()
    if "fraction" in name:
        return "fraction"
    if "distance" in name:
        return "mm"
    if "volume" in name:
        return "mm³"
    return ""


def included_rows(cases: pd.DataFrame) -> pd.DataFrame:
    """The rows that enter the cohort statistics (``included`` true, when the column exists)."""
    if "included" not in cases.columns:
        return cases
    flags = cases["included"]
    if not pd.api.types.is_bool_dtype(flags):
        flags = flags.astype(str).str.strip().str.lower().isin(("true", "1", "yes"))
    return cases[flags.astype(bool)]


def _finite(values: pd.Series) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce")
    return numbers[np.isfinite(numbers)]


def summary_cell(values: pd.Series) -> str:
    """``"mean ± SD"`` of the finite values (the mean alone for one value)."""
    finite = _finite(values)
    if finite.empty:
        return MISSING
    return format_mean_sd(finite.mean(), finite.std(ddof=1) if len(finite) > 1 else None)


def _first(frame: pd.DataFrame, column: str, default: str) -> str:
    if column not in frame.columns:
        return default
    values = frame[column].dropna().astype(str)
    return values.iloc[0] if len(values) else default


TABLE6_COLUMNS = ["metric", "paper_metric", "unit", "value", "ratio", "n"]


def table6(cases: pd.DataFrame) -> pd.DataFrame:
    """Table 6 computed from ``recurrence_cases.csv``: mean ± SD over the included subjects.

    Parameters
    ----------
    cases : pd.DataFrame
        Case, metric, value and, when present, paper_metric, unit, ratio
        (value / value expected by chance) and included. Non-finite values are left
        out.

    Returns
    -------
    pd.DataFrame
        Columns ``metric``, ``paper_metric``, ``unit``, ``value``, ``ratio`` (when the
        CSV has ratios) and ``n`` (subjects with a value), one row per metric.
    """
    cases = included_rows(cases)
    has_ratio = "ratio" in cases.columns
    rows = []
    for metric in ordered(cases["metric"], ()):
        sub = cases[cases["metric"].astype(str) == metric]
        unit = _first(sub, "unit", metric_units(metric) or MISSING)
        row = {
            "metric": metric,
            "paper_metric": _first(sub, "paper_metric", MISSING),
            "unit": UNIT_LABELS.get(unit, unit),
            "value": summary_cell(sub["value"]),
        }
        if has_ratio:
            row["ratio"] = summary_cell(sub["ratio"])
        row["n"] = str(len(_finite(sub["value"])))
        rows.append(row)
    return pd.DataFrame(rows, columns=[c for c in TABLE6_COLUMNS if has_ratio or c != "ratio"])


def table6_from_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """Table 6 from ``recurrence_summary.csv`` (metric, paper_metric, scale, unit, mean, sd, n).

    One row per metric: the raw value and the chance ratio as "mean ± SD", the raw
    value's unit and count.
    """
    rows = []
    for metric in ordered(summary["metric"], ()):
        sub = summary[summary["metric"].astype(str) == metric].set_index("scale")
        raw = sub.loc["raw"] if "raw" in sub.index else None
        ratio = sub.loc["ratio"] if "ratio" in sub.index else None
        unit = MISSING if raw is None or is_missing(raw.get("unit")) else str(raw["unit"])
        rows.append(
            {
                "metric": metric,
                "paper_metric": _first(sub, "paper_metric", MISSING),
                "unit": UNIT_LABELS.get(unit, unit),
                "value": MISSING if raw is None else format_mean_sd(raw["mean"], raw["sd"]),
                "ratio": MISSING if ratio is None else format_mean_sd(ratio["mean"], ratio["sd"]),
                "n": MISSING if raw is None or is_missing(raw["n"]) else str(int(raw["n"])),
            }
        )
    return pd.DataFrame(rows, columns=TABLE6_COLUMNS)


def table7_rows(tests: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``recurrence_tests.csv`` in the paper's Table 7: its ``paper`` tests
    when the CSV holds several kinds of test, else all rows."""
    if "test" in tests.columns and (tests["test"].astype(str) == "paper").any():
        return tests[tests["test"].astype(str) == "paper"]
    return tests


def one_sided_columns(tests: pd.DataFrame) -> list[str]:
    """The one-sided p-value column(s) of ``recurrence_tests.csv``.

    ``alternative`` and ``p_value`` when every test was one-sided (the p-value is then in
    the direction named per row); otherwise ``p_greater`` and ``p_less`` (those present).
    """
    columns = set(tests.columns)
    if {"alternative", "p_value"} <= columns:
        alternatives = set(tests["alternative"].dropna().astype(str))
        if alternatives and alternatives <= {"greater", "less"}:
            return ["alternative", "p_value"]
    return [c for c in ("p_greater", "p_less") if c in columns]


def table7_columns(tests: pd.DataFrame) -> list[str]:
    """The columns of ``recurrence_tests.csv`` shown as Table 7 (those present)."""
    wanted = [
        "metric",
        "paper_metric",
        "test",
        "observed_mean",
        "null_mean",
        *one_sided_columns(tests),
        "p_two_sided",
        "n",
    ]
    return [c for c in wanted if c in tests.columns]
