"""One-sided tests of an expected ordering of levels, e.g. ET > NEH > ED.

:func:`ordered_test` tests each adjacent pair of the ordering one-sided with
:func:`nehmap.stats.pairwise.pairwise_tests` and concludes for the whole ordering when
every adjusted p-value is below ``alpha``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from nehmap.stats.pairwise import pairwise_tests
from nehmap.stats.tidy import NanPolicy

__all__ = ["OrderedTestResult", "ordered_test"]


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
