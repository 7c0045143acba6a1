"""Holm's step-down correction of a family of p-values.

With ``m`` p-values sorted ascending, ``p_(1) <= ... <= p_(m)``, the adjusted values are

    p~_(k) = min(1, max_{j <= k} (m - j + 1) * p_(j)),

which control the family-wise error rate at any level without assumptions about the
dependence between the tests (Holm 1979). Missing p-values (NaN, tests not computed) are
not members of the family: they stay NaN and do not count in ``m``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["holm"]


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values, in the input order.

    Parameters
    ----------
    p_values : sequence of float, shape (m,)
        Raw p-values in [0, 1]; NaN for tests that were not computed.

    Returns
    -------
    numpy.ndarray of float, shape (m,)

    Examples
    --------
    >>> holm([0.01, 0.04, 0.03]).round(3).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    if finite.size == 0:
        return out
    if np.any((p[finite] < 0) | (p[finite] > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    m = finite.size
    order = finite[np.argsort(p[finite], kind="stable")]
    scaled = (m - np.arange(m)) * p[order]
    out[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return out
