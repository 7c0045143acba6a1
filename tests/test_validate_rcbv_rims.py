import numpy as np
import pandas as pd
import pytest
from scipy.spatial import cKDTree

from nehmap.labels import ED, ET, NC, NEH
from nehmap.validate.perfusion import perfusion_mask
from nehmap.validate.rcbv import compartment_rcbv, rcbv_summary, rcbv_tests
from nehmap.validate.rims import lesion_core, peri_enhancing_rims, rim_rcbv, rim_tests


def _ring_case(spacing=(1.0, 1.0, 1.0), shape=(40, 40, 40)):
    """A sphere: necrosis r < 5 mm, ET shell 5-8 mm, NEH cap 8-11 mm (x > 0), edema to 16 mm."""
    grid = np.indices(shape).astype(float)
    centre = [(n - 1) / 2 for n in shape]
    coords = [(g - c) * s for g, c, s in zip(grid, centre, spacing, strict=True)]
    r = np.sqrt(sum(c**2 for c in coords))
    labels = np.zeros(shape, np.uint8)
    labels[r < 16] = ED
    labels[(r < 11) & (coords[0] > 0)] = NEH
    labels[r < 8] = ET
    labels[r < 5] = NC
    return labels, r, coords


def test_perfusion_mask_excludes_vessels_and_no_signal():
    rng = np.random.default_rng(0)
    rcbv = rng.uniform(1, 2, (20, 20, 20))
    rcbv[0:2] = 0.0
    rcbv[10, 10, 10:14] = 50.0
    brain = np.ones(rcbv.shape, bool)
    p = perfusion_mask(rcbv, brain, vessel_percentile=99.9)
    assert p.vessels[10, 10, 10:14].all()
    assert p.no_signal[0:2].all() and not p.valid[0:2].any()
    assert not p.valid[10, 10, 10]
    given = np.zeros(rcbv.shape, bool)
    given[5, 5, 5] = True
    p2 = perfusion_mask(rcbv, brain, vessel_mask=given)
    assert p2.vessels.sum() == 1 and np.isnan(p2.vessel_threshold)


def test_compartment_rcbv_means():
    labels, _, _ = _ring_case()
    rcbv = np.select(
        [labels == ET, labels == NEH, labels == ED, labels == NC], [4.0, 3.0, 2.0, 0.5], 1.0
    )
    p = perfusion_mask(rcbv, np.ones(labels.shape, bool), vessel_percentile=None)
    table = compartment_rcbv(rcbv, labels, p).set_index("compartment")
    assert table.loc["ET", "mean"] == 4.0 and table.loc["NEH", "mean"] == 3.0
    assert table.loc["ED", "median"] == 2.0 and table.loc["NC", "mean"] == 0.5
    assert table.loc["NEH", "n_voxels"] == (labels == NEH).sum()
    levels = np.where(labels == NEH, 2, np.where(labels == ED, 1, 0)).astype(np.uint8)
    cons = compartment_rcbv(rcbv, levels, p, consensus=True).set_index("compartment")
    assert cons.loc["NEH-high", "mean"] == 3.0 and cons.loc["NEH-low", "mean"] == 2.0
    n_hi, n_lo = (labels == NEH).sum(), (labels == ED).sum()
    assert cons.loc["NEH-low+high", "mean"] == pytest.approx((3 * n_hi + 2 * n_lo) / (n_hi + n_lo))


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.8, 1.0, 2.0)])
def test_rims_are_outward_shells_in_mm(spacing):
    labels, r, _ = _ring_case(spacing, shape=(50, 44, 24) if spacing[2] == 2 else (40, 40, 40))
    rims = peri_enhancing_rims(labels, spacing)
    core = lesion_core(labels)
    assert core[r < 5].all()  # the necrotic inside belongs to the core
    for d in (2.0, 4.0, 6.0):
        rim = rims[f"rim_{d:g}mm"]
        assert not (rim & np.isin(labels, (ET, NC))).any()
        # exact nearest-neighbour distance (KD-tree) from voxel centres to the core, in mm
        tree = cKDTree(np.argwhere(core) * spacing)
        dmin = tree.query(np.argwhere(rim) * spacing)[0]
        assert (dmin > 0).all() and (dmin <= d + 1e-9).all()
        # and every outside voxel within d mm is in the rim
        d_out = tree.query(np.argwhere(~core) * spacing, distance_upper_bound=d + 1)[0]
        assert (d_out <= d + 1e-9).sum() == rim.sum()
    assert rims["rim_2mm"].sum() < rims["rim_4mm"].sum() < rims["rim_6mm"].sum()


def test_rims_without_et_are_empty():
    rims = peri_enhancing_rims(np.zeros((10, 10, 10), np.uint8), (1, 1, 1))
    assert all(not m.any() for m in rims.values())


def _cohort_table(effect: bool, n: int = 12, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        base = rng.uniform(1, 2)
        means = (
            {"ET": 3.0, "NEH": 2.0, "ED": 1.5, "NC": 0.7}
            if effect
            else dict.fromkeys(("ET", "NEH", "ED", "NC"), 1.5)
        )
        for comp, m in means.items():
            rows.append(
                {
                    "case": f"c{i}",
                    "model": "paunet",
                    "compartment": comp,
                    "mean": base * m + rng.normal(0, 0.1),
                    "median": np.nan,
                    "n_voxels": 100,
                }
            )
    return pd.DataFrame(rows)


def test_rcbv_tests_find_the_planted_order_and_not_a_null():
    tests = rcbv_tests(_cohort_table(True))
    anova = tests[tests.test == "rm_anova"].iloc[0]
    assert anova.p < 1e-6
    ordered = tests[tests.test == "ordered_one_sided"]
    assert set(zip(ordered.a, ordered.b, strict=True)) == {("ET", "NEH"), ("NEH", "ED")}
    assert (ordered.p_adjusted < 0.01).all()
    null = rcbv_tests(_cohort_table(False, seed=1))
    assert null[null.test == "rm_anova"].iloc[0].p > 0.01
    summary = rcbv_summary(_cohort_table(True)).set_index(["model", "compartment"])
    assert summary.loc[("paunet", "ET"), "n_cases"] == 12


def test_rim_rcbv_and_tests():
    labels, r, coords = _ring_case()
    rcbv = np.select([labels == ET, labels == NEH, labels == ED], [4.0, 3.0, 1.5], 1.0)
    p = perfusion_mask(rcbv, np.ones(labels.shape, bool), vessel_percentile=None)
    table = rim_rcbv(rcbv, labels, labels == NEH, p, (1, 1, 1)).set_index("region")
    assert table.loc["NEH", "mean"] == 3.0
    # the 2 mm rim is half NEH cap, half edema: between the two
    assert 1.5 < table.loc["rim_2mm", "mean"] < 3.0
    assert (
        table.loc["rim_2mm", "mean"] > table.loc["rim_4mm", "mean"] > table.loc["rim_6mm", "mean"]
    )
    rows = []
    rng = np.random.default_rng(0)
    for i in range(10):
        for region, m in table["mean"].items():
            rows.append({"case": f"c{i}", "region": region, "mean": m + rng.normal(0, 0.05)})
    tests = rim_tests(pd.DataFrame(rows))
    greater = tests[tests.test == "paired_t_greater"]
    assert len(greater) == 3 and (greater.p_adjusted < 1e-3).all()
    assert tests[tests.test == "rm_anova"].iloc[0].p < 1e-6
