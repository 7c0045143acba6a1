"""Checked access to tidy tables, shared by the ANOVA, pairwise, ordered and mixed-model tests.

A tidy table has one row per measurement. The helpers here pick the used columns and
apply the missing-value policy (``nan_policy="raise"`` refuses rows with a missing value
and gives their number; ``"omit"`` drops them), order the levels of a factor, check that
the measurements are finite numbers, pivot to a ``subjects x levels`` table, and give
the result dataclasses their one-row ``to_dict`` / ``to_frame`` views.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, Literal

import numpy as np
import pandas as pd

__all__ = [
    "Alternative",
    "NanPolicy",
    "TidyRow",
    "check_alternative",
    "level_order",
    "numeric_values",
    "select_columns",
    "subjects_by_level",
]

NanPolicy = Literal["raise", "omit"]
Alternative = Literal["two-sided", "greater", "less"]


class TidyRow:
    """Mixin for result dataclasses: the fields as one tidy row."""

    def to_dict(self) -> dict[str, Any]:
        """Fields as a dictionary (one tidy row)."""
        return asdict(self)

    def to_frame(self) -> pd.DataFrame:
        """One-row DataFrame of :meth:`to_dict`."""
        return pd.DataFrame([self.to_dict()])


def select_columns(
    table: pd.DataFrame, columns: Sequence[str], nan_policy: NanPolicy
) -> pd.DataFrame:
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


def level_order(column: pd.Series) -> list[Any]:
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


def numeric_values(df: pd.DataFrame, value: str) -> pd.Series:
    """Column ``value`` as floats; infinite values refused."""
    y = pd.to_numeric(df[value], errors="raise").astype(float)
    if not np.all(np.isfinite(y.to_numpy())):
        raise ValueError(f"column {value!r} contains infinite values")
    return y


def check_alternative(alternative: str) -> None:
    """Refuse an ``alternative`` other than two-sided, greater or less."""
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(
            f"alternative must be 'two-sided', 'greater' or 'less', got {alternative!r}"
        )


def subjects_by_level(
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
