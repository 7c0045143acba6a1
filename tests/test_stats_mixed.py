"""Tests of the linear mixed-effects model."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from statsmodels.stats.anova import AnovaRM

from nehmap.stats import mixed_model


def _simulate(
    n_groups: int,
    effects: dict[int, float],
    group_sd: float = 1.0,
    noise_sd: float = 0.5,
    reps: int = 1,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per (patient, label, repetition); value = label effect + patient + noise."""
    rng = np.random.default_rng(seed)
    rows = []
    patient_effect = rng.normal(0.0, group_sd, n_groups)
    for g in range(n_groups):
        for lab, eff in effects.items():
            for _ in range(reps):
                rows.append(
                    {
                        "patient": f"P{g:03d}",
                        "label": lab,
                        "rcbv": 2.0 + eff + patient_effect[g] + rng.normal(0.0, noise_sd),
                    }
                )
    return pd.DataFrame(rows)


def test_known_effect_recovered_within_se() -> None:
    table = _simulate(40, {2: 0.0, 3: 0.6, 4: 1.2}, reps=2, seed=1)
    res = mixed_model(table, "rcbv", "label", "patient", reference=2)
    assert res.converged and res.warnings == ()
    assert res.reference == 2 and res.levels == (2, 3, 4)
    est = res.contrasts.set_index("level")
    for level, truth in [(3, 0.6), (4, 1.2)]:
        assert abs(est.loc[level, "estimate"] - truth) < 3 * est.loc[level, "se"]
        assert est.loc[level, "ci_low"] < est.loc[level, "estimate"] < est.loc[level, "ci_high"]
    assert res.n_obs == 240 and res.n_groups == 40
    assert res.group_var == pytest.approx(1.0, rel=0.6)
    assert res.residual_var == pytest.approx(0.25, rel=0.3)
    assert res.p_F < 1e-6 and res.df_num == 2
    assert res.ddf_method == "within" and res.df_den == 240 - 40 - 2


def test_agrees_with_direct_statsmodels_call() -> None:
    table = _simulate(25, {2: 0.0, 3: 0.4}, seed=2)
    res = mixed_model(table, "rcbv", "label", "patient", reference=2)
    direct = smf.mixedlm("rcbv ~ C(label)", table, groups=table["patient"]).fit(reml=True)
    row = res.contrasts.iloc[0]
    assert row["estimate"] == pytest.approx(direct.fe_params.iloc[1], rel=1e-4)
    assert row["se"] == pytest.approx(direct.bse_fe.iloc[1], rel=1e-3)
    assert row["p"] == pytest.approx(direct.pvalues.iloc[1], rel=1e-3)
    assert res.group_var == pytest.approx(float(direct.cov_re.iloc[0, 0]), rel=1e-3)
    assert res.llf == pytest.approx(direct.llf, rel=1e-6)
    # Two levels: F is z squared and the Wald chi2 test is the z test.
    assert res.F == pytest.approx(row["z"] ** 2)
    assert res.p_chi2 == pytest.approx(row["p"])
    assert res.p_F == pytest.approx(row["p_t"])


def test_ml_fit_agrees_with_statsmodels() -> None:
    table = _simulate(25, {2: 0.0, 3: 0.4}, seed=3)
    res = mixed_model(table, "rcbv", "label", "patient", reml=False)
    direct = smf.mixedlm("rcbv ~ C(label)", table, groups=table["patient"]).fit(reml=False)
    assert not res.reml
    assert res.llf == pytest.approx(direct.llf, rel=1e-6)
    assert res.contrasts["estimate"].iloc[0] == pytest.approx(direct.fe_params.iloc[1], rel=1e-4)


def test_f_equals_repeated_measures_anova_when_balanced() -> None:
    table = _simulate(20, {2: 0.0, 3: 0.3, 4: 0.5}, seed=4)
    res = mixed_model(table, "rcbv", "label", "patient")
    rm = AnovaRM(table, "rcbv", "patient", within=["label"]).fit().anova_table.iloc[0]
    assert res.df_den == rm["Den DF"] == (20 - 1) * (3 - 1)
    assert res.F == pytest.approx(rm["F Value"], rel=1e-3)
    assert res.p_F == pytest.approx(rm["Pr > F"], rel=1e-2)


def test_wald_agrees_with_likelihood_ratio_for_large_samples() -> None:
    table = _simulate(150, {2: 0.0, 3: 0.1, 4: 0.15}, noise_sd=0.6, seed=5)
    res = mixed_model(table, "rcbv", "label", "patient", reml=False, lrt=True)
    assert res.wald_chi2 > 5
    assert res.lrt_chi2 == pytest.approx(res.wald_chi2, rel=0.1)
    assert np.log10(res.p_lrt) == pytest.approx(np.log10(res.p_chi2), abs=0.3)


def test_degenerate_group_variance_warnings_are_returned_not_raised() -> None:
    # No patient effect at all and hardly any noise: the group variance is zero.
    table = _simulate(15, {2: 0.0, 3: 1.0}, group_sd=0.0, noise_sd=1e-3, seed=6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = mixed_model(table, "rcbv", "label", "patient")
    assert caught == []
    assert res.warnings
    assert any("ConvergenceWarning" in w or "boundary" in w for w in res.warnings)
    assert res.group_var == pytest.approx(0.0, abs=1e-6)
    assert res.to_dict()["n_warnings"] == len(res.warnings)


def test_between_group_label_uses_between_ddf() -> None:
    table = _simulate(30, {2: 0.0}, seed=7)
    table["label"] = np.where(table["patient"] < "P015", "A", "B")
    res = mixed_model(table, "rcbv", "label", "patient")
    assert res.ddf_method == "between"
    assert res.df_den == 30 - 2


def test_reference_contrasts_and_frame() -> None:
    table = _simulate(12, {2: 0.0, 3: 0.5, 4: 1.0}, seed=8)
    table["label"] = table["label"].map({2: "ED", 3: "NEH", 4: "ET"})
    res = mixed_model(table, "rcbv", "label", "patient", reference="NEH")
    assert res.levels[0] == "NEH"
    assert list(res.contrasts["level"]) == ["ED", "ET"]
    frame = res.to_frame()
    assert len(frame) == 2
    for col in ["estimate", "se", "z", "p", "F", "df_den", "p_F", "n_groups", "converged"]:
        assert col in frame.columns
    with pytest.raises(ValueError, match="not a level"):
        mixed_model(table, "rcbv", "label", "patient", reference="NC")


def test_missing_values_policy() -> None:
    table = _simulate(10, {2: 0.0, 3: 0.5}, seed=9)
    table.loc[[0, 5], "rcbv"] = np.nan
    with pytest.raises(ValueError, match="2 row"):
        mixed_model(table, "rcbv", "label", "patient")
    res = mixed_model(table, "rcbv", "label", "patient", nan_policy="omit")
    assert res.n_obs == 18
