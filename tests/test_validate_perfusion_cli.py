"""nehmap validate rcbv / rims on synthetic cohorts with and without a planted effect."""

import numpy as np
import pandas as pd
import pytest

from nehmap.cli import main
from nehmap.io import discover, read_image, write_image
from nehmap.synth import truth_folder, write_cohort

N_CASES = 16


def _cohort(root, seed, means, spacing=3.0):
    out = root / f"upenn-{seed}"
    write_cohort(
        out,
        N_CASES,
        seed,
        spacing=spacing,
        layout="upenn",
        progress=False,
        params={"rcbv_means": means},
    )
    # the truth labels stand in for two models' segmentations
    seg = root / f"seg-{seed}"
    truth = truth_folder(out)
    for case in discover(out):
        grid = read_image(case.files["t1"]).grid
        labels = read_image(truth / f"{case.case_id}_truth-labels.nii.gz", dtype=None)
        for model in ("paunet", "unetrpp"):
            write_image(
                labels.array,
                grid,
                seg / case.case_id / f"{case.case_id}_seg-{model}.nii.gz",
                dtype=np.uint8,
            )
    return out, seg


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    # 2 mm voxels, so that the 2 mm rim is not empty
    means = {"ET": 4.0, "NEH": 2.6, "ED": 1.6, "NC": 1.0}
    return _cohort(tmp_path_factory.mktemp("h1"), 5, means, spacing=2.0)


def test_h1_finds_planted_order(planted, tmp, capsys):
    cohort, seg = planted
    out = tmp / "rcbv"
    assert (
        main(
            [
                "validate",
                "rcbv",
                str(cohort),
                "--segmentations",
                str(seg),
                "-o",
                str(out),
                "--exclude",
                "UPENN-GBM-00016",
            ]
        )
        == 0
    )
    cases = pd.read_csv(out / "rcbv_cases.csv")
    assert set(cases.columns) >= {"case", "model", "compartment", "mean", "median", "n_voxels"}
    assert cases["case"].nunique() == N_CASES - 1
    tests = pd.read_csv(out / "rcbv_tests.csv")
    for model in ("paunet", "unetrpp"):
        t = tests[tests.model == model]
        assert t[t.test == "rm_anova"].p.iloc[0] < 0.05
        ordered = t[t.test == "ordered_one_sided"]
        assert (ordered.p_adjusted < 0.05).all()
    excluded = pd.read_csv(out / "excluded.csv")
    assert "in the list of cases to exclude" in excluded.reason.tolist()
    summary = pd.read_csv(out / "rcbv_summary.csv")
    means = summary[summary.model == "paunet"].set_index("compartment")["mean_of_means"]
    assert means["ET"] > means["NEH"] > means["ED"]


def test_h2_neh_above_rims(planted, tmp):
    cohort, seg = planted
    out = tmp / "rims"
    assert main(["validate", "rims", str(cohort), "--segmentations", str(seg), "-o", str(out)]) == 0
    cases = pd.read_csv(out / "rims_cases.csv")
    assert set(cases.region) == {"rim_2mm", "rim_4mm", "rim_6mm", "NEH"}
    tests = pd.read_csv(out / "rims_tests.csv")
    greater = tests[tests.test == "paired_t_greater"]
    assert len(greater) == 3 and (greater.p_adjusted < 0.05).all()


def test_h1_without_effect_finds_nothing(tmp):
    cohort, seg = _cohort(tmp, 11, {"ET": 1.8, "NEH": 1.8, "ED": 1.8, "NC": 1.8})
    out = tmp / "rcbv"
    assert (
        main(
            [
                "validate",
                "rcbv",
                str(cohort),
                "--segmentations",
                str(seg),
                "-o",
                str(out),
                "--models",
                "paunet",
            ]
        )
        == 0
    )
    tests = pd.read_csv(out / "rcbv_tests.csv")
    ordered = tests[tests.test == "ordered_one_sided"]
    assert not (ordered.p_adjusted < 0.05).all()


def test_missing_segmentations_is_a_clear_error(planted, tmp, capsys):
    cohort, _ = planted
    assert (
        main(["validate", "rcbv", str(cohort), "--segmentations", str(tmp), "-o", str(tmp / "o")])
        == 2
    )
    assert "no nehmap segment output" in capsys.readouterr().err


def _brute_force_mean(cohort, seg, case_id, label, exclude_vessels):
    """Mean rCBV of one label, computed here from the files: brain voxels with rCBV > 0,
    optionally without those above the brain's 99th percentile."""
    case = discover(cohort)[case_id]
    rcbv = read_image(case.files["rcbv"]).array
    labels = read_image(seg / case_id / f"{case_id}_seg-paunet.nii.gz", dtype=None).array
    from nehmap.io import load_case

    brain = load_case(case, load_labels=False).brain_mask()
    signal = brain & (rcbv > 0)
    keep = signal.copy()
    if exclude_vessels:
        keep &= rcbv <= np.percentile(rcbv[signal], 99.0)
    return float(rcbv[keep & (labels == label)].mean())


@pytest.mark.parametrize("exclude", [False, True])
def test_h1_keeps_large_vessels_unless_asked_and_writes_both_ways(planted, tmp, exclude):
    cohort, seg = planted
    out = tmp / "rcbv"
    argv = ["validate", "rcbv", str(cohort), "--segmentations", str(seg), "-o", str(out)]
    assert main([*argv, "--models", "paunet", *(["--exclude-vessels"] if exclude else [])]) == 0
    cases = pd.read_csv(out / "rcbv_cases.csv")
    case_id = sorted(cases["case"].unique())[0]
    row = cases[(cases.case == case_id) & (cases.compartment == "ET")]
    expected = _brute_force_mean(cohort, seg, case_id, 4, exclude_vessels=exclude)
    assert row["mean"].item() == pytest.approx(expected, rel=1e-5)
    # the other way is the sensitivity analysis, with the same tests
    both = pd.read_csv(out / "rcbv_vessel_sensitivity.csv")
    assert set(both.vessels) == {"kept", "excluded"}
    primary = both[both.vessels == ("excluded" if exclude else "kept")].drop(columns="vessels")
    tests = pd.read_csv(out / "rcbv_tests.csv")
    np.testing.assert_allclose(primary["p"].to_numpy(), tests["p"].to_numpy())
    other = both[both.vessels == ("kept" if exclude else "excluded")]
    assert not np.allclose(other["statistic"].to_numpy(), tests["statistic"].to_numpy())
