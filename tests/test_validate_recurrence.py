"""H3: pNEH against the recurrence ET: metrics, chance models, cohort tests, command.

Everything runs on 3 mm synthetic volumes; registrations use the affine preset (the
deformable presets are covered in ``test_registration.py``).
"""

from __future__ import annotations

import argparse
import json
import math

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

pytest.importorskip("ants")

from nehmap.metrics import fraction_inside, mean_edge_distance  # noqa: E402
from nehmap.validate.recurrence import (  # noqa: E402
    METRICS,
    CaseExcluded,
    RecurrenceConfig,
    Scan,
    _Panel,
    analyse_pair,
    chance_comparison,
    cohort_summary,
    cohort_tests,
    find_segmentation,
    registration_masks,
    run_recurrence,
    spatial_relation,
)
from nehmap.validate.registration import RegistrationError, register  # noqa: E402

SPACING = (3.0, 3.0, 3.0)


def _ball(shape, centre, radius):
    idx = np.indices(shape)
    return sum((idx[i] - centre[i]) ** 2 for i in range(3)) < radius**2


@pytest.fixture(scope="module")
def phantom():
    shape = (40, 40, 34)
    brain = _ball(shape, (20, 20, 17), 16)
    etrl = _ball(shape, (20, 12, 17), 3.5)
    near = _ball(shape, (20, 7, 17), 3) & brain
    far = _ball(shape, (20, 31, 17), 3) & brain
    return {"brain": brain, "etrl": etrl, "near": near, "far": far}


def test_fast_metrics_equal_nehmap_metrics():
    rng = np.random.default_rng(3)
    shape = (30, 34, 26)
    a = rng.random(shape) < 0.02
    a[5:12, 8:20, 4:10] = True
    b = np.zeros(shape, bool)
    b[10:24, 15:28, 6:20] = True
    for spacing in ((1.0, 1.0, 1.0), (3.0, 3.0, 3.0), (1.5, 1.0, 2.0)):
        ref = spatial_relation(a, b, spacing)
        fast = _Panel(b, spacing, 5.0).values(np.flatnonzero(a))
        np.testing.assert_allclose(fast, [ref[m.name] for m in METRICS], rtol=1e-12)
    assert ref["mean_edge_distance"] == mean_edge_distance(a, b, (1.5, 1.0, 2.0))
    assert ref["fraction_inside"] == fraction_inside(a, b)


@pytest.mark.parametrize("chance", ["brain", "spin"])
def test_chance_model_separates_near_from_far(phantom, chance):
    centre = np.array([20.0, 20.0, 17.0]) * 3.0
    kw = {"n": 150, "seed": 1, "chance": chance, "centre_mm": centre}
    near = chance_comparison(phantom["near"], phantom["etrl"], phantom["brain"], SPACING, **kw)
    far = chance_comparison(phantom["far"], phantom["etrl"], phantom["brain"], SPACING, **kw)
    n_med = near.set_index("metric").loc["mean_edge_distance"]
    f_med = far.set_index("metric").loc["mean_edge_distance"]
    assert n_med["ratio"] < 0.6 and n_med["p_spatial"] < 0.05 and n_med["chance_rank"] > 0.9
    assert f_med["ratio"] > 1.0 and f_med["p_spatial"] > 0.5 and f_med["chance_rank"] < 0.5
    assert list(near["metric"]) == [m.name for m in METRICS]
    assert (near["null_n"] == 150).all()
    assert set(near["agreement"]) == {"less", "greater"}


def test_chance_comparison_rejects_empty_masks(phantom):
    empty = np.zeros_like(phantom["brain"])
    with pytest.raises(CaseExcluded, match="enhancing tumour"):
        chance_comparison(phantom["near"], empty, phantom["brain"], SPACING, n=5)
    with pytest.raises(CaseExcluded, match="NEH"):
        chance_comparison(empty, phantom["etrl"], phantom["brain"], SPACING, n=5)
    with pytest.raises(ValueError, match="centre"):
        chance_comparison(
            phantom["near"], phantom["etrl"], phantom["brain"], SPACING, chance="spin"
        )


