"""Cohort summaries of per-case metric tables, and the paper-style tables built from them.

:func:`summarise` reduces a tidy ``case, region, metric, value`` table to the mean,
sample SD (``ddof=1``), median and count of each region and metric over the cases with
a defined value. :func:`paper_table` lays a summary out like the method paper's Tables 1
(regions ET, TC, WT) and 2 (NEH), each cell ``"mean ± sd"`` (:func:`format_cell`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from nehmap.metrics import DEFAULT_METRICS, DEFAULT_REGIONS

__all__ = [
    "NEH_COLUMNS",
    "PAPER_METRICS",
    "REGION_COLUMNS",
    "SUMMARY_COLUMNS",
    "format_cell",
    "paper_table",
    "summarise",
]

SUMMARY_COLUMNS: tuple[str, ...] = ("region", "metric", "mean", "sd", "median", "n")
"""Columns of :attr:`EvaluationResult.summary`."""

PAPER_METRICS: Mapping[str, str] = {
    "Dice": "dice",
    "Hausdorff95": "hd95",
    "Jaccard": "jaccard",
    "Surface Dice": "surface_dice",
}
"""Row names of the paper-style tables, in order, and the metric each row shows."""

REGION_COLUMNS: tuple[str, ...] = ("ET", "TC", "WT")
"""Columns of the paper-style region table (the paper's Table 1)."""

NEH_COLUMNS: tuple[str, ...] = ("NEH",)
"""Columns of the paper-style NEH table (the paper's Table 2)."""


def summarise(cases: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample SD, median and count of each region and metric over the cases.

    Parameters
    ----------
    cases : pd.DataFrame
        Tidy table with columns ``case``, ``region``, ``metric``, ``value``.

    Returns
    -------
    pd.DataFrame
        One row per region and metric present (regions in the order ET, TC, WT, NC, ED,
        NEH, metrics in the order dice, jaccard, hd95, surface_dice, others after), with
        columns ``region``, ``metric``, ``mean``, ``sd``, ``median``, ``n``. NaN values
        are left out; ``n`` counts the rest. ``sd`` uses ``ddof=1`` (NaN when n < 2).
    """
    rows = []
    if not cases.empty:
        regions = _ordered(cases["region"].unique(), DEFAULT_REGIONS)
        metrics = _ordered(cases["metric"].unique(), DEFAULT_METRICS)
        grouped = {key: g["value"] for key, g in cases.groupby(["region", "metric"], sort=False)}
        for region in regions:
            for metric in metrics:
                if (region, metric) not in grouped:
                    continue
                values = grouped[(region, metric)].to_numpy(dtype=float)
                values = values[~np.isnan(values)]
                n = int(values.size)
                rows.append(
                    (
                        region,
                        metric,
                        float(values.mean()) if n else math.nan,
                        float(values.std(ddof=1)) if n > 1 else math.nan,
                        float(np.median(values)) if n else math.nan,
                        n,
                    )
                )
    table = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    return table.astype({"mean": float, "sd": float, "median": float, "n": int})


def _ordered(present: Sequence[str], preferred: Sequence[str]) -> list[str]:
    known = [p for p in preferred if p in set(present)]
    return known + sorted(p for p in present if p not in preferred)


def format_cell(mean: float, sd: float, n: int, digits: int = 2) -> str:
    """A paper-style cell: ``"0.83 ± 0.15"``; the mean alone when n == 1; ``"n/a"`` for n == 0."""
    if n == 0 or not math.isfinite(mean):
        return "n/a"
    if n == 1 or not math.isfinite(sd):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def paper_table(
    summary: pd.DataFrame, regions: Sequence[str] = REGION_COLUMNS, digits: int = 2
) -> pd.DataFrame:
    """A wide table like the method paper's Tables 1 and 2.

    Parameters
    ----------
    summary : pd.DataFrame
        The output of :func:`summarise`.
    regions : Sequence[str]
        The columns, e.g. ``("ET", "TC", "WT")`` or ``("NEH",)``.
    digits : int
        Decimals of mean and SD (Hausdorff95 in mm).

    Returns
    -------
    pd.DataFrame
        Rows ``Dice``, ``Hausdorff95``, ``Jaccard``, ``Surface Dice`` (index named
        ``metric``), one column per region, each cell ``"mean ± sd"`` as text (see
        :func:`format_cell`).
    """
    lookup = {(r.region, r.metric): r for r in summary.itertuples(index=False)}
    data: dict[str, list[str]] = {}
    for region in regions:
        cells = []
        for metric in PAPER_METRICS.values():
            row = lookup.get((region, metric))
            cells.append("n/a" if row is None else format_cell(row.mean, row.sd, row.n, digits))
        data[region] = cells
    table = pd.DataFrame(data, index=pd.Index(list(PAPER_METRICS), name="metric"))
    table.columns.name = None
    return table
