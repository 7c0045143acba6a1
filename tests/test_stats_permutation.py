"""Tests of the sign-flip permutation test."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nehmap.stats import sign_flip_table, sign_flip_test


def _brute_force(values: np.ndarray, baseline: float) -> tuple[float, float, float]:
    """p_greater, p_less, p_two_sided over all sign patterns, by enumeration."""
    d = np.asarray(values, dtype=float) - baseline
    signs = np.array(list(itertools.product([1.0, -1.0], repeat=d.size)))
    null = (signs * d).mean(axis=1)
    obs = d.mean()
    tol = 1e-9 * np.abs(d).mean()
    return (
        float(np.mean(null >= obs - tol)),
        float(np.mean(null <= obs + tol)),
        float(np.mean(np.abs(null) >= abs(obs) - tol)),
    )


def _mean_stat(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("baseline", [0.0, 1.0])
def test_exact_equals_brute_force(seed: int, baseline: float) -> None:
    rng = np.random.default_rng(seed)
    x = baseline + rng.normal(0.3, 1.0, size=10)
    res = sign_flip_test(x, baseline=baseline)
    assert res.method == "exact"
    assert res.n_permutations == 2**10
    pg, pl, p2 = _brute_force(x, baseline)
    assert res.p_greater == pytest.approx(pg, abs=1e-12)
    assert res.p_less == pytest.approx(pl, abs=1e-12)
    assert res.p_two_sided == pytest.approx(p2, abs=1e-12)
    assert res.null_mean == baseline
    assert res.observed_mean == pytest.approx(x.mean())


@pytest.mark.parametrize("n", [1, 2, 7, 11])
def test_exact_equals_brute_force_odd_sizes(n: int) -> None:
    x = np.random.default_rng(n).normal(0.2, 1.0, size=n)
    res = sign_flip_test(x)
    assert (res.p_greater, res.p_less, res.p_two_sided) == pytest.approx(_brute_force(x, 0.0))


def test_ties_counted_with_floating_point_rounding() -> None:
    # Ratios near 1 in steps of 0.1: the deviations carry rounding error, and many sign
    # patterns tie with the observed mean. Count the ties exactly in integers.
    k = np.array([1, 2, 2, 3, 1, -1, 4, 2, 1, 3, 2])
    x = 1.0 + 0.1 * k
    res = sign_flip_test(x, baseline=1.0)
    signs = np.array(list(itertools.product([1, -1], repeat=k.size)))
    null = signs @ k
    obs = int(k.sum())
    assert res.p_greater == np.mean(null >= obs)
    assert res.p_less == np.mean(null <= obs)
    assert res.p_two_sided == np.mean(np.abs(null) >= abs(obs))
    # Identical values: only the all-positive pattern reaches the observed mean.
    res = sign_flip_test(np.full(6, 1.1), baseline=1.0)
    assert res.p_greater == 1 / 64
    assert res.p_two_sided == 2 / 64
    # All deviations zero: every pattern ties.
    res = sign_flip_test(np.zeros(5))
    assert res.p_greater == res.p_less == res.p_two_sided == 1.0


@pytest.mark.parametrize("alternative", ["greater", "less"])
def test_exact_one_sided_matches_scipy_exact(alternative: str) -> None:
    x = np.random.default_rng(5).normal(0.4, 1.0, size=12)
    ref = stats.permutation_test(
        (x,),
        _mean_stat,
        permutation_type="samples",
        n_resamples=np.inf,
        alternative=alternative,
        vectorized=True,
    )
    res = sign_flip_test(x, alternative=alternative)
    assert res.p_value == pytest.approx(ref.pvalue, abs=1e-12)


def test_monte_carlo_matches_scipy_and_exact() -> None:
    x = np.random.default_rng(11).normal(0.35, 1.0, size=20)
    n_perm = 10_000
    res = sign_flip_test(x, exact=False, n_permutations=n_perm, seed=3)
    exact = sign_flip_test(x, exact=True)
    assert res.method == "monte-carlo"
    assert exact.method == "exact"
    for alternative, p_mc, p_ex in [
        ("greater", res.p_greater, exact.p_greater),
        ("less", res.p_less, exact.p_less),
    ]:
        ref = stats.permutation_test(
            (x,),
            _mean_stat,
            permutation_type="samples",
            n_resamples=n_perm,
            alternative=alternative,
            vectorized=True,
            rng=np.random.default_rng(4),
        )
        sd = np.sqrt(p_ex * (1 - p_ex) / n_perm)
        assert abs(p_mc - ref.pvalue) < 5 * np.sqrt(2) * sd + 2 / n_perm
        assert abs(p_mc - p_ex) < 5 * sd + 2 / n_perm
    # Two-sided (|T*| >= |T|) against the exact count.
    sd = np.sqrt(exact.p_two_sided * (1 - exact.p_two_sided) / n_perm)
    assert abs(res.p_two_sided - exact.p_two_sided) < 5 * sd + 2 / n_perm


def test_monte_carlo_null_mean_near_baseline_and_plus_one() -> None:
    x = 1.0 + np.random.default_rng(2).uniform(0.05, 0.3, size=60)  # all above 1
    res = sign_flip_test(x, baseline=1.0, n_permutations=5000, seed=0)
    assert res.method == "monte-carlo"
    d = x - 1.0
    sd_null_mean = np.sqrt(np.sum(d**2)) / d.size / np.sqrt(5000)
    assert abs(res.null_mean - 1.0) < 5 * sd_null_mean
    # No random pattern reaches the all-positive sum: p is the +1-corrected minimum.
    assert res.p_greater == pytest.approx(1 / 5001)
    assert res.p_less == pytest.approx(1.0)


def test_seed_determinism() -> None:
    x = np.random.default_rng(0).normal(0.1, 1.0, size=50)
    a = sign_flip_test(x, seed=7)
    b = sign_flip_test(x, seed=7)
    c = sign_flip_test(x, seed=8)
    assert a == b
    assert a.p_two_sided != c.p_two_sided or a.null_mean != c.null_mean


def test_exact_switch_and_options() -> None:
    x = np.random.default_rng(0).normal(size=41)
    assert sign_flip_test(x).method == "monte-carlo"
    assert sign_flip_test(x[:40]).method == "exact"
    assert sign_flip_test(x[:20], max_exact_n=10).method == "monte-carlo"
    with pytest.raises(ValueError, match="exact=False"):
        sign_flip_test(np.ones(60), exact=True)
    res = sign_flip_test(x[:10], alternative="less")
    assert res.p_value == res.p_less
    row = res.to_dict()
    assert row["p_value"] == res.p_less and row["method"] == "exact"
    assert list(res.to_frame().columns) == list(row)


def test_exact_large_n_consistent_with_monte_carlo() -> None:
    x = np.random.default_rng(9).normal(0.25, 1.0, size=30)
    exact = sign_flip_test(x)
    mc = sign_flip_test(x, exact=False, n_permutations=20_000, seed=1)
    sd = np.sqrt(exact.p_two_sided * (1 - exact.p_two_sided) / 20_000)
    assert abs(mc.p_two_sided - exact.p_two_sided) < 5 * sd + 1e-4
    # Symmetry of the exact null.
    assert exact.p_greater + exact.p_less == pytest.approx(1.0, abs=1e-6)


def test_nan_policy_and_bad_input() -> None:
    x = [0.5, np.nan, 1.0, np.nan, 0.2]
    with pytest.raises(ValueError, match="2 NaN"):
        sign_flip_test(x)
    res = sign_flip_test(x, nan_policy="omit")
    assert res.n == 3 and res.n_omitted == 2
    assert res.p_greater == sign_flip_test([0.5, 1.0, 0.2]).p_greater
    with pytest.raises(ValueError, match="empty"):
        sign_flip_test([])
    with pytest.raises(ValueError, match="empty"):
        sign_flip_test([np.nan], nan_policy="omit")
    with pytest.raises(ValueError, match="infinite"):
        sign_flip_test([1.0, np.inf])
    with pytest.raises(ValueError, match="one-dimensional"):
        sign_flip_test(np.ones((3, 2)))
    with pytest.raises(ValueError, match="alternative"):
        sign_flip_test([1.0, 2.0], alternative="bigger")


def test_sign_flip_table() -> None:
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {
            "metric": ["ratio"] * 8 + ["distance_mm"] * 8,
            "value": np.r_[1 + rng.normal(0.2, 0.1, 8), rng.normal(2.0, 1.0, 8)],
        }
    )
    out = sign_flip_table(table, "value", "metric", baseline={"ratio": 1.0, "distance_mm": 0.0})
    assert list(out["metric"]) == ["distance_mm", "ratio"]
    ratio = out.set_index("metric").loc["ratio"]
    assert ratio["baseline"] == 1.0 and ratio["null_mean"] == 1.0
    direct = sign_flip_test(table.loc[table.metric == "ratio", "value"], baseline=1.0)
    assert ratio["p_two_sided"] == direct.p_two_sided
    with pytest.raises(KeyError, match="no baseline"):
        sign_flip_table(table, "value", "metric", baseline={"ratio": 1.0})