def _fake_cases(values: dict[str, list[float]], ratios: dict[str, list[float]]) -> pd.DataFrame:
    rows = []
    for spec in METRICS:
        for i, (v, r) in enumerate(zip(values[spec.name], ratios[spec.name], strict=True)):
            rows.append(
                {
                    "case": f"P{i}",
                    "metric": spec.name,
                    "value": v,
                    "ratio": r,
                    "chance_expected": v / r if r else math.nan,
                    "chance_rank": 0.9 if spec.agreement == "greater" else 0.8,
                    "included": i != 5,
                }
            )
    return pd.DataFrame(rows)


def test_cohort_tests_name_each_test_and_flag_the_degenerate_one():
    n = 6
    values = {m.name: [2.0 + i for i in range(n)] for m in METRICS}
    ratios = {m.name: [0.5, 0.6, 0.7, 0.8, math.nan, 9.0] for m in METRICS}
    ratios["mean_edge_distance"] = [0.5, 0.6, 0.7, 0.8, 0.4, 9.0]
    table = cohort_tests(_fake_cases(values, ratios))
    assert list(table.groupby("metric").size().unique()) == [3]
    med = table[table["metric"] == "mean_edge_distance"].set_index("test")
    # raw distances against 0: always "significant", flagged as degenerate
    assert med.loc["paper", "scale"] == "raw" and med.loc["paper", "baseline"] == 0
    assert med.loc["paper", "p_greater"] == pytest.approx(1 / 2**5)
    assert "degenerate" in med.loc["paper", "note"]
    # chance-normalised: distance ratios below 1, direction 'less'
    assert med.loc["chance_ratio", "alternative"] == "less"
    assert med.loc["chance_ratio", "p_less"] == pytest.approx(1 / 2**5)
    assert med.loc["chance_ratio", "n"] == 5  # the excluded case is left out
    fi = table[table["metric"] == "fraction_inside"].set_index("test")
    assert fi.loc["chance_ratio", "alternative"] == "greater"
    assert fi.loc["chance_ratio", "n"] == 4 and fi.loc["chance_ratio", "n_omitted"] == 1
    # fewer than 5 usable patients: not computed, said so, never p = 1
    assert fi.loc["chance_ratio", "method"] == "not computed"
    assert math.isnan(fi.loc["chance_ratio", "p_value"])
    assert "at least 5" in fi.loc["chance_ratio", "note"]
    computed = table[table["method"] != "not computed"]
    assert (computed["method"] == "exact").all() and len(computed) == 7
    assert table.loc[table["test"] == "chance_rank", "p_greater"].max() == pytest.approx(1 / 32)
    summary = cohort_summary(_fake_cases(values, ratios))
    raw = summary[(summary["metric"] == "mean_edge_distance") & (summary["scale"] == "raw")]
    assert raw["mean"].item() == pytest.approx(4.0) and raw["n"].item() == 5


def _synthetic_scans(seed, origin="neh"):
    from nehmap.synth import generate_case

    case = generate_case(seed, spacing=3.0, recurrence=True, params={"recurrence_origin": origin})
    rec = case.recurrence
    affine = case.grid.canonical_affine
    pre = Scan(case.images, case.labels, affine, case.brain_mask, f"S{seed}_pre")
    post = Scan(rec.images, rec.labels, affine, rec.brain_mask, f"S{seed}_rec")
    return pre, post, rec


def test_recurrence_grown_from_neh_is_found_in_a_small_cohort():
    """Six synthetic patients whose recurrence grows from NEH (true mapping, no registration)."""
    rows = []
    for seed in range(1, 7):
        _, post, rec = _synthetic_scans(seed, "neh")
        table = chance_comparison(rec.preop_neh, post.labels == 4, post.mask, SPACING, n=100)
        table["case"] = seed
        rows.append(table)
    tests = cohort_tests(pd.concat(rows)).set_index(["metric", "test"])
    assert tests.loc[("mean_edge_distance", "chance_ratio"), "p_value"] < 0.05
    assert tests.loc[("mean_edge_distance", "chance_rank"), "p_value"] < 0.05
    assert tests.loc[("fraction_near_edge", "chance_rank"), "p_value"] < 0.05


