"""Post-hoc tests between pairs of levels of a factor, with multiplicity correction.

:func:`pairwise_tests` runs, for every pair of levels, a paired t-test (or Wilcoxon
signed-rank test) on the subjects measured at both levels when ``subject`` is given, and
Welch's t-test (or Mann-Whitney U) otherwise. p-values are adjusted across the pairs with
:func:`statsmodels.stats.multitest.multipletests` (``"holm"`` by default). Missing
values follow ``nan_policy`` as in :mod:`nehmap.stats.anova`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from nehmap.stats.tidy import (
    Alternative,
    NanPolicy,
    check_alternative,
    level_order,
    numeric_values,
    select_columns,
    subjects_by_level,
)

__all__ = ["pairwise_tests"]


def _rank_biserial_paired(d: np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation of the differences (zeros left out)."""
    d = d[d != 0]
    if d.size == 0:
        return 0.0
    ranks = stats.rankdata(np.abs(d))
    plus = ranks[d > 0].sum()
    minus = ranks[d < 0].sum()
    return float((plus - minus) / (plus + minus))


def _row(
    test: str, res: Any, df: float, effect_size: float, effect_size_name: str
) -> dict[str, Any]:
    """One pair's result: the test, its statistic and p from scipy's ``res``, the effect size."""
    return {
        "test": test,
        "statistic": float(res.statistic),
        "df": float(df),
        "p": float(res.pvalue),
        "effect_size": float(effect_size),
        "effect_size_name": effect_size_name,
    }


def _paired_row(
    xa: np.ndarray, xb: np.ndarray, parametric: bool, alternative: str
) -> dict[str, Any]:
    d = xa - xb
    n = d.size
    if parametric:
        if n < 2:
            raise ValueError("a paired t-test needs at least two subjects measured at both levels")
        res = stats.ttest_rel(xa, xb, alternative=alternative)
        sd = d.std(ddof=1)
        es = float(d.mean() / sd) if sd > 0 else float("nan")
        return _row("paired t", res, n - 1, es, "cohen_dz")
    if n < 1 or not np.any(d != 0):
        raise ValueError("the Wilcoxon test needs at least one non-zero paired difference")
    res = stats.wilcoxon(xa, xb, alternative=alternative)
    return _row("wilcoxon", res, float("nan"), _rank_biserial_paired(d), "rank_biserial")


def _independent_row(
    xa: np.ndarray, xb: np.ndarray, parametric: bool, alternative: str
) -> dict[str, Any]:
    na, nb = xa.size, xb.size
    if parametric:
        if na < 2 or nb < 2:
            raise ValueError("Welch's t-test needs at least two measurements per level")
        res = stats.ttest_ind(xa, xb, equal_var=False, alternative=alternative)
        va, vb = xa.var(ddof=1), xb.var(ddof=1)
        dof = (va / na + vb / nb) ** 2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
        sd_av = np.sqrt((va + vb) / 2)
        es = float((xa.mean() - xb.mean()) / sd_av) if sd_av > 0 else float("nan")
        return _row("welch t", res, dof, es, "cohen_d_av")
    res = stats.mannwhitneyu(xa, xb, alternative=alternative)
    return _row(
        "mann-whitney u", res, float("nan"), 2 * res.statistic / (na * nb) - 1, "rank_biserial"
    )


def _adjust(p: np.ndarray, correction: str | None, alpha: float) -> np.ndarray:
    if correction is None or correction == "none":
        return p.copy()
    return multipletests(p, alpha=alpha, method=correction)[1]


