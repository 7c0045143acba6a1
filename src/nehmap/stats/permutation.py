"""Sign-flip permutation test of a mean against a null baseline.

The test asks whether the mean of a set of per-case measurements (one value per patient,
for example a distance in mm or a volume ratio) differs from a baseline that the
measurement would take by chance alone: zero for distances, one for ratios.

Null hypothesis
---------------
The deviations ``d_i = x_i - baseline`` are symmetric about zero, independently for each
case. Under that hypothesis every one of the ``2**n`` patterns of signs applied to the
deviations is equally likely, so the null distribution of the statistic

    T = mean(d)

is the distribution of ``mean(s * d)`` over the sign vectors ``s`` in ``{-1, +1}**n``.

p-values
--------
``p_greater``
    share of sign patterns with ``T* >= T`` (evidence that the mean exceeds the baseline).
``p_less``
    share of sign patterns with ``T* <= T``.
``p_two_sided``
    share of sign patterns with ``|T*| >= |T|``. This is the classical two-sided
    permutation p-value; it is *not* ``2 * min(p_greater, p_less)``, although for a
    symmetric null the two are close.

The comparisons use a small relative tolerance (``1e-9 * sum(|d|)``), so that patterns
whose statistic equals the observed one up to floating-point rounding (the observed
pattern itself, and every pattern tied with it) are always counted.

Two ways of computing them:

exact
    All ``2**n`` patterns are counted (the default whenever ``n <= 40``). The count uses
    a meet-in-the-middle scheme: the deviations are split into two halves, the
    ``2**(n/2)`` signed sums of each half are enumerated, one half is sorted, and the
    number of pairs whose total reaches the threshold is found with
    :func:`numpy.searchsorted`. Time and memory grow as ``2**(n/2)``: about 0.1 s and
    40 MB for ``n = 40``. The exact null is symmetric about zero, so its mean is exactly
    the baseline.
Monte Carlo
    ``n_permutations`` random sign patterns, with the usual ``+1`` correction,
    ``p = (count + 1) / (n_permutations + 1)``, which keeps the test valid (the observed
    pattern is counted as one of the permutations). Random signs come from random bytes:
    the deviations are grouped eight at a time, and for each group a 256-entry table of
    the signed sums of all its sign patterns is built once (from ``np.unpackbits`` of
    the byte values), so that one permutation costs one table look-up per eight values.

Missing values
--------------
NaN values are refused by default (``nan_policy="raise"``): the error names how many
there are. ``nan_policy="omit"`` drops them explicitly, and the result records how many
were dropped in ``n_omitted``. Infinite values are always refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from nehmap.stats.tidy import Alternative, NanPolicy, TidyRow, check_alternative

__all__ = [
    "DEFAULT_MAX_EXACT_N",
    "SignFlipResult",
    "sign_flip_table",
    "sign_flip_test",
]

DEFAULT_MAX_EXACT_N = 40
"""Largest sample size for which ``exact=None`` chooses the exact test."""

_HARD_MAX_EXACT_N = 50  # 2**25 float64 values per half: about 270 MB each
_RTOL = 1e-9
_CHUNK = 1 << 16  # permutations per Monte Carlo block, bounds memory for large n

# Row b holds the signs (+1 for a 0 bit, -1 for a 1 bit) of the eight values that the
# byte value b encodes; shape (256, 8).
_BYTE_SIGNS = 1.0 - 2.0 * np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1)


@dataclass(frozen=True)
class SignFlipResult(TidyRow):
    """Outcome of :func:`sign_flip_test`.

    Attributes
    ----------
    observed_mean : float
        Mean of the values (on their own scale).
    null_mean : float
        Mean of the null distribution of means, on the values' scale: the baseline plus
        the mean of the sign-flipped mean deviations. Exactly the baseline for the exact
        test; close to it for the Monte Carlo test.
    baseline : float
        The value the mean would take by chance (0 for distances, 1 for ratios).
    p_greater, p_less, p_two_sided : float
        One-sided p-values (mean greater than / less than the baseline) and the two-sided
        p-value (``|T*| >= |T|``).
    alternative : str
        The alternative named by the caller; :attr:`p_value` returns its p-value.
    n : int
        Number of values used.
    n_permutations : int
        Number of sign patterns the p-values rest on: ``2**n`` for the exact test.
    method : str
        ``"exact"`` or ``"monte-carlo"``.
    n_omitted : int
        Number of NaN values dropped (only with ``nan_policy="omit"``).
    """

    observed_mean: float
    null_mean: float
    baseline: float
    p_greater: float
    p_less: float
    p_two_sided: float
    alternative: str
    n: int
    n_permutations: int
    method: str
    n_omitted: int = 0

    @property
    def p_value(self) -> float:
        """The p-value for :attr:`alternative`."""
        return {
            "greater": self.p_greater,
            "less": self.p_less,
            "two-sided": self.p_two_sided,
        }[self.alternative]

    @property
    def observed_deviation(self) -> float:
        """Observed mean minus the baseline."""
        return self.observed_mean - self.baseline

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary of the fields plus ``p_value`` (one tidy row)."""
        out = super().to_dict()
        out["p_value"] = self.p_value
        return out