def test_analyse_pair_registers_and_excludes_without_et():
    pre, post, rec = _synthetic_scans(2, "neh")
    result = analyse_pair(pre, post, preset="affine", null_n=40, seed=0)
    assert result.pneh.shape == post.labels.shape and result.pneh.any()
    dice = 2 * (result.pneh & rec.preop_neh).sum() / (result.pneh.sum() + rec.preop_neh.sum())
    assert dice > 0.7
    assert not result.quality.flag and result.quality.brain_dice > 0.95
    assert set(result.metrics["metric"]) == {m.name for m in METRICS}
    assert (result.metrics["pneh_volume_mm3"] > 0).all()
    spin = analyse_pair(pre, post, preset="affine", null_n=20, chance="spin")
    assert (spin.metrics["chance_model"] == "spin").all() and (spin.metrics["null_n"] == 20).all()
    no_et = Scan(post.images, np.where(post.labels == 4, 0, post.labels), post.affine, post.mask)
    with pytest.raises(CaseExcluded, match="no enhancing tumour"):
        analyse_pair(pre, no_et, preset="affine")
    fixed_mask, moving_mask = registration_masks(pre, post)
    assert not (fixed_mask & (post.labels > 0)).any() and not (moving_mask & (pre.labels > 0)).any()
    fixed_core, _ = registration_masks(pre, post, exclude="core")
    assert (fixed_core & (post.labels == 2)).any()