def pairwise_tests(
    table: pd.DataFrame,
    value: str,
    factor: str,
    subject: str | None = None,
    paired: bool | None = None,
    correction: str | None = "holm",
    *,
    parametric: bool = True,
    alternative: Alternative = "two-sided",
    pairs: Sequence[tuple[Any, Any]] | None = None,
    alpha: float = 0.05,
    aggregate: str | None = None,
    nan_policy: NanPolicy = "raise",
) -> pd.DataFrame:
    """Post-hoc tests between pairs of levels, with multiplicity correction.

    Parameters
    ----------
    table, value : pandas.DataFrame, str
        Tidy table (one row per measurement) and its column of the measurements.
    factor : str
        Column of the levels.
    subject : str or None, default None
        Column identifying the subject. Required for paired tests.
    paired : bool or None, default None
        Paired tests (on the subjects measured at both levels of a pair); ``None`` means
        paired exactly when ``subject`` is given.
    correction : str or None, default "holm"
        Any method of :func:`statsmodels.stats.multitest.multipletests` (``"holm"``,
        ``"bonferroni"``, ``"fdr_bh"``, ...), or ``None`` / ``"none"``.
    parametric : bool, default True
        t-tests (paired or Welch) when True; Wilcoxon signed-rank (paired) or
        Mann-Whitney U (unpaired) when False.
    alternative : {"two-sided", "greater", "less"}, default "two-sided"
        Direction, for level ``a`` against level ``b`` of each row.
    pairs : sequence of (a, b), optional
        The pairs to test; default all pairs of levels in level order.
    alpha : float, default 0.05
        Level for the ``reject`` column.
    aggregate : str or None, default None
        For paired tests with several rows per (subject, level): pandas aggregation
        name used to reduce them; ``None`` refuses such data.
    nan_policy : {"raise", "omit"}, default "raise"
        What to do with rows with missing values.

    Returns
    -------
    pandas.DataFrame
        One row per pair with columns ``a, b, n_a, n_b, n, mean_a, mean_b, mean_diff,
        statistic, df, p, p_adjusted, reject, effect_size, effect_size_name, test,
        alternative, correction``. For paired tests ``n`` is the number of subjects
        measured at both levels, and the means are over those subjects; ``mean_diff`` is
        ``mean_a - mean_b``. Effect sizes: Cohen's d_z (paired t), Cohen's d with the
        average of the two variances (Welch), rank-biserial correlation (rank tests).
    """
    check_alternative(alternative)
    if paired is None:
        paired = subject is not None
    if paired and subject is None:
        raise ValueError("paired tests need the subject column (subject=...)")
    cols = [value, factor] + ([subject] if subject is not None else [])
    df = select_columns(table, cols, nan_policy)
    df = df.assign(**{value: numeric_values(df, value)})
    levels = level_order(df[factor])
    if pairs is None:
        pair_list = list(itertools.combinations(levels, 2))
    else:
        pair_list = [tuple(p) for p in pairs]
        unknown = sorted({str(v) for p in pair_list for v in p if v not in levels})
        if unknown:
            raise ValueError(f"levels not found in {factor!r}: {unknown}; present: {levels}")
    if not pair_list:
        raise ValueError(f"{factor!r} needs at least two levels, found {levels}")

    wide = subjects_by_level(df, value, factor, subject, aggregate) if paired else None
    rows = []
    for a, b in pair_list:
        if paired:
            both = wide[[a, b]].dropna()
            xa = both[a].to_numpy(dtype=float)
            xb = both[b].to_numpy(dtype=float)
            row = _paired_row(xa, xb, parametric, alternative)
            n_a = n_b = n = int(both.shape[0])
        else:
            xa = df.loc[df[factor] == a, value].to_numpy(dtype=float)
            xb = df.loc[df[factor] == b, value].to_numpy(dtype=float)
            row = _independent_row(xa, xb, parametric, alternative)
            n_a, n_b = int(xa.size), int(xb.size)
            n = n_a + n_b
        rows.append(
            {
                "a": a,
                "b": b,
                "n_a": n_a,
                "n_b": n_b,
                "n": n,
                "mean_a": float(xa.mean()),
                "mean_b": float(xb.mean()),
                "mean_diff": float(xa.mean() - xb.mean()),
                **row,
            }
        )
    out = pd.DataFrame(rows)
    out["p_adjusted"] = _adjust(out["p"].to_numpy(dtype=float), correction, alpha)
    out["reject"] = out["p_adjusted"] < alpha
    out["alternative"] = alternative
    out["correction"] = "none" if correction is None else correction
    order = [
        "a",
        "b",
        "n_a",
        "n_b",
        "n",
        "mean_a",
        "mean_b",
        "mean_diff",
        "statistic",
        "df",
        "p",
        "p_adjusted",
        "reject",
        "effect_size",
        "effect_size_name",
        "test",
        "alternative",
        "correction",
    ]
    return out[order]
