r"""H3 cohort statistics: sign-flip tests of the per-patient metrics, corrected for four metrics.

One row per chance model, metric and test in ``recurrence_tests.csv``; every test is a
sign-flip permutation test of a mean (:func:`nehmap.stats.sign_flip_test`: exact for
n <= 40, otherwise 10,000 random flips):

``chance_rank`` (with the ``matched`` chance model: **the study's primary H3 test**)
    The per-patient chance rank (share of chance placements farther from / overlapping
    less with the recurrence than pNEH, ties half) against 0.5, alternative "greater".
    The rank is uniform under the null whatever the skew of the metric, so the test keeps
    its false-positive rate; with the distance-matched placements it asks whether pNEH is
    nearer to the recurrence than *other tissue equally near the tumour*. Its calibration
    (false-positive rate and power) is measured by ``benchmarks/bench_h3_calibration.py``
    and shown in ``docs/method.md``.
``matched_control`` (``matched`` only)
    The paired matched-control comparison, as H2 compares rims with NEH: per patient the
    metric of pNEH minus the mean metric of its matched controls (distance-matched
    placements that overlap pNEH by at most 10 %: other tissue of equal volume in the same
    distance band around the tumour), against 0 in the direction of agreement.
``chance_ratio``
    ``value / chance expectation`` against 1 in the direction of agreement. Ratios are
    skewed under the null (mostly below 1, a few large values), which the sign-flip
    test's symmetry assumption does not allow for.
``paper`` (``brain`` only: **as the paper**)
    Raw mean edge distance against 0, the other metrics as chance ratios against 1
    (alternative "greater"). The distance test is degenerate (distances are never
    negative, so the mean always exceeds 0).

**Multiple metrics.** The paper's four metrics (MeanEdgeDistance, FractionNearEdge,
VolumeContainment, FractionInside) are one family per chance model and test: their
one-sided p-values (``p_value``) and two-sided p-values are Holm-adjusted
(:func:`nehmap.stats.holm`) into ``p_adjusted`` and ``p_two_sided_adjusted``. H3 is
supported when any metric of the primary test has ``p_adjusted < 0.05``.
``volume_containment_fraction`` (VolumeContainment as a fraction of the smaller mask)
repeats a family member and is reported unadjusted.

**Too few patients.** A test with fewer than :data:`MIN_PATIENTS` usable patients is not
computed: its p-values are NaN, ``method`` is ``"not computed"`` and ``note`` says why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from nehmap.stats import holm, sign_flip_test
from nehmap.validate.recurrence_metrics import FAMILY_METRICS, METRICS

__all__ = [
    "MIN_PATIENTS",
    "PRIMARY_TEST",
    "TEST_COLUMNS",
    "cohort_summary",
    "cohort_tests",
    "primary_tests",
]

MIN_PATIENTS = 5
"""Fewest usable patients for a cohort test to be computed."""

PRIMARY_TEST: tuple[str, str] = ("matched", "chance_rank")
"""(chance model, test) of the study's primary H3 test."""

TEST_COLUMNS: Mapping[str, str] = {
    "chance_model": "chance model of the per-patient placements (matched, brain, spin)",
    "metric": "spatial metric",
    "paper_metric": "the method paper's name",
    "test": "chance_rank, matched_control, chance_ratio or paper (see the documentation)",
    "primary": "True for the study's primary H3 test (matched chance_rank)",
    "scale": "raw, ratio, rank or difference: what was averaged",
    "baseline": "the value the mean takes by chance",
    "alternative": "direction of the one-sided test",
    "observed_mean": "mean over the included cases",
    "observed_sd": "standard deviation over the included cases",
    "null_mean": "mean of the sign-flip null distribution",
    "p_greater": "p-value for a mean above the baseline",
    "p_less": "p-value for a mean below the baseline",
    "p_two_sided": "two-sided p-value (|T*| >= |T|)",
    "p_value": "p-value in the direction of 'alternative'",
    "p_adjusted": "p_value Holm-adjusted across the four paper metrics",
    "p_two_sided_adjusted": "p_two_sided Holm-adjusted across the four paper metrics",
    "correction": "the multiple-testing correction applied",
    "n": "cases in the test",
    "n_omitted": "included cases without a value (ratio undefined)",
    "method": "exact (all 2^n sign patterns), monte-carlo, or not computed",
    "note": "caveats",
}
"""Columns of ``recurrence_tests.csv``."""