# ----------------------------------------------------------------------------- command


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Three synthetic RHUH patients with segmentation folders in the two naming styles.

    The recurrence segmentation of the second patient has no ET.
    """
    from nehmap.synth import write_cohort

    root = tmp_path_factory.mktemp("h3")
    made = write_cohort(
        root / "rhuh", n=3, seed=11, spacing=3.0, layout="rhuh", progress=False, overwrite=False
    )
    from nehmap.io import discover

    collection = discover(made.collection)
    pre_dir, rec_dir = root / "seg_pre", root / "seg_rec"
    for i, (subject, scans) in enumerate(sorted(collection.by_subject().items())):
        truth = made.truth
        pre_labels = nib.load(truth / f"{subject}_truth-labels.nii.gz")
        rec_labels = nib.load(truth / f"{subject}_recurrence-labels.nii.gz")
        pre_id, rec_id = scans["preop"].case_id, scans["recurrence"].case_id
        (pre_dir / pre_id).mkdir(parents=True)
        nib.save(pre_labels, pre_dir / pre_id / f"{pre_id}_seg-paunet.nii.gz")
        data = np.asarray(rec_labels.dataobj).astype(np.uint8)
        if i == 1:
            data[data == 4] = 0
        rec_dir.mkdir(exist_ok=True)
        nib.save(nib.Nifti1Image(data, rec_labels.affine), rec_dir / f"{rec_id}.nii.gz")
    return {"collection": made.collection, "pre": pre_dir, "rec": rec_dir, "root": root}


def test_find_segmentation_naming(cohort, tmp_path):
    from nehmap.errors import NehmapInputError

    pre_id = next(p.name for p in cohort["pre"].iterdir())
    assert find_segmentation(cohort["pre"], pre_id, "paunet").name.endswith("_seg-paunet.nii.gz")
    assert find_segmentation(cohort["pre"], pre_id).name.endswith("_seg-paunet.nii.gz")
    rec_id = next(p.name for p in cohort["rec"].iterdir()).removesuffix(".nii.gz")
    assert find_segmentation(cohort["rec"], rec_id, "unetrpp").name == f"{rec_id}.nii.gz"
    with pytest.raises(NehmapInputError, match="no segmentation"):
        find_segmentation(tmp_path, "nobody", "paunet")


def _command_args(cohort, out, *extra):
    """Parsed arguments of `nehmap validate recurrence` on the test cohort."""
    from nehmap.commands import validate_recurrence

    parser = argparse.ArgumentParser()
    validate_recurrence.add_arguments(parser)
    return parser.parse_args(
        [
            str(cohort["collection"]),
            "--preop-seg",
            str(cohort["pre"]),
            "--preop-model",
            "paunet",
            "--recurrence-seg",
            str(cohort["rec"]),
            "--recurrence-model",
            "unetrpp",
            "-o",
            str(out),
            "--preset",
            "affine",
            "--no-progress",
            *extra,
        ]
    )


def test_command_writes_tables_masks_and_record(cohort):
    from nehmap.commands import validate_recurrence

    out = cohort["root"] / "out"
    args = _command_args(cohort, out, "--null-n", "30", "--keep-transforms")
    assert validate_recurrence.run(args) == 0
    cases = pd.read_csv(out / "recurrence_cases.csv")
    tests = pd.read_csv(out / "recurrence_tests.csv")
    excluded = pd.read_csv(out / "excluded.csv")
    for column in ("case", "metric", "value", "chance_expected", "ratio", "p_spatial"):
        assert column in cases.columns
    for column in ("brain_dice", "jacobian_min", "jacobian_max", "registration_flag"):
        assert column in cases.columns
    # default chance models: matched (primary) and brain (as the paper)
    assert cases["case"].nunique() == 2 and len(cases) == 2 * 2 * len(METRICS)
    assert set(cases["chance_model"]) == {"matched", "brain"}
    assert cases.loc[cases["chance_model"] == "matched", "n_controls"].notna().all()
    for column in ("metric", "test", "observed_mean", "null_mean", "p_greater", "p_two_sided"):
        assert column in tests.columns
    assert set(tests["test"]) == {"paper", "chance_ratio", "chance_rank", "matched_control"}
    assert set(tests.loc[tests["test"] == "paper", "chance_model"]) == {"brain"}
    primary = tests[tests["primary"]]
    assert set(primary["chance_model"]) == {"matched"} and set(primary["test"]) == {"chance_rank"}
    assert len(primary) == 4  # the four paper metrics
    # two patients: every test is reported as not computed, with the reason (never p = 1)
    assert (tests.loc[tests["test"] == "chance_rank", "n"] == 2).all()
    assert (tests["n"] + tests["n_omitted"] == 2).all()
    assert tests["p_value"].isna().all() and (tests["method"] == "not computed").all()
    assert tests["note"].str.contains("at least 5").all()
    assert len(excluded) == 1 and "no enhancing tumour" in excluded["reason"].item()
    for subject in cases["case"].unique():
        mask = nib.load(out / "warped" / f"{subject}_pneh.nii.gz")
        rec = next(cohort["collection"].glob(f"{subject}/2/*_t1.nii.gz"))
        np.testing.assert_allclose(mask.affine, nib.load(rec).affine)
        assert np.asarray(mask.dataobj).any()
        assert (out / "transforms" / subject / "registration.json").is_file()
    record = json.loads((out / "recurrence_run.json").read_text())
    assert record["parameters"]["preset"] == "affine" and "antspyx" in record["versions"]
    assert "recurrence_cases.csv" in record["columns"]
    assert record["maps"]["pneh"] == ["paunet label map (<case>_seg-paunet)"]
    assert record["maps"]["recurrence_et"] == ["label map (<case>.nii.gz)"]
    for subject in cases["case"].unique():
        controls = nib.load(out / "warped" / f"{subject}_matched-controls.nii.gz")
        assert np.asarray(controls.dataobj).max() >= 1


def test_failed_registration_is_reported_and_the_cohort_goes_on(cohort):
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RegistrationError("ANTs registration failed: simulated")
        return register(*args, **kwargs)

    config = RecurrenceConfig(
        preop_seg=cohort["pre"],
        recurrence_seg=cohort["rec"],
        preset="affine",
        null_n=20,
        exclude=("RHUH-0003",),
    )
    run = run_recurrence(
        cohort["collection"], cohort["root"] / "out2", config, progress=False, register_fn=flaky
    )
    reasons = dict(zip(run.excluded["case"], run.excluded["reason"], strict=True))
    assert reasons["RHUH-0001"].startswith("registration failed: ANTs registration failed")
    assert "no enhancing tumour" in reasons["RHUH-0002"]
    assert "--exclude" in reasons["RHUH-0003"]
    assert run.cases.empty and (run.tests["n"] == 0).all()
    assert (cohort["root"] / "out2" / "excluded.csv").is_file()


def test_command_selects_by_clinical_columns(cohort):
    from nehmap.commands import validate_recurrence

    subjects = sorted(p.name for p in cohort["collection"].iterdir() if p.is_dir())
    clinical = cohort["root"] / "clinical.csv"
    rows = ["ID,EOR"] + [f"{s},{'STR' if i == 0 else 'GTR'}" for i, s in enumerate(subjects)]
    clinical.write_text("\n".join(rows) + "\n")
    out = cohort["root"] / "out-clinical"
    args = _command_args(
        cohort, out, "--null-n", "10", "--clinical", str(clinical), "--exclude-where", "EOR=STR"
    )
    validate_recurrence.run(args)
    excluded = pd.read_csv(out / "excluded.csv")
    reasons = excluded.set_index("case")["reason"]
    first = [c for c in reasons.index if c.startswith(subjects[0])]
    assert first and all("clinical EOR = 'STR'" in reasons[c] for c in first)