def _clean_values(values: Any, nan_policy: NanPolicy) -> tuple[np.ndarray, int]:
    x = np.asarray(values, dtype=float)
    if x.ndim != 1:
        if x.ndim == 0:
            x = x.reshape(1)
        else:
            raise ValueError(
                f"values must be one-dimensional (one value per case), got shape {x.shape}"
            )
    nan = np.isnan(x)
    n_nan = int(nan.sum())
    if n_nan:
        if nan_policy == "raise":
            raise ValueError(
                f"values contain {n_nan} NaN value(s) out of {x.size}; drop them first or "
                "pass nan_policy='omit'"
            )
        if nan_policy != "omit":
            raise ValueError(f"nan_policy must be 'raise' or 'omit', got {nan_policy!r}")
        x = x[~nan]
    if np.isinf(x).any():
        raise ValueError(f"values contain {int(np.isinf(x).sum())} infinite value(s)")
    if x.size == 0:
        raise ValueError(
            "values is empty"
            + (" after omitting NaNs" if n_nan else "")
            + ": the test needs at least one measurement (one value per case)"
        )
    return x, n_nan


def _signed_sums(d: np.ndarray) -> np.ndarray:
    """All ``2**len(d)`` sums ``sum(s * d)``, sign vectors ``s`` in ``{-1, 1}**len(d)``."""
    sums = np.zeros(1)
    for v in d:
        sums = np.concatenate((sums + v, sums - v))
    return sums


def _exact_counts(d: np.ndarray, total: float, tol: float) -> tuple[int, int, int]:
    """Exact numbers of sign patterns with ``S* >= S``, ``S* <= S`` and ``|S*| >= |S|``.

    ``S`` is the observed sum ``total``; comparisons allow ``tol`` of rounding error.
    """
    half = d.size // 2
    left = np.sort(_signed_sums(d[half:]))  # the larger half, searched sequentially
    right = np.sort(_signed_sums(d[:half]))
    n_pairs = left.size * right.size

    def count_ge(threshold: float) -> int:
        # pairs (a, b) with a + b >= threshold  <=>  b >= threshold - a
        idx = np.searchsorted(right, threshold - left, side="left")
        return int(n_pairs - idx.sum(dtype=np.int64))

    def count_le(threshold: float) -> int:
        idx = np.searchsorted(right, threshold - left, side="right")
        return int(idx.sum(dtype=np.int64))

    ge = count_ge(total - tol)
    le = count_le(total + tol)
    edge = abs(total) - tol
    two = n_pairs if edge <= 0 else count_ge(edge) + count_le(-edge)
    return ge, le, two


def _byte_tables(d: np.ndarray) -> np.ndarray:
    """Tables of shape (256, n_bytes): signed sums of each group of eight deviations."""
    n_bytes = (d.size + 7) // 8
    padded = np.zeros(n_bytes * 8)
    padded[: d.size] = d
    return _BYTE_SIGNS @ padded.reshape(n_bytes, 8).T


def _monte_carlo_sums(d: np.ndarray, n_permutations: int, rng: np.random.Generator) -> np.ndarray:
    """Signed sums ``sum(s * d)`` for ``n_permutations`` uniformly random sign vectors."""
    tables = _byte_tables(d)
    n_bytes = tables.shape[1]
    out = np.empty(n_permutations)
    for start in range(0, n_permutations, _CHUNK):
        stop = min(start + _CHUNK, n_permutations)
        codes = rng.integers(0, 256, size=(n_bytes, stop - start), dtype=np.uint8)
        block = tables[codes[0], 0]
        for j in range(1, n_bytes):
            block += tables[codes[j], j]
        out[start:stop] = block
    return out