_DEGENERATE = (
    "degenerate: distances are never negative, so the mean always exceeds 0; says "
    "nothing about proximity (reported for comparison with the paper only)"
)
_MODEL_ORDER = ("matched", "brain", "spin")


def _tests_for(
    values: np.ndarray,
    *,
    baseline: float,
    alternative: str,
    n_permutations: int,
    seed: int,
    exact: bool | None,
) -> dict[str, Any]:
    finite = values[np.isfinite(values)]
    n_omitted = int(values.size - finite.size)
    empty = {
        "observed_mean": float(finite.mean()) if finite.size else math.nan,
        "observed_sd": float(finite.std(ddof=1)) if finite.size > 1 else math.nan,
        "null_mean": math.nan,
        "p_greater": math.nan,
        "p_less": math.nan,
        "p_two_sided": math.nan,
        "p_value": math.nan,
        "n": int(finite.size),
        "n_omitted": n_omitted,
        "method": "not computed",
    }
    if finite.size < MIN_PATIENTS:
        return empty
    res = sign_flip_test(
        finite,
        baseline=baseline,
        n_permutations=n_permutations,
        seed=seed,
        exact=exact,
        alternative=alternative,  # type: ignore[arg-type]
    )
    return {
        "observed_mean": res.observed_mean,
        "observed_sd": float(finite.std(ddof=1)),
        "null_mean": res.null_mean,
        "p_greater": res.p_greater,
        "p_less": res.p_less,
        "p_two_sided": res.p_two_sided,
        "p_value": res.p_value,
        "n": res.n,
        "n_omitted": n_omitted,
        "method": res.method,
    }


def _plans(model: str | None, spec: Any, has_controls: bool) -> list[tuple]:
    """(test, scale, column, baseline, alternative, note) of one metric and chance model."""
    plans: list[tuple] = []
    if model in (None, "brain"):
        if spec.name == "mean_edge_distance":
            plans.append(("paper", "raw", "value", 0.0, "greater", _DEGENERATE))
        else:
            plans.append(("paper", "ratio", "ratio", 1.0, "greater", "as the paper"))
    plans.append(
        (
            "chance_rank",
            "rank",
            "chance_rank",
            0.5,
            "greater",
            "rank oriented so that larger = more agreement than chance",
        )
    )
    if model == "matched" and has_controls:
        plans.append(
            (
                "matched_control",
                "difference",
                "control_difference",
                0.0,
                spec.agreement,
                "pNEH minus the mean of its matched controls (same distance band)",
            )
        )
    plans.append(("chance_ratio", "ratio", "ratio", 1.0, spec.agreement, ""))
    return plans


def cohort_tests(
    cases: pd.DataFrame,
    *,
    n_permutations: int = 10_000,
    seed: int = 0,
    exact: bool | None = None,
) -> pd.DataFrame:
    """Sign-flip tests of the per-case metrics, Holm-corrected (see the module documentation).

    Parameters
    ----------
    cases : pandas.DataFrame
        Tidy per-case table with at least ``case, metric, value, ratio, chance_rank``,
        optionally ``chance_model``, ``control_value`` and ``included`` (rows with
        ``included == False`` are left out).
    n_permutations : int, default 10000
        Random sign patterns when the test is not exact.
    seed : int, default 0
        Seed of the random sign patterns.
    exact : bool or None, default None
        None: exact for n <= 40, Monte Carlo otherwise.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`TEST_COLUMNS`, one row per chance model, metric and test.
    """
    table = cases
    if "included" in table.columns:
        table = table[table["included"].astype(bool)]
    table = table.copy()
    has_controls = "control_value" in table.columns
    if has_controls:
        table["control_difference"] = table["value"].astype(float) - table["control_value"].astype(
            float
        )
    models: list[str | None]
    if "chance_model" in table.columns and table["chance_model"].notna().any():
        present = [str(m) for m in pd.unique(table["chance_model"].dropna())]
        models = sorted(present, key=lambda m: (_MODEL_ORDER + (m,)).index(m))
    else:
        models = [None]
    rows = []
    for model in models:
        sub_model = table if model is None else table[table["chance_model"] == model]
        for spec in METRICS:
            sub = sub_model[sub_model["metric"] == spec.name]
            for test, scale, column, baseline, alternative, note in _plans(
                model, spec, has_controls
            ):
                values = sub[column].to_numpy(dtype=float) if column in sub else np.array([])
                stats = _tests_for(
                    values,
                    baseline=baseline,
                    alternative=alternative,
                    n_permutations=n_permutations,
                    seed=seed,
                    exact=exact,
                )
                if stats["method"] == "not computed":
                    note = (
                        f"not computed: {stats['n']} usable patient(s), at least "
                        f"{MIN_PATIENTS} are needed"
                    )
                elif stats["n_omitted"] and not note:
                    note = f"{stats['n_omitted']} case(s) without a ratio (chance expectation 0)"
                rows.append(
                    {
                        "chance_model": model if model is not None else "",
                        "metric": spec.name,
                        "paper_metric": spec.paper,
                        "test": test,
                        "primary": (model, test) == PRIMARY_TEST,
                        "scale": scale,
                        "baseline": baseline,
                        "alternative": alternative,
                        **stats,
                        "note": note,
                    }
                )
    out = pd.DataFrame(rows, columns=[c for c in TEST_COLUMNS if c not in _ADJUSTED])
    return _adjust(out)


