"""H3 chance models and cohort tests: the distance-matched model, matched controls, Holm.

Phantoms: a ball brain with a spherical tumour core (or cavity), NEH as a cap of the
shell around it, recurrences as small balls seeded on the cavity wall or in the NEH.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from nehmap.stats import holm
from nehmap.validate.chance import (
    CONTROL_MAX_OVERLAP,
    PROFILE_QUANTILES,
    chance_comparison,
    matched_placements,
    peritumoral_domain,
)
from nehmap.validate.recurrence_metrics import METRICS, CaseExcluded, EdgePanel
from nehmap.validate.recurrence_tests import MIN_PATIENTS, cohort_tests

SP = (2.0, 2.0, 2.0)
SHAPE = (44, 44, 44)
CENTRE = np.array([22.0, 22.0, 22.0])


def _dist_to(point_idx: np.ndarray, spacing=SP) -> np.ndarray:
    """Euclidean distance (mm) of every voxel centre to ``point_idx`` (index units)."""
    idx = np.indices(SHAPE).reshape(3, -1).T
    return np.linalg.norm((idx - point_idx) * np.asarray(spacing), axis=1).reshape(SHAPE)


def _phantom(direction, core_mm=12.0, neh_mm=(0.5, 6.5), cap_cos=0.8):
    """Brain, core, NEH cap towards ``direction`` and an excluded 'ventricle' block."""
    r = _dist_to(CENTRE)
    brain = r <= 40.0
    core = r <= core_mm
    idx = np.indices(SHAPE).reshape(3, -1).T
    rel = (idx - CENTRE) * np.asarray(SP)
    unit = np.asarray(direction, float) / np.linalg.norm(direction)
    cos = (rel @ unit / np.maximum(np.linalg.norm(rel, axis=1), 1e-9)).reshape(SHAPE)
    shell = (r > core_mm + neh_mm[0]) & (r <= core_mm + neh_mm[1])
    neh = shell & (cos >= cap_cos)
    ventricle = np.zeros(SHAPE, bool)
    ventricle[8:16, 18:26, 18:26] = True  # beside the core on the -x side
    return brain, core, neh, ventricle


def _brute_distance_to_core(flat: np.ndarray, core: np.ndarray) -> np.ndarray:
    """Distance (mm) from each voxel of ``flat`` to the nearest core voxel, by brute force."""
    pts = np.column_stack(np.unravel_index(flat, SHAPE)) * np.asarray(SP)
    core_pts = np.argwhere(core) * np.asarray(SP)
    d = np.sqrt(((pts[:, None, :] - core_pts[None, :, :]) ** 2).sum(axis=2))
    return d.min(axis=1)


def test_matched_placements_keep_the_distance_profile_in_allowed_tissue():
    brain, core, neh, ventricle = _phantom((0, 1, 0.3))
    domain = peritumoral_domain(brain, core, ventricle)
    placed = matched_placements(neh, core, domain, SP, 60, np.random.default_rng(4))
    assert len(placed.flats) == 60
    a_flat = np.flatnonzero(neh)
    own = _brute_distance_to_core(a_flat, core)
    profile = np.quantile(own, PROFILE_QUANTILES)
    np.testing.assert_allclose(placed.profile_mm, profile, atol=1e-9)
    tol = placed.tolerance_mm
    directions = []
    for flat, overlap in zip(placed.flats, placed.overlap, strict=True):
        assert domain.ravel()[flat].all()  # never in the core, the ventricle or outside
        assert not core.ravel()[flat].any() and not ventricle.ravel()[flat].any()
        assert 0.8 * a_flat.size <= flat.size <= a_flat.size
        d = _brute_distance_to_core(flat, core)
        assert d.min() >= own.min() - tol - 1e-9 and d.max() <= own.max() + tol + 1e-9
        assert np.all(np.abs(np.quantile(d, PROFILE_QUANTILES) - profile) <= tol + 1e-9)
        assert overlap == pytest.approx(np.isin(flat, a_flat).sum() / a_flat.size)
        centroid = np.column_stack(np.unravel_index(flat, SHAPE)).mean(axis=0) - CENTRE
        directions.append(centroid / np.linalg.norm(centroid))
    # the placements go round the core (not all on the pNEH's side)
    assert np.linalg.norm(np.mean(directions, axis=0)) < 0.6
    assert (placed.overlap <= CONTROL_MAX_OVERLAP).sum() >= 20


def test_a_band_that_cannot_hold_the_pneh_excludes_the_patient():
    brain, core, neh, _ = _phantom((1, 0, 0), cap_cos=-1.0)  # the NEH is the whole shell
    thin = peritumoral_domain(brain, core) & (_dist_to(CENTRE) <= 13.0)
    with pytest.raises(CaseExcluded, match="peritumoral band cannot hold the pNEH shape"):
        matched_placements(neh, core, thin, SP, 20, np.random.default_rng(0))
    with pytest.raises(CaseExcluded, match="no tumour core"):
        matched_placements(neh, np.zeros(SHAPE, bool), brain, SP, 20, np.random.default_rng(0))


def test_chance_comparison_matched_rows_and_controls():
    brain, core, neh, ventricle = _phantom((0, 1, 0))
    seed_idx = np.argwhere(neh).mean(axis=0)
    etrl = (_dist_to(seed_idx) <= 6.0) & ~core
    controls: list[np.ndarray] = []
    table = chance_comparison(
        neh,
        etrl,
        brain,
        SP,
        n=50,
        chance="matched",
        core=core,
        domain=peritumoral_domain(brain, core, ventricle),
        controls_out=controls,
    ).set_index("metric")
    assert (table["chance_model"] == "matched").all()
    med = table.loc["mean_edge_distance"]
    assert med["chance_rank"] > 0.9 and med["p_spatial"] < 0.05
    # the control value is the mean over the placements that overlap pNEH <= 10 %
    a_flat = np.flatnonzero(neh)
    panel = EdgePanel(etrl, SP, 5.0)
    overlaps = [np.isin(f, a_flat).sum() / a_flat.size for f in controls]
    assert overlaps == sorted(overlaps)
    chosen = [f for f, o in zip(controls, overlaps, strict=True) if o <= CONTROL_MAX_OVERLAP]
    expected = np.mean([panel.values(f)[0] for f in chosen])
    assert med["control_value"] == pytest.approx(expected)
    assert med["n_controls"] == len(chosen) > 0


def _matched_cases(diffs: dict[str, list[float]], ranks: list[float]) -> pd.DataFrame:
    rows = []
    for spec in METRICS:
        for i, (d, r) in enumerate(zip(diffs[spec.name], ranks, strict=True)):
            rows.append(
                {
                    "case": f"P{i}",
                    "metric": spec.name,
                    "chance_model": "matched",
                    "value": 10.0 + d,
                    "control_value": 10.0,
                    "ratio": 1.0 + d / 10,
                    "chance_rank": r,
                    "included": True,
                }
            )
    return pd.DataFrame(rows)


def _exact_sign_flip(d: np.ndarray, alternative: str) -> float:
    """Independent exact sign-flip p-value by enumerating every sign pattern."""
    observed = d.mean()
    stats = np.array([np.mean(np.array(s) * d) for s in itertools.product((-1, 1), repeat=d.size)])
    if alternative == "greater":
        return float(np.mean(stats >= observed - 1e-12))
    return float(np.mean(stats <= observed + 1e-12))


def test_matched_control_test_and_holm_against_independent_computations():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(8)
    n = 9
    diffs = {
        m.name: list(rng.normal(0.4 if m.agreement == "greater" else -0.4, 1, n)) for m in METRICS
    }
    ranks = list(rng.uniform(0.3, 1.0, n))
    tests = cohort_tests(_matched_cases(diffs, ranks))
    paired = tests[tests["test"] == "matched_control"].set_index("metric")
    for spec in METRICS:
        d = np.asarray(diffs[spec.name])
        assert paired.loc[spec.name, "alternative"] == spec.agreement
        assert paired.loc[spec.name, "p_value"] == pytest.approx(
            _exact_sign_flip(d, spec.agreement)
        )
    for test in ("matched_control", "chance_rank", "chance_ratio"):
        family = tests[(tests["test"] == test) & tests["correction"].str.startswith("holm")]
        assert list(family["metric"]) == [
            "mean_edge_distance",
            "fraction_near_edge",
            "volume_containment",
            "fraction_inside",
        ]
        expected = multipletests(family["p_value"], method="holm")[1]
        np.testing.assert_allclose(family["p_adjusted"], expected)
        expected2 = multipletests(family["p_two_sided"], method="holm")[1]
        np.testing.assert_allclose(family["p_two_sided_adjusted"], expected2)
    primary = tests[tests["primary"]]
    assert set(primary["test"]) == {"chance_rank"} and len(primary) == 4
    extra = tests[tests["metric"] == "volume_containment_fraction"]
    assert extra["p_adjusted"].isna().all() and (extra["correction"] == "").all()


def test_holm_equals_statsmodels_and_skips_missing_tests():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(1)
    for m in (1, 2, 4, 7):
        p = rng.uniform(0, 0.2, m)
        p[rng.integers(m)] = p[0]  # ties
        np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1])
    p = np.array([0.01, math.nan, 0.04, 0.03])
    out = holm(p)
    assert math.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2, 3]], multipletests(p[[0, 2, 3]], method="holm")[1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.5, 1.5])


@pytest.mark.parametrize("n", [MIN_PATIENTS - 1, MIN_PATIENTS])
def test_fewer_than_five_patients_are_not_tested(n):
    diffs = {m.name: [0.5] * n for m in METRICS}
    tests = cohort_tests(_matched_cases(diffs, [0.9] * n))
    if n < MIN_PATIENTS:
        assert (tests["method"] == "not computed").all()
        assert tests[["p_value", "p_adjusted", "p_two_sided"]].isna().all().all()
        assert tests["note"].str.contains(f"{n} usable patient").all()
    else:
        assert (tests["method"] == "exact").all()
        rank = tests[(tests["test"] == "chance_rank")]
        assert rank["p_value"].to_numpy() == pytest.approx(1 / 2**n)


# ------------------------------------------------------------------------- calibration


def _pool(n_patients: int, rng: np.random.Generator) -> list[dict]:
    """Phantom patients: a NEH cap in a random direction, its matched placements."""
    pool = []
    for _ in range(n_patients):
        direction = rng.normal(size=3)
        core_mm = float(rng.uniform(9, 13))
        brain, core, neh, ventricle = _phantom(direction, core_mm=core_mm)
        domain = peritumoral_domain(brain, core, ventricle) | neh
        placed = matched_placements(neh, core, domain, SP, 40, rng)
        wall = domain & (_dist_to(CENTRE) <= core_mm + 2.5)  # tissue touching the cavity
        pool.append({"neh": neh, "core": core, "wall": np.flatnonzero(wall), "flats": placed.flats})
    return pool


def _ranks(patient: dict, seed_flat: int) -> list[float]:
    seed = np.array(np.unravel_index(seed_flat, SHAPE), float)
    etrl = (_dist_to(seed) <= 5.0) & ~patient["core"]
    panel = EdgePanel(etrl, SP, 5.0)
    observed = panel.values(np.flatnonzero(patient["neh"]))
    null = panel.values_many(patient["flats"])
    out = []
    for j, spec in enumerate(METRICS):
        col = null[:, j]
        worse = col > observed[j] if spec.agreement == "less" else col < observed[j]
        tie = np.isclose(col, observed[j])
        out.append(float(((worse & ~tie).sum() + 0.5 * tie.sum()) / col.size))
    return out


def test_matched_test_is_silent_when_h3_is_false_and_finds_it_when_true():
    """40 cohorts of 10 phantom patients per scenario: the primary test's rejection rate."""
    rng = np.random.default_rng(2024)
    pool = _pool(10, rng)
    rejections = {"false": 0, "true": 0}
    for scenario in rejections:
        for _ in range(40):
            rows = []
            for i, patient in enumerate(pool):
                from_neh = scenario == "true" and rng.random() < 0.9
                source = np.flatnonzero(patient["neh"]) if from_neh else patient["wall"]
                ranks = _ranks(patient, int(source[rng.integers(source.size)]))
                for spec, rank in zip(METRICS, ranks, strict=True):
                    rows.append(
                        {
                            "case": f"P{i}",
                            "metric": spec.name,
                            "chance_model": "matched",
                            "value": 0.0,
                            "ratio": 1.0,
                            "chance_rank": rank,
                        }
                    )
            tests = cohort_tests(pd.DataFrame(rows))
            primary = tests[tests["primary"]]
            rejections[scenario] += int(primary["p_adjusted"].min() < 0.05)
    # alpha 0.05 with 40 cohorts: 2 expected; 7 or more has probability about 0.01
    assert rejections["false"] <= 6
    assert rejections["true"] >= 34


def test_dark_csf_finds_ventricles_but_not_tumour():
    from nehmap.synth import generate_case
    from nehmap.synth.anatomy import load_anatomy
    from nehmap.validate.chance import dark_csf

    case = generate_case(1, spacing=3.0)
    csf = dark_csf(case.images["t1"], case.brain_mask)
    ventricles = load_anatomy(3.0).ventricles
    assert (csf & ventricles).sum() >= 0.4 * ventricles.sum()
    assert not (csf & (case.labels == 3)).any() and not (csf & (case.labels == 2)).any()
    assert csf.sum() < 0.1 * case.brain_mask.sum() and not (csf & ~case.brain_mask).any()
