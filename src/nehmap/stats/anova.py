"""One-way and repeated-measures ANOVA of a tidy table.

All functions take a tidy :class:`pandas.DataFrame` (one row per measurement) and the
names of its columns. Post-hoc tests between pairs of levels are in
:mod:`nehmap.stats.pairwise`, tests of an expected ordering in :mod:`nehmap.stats.ordered`
(both re-exported here).

Missing values
--------------
Rows with a missing value in any used column are refused by default
(``nan_policy="raise"``; the error gives their number). ``nan_policy="omit"`` drops
them. In the repeated-measures ANOVA, subjects left without a measurement at some level
are then dropped listwise; how many (and which) is reported in the result.

Repeated measures and sphericity
--------------------------------
:func:`repeated_measures_anova` computes the classical univariate F-test from sums of
squares of the complete ``subjects x levels`` matrix ``Y`` (it equals
:class:`statsmodels.stats.anova.AnovaRM`). The Greenhouse-Geisser epsilon is computed
from the ``k x k`` sample covariance matrix ``S`` of the levels (columns of ``Y``),
double-centred, ``S_c = C S C`` with ``C = I - J / k``:

    epsilon = trace(S_c)**2 / ((k - 1) * trace(S_c @ S_c))

It lies in ``[1 / (k - 1), 1]``, is 1 under sphericity and always 1 for two levels. The
corrected p-value uses the same F with both degrees of freedom multiplied by epsilon.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from nehmap.stats.ordered import OrderedTestResult, ordered_test
from nehmap.stats.pairwise import pairwise_tests
from nehmap.stats.tidy import (
    NanPolicy,
    TidyRow,
    level_order,
    numeric_values,
    select_columns,
    subjects_by_level,
)

__all__ = [
    "OneWayAnovaResult",
    "OrderedTestResult",
    "RepeatedMeasuresAnovaResult",
    "greenhouse_geisser_epsilon",
    "oneway_anova",
    "ordered_test",
    "pairwise_tests",
    "repeated_measures_anova",
]

# ------------------------------------------------------------------ one-way ANOVA


@dataclass(frozen=True)
class OneWayAnovaResult(TidyRow):
    """Outcome of :func:`oneway_anova`.

    Attributes
    ----------
    F, df_num, df_den, p : float
        F statistic, its degrees of freedom and p-value.
    method : str
        ``"fisher"`` (equal variances) or ``"welch"``.
    eta_squared : float
        Between-level sum of squares over the total sum of squares (descriptive).
    n : int
        Number of observations.
    k : int
        Number of levels.
    levels : tuple
        The levels, in order.
    n_per_level : tuple of int
        Observations per level.
    means : tuple of float
        Mean per level.
    """

    F: float
    df_num: float
    df_den: float
    p: float
    method: str
    eta_squared: float
    n: int
    k: int
    levels: tuple[Any, ...]
    n_per_level: tuple[int, ...]
    means: tuple[float, ...]


def _welch_anova(groups: list[np.ndarray]) -> tuple[float, float, float]:
    """Welch's heteroscedastic one-way ANOVA: F, df_num, df_den."""
    k = len(groups)
    n = np.array([g.size for g in groups], dtype=float)
    m = np.array([g.mean() for g in groups])
    v = np.array([g.var(ddof=1) for g in groups])
    if np.any(n < 2) or np.any(v <= 0):
        raise ValueError("Welch's ANOVA needs at least two distinct values in every level")
    w = n / v
    w_sum = w.sum()
    m_w = (w * m).sum() / w_sum
    between = (w * (m - m_w) ** 2).sum() / (k - 1)
    tmp = ((1 - w / w_sum) ** 2 / (n - 1)).sum()
    F = between / (1 + 2 * (k - 2) / (k**2 - 1) * tmp)
    return float(F), float(k - 1), float((k**2 - 1) / (3 * tmp))


def oneway_anova(
    table: pd.DataFrame,
    value: str,
    factor: str,
    *,
    welch: bool = False,
    nan_policy: NanPolicy = "raise",
) -> OneWayAnovaResult:
    """One-way ANOVA of ``value`` across the levels of ``factor``.

    Parameters
    ----------
    table, value : pandas.DataFrame, str
        Tidy table (one row per measurement) and its column of the measurements.
    factor : str
        Column of the levels (e.g. the tumour label).
    welch : bool, default False
        Use Welch's test, which does not assume equal variances.
    nan_policy : {"raise", "omit"}, default "raise"
        What to do with rows with missing values.

    Returns
    -------
    OneWayAnovaResult
    """
    df = select_columns(table, [value, factor], nan_policy)
    y = numeric_values(df, value)
    levels = level_order(df[factor])
    if len(levels) < 2:
        raise ValueError(f"{factor!r} needs at least two levels, found {levels}")
    groups = [y[df[factor] == lvl].to_numpy() for lvl in levels]
    if welch:
        F, df1, df2 = _welch_anova(groups)
        p = float(stats.f.sf(F, df1, df2))
    else:
        res = stats.f_oneway(*groups)
        F, p = float(res.statistic), float(res.pvalue)
        df1, df2 = float(len(groups) - 1), float(y.size - len(groups))
    grand = y.mean()
    ss_between = sum(g.size * (g.mean() - grand) ** 2 for g in groups)
    ss_total = float(((y - grand) ** 2).sum())
    return OneWayAnovaResult(
        F=F,
        df_num=df1,
        df_den=df2,
        p=p,
        method="welch" if welch else "fisher",
        eta_squared=float(ss_between / ss_total) if ss_total > 0 else float("nan"),
        n=int(y.size),
        k=len(levels),
        levels=tuple(levels),
        n_per_level=tuple(int(g.size) for g in groups),
        means=tuple(float(g.mean()) for g in groups),
    )


