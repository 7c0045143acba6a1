"""Rows of the H1 and H2 test tables, and the mean of the per-case means over a cohort.

The rCBV tests per compartment (:mod:`nehmap.validate.rcbv`, H1) and per rim
(:mod:`nehmap.validate.rims`, H2) write one row per test with the columns of
:data:`TEST_ROW_COLUMNS`. :func:`anova_row` and :func:`paired_row` build those rows
from the results of :func:`nehmap.stats.repeated_measures_anova` and
:func:`nehmap.stats.pairwise_tests`; :func:`untested_row` records a test that could
not run. :func:`mean_of_means` summarises the per-case mean rCBV over the cases.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["TEST_ROW_COLUMNS", "anova_row", "mean_of_means", "paired_row", "untested_row"]

TEST_ROW_COLUMNS: tuple[str, ...] = (
    "test",
    "a",
    "b",
    "statistic",
    "df",
    "p",
    "p_adjusted",
    "n",
    "note",
)
"""Columns of a test row: the test, the groups compared, the statistic, its degrees of
freedom (text), the p-value, the adjusted p-value, the number of cases and a note."""


def anova_row(anova: Any, a: str) -> dict[str, Any]:
    """The row of a repeated-measures ANOVA; ``p_adjusted`` is the Greenhouse-Geisser p.

    Parameters
    ----------
    anova : nehmap.stats.AnovaResult
        Result of :func:`nehmap.stats.repeated_measures_anova`.
    a : str
        The levels compared, comma-separated (``"ET,NEH,ED"``).
    """
    return {
        "test": "rm_anova",
        "a": a,
        "b": "",
        "statistic": anova.F,
        "df": f"{anova.df_num:g},{anova.df_den:g}",
        "p": anova.p,
        "p_adjusted": anova.p_gg,
        "n": anova.n_subjects,
        "note": f"Greenhouse-Geisser epsilon {anova.epsilon_gg:.3f} (p_adjusted is GG-corrected)",
    }


def paired_row(
    record: Mapping[str, Any], test: str, note: str, *, adjusted: bool = True
) -> dict[str, Any]:
    """The row of one paired comparison of :func:`nehmap.stats.pairwise_tests`.

    Parameters
    ----------
    record : mapping
        One row of the pairwise table (``a``, ``b``, ``statistic``, ``df``, ``p``,
        ``p_adjusted``, ``n``).
    test : str
        Name of the test (``"paired_t"``...).
    note : str
        Free text of the row's ``note`` column (what was compared, the correction).
    adjusted : bool, default True
        False: the comparison stands alone and ``p_adjusted`` repeats ``p``.
    """
    return {
        "test": test,
        "a": record["a"],
        "b": record["b"],
        "statistic": record["statistic"],
        "df": f"{record['df']:g}",
        "p": record["p"],
        "p_adjusted": record["p_adjusted"] if adjusted else record["p"],
        "n": record["n"],
        "note": note,
    }


def untested_row(test: str, a: str, n: int, note: str) -> dict[str, Any]:
    """The row of a test that could not run (statistic and p-values NaN); ``note`` says why."""
    return {
        "test": test,
        "a": a,
        "b": "",
        "statistic": np.nan,
        "df": "",
        "p": np.nan,
        "p_adjusted": np.nan,
        "n": n,
        "note": note,
    }


def mean_of_means(
    cases: pd.DataFrame, by: str | Sequence[str], *, median: bool = False
) -> pd.DataFrame:
    """Mean +/- SD over cases of the per-case mean rCBV, per group.

    Parameters
    ----------
    cases : pandas.DataFrame
        One row per case and group with a ``mean`` column; rows without it are left out.
    by : str or sequence of str
        The grouping columns (``"region"``; ``["model", "compartment"]``).
    median : bool, default False
        Add the median of the means (``median_of_means``).

    Returns
    -------
    pandas.DataFrame
        The ``by`` columns, ``mean_of_means``, ``sd``, (``median_of_means``) and
        ``n_cases``.
    """
    stats = ["mean", "std", "median", "count"] if median else ["mean", "std", "count"]
    grouped = cases.dropna(subset=["mean"]).groupby(by)["mean"]
    out = grouped.agg(stats).reset_index()
    return out.rename(
        columns={
            "mean": "mean_of_means",
            "std": "sd",
            "median": "median_of_means",
            "count": "n_cases",
        }
    )
