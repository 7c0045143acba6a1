"""Tests of the ANOVA, post-hoc and ordered tests."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.anova import AnovaRM
from statsmodels.stats.multitest import multipletests

from nehmap.stats import (
    greenhouse_geisser_epsilon,
    oneway_anova,
    ordered_test,
    pairwise_tests,
    repeated_measures_anova,
)

LEVELS = ("ET", "NEH", "ED")


def _long(Y: np.ndarray, levels=LEVELS) -> pd.DataFrame:
    """Tidy table from a subjects x levels matrix."""
    g, k = Y.shape
    return pd.DataFrame(
        {
            "patient": np.repeat([f"P{i:02d}" for i in range(g)], k),
            "label": np.tile(levels[:k], g),
            "rcbv": Y.ravel(),
        }
    )


def _data(g: int = 15, seed: int = 0, means=(3.0, 2.0, 1.5)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    subject = rng.normal(0, 1.0, (g, 1))
    noise = rng.normal(0, 1.0, (g, len(means))) * np.array([1.0, 0.6, 0.3])  # unequal
    return np.asarray(means) + subject + noise


def test_rm_anova_equals_hand_computation_and_anovarm() -> None:
    Y = _data()
    table = _long(Y)
    res = repeated_measures_anova(table, "rcbv", "label", "patient")
    g, k = Y.shape
    grand = Y.mean()
    ss_levels = g * ((Y.mean(0) - grand) ** 2).sum()
    ss_subjects = k * ((Y.mean(1) - grand) ** 2).sum()
    ss_error = ((Y - Y.mean(1, keepdims=True) - Y.mean(0) + grand) ** 2).sum()
    F = (ss_levels / (k - 1)) / (ss_error / ((k - 1) * (g - 1)))
    assert res.F == pytest.approx(F)
    assert res.ss_error == pytest.approx(ss_error)
    assert res.ss_subjects == pytest.approx(ss_subjects)
    ref = AnovaRM(table, "rcbv", "patient", within=["label"]).fit().anova_table.iloc[0]
    assert res.F == pytest.approx(ref["F Value"])
    assert (res.df_num, res.df_den) == (ref["Num DF"], ref["Den DF"])
    assert res.p == pytest.approx(ref["Pr > F"])
    assert res.levels == ("ED", "ET", "NEH")  # sorted
    assert res.n_subjects == g and res.n_dropped == 0


def test_greenhouse_geisser_epsilon() -> None:
    Y = _data(seed=1)
    k = Y.shape[1]
    # Hand computation through orthonormal contrasts.
    M = np.linalg.qr(np.c_[np.ones(k), np.eye(k)[:, : k - 1]])[0][:, 1:]
    Sigma = M.T @ np.cov(Y, rowvar=False) @ M
    eps = np.trace(Sigma) ** 2 / ((k - 1) * np.trace(Sigma @ Sigma))
    assert greenhouse_geisser_epsilon(Y) == pytest.approx(eps)
    res = repeated_measures_anova(_long(Y), "rcbv", "label", "patient")
    assert res.epsilon_gg == pytest.approx(eps)
    assert 1 / (k - 1) <= eps < 1
    assert res.df_num_gg == pytest.approx(eps * 2)
    assert res.p_gg == pytest.approx(stats.f.sf(res.F, eps * res.df_num, eps * res.df_den))
    assert res.p_gg >= res.p
    # Two levels: always 1.
    two = repeated_measures_anova(_long(Y[:, :2]), "rcbv", "label", "patient")
    assert two.epsilon_gg == 1.0 and two.p_gg == pytest.approx(two.p)
    # Sphericity-perfect data: residuals are all permutations of a vector, so their
    # covariance is compound symmetric.
    perms = np.array(list(itertools.permutations([1.0, 0.0, -2.0])))
    Y_sph = perms + np.array([1.0, 2.0, 3.0]) + np.arange(6.0)[:, None]
    assert greenhouse_geisser_epsilon(Y_sph) == pytest.approx(1.0)


def test_rm_anova_drops_incomplete_subjects_listwise() -> None:
    Y = _data(seed=2)
    table = _long(Y)
    table = table.drop(index=table.index[(table.patient == "P03") & (table.label == "NEH")])
    res = repeated_measures_anova(table, "rcbv", "label", "patient")
    assert res.n_dropped == 1 and res.dropped_subjects == ("P03",)
    complete = table[table.patient != "P03"]
    ref = AnovaRM(complete, "rcbv", "patient", within=["label"]).fit().anova_table.iloc[0]
    assert res.F == pytest.approx(ref["F Value"])
    assert res.n_subjects == Y.shape[0] - 1
    # Missing values refused unless omitted; omitting also drops the subject listwise.
    table.loc[table.index[0], "rcbv"] = np.nan
    with pytest.raises(ValueError, match="1 row"):
        repeated_measures_anova(table, "rcbv", "label", "patient")
    res = repeated_measures_anova(table, "rcbv", "label", "patient", nan_policy="omit")
    assert res.n_dropped == 2


def test_rm_anova_duplicates_need_aggregate() -> None:
    table = _long(_data(seed=3))
    doubled = pd.concat([table, table.assign(rcbv=table.rcbv + 1.0)])
    with pytest.raises(ValueError, match="aggregate"):
        repeated_measures_anova(doubled, "rcbv", "label", "patient")
    res = repeated_measures_anova(doubled, "rcbv", "label", "patient", aggregate="mean")
    base = repeated_measures_anova(table, "rcbv", "label", "patient")
    assert res.F == pytest.approx(base.F)
    assert res.means == pytest.approx(tuple(m + 0.5 for m in base.means))


def test_oneway_anova_matches_scipy() -> None:
    table = _long(_data(seed=4))
    groups = [table.rcbv[table.label == lvl].to_numpy() for lvl in sorted(LEVELS)]
    res = oneway_anova(table, "rcbv", "label")
    ref = stats.f_oneway(*groups)
    assert res.F == pytest.approx(ref.statistic) and res.p == pytest.approx(ref.pvalue)
    assert (res.df_num, res.df_den) == (2, table.shape[0] - 3)
    welch = oneway_anova(table, "rcbv", "label", welch=True)
    from statsmodels.stats.oneway import anova_oneway

    ref_w = anova_oneway(table.rcbv.to_numpy(), table.label.to_numpy(), use_var="unequal")
    assert welch.F == pytest.approx(ref_w.statistic) and welch.p == pytest.approx(ref_w.pvalue)
    assert welch.method == "welch"
    assert res.to_frame().shape[0] == 1


@pytest.mark.parametrize("correction", ["holm", "bonferroni", "fdr_bh"])
def test_pairwise_paired_matches_scipy_and_multipletests(correction: str) -> None:
    Y = _data(seed=5, means=(2.0, 1.8, 1.0))
    table = _long(Y)
    out = pairwise_tests(table, "rcbv", "label", subject="patient", correction=correction)
    assert list(zip(out.a, out.b, strict=True)) == [("ED", "ET"), ("ED", "NEH"), ("ET", "NEH")]
    col = {lvl: Y[:, i] for i, lvl in enumerate(LEVELS)}
    p = []
    for row in out.itertuples():
        ref = stats.ttest_rel(col[row.a], col[row.b])
        assert row.statistic == pytest.approx(ref.statistic)
        assert row.p == pytest.approx(ref.pvalue)
        assert row.n == Y.shape[0] and row.df == Y.shape[0] - 1
        d = col[row.a] - col[row.b]
        assert row.mean_diff == pytest.approx(d.mean())
        assert row.effect_size == pytest.approx(d.mean() / d.std(ddof=1))
        p.append(ref.pvalue)
    assert out.p_adjusted.to_numpy() == pytest.approx(multipletests(p, method=correction)[1])
    assert (out.test == "paired t").all() and (out.correction == correction).all()


def test_pairwise_other_tests_match_scipy() -> None:
    Y = _data(seed=6, means=(2.0, 1.5, 1.0))
    table = _long(Y)
    col = {lvl: Y[:, i] for i, lvl in enumerate(LEVELS)}
    wil = pairwise_tests(table, "rcbv", "label", subject="patient", parametric=False)
    welch = pairwise_tests(table, "rcbv", "label")  # no subject: Welch
    mwu = pairwise_tests(table, "rcbv", "label", parametric=False, correction=None)
    for w, t, u in zip(wil.itertuples(), welch.itertuples(), mwu.itertuples(), strict=True):
        xa, xb = col[w.a], col[w.b]
        assert w.p == pytest.approx(stats.wilcoxon(xa, xb).pvalue)
        ref = stats.ttest_ind(xa, xb, equal_var=False)
        assert t.p == pytest.approx(ref.pvalue) and t.statistic == pytest.approx(ref.statistic)
        assert t.n == 2 * Y.shape[0] and t.test == "welch t"
        assert u.p == pytest.approx(stats.mannwhitneyu(xa, xb).pvalue)
        assert u.p_adjusted == u.p
    assert (wil.effect_size_name == "rank_biserial").all()
    # One-sided.
    g = pairwise_tests(table, "rcbv", "label", subject="patient", alternative="greater")
    row = g.iloc[0]
    assert row.p == pytest.approx(
        stats.ttest_rel(col["ED"], col["ET"], alternative="greater").pvalue
    )
    with pytest.raises(ValueError, match="subject"):
        pairwise_tests(table, "rcbv", "label", paired=True)


def test_pairwise_paired_uses_complete_pairs() -> None:
    table = _long(_data(seed=7))
    table = table[~((table.patient == "P00") & (table.label == "ED"))]
    out = pairwise_tests(table, "rcbv", "label", subject="patient").set_index(["a", "b"])
    assert out.loc[("ED", "ET"), "n"] == 14
    assert out.loc[("ET", "NEH"), "n"] == 15


def test_ordered_test() -> None:
    Y = _data(g=20, seed=8, means=(3.0, 2.0, 1.0))  # ET > NEH > ED
    table = _long(Y)
    res = ordered_test(table, "rcbv", "label", order=["ET", "NEH", "ED"], subject="patient")
    assert res.conclusion
    assert list(zip(res.table.a, res.table.b, strict=True)) == [("ET", "NEH"), ("NEH", "ED")]
    p = [
        stats.ttest_rel(Y[:, 0], Y[:, 1], alternative="greater").pvalue,
        stats.ttest_rel(Y[:, 1], Y[:, 2], alternative="greater").pvalue,
    ]
    assert res.table.p.to_numpy() == pytest.approx(p)
    assert res.table.p_adjusted.to_numpy() == pytest.approx(multipletests(p, method="holm")[1])
    assert res.to_dict()["order"] == "ET > NEH > ED"
    assert res.to_frame()["conclusion"].all()
    # The reverse ordering is not supported by these data.
    rev = ordered_test(table, "rcbv", "label", order=["ED", "NEH", "ET"], subject="patient")
    assert not rev.conclusion
    inc = ordered_test(
        table, "rcbv", "label", order=["ED", "NEH", "ET"], subject="patient", direction="increasing"
    )
    assert inc.conclusion
    with pytest.raises(ValueError, match="not found"):
        ordered_test(table, "rcbv", "label", order=["ET", "NC"], subject="patient")
