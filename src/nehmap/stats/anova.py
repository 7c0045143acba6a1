"""One-way and repeated-measures ANOVA, pairwise post-hoc tests and ordered comparisons.

All functions take a tidy :class:`pandas.DataFrame` (one row per measurement) and the
names of its columns.

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

Post-hoc tests
--------------
:func:`pairwise_tests` runs, for every pair of levels, a paired t-test (or Wilcoxon
signed-rank test) on the subjects measured at both levels when ``subject`` is given, and
Welch's t-test (or Mann-Whitney U) otherwise. p-values are adjusted across the pairs with
:func:`statsmodels.stats.multitest.multipletests` (``"holm"`` by default).
:func:`ordered_test` tests an expected ordering (for example ET > NEH > ED) one-sided on
each adjacent pair.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

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

NanPolicy = Literal["raise", "omit"]
Alternative = Literal["two-sided", "greater", "less"]


# --------------------------------------------------------------------------- helpers


def _select(table: pd.DataFrame, columns: Sequence[str], nan_policy: NanPolicy) -> pd.DataFrame:
    """The used columns of ``table``, with missing values refused or dropped."""
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a pandas DataFrame, got {type(table).__name__}")
    cols = list(dict.fromkeys(columns))
    missing = [c for c in cols if c not in table.columns]
    if missing:
        raise KeyError(f"columns not in table: {missing}; available: {list(table.columns)}")
    if nan_policy not in ("raise", "omit"):
        raise ValueError(f"nan_policy must be 'raise' or 'omit', got {nan_policy!r}")
    df = table[cols]
    bad = df.isna().any(axis=1)
    n_bad = int(bad.sum())
    if n_bad:
        if nan_policy == "raise":
            per_col = {c: int(df[c].isna().sum()) for c in cols if df[c].isna().any()}
            raise ValueError(
                f"{n_bad} row(s) have missing values {per_col}; drop them first or pass "
                "nan_policy='omit'"
            )
        df = df.loc[~bad]
    if df.empty:
        raise ValueError("no rows to analyse (the table is empty after removing missing values)")
    return df


def _level_order(column: pd.Series) -> list[Any]:
    """Levels of a factor: categorical order if categorical, else sorted (or as seen)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        present = set(column.unique())
        levels = [c for c in column.cat.categories if c in present]
    else:
        levels = list(pd.unique(column))
        try:
            levels = sorted(levels)
        except TypeError:
            pass
    # numpy scalars -> Python scalars, for readable results
    return [lvl.item() if isinstance(lvl, np.generic) else lvl for lvl in levels]


def _values(df: pd.DataFrame, value: str) -> pd.Series:
    y = pd.to_numeric(df[value], errors="raise").astype(float)
    if not np.all(np.isfinite(y.to_numpy())):
        raise ValueError(f"column {value!r} contains infinite values")
    return y


def _check_alternative(alternative: str) -> None:
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(
            f"alternative must be 'two-sided', 'greater' or 'less', got {alternative!r}"
        )


# ------------------------------------------------------------------ one-way ANOVA


@dataclass(frozen=True)
class OneWayAnovaResult:
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

    def to_dict(self) -> dict[str, Any]:
        """Fields as a dictionary (one tidy row)."""
        return asdict(self)

    def to_frame(self) -> pd.DataFrame:
        """One-row DataFrame of :meth:`to_dict`."""
        return pd.DataFrame([self.to_dict()])


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
    table : pandas.DataFrame
        Tidy table, one row per measurement.
    value : str
        Column of the measurements.
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
    df = _select(table, [value, factor], nan_policy)
    y = _values(df, value)
    levels = _level_order(df[factor])
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
class RepeatedMeasuresAnovaResult:
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

    def to_dict(self) -> dict[str, Any]:
        """Fields as a dictionary (one tidy row)."""
        return asdict(self)

    def to_frame(self) -> pd.DataFrame:
        """One-row DataFrame of :meth:`to_dict`."""
        return pd.DataFrame([self.to_dict()])