# ------------------------------------------------------- repeated-measures ANOVA


@dataclass(frozen=True)
class RepeatedMeasuresAnovaResult(TidyRow):
    """Outcome of :func:`repeated_measures_anova`.

    Attributes
    ----------
    F, df_num, df_den, p : float
        Uncorrected univariate F-test.
    epsilon_gg : float
        Greenhouse-Geisser epsilon (1 under sphericity, always 1 for two levels).
    df_num_gg, df_den_gg, p_gg : float
        Degrees of freedom multiplied by ``epsilon_gg`` and the corrected p-value.
    ss_within, ss_subjects, ss_error : float
        Sums of squares of the levels, the subjects and the residual.
    partial_eta_squared : float
        ``ss_within / (ss_within + ss_error)``.
    n_subjects : int
        Subjects in the analysis (complete across all levels).
    n_dropped : int
        Subjects dropped because they missed at least one level.
    dropped_subjects : tuple
        Their identifiers.
    levels : tuple
        The levels of the within-subject factor, in order.
    means : tuple of float
        Mean per level over the analysed subjects.
    """

    F: float
    df_num: float
    df_den: float
    p: float
    epsilon_gg: float
    df_num_gg: float
    df_den_gg: float
    p_gg: float
    ss_within: float
    ss_subjects: float
    ss_error: float
    partial_eta_squared: float
    n_subjects: int
    n_dropped: int
    dropped_subjects: tuple[Any, ...]
    levels: tuple[Any, ...]
    means: tuple[float, ...]


def greenhouse_geisser_epsilon(Y: np.ndarray) -> float:
    """Greenhouse-Geisser epsilon of a complete ``subjects x levels`` matrix.

    Computed from the double-centred sample covariance of the levels (see the module
    documentation). Returns 1 for two levels and NaN when the levels have no variance.
    """
    Y = np.asarray(Y, dtype=float)
    k = Y.shape[1]
    if k < 2:
        raise ValueError("epsilon needs at least two levels")
    if k == 2:
        return 1.0
    S = np.cov(Y, rowvar=False)
    C = np.eye(k) - np.full((k, k), 1.0 / k)
    Sc = C @ S @ C
    denom = (k - 1) * float(np.sum(Sc * Sc))
    if denom <= 0:
        return float("nan")
    eps = float(np.trace(Sc)) ** 2 / denom
    return float(np.clip(eps, 1.0 / (k - 1), 1.0))


def repeated_measures_anova(
    table: pd.DataFrame,
    value: str,
    within: str,
    subject: str,
    *,
    aggregate: str | None = None,
    nan_policy: NanPolicy = "raise",
) -> RepeatedMeasuresAnovaResult:
    """One-factor repeated-measures ANOVA with the Greenhouse-Geisser correction.

    Parameters
    ----------
    table : pandas.DataFrame
        Tidy table, one row per (subject, level) measurement.
    value : str
        Column of the measurements.
    within : str
        Column of the within-subject factor (e.g. the tumour label).
    subject : str
        Column identifying the subject (e.g. the patient).
    aggregate : str or None, default None
        With several rows per (subject, level), a pandas aggregation name (``"mean"``,
        ``"median"``) that reduces them to one; ``None`` refuses such data.
    nan_policy : {"raise", "omit"}, default "raise"
        What to do with rows with missing values.

    Returns
    -------
    RepeatedMeasuresAnovaResult

    Notes
    -----
    The test needs complete data: subjects without a measurement at every level are
    dropped listwise, and reported in ``n_dropped`` and ``dropped_subjects``.
    """
    df = select_columns(table, [value, within, subject], nan_policy)
    df = df.assign(**{value: numeric_values(df, value)})
    levels = level_order(df[within])
    k = len(levels)
    if k < 2:
        raise ValueError(f"{within!r} needs at least two levels, found {levels}")
    wide = subjects_by_level(df, value, within, subject, aggregate).reindex(columns=levels)
    complete = wide.notna().all(axis=1)
    dropped = tuple(wide.index[~complete])
    wide = wide.loc[complete]
    g = wide.shape[0]
    if g < 2:
        raise ValueError(
            f"only {g} subject(s) measured at all {k} levels ({len(dropped)} dropped); "
            "the test needs at least two"
        )
    Y = wide.to_numpy(dtype=float)
    grand = Y.mean()
    ss_within = g * float(((Y.mean(axis=0) - grand) ** 2).sum())
    ss_subjects = k * float(((Y.mean(axis=1) - grand) ** 2).sum())
    ss_total = float(((Y - grand) ** 2).sum())
    ss_error = max(ss_total - ss_within - ss_subjects, 0.0)
    df1 = float(k - 1)
    df2 = float((k - 1) * (g - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        F = float((ss_within / df1) / (ss_error / df2))
    p = float(stats.f.sf(F, df1, df2))
    eps = greenhouse_geisser_epsilon(Y)
    p_gg = float(stats.f.sf(F, eps * df1, eps * df2)) if np.isfinite(eps) else float("nan")
    denom = ss_within + ss_error
    return RepeatedMeasuresAnovaResult(
        F=F,
        df_num=df1,
        df_den=df2,
        p=p,
        epsilon_gg=eps,
        df_num_gg=eps * df1,
        df_den_gg=eps * df2,
        p_gg=p_gg,
        ss_within=ss_within,
        ss_subjects=ss_subjects,
        ss_error=ss_error,
        partial_eta_squared=ss_within / denom if denom > 0 else float("nan"),
        n_subjects=g,
        n_dropped=len(dropped),
        dropped_subjects=dropped,
        levels=tuple(levels),
        means=tuple(float(v) for v in Y.mean(axis=0)),
    )