_ADJUSTED = ("p_adjusted", "p_two_sided_adjusted", "correction")


def _adjust(tests: pd.DataFrame) -> pd.DataFrame:
    """Holm adjustment across the four paper metrics, per chance model and test."""
    tests = tests.copy()
    tests["p_adjusted"] = math.nan
    tests["p_two_sided_adjusted"] = math.nan
    tests["correction"] = ""
    family = tests["metric"].isin(FAMILY_METRICS)
    for _, index in tests[family].groupby(["chance_model", "test"]).groups.items():
        for raw, adjusted in (("p_value", "p_adjusted"), ("p_two_sided", "p_two_sided_adjusted")):
            tests.loc[index, adjusted] = holm(tests.loc[index, raw].to_numpy(dtype=float))
        tests.loc[index, "correction"] = f"holm across {len(index)} metrics"
    tests["primary"] = tests["primary"].astype(bool) & family
    return tests[list(TEST_COLUMNS)]


def primary_tests(tests: pd.DataFrame) -> pd.DataFrame:
    """The rows of the primary H3 test (empty when the run used no matched chance model)."""
    if "primary" not in tests.columns:
        return tests.iloc[0:0]
    return tests[tests["primary"].astype(str).str.lower() == "true"]


def cohort_summary(cases: pd.DataFrame) -> pd.DataFrame:
    """Mean, SD, median and n of every metric, raw and as chance ratio (the paper's Table 6).

    Parameters
    ----------
    cases : pandas.DataFrame
        Per-case table (rows with ``included == False`` are left out).

    Returns
    -------
    pandas.DataFrame
        Columns ``chance_model, metric, paper_metric, scale, unit, mean, sd, median, n``;
        the raw rows once (chance model ``""``), the ratio and expectation rows per
        chance model.
    """
    table = cases
    if "included" in table.columns:
        table = table[table["included"].astype(bool)]
    if "chance_model" in table.columns and table["chance_model"].notna().any():
        present = [str(m) for m in pd.unique(table["chance_model"].dropna())]
        models = sorted(present, key=lambda m: (_MODEL_ORDER + (m,)).index(m))
    else:
        models = [""]
    rows = []

    def add(spec: Any, model: str, scale: str, column: str, unit: str, sub: pd.DataFrame) -> None:
        v = sub[column].to_numpy(dtype=float) if column in sub else np.array([])
        v = v[np.isfinite(v)]
        rows.append(
            {
                "chance_model": model,
                "metric": spec.name,
                "paper_metric": spec.paper,
                "scale": scale,
                "unit": unit,
                "mean": float(v.mean()) if v.size else math.nan,
                "sd": float(v.std(ddof=1)) if v.size > 1 else math.nan,
                "median": float(np.median(v)) if v.size else math.nan,
                "n": int(v.size),
            }
        )

    for spec in METRICS:
        everything = table[table["metric"] == spec.name]
        first = everything
        if models != [""]:
            first = everything[everything["chance_model"] == models[0]]
        add(spec, "", "raw", "value", spec.unit, first)
        for model in models:
            sub = everything if model == "" else everything[everything["chance_model"] == model]
            add(spec, model, "ratio", "ratio", "ratio", sub)
            add(spec, model, "chance_expected", "chance_expected", spec.unit, sub)
    return pd.DataFrame(rows)