def _wide(
    df: pd.DataFrame,
    value: str,
    factor: str,
    subject: str,
    aggregate: str | None,
) -> pd.DataFrame:
    """Subjects x levels table; duplicates refused unless an aggregate is named."""
    counts = df.groupby([subject, factor], observed=True, sort=False).size()
    if (counts > 1).any():
        if aggregate is None:
            dup = counts[counts > 1]
            raise ValueError(
                f"{len(dup)} (subject, level) cell(s) have more than one measurement, "
                f"e.g. {dup.index[0]}; aggregate them first or pass aggregate='mean'"
            )
        return df.pivot_table(
            index=subject, columns=factor, values=value, aggfunc=aggregate, observed=True
        )
    return df.pivot(index=subject, columns=factor, values=value)


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
    df = _select(table, [value, within, subject], nan_policy)
    df = df.assign(**{value: _values(df, value)})
    levels = _level_order(df[within])
    k = len(levels)
    if k < 2:
        raise ValueError(f"{within!r} needs at least two levels, found {levels}")
    wide = _wide(df, value, within, subject, aggregate).reindex(columns=levels)
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


# ---------------------------------------------------------------- pairwise tests


def _rank_biserial_paired(d: np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation of the differences (zeros left out)."""
    d = d[d != 0]
    if d.size == 0:
        return 0.0
    ranks = stats.rankdata(np.abs(d))
    plus = ranks[d > 0].sum()
    minus = ranks[d < 0].sum()
    return float((plus - minus) / (plus + minus))


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
        return {
            "test": "paired t",
            "statistic": float(res.statistic),
            "df": float(n - 1),
            "p": float(res.pvalue),
            "effect_size": es,
            "effect_size_name": "cohen_dz",
        }
    if n < 1 or not np.any(d != 0):
        raise ValueError("the Wilcoxon test needs at least one non-zero paired difference")
    res = stats.wilcoxon(xa, xb, alternative=alternative)
    return {
        "test": "wilcoxon",
        "statistic": float(res.statistic),
        "df": float("nan"),
        "p": float(res.pvalue),
        "effect_size": _rank_biserial_paired(d),
        "effect_size_name": "rank_biserial",
    }


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
        return {
            "test": "welch t",
            "statistic": float(res.statistic),
            "df": float(dof),
            "p": float(res.pvalue),
            "effect_size": float((xa.mean() - xb.mean()) / sd_av) if sd_av > 0 else float("nan"),
            "effect_size_name": "cohen_d_av",
        }
    res = stats.mannwhitneyu(xa, xb, alternative=alternative)
    return {
        "test": "mann-whitney u",
        "statistic": float(res.statistic),
        "df": float("nan"),
        "p": float(res.pvalue),
        "effect_size": float(2 * res.statistic / (na * nb) - 1),
        "effect_size_name": "rank_biserial",
    }


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
    table : pandas.DataFrame
        Tidy table, one row per measurement.
    value : str
        Column of the measurements.
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
    _check_alternative(alternative)
    if paired is None:
        paired = subject is not None
    if paired and subject is None:
        raise ValueError("paired tests need the subject column (subject=...)")
    cols = [value, factor] + ([subject] if subject is not None else [])
    df = _select(table, cols, nan_policy)
    df = df.assign(**{value: _values(df, value)})
    levels = _level_order(df[factor])
    if pairs is None:
        pair_list = list(itertools.combinations(levels, 2))
    else:
        pair_list = [tuple(p) for p in pairs]
        unknown = sorted({str(v) for p in pair_list for v in p if v not in levels})
        if unknown:
            raise ValueError(f"levels not found in {factor!r}: {unknown}; present: {levels}")
    if not pair_list:
        raise ValueError(f"{factor!r} needs at least two levels, found {levels}")

    wide = _wide(df, value, factor, subject, aggregate) if paired else None
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


# ----------------------------------------------------------------- ordered test


@dataclass(frozen=True, eq=False)
class OrderedTestResult:
    """Outcome of :func:`ordered_test`.

    Attributes
    ----------
    order : tuple
        The levels in their expected order.
    direction : str
        ``"decreasing"`` (``order[0] > order[1] > ...``) or ``"increasing"``.
    conclusion : bool
        True when every adjacent comparison is significant after correction, i.e. the
        data support the whole ordering at level ``alpha``.
    alpha : float
        Significance level.
    correction : str
        Multiplicity correction applied across the adjacent comparisons.
    paired : bool
        Whether paired tests were used.
    table : pandas.DataFrame
        One row per adjacent pair, as returned by :func:`pairwise_tests`.
    """

    order: tuple[Any, ...]
    direction: str
    conclusion: bool
    alpha: float
    correction: str
    paired: bool
    table: pd.DataFrame = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Summary fields (without the per-pair table)."""
        return {
            "order": " > ".join(map(str, self.order))
            if self.direction == "decreasing"
            else " < ".join(map(str, self.order)),
            "direction": self.direction,
            "conclusion": self.conclusion,
            "alpha": self.alpha,
            "correction": self.correction,
            "paired": self.paired,
            "max_p_adjusted": float(self.table["p_adjusted"].max()),
        }

    def to_frame(self) -> pd.DataFrame:
        """The per-pair table with the overall ``conclusion`` as an extra column."""
        return self.table.assign(conclusion=self.conclusion)


def ordered_test(
    table: pd.DataFrame,
    value: str,
    factor: str,
    order: Sequence[Any] = ("ET", "NEH", "ED"),
    subject: str | None = None,
    *,
    direction: Literal["decreasing", "increasing"] = "decreasing",
    parametric: bool = True,
    correction: str | None = "holm",
    alpha: float = 0.05,
    aggregate: str | None = None,
    nan_policy: NanPolicy = "raise",
) -> OrderedTestResult:
    """Test an expected ordering of levels, one-sided on each adjacent pair.

    With ``order=("ET", "NEH", "ED")`` and ``direction="decreasing"`` the hypotheses
    are ET > NEH and NEH > ED, each tested one-sided (paired on ``subject`` when given,
    Welch otherwise; rank tests with ``parametric=False``). The p-values are adjusted
    across the adjacent pairs with ``correction``, and ``conclusion`` is True when all
    adjusted p-values are below ``alpha``.

    Notes
    -----
    Requiring every adjacent comparison to be significant is an intersection-union
    test, which keeps its level ``alpha`` even without adjustment;
    ``correction="none"`` gives that (more powerful) version. The default Holm
    adjustment is conservative but makes the per-pair p-values usable on their own.

    Parameters
    ----------
    table, value, factor, subject, parametric, correction, alpha, aggregate, nan_policy
        As in :func:`pairwise_tests`.
    order : sequence
        At least two levels of ``factor`` in their expected order.
    direction : {"decreasing", "increasing"}, default "decreasing"
        Whether values are expected to fall (``order[0]`` largest) or rise along
        ``order``.

    Returns
    -------
    OrderedTestResult
    """
    if direction not in ("decreasing", "increasing"):
        raise ValueError(f"direction must be 'decreasing' or 'increasing', got {direction!r}")
    order = tuple(order)
    if len(order) < 2:
        raise ValueError("order needs at least two levels")
    if len(set(order)) != len(order):
        raise ValueError(f"order repeats a level: {order}")
    pairs = list(itertools.pairwise(order))
    res = pairwise_tests(
        table,
        value,
        factor,
        subject=subject,
        paired=subject is not None,
        correction=correction,
        parametric=parametric,
        alternative="greater" if direction == "decreasing" else "less",
        pairs=pairs,
        alpha=alpha,
        aggregate=aggregate,
        nan_policy=nan_policy,
    )
    return OrderedTestResult(
        order=order,
        direction=direction,
        conclusion=bool((res["p_adjusted"] < alpha).all()),
        alpha=float(alpha),
        correction="none" if correction is None else correction,
        paired=subject is not None,
        table=res,
    )