def sign_flip_test(
    values: Any,
    baseline: float = 0.0,
    n_permutations: int = 10_000,
    seed: int | np.random.Generator | None = 0,
    exact: bool | None = None,
    alternative: Alternative = "two-sided",
    *,
    max_exact_n: int = DEFAULT_MAX_EXACT_N,
    nan_policy: NanPolicy = "raise",
) -> SignFlipResult:
    """Sign-flip permutation test of whether the mean of ``values`` differs from ``baseline``.

    All three p-values (greater, less, two-sided) are always computed; ``alternative``
    only chooses which one :attr:`SignFlipResult.p_value` returns.

    Parameters
    ----------
    values : array-like of float, 1-D
        One measurement per case (for example one distance per patient).
    baseline : float, default 0.0
        Value expected by chance: 0 for distances and differences, 1 for ratios.
    n_permutations : int, default 10000
        Number of random sign patterns for the Monte Carlo test (ignored when exact).
    seed : int, numpy Generator or None, default 0
        Seed of the Monte Carlo draws; the same seed gives the same result.
    exact : bool or None, default None
        ``None`` counts all ``2**n`` sign patterns when ``n <= max_exact_n`` and uses Monte
        Carlo otherwise; ``True`` forces the exact count (allowed up to ``n = 50``);
        ``False`` forces Monte Carlo.
    alternative : {"two-sided", "greater", "less"}, default "two-sided"
        Which p-value :attr:`SignFlipResult.p_value` reports.
    max_exact_n : int, default 40
        Largest ``n`` for which ``exact=None`` chooses the exact test.
    nan_policy : {"raise", "omit"}, default "raise"
        ``"raise"`` refuses NaN values (the error gives their number); ``"omit"`` drops
        them and records how many in ``n_omitted``.

    Returns
    -------
    SignFlipResult

    Raises
    ------
    ValueError
        For empty input, NaN values under ``nan_policy="raise"``, infinite values, an
        unknown ``alternative``, ``n_permutations < 1``, or ``exact=True`` with ``n > 50``.

    Examples
    --------
    >>> res = sign_flip_test([0.4, 1.2, 0.8, -0.1, 0.9], baseline=0.0)
    >>> res.method, round(res.p_greater, 4)
    ('exact', 0.0625)
    """
    check_alternative(alternative)
    x, n_omitted = _clean_values(values, nan_policy)
    baseline = float(baseline)
    if not np.isfinite(baseline):
        raise ValueError(f"baseline must be finite, got {baseline}")
    n = int(x.size)
    d = x - baseline
    total = float(d.sum())
    tol = _RTOL * float(np.abs(d).sum())

    use_exact = n <= max_exact_n if exact is None else bool(exact)
    if use_exact:
        if n > _HARD_MAX_EXACT_N:
            raise ValueError(
                f"exact=True with n={n}: the exact count is limited to n <= "
                f"{_HARD_MAX_EXACT_N} (memory grows as 2**(n/2)); use exact=False"
            )
        ge, le, two = _exact_counts(d, total, tol)
        n_patterns = 1 << n
        p_greater = ge / n_patterns
        p_less = le / n_patterns
        p_two = two / n_patterns
        null_mean = baseline  # the exact null is symmetric about the baseline
        method = "exact"
        n_perm_used = n_patterns
    else:
        n_permutations = int(n_permutations)
        if n_permutations < 1:
            raise ValueError(f"n_permutations must be at least 1, got {n_permutations}")
        rng = np.random.default_rng(seed)
        sums = _monte_carlo_sums(d, n_permutations, rng)
        denom = n_permutations + 1
        p_greater = (int(np.count_nonzero(sums >= total - tol)) + 1) / denom
        p_less = (int(np.count_nonzero(sums <= total + tol)) + 1) / denom
        p_two = (int(np.count_nonzero(np.abs(sums) >= abs(total) - tol)) + 1) / denom
        null_mean = baseline + float(sums.mean()) / n
        method = "monte-carlo"
        n_perm_used = n_permutations

    return SignFlipResult(
        observed_mean=float(x.mean()),
        null_mean=float(null_mean),
        baseline=baseline,
        p_greater=float(min(p_greater, 1.0)),
        p_less=float(min(p_less, 1.0)),
        p_two_sided=float(min(p_two, 1.0)),
        alternative=alternative,
        n=n,
        n_permutations=int(n_perm_used),
        method=method,
        n_omitted=n_omitted,
    )


def sign_flip_table(
    table: pd.DataFrame,
    value: str,
    by: str | Sequence[str],
    baseline: float | Mapping[Any, float] = 0.0,
    **kwargs: Any,
) -> pd.DataFrame:
    """Run :func:`sign_flip_test` for every group of a tidy table; one row per group.

    Parameters
    ----------
    table, value : pandas.DataFrame, str
        Tidy table (one row per measurement) and its column of the measurements.
    by : str or sequence of str
        Column(s) naming the groups, e.g. ``"metric"``.
    baseline : float or mapping, default 0.0
        One baseline for all groups, or a mapping from group key to baseline (for example
        ``{"distance_mm": 0.0, "volume_ratio": 1.0}``). A group missing from the mapping
        is an error.
    **kwargs
        Passed on to :func:`sign_flip_test` (``n_permutations``, ``seed``, ``exact``,
        ``alternative``, ``nan_policy``, ...).

    Returns
    -------
    pandas.DataFrame
        The group column(s) followed by the fields of :class:`SignFlipResult`.
    """
    by_cols = [by] if isinstance(by, str) else list(by)
    missing = [c for c in [value, *by_cols] if c not in table.columns]
    if missing:
        raise KeyError(f"columns not in table: {missing}")
    rows = []
    for key, sub in table.groupby(by_cols if len(by_cols) > 1 else by_cols[0], sort=True):
        if isinstance(baseline, Mapping):
            if key not in baseline:
                raise KeyError(f"no baseline given for group {key!r}")
            base = baseline[key]
        else:
            base = baseline
        res = sign_flip_test(sub[value].to_numpy(), baseline=base, **kwargs)
        keys = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by_cols, keys, strict=True)), **res.to_dict()})
    return pd.DataFrame(rows)
