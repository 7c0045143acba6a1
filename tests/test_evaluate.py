"""``nehmap evaluate`` and :func:`nehmap.evaluate.evaluate_collections`.

Label maps are built by hand (nested cubes on a 20^3 grid of 1 x 1 x 2 mm voxels) and
written with nibabel in three layouts: a BraTS-2021 collection (labels 1/2/4), a plain
folder of ``<case>.nii.gz`` and a ``nehmap segment`` output folder. Shifting a cube of
side n by one voxel gives Dice (n-1)/n and Jaccard (n-1)/(n+1); every boundary voxel is
then 0 or one voxel step from the other surface (1 mm along x, 2 mm along z), so HD95 is
that step and surface Dice at 2 mm is 1.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from conftest import save, tiny_volume
from nehmap.cli import COMMANDS, main
from nehmap.commands import evaluate as command
from nehmap.evaluate import (
    EvaluationResult,
    evaluate_collections,
    format_cell,
    paper_table,
    summarise,
)
from nehmap.metrics import evaluate_labels

SHAPE = (20, 20, 20)
SPACING = (1.0, 1.0, 2.0)
AFFINE = np.diag([1.0, 1.0, 2.0, 1.0])
IDS = ("BraTS2021_00001", "BraTS2021_00002", "BraTS2021_00003")


def tumour(shift: tuple[int, int, int] = (0, 0, 0), neh: bool = False) -> np.ndarray:
    """Nested cubes: ED side 12 (WT), ET side 6 (TC), NC side 2; optional NEH block.

    Values 1/2/4 read the same in the ``nehmap`` and ``brats2021`` schemes.
    """
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[4:16, 4:16, 4:16] = 2
    labels[7:13, 7:13, 7:13] = 4
    labels[9:11, 9:11, 9:11] = 1
    if neh:
        labels[13:15, 5:9, 5:9] = 3
    return np.roll(labels, shift, axis=(0, 1, 2))


def brats_collection(root: Path, labels: dict[str, np.ndarray]) -> Path:
    """A BraTS 2021 collection: four modalities and a ``_seg`` file per case."""
    for i, (case_id, seg) in enumerate(labels.items()):
        for j, token in enumerate(("t1", "t1ce", "t2", "flair")):
            save(root / case_id / f"{case_id}_{token}.nii.gz", tiny_volume(i + j, SHAPE), AFFINE)
        save(root / case_id / f"{case_id}_seg.nii.gz", seg, AFFINE)
    return root


def plain_folder(root: Path, labels: dict[str, np.ndarray], affine=AFFINE) -> Path:
    for case_id, seg in labels.items():
        save(root / f"{case_id}.nii.gz", seg, affine)
    return root


def segment_output(root: Path, model: str, labels: dict[str, np.ndarray]) -> Path:
    for case_id, seg in labels.items():
        save(root / case_id / f"{case_id}_seg-{model}.nii.gz", seg, AFFINE)
    return root


def overlap(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Dice and Jaccard from voxel counts (both masks non-empty)."""
    inter = np.count_nonzero(a & b)
    return 2 * inter / (a.sum() + b.sum()), inter / np.count_nonzero(a | b)


def value(result: EvaluationResult, case: str, region: str, metric: str) -> float:
    t = result.cases
    (v,) = t.loc[(t.case == case) & (t.region == region) & (t.metric == metric), "value"]
    return float(v)


@pytest.fixture(autouse=True)
def _registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``nehmap evaluate`` available whether or not the CLI registers it yet."""
    monkeypatch.setitem(COMMANDS, "evaluate", "nehmap.commands.evaluate")


@pytest.fixture
def shifted(tmp: Path) -> tuple[Path, Path, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """REF: BraTS collection; PRED: plain folder, shifted 2 mm along z, 1 mm along x, or not."""
    ref = {c: tumour() for c in IDS}
    pred = dict(zip(IDS, (tumour((0, 0, 1)), tumour((1, 0, 0)), tumour()), strict=True))
    return plain_folder(tmp / "pred", pred), brats_collection(tmp / "ref", ref), pred, ref


# --------------------------------------------------------------------------- values


def test_known_geometry_across_layouts(shifted):
    pred_dir, ref_dir, pred, ref = shifted
    result = evaluate_collections(pred_dir, ref_dir)
    assert result.ok and result.missing.empty
    assert list(result.cases.columns) == ["case", "region", "metric", "value"]
    assert set(result.cases.region) == {"ET", "TC", "WT", "NC", "ED", "NEH"}
    z, x, same = IDS
    for region, n in (("WT", 12), ("TC", 6), ("NC", 2)):
        for case in (z, x):
            assert value(result, case, region, "dice") == pytest.approx((n - 1) / n)
            assert value(result, case, region, "jaccard") == pytest.approx((n - 1) / (n + 1))
            assert value(result, case, region, "surface_dice") == pytest.approx(1.0)
        # anisotropic voxels: one voxel along z is 2 mm, along x 1 mm
        assert value(result, z, region, "hd95") == pytest.approx(2.0)
        assert value(result, x, region, "hd95") == pytest.approx(1.0)
        assert value(result, same, region, "dice") == 1.0
        assert value(result, same, region, "hd95") == 0.0
    for case in IDS:  # shells: overlap counted independently here
        for region, label in (("ET", 4), ("ED", 2)):
            d, j = overlap(pred[case] == label, ref[case] == label)
            assert value(result, case, region, "dice") == pytest.approx(d)
            assert value(result, case, region, "jaccard") == pytest.approx(j)
        direct = evaluate_labels(pred[case], ref[case], SPACING)
        got = result.cases[result.cases.case == case].drop(columns="case")
        pd.testing.assert_frame_equal(got.reset_index(drop=True), direct)
    assert any("'brats2021' has no NEH label" in note for note in result.notes)


def test_summary_and_paper_tables(shifted):
    pred_dir, ref_dir, _, _ = shifted
    result = evaluate_collections(pred_dir, ref_dir)
    s = result.summary
    assert list(s.columns) == ["region", "metric", "mean", "sd", "median", "n"]
    assert list(s.region.unique()) == ["ET", "TC", "WT", "NC", "ED", "NEH"]
    wt = s[s.region == "WT"].set_index("metric")
    dices = [11 / 12, 11 / 12, 1.0]
    assert wt.loc["dice", "mean"] == pytest.approx(np.mean(dices))
    assert wt.loc["dice", "sd"] == pytest.approx(np.std(dices, ddof=1))
    assert wt.loc["dice", "median"] == pytest.approx(11 / 12)
    assert wt.loc["dice", "n"] == 3
    assert wt.loc["hd95", "mean"] == pytest.approx(1.0)  # 2, 1, 0 mm
    assert wt.loc["hd95", "sd"] == pytest.approx(1.0)

    table = result.table_regions
    assert list(table.index) == ["Dice", "Hausdorff95", "Jaccard", "Surface Dice"]
    assert list(table.columns) == ["ET", "TC", "WT"]
    assert table.loc["Dice", "WT"] == "0.94 ± 0.05"  # 0.9444 ± 0.0481
    assert table.loc["Hausdorff95", "WT"] == "1.00 ± 1.00"
    assert table.loc["Surface Dice", "TC"] == "1.00 ± 0.00"
    jac = [11 / 13, 11 / 13, 1.0]
    assert table.loc["Jaccard", "WT"] == f"{np.mean(jac):.2f} ± {np.std(jac, ddof=1):.2f}"
    neh = result.table_neh
    assert list(neh.columns) == ["NEH"] and neh.loc["Dice", "NEH"] == "1.00 ± 0.00"


def test_summary_skips_undefined_values_and_cell_format():
    cases = pd.DataFrame(
        {
            "case": ["a", "b", "c", "a"],
            "region": ["ET", "ET", "ET", "TC"],
            "metric": ["hd95", "hd95", "hd95", "dice"],
            "value": [1.0, 3.0, math.nan, 0.5],
        }
    )
    s = summarise(cases).set_index(["region", "metric"])
    assert s.loc[("ET", "hd95"), "n"] == 2
    assert s.loc[("ET", "hd95"), "mean"] == 2.0
    assert s.loc[("ET", "hd95"), "sd"] == pytest.approx(math.sqrt(2))
    assert math.isnan(s.loc[("TC", "dice"), "sd"])
    table = paper_table(summarise(cases), ("ET", "TC", "WT"))
    assert table.loc["Hausdorff95", "ET"] == "2.00 ± 1.41"
    assert table.loc["Dice", "TC"] == "0.50"  # one case: the mean alone
    assert table.loc["Dice", "WT"] == "n/a"
    assert format_cell(0.8349, 0.151, 10) == "0.83 ± 0.15"
    assert format_cell(12.345, 6.789, 5, digits=1) == "12.3 ± 6.8"


def test_reoriented_prediction_on_the_same_world_grid(tmp):
    ref = {IDS[0]: tumour()}
    # stored as LPS: flip axes 0 and 1, with the affine that puts each voxel where it was
    lps = np.diag([-1.0, -1.0, 2.0, 1.0])
    lps[:2, 3] = SHAPE[0] - 1
    pred_dir = plain_folder(tmp / "pred", {IDS[0]: tumour()[::-1, ::-1, :].copy()}, lps)
    result = evaluate_collections(pred_dir, plain_folder(tmp / "ref", ref))
    assert result.ok
    assert (result.cases.loc[result.cases.metric == "dice", "value"] == 1.0).all()


def test_two_models_of_one_segment_output(tmp):
    a = {"case1": tumour(neh=True), "case2": tumour((0, 1, 0), neh=True)}
    b = {"case1": tumour((0, 0, 1), neh=True), "case2": tumour()}  # case2: no NEH in B
    root = segment_output(segment_output(tmp / "seg", "modelA", a), "modelB", b)
    result = evaluate_collections(
        root,
        root,
        pred_model="modelA",
        ref_model="modelB",
        method="surface_elements",
        tolerance_mm=1.5,
        empty_penalty=50.0,
    )
    assert result.ok and result.counts["evaluated"] == 2
    for case in a:
        direct = evaluate_labels(
            a[case], b[case], SPACING, "surface_elements", 1.5, empty_penalty=50.0
        )
        got = result.cases[result.cases.case == case].drop(columns="case")
        pd.testing.assert_frame_equal(got.reset_index(drop=True), direct)
    assert value(result, "case2", "NEH", "hd95") == 50.0
    assert value(result, "case2", "NEH", "dice") == 0.0


def test_fused_neh_mask_is_scored_on_neh_only(tmp):
    ref = tumour(neh=True)
    mask = (ref == 3).astype(np.uint8)
    mask[13, 5, 5] = 0
    save(tmp / "seg" / "c1" / "c1_neh-mask.nii.gz", mask, AFFINE)
    save(tmp / "seg" / "c1" / "c1_seg-modelA.nii.gz", ref, AFFINE)
    result = evaluate_collections(
        tmp / "seg", plain_folder(tmp / "ref", {"c1": ref}), pred_model="fused"
    )
    assert set(result.cases.region) == {"NEH"}
    assert value(result, "c1", "NEH", "dice") == pytest.approx(2 * 31 / 63)
    assert list(result.table_regions.loc["Dice"]) == ["n/a", "n/a", "n/a"]


def test_truth_folder_of_a_synthetic_cohort_is_a_reference(tmp):
    """OUT_truth of nehmap synth (truth labels beside brain masks and follow-ups) pairs
    its <ID>_truth-labels maps with the cases of a segment output."""
    from nehmap.io.segmentations import find_label_maps
    from nehmap.synth import truth_folder, write_cohort

    write_cohort(tmp / "rhuh", 2, 5, spacing=4.0, layout="rhuh", progress=False)
    truth = truth_folder(tmp / "rhuh")
    refs = find_label_maps(truth)
    assert all(r.path.name == f"{case}_truth-labels.nii.gz" for case, r in refs.items())
    assert len(refs) == 2 and all(r.scheme == "nehmap" for r in refs.values())
    for case, ref in refs.items():
        img = nib.load(ref.path)
        labels = np.asarray(img.dataobj).astype(np.uint8)
        labels[labels == 3] = 2  # a prediction that misses all NEH
        out = tmp / "seg" / case / f"{case}_seg-modelA.nii.gz"
        out.parent.mkdir(parents=True)
        nib.save(nib.Nifti1Image(labels, img.affine), out)
    result = evaluate_collections(tmp / "seg", truth)
    assert result.ok and result.counts["evaluated"] == 2
    for case in refs:
        assert value(result, case, "NEH", "dice") == 0.0
        assert value(result, case, "ET", "dice") == 1.0


# --------------------------------------------------------------------------- problems


def test_missing_case_reported_and_strict(tmp, capsys):
    ref_dir = brats_collection(tmp / "ref", {c: tumour() for c in IDS})
    pred_dir = plain_folder(tmp / "pred", {IDS[0]: tumour(), IDS[1]: tumour(), "extra": tumour()})
    result = evaluate_collections(pred_dir, ref_dir)
    assert result.missing.to_dict("records") == [
        {"case": "extra", "only_in": "pred", "path": str(pred_dir / "extra.nii.gz")},
        {
            "case": IDS[2],
            "only_in": "ref",
            "path": str(ref_dir / IDS[2] / f"{IDS[2]}_seg.nii.gz"),
        },
    ]
    assert set(result.cases.case) == set(IDS[:2])

    assert main(["evaluate", str(pred_dir), str(ref_dir), "-o", str(tmp / "out")]) == 0
    out = capsys.readouterr().out
    assert f"MISSING {IDS[2]}: only in REF" in out and "MISSING extra: only in PRED" in out
    argv = ["evaluate", str(pred_dir), str(ref_dir), "-o", str(tmp / "out2"), "--strict"]
    assert main(argv) == 1
    assert "2 case(s) have a label map on one side only (--strict)" in capsys.readouterr().err
    record = json.loads((tmp / "out2" / "evaluation.json").read_text())
    assert record["counts"]["only_in_pred"] == 1 and record["counts"]["only_in_ref"] == 1
    assert record["parameters"]["strict"] is True


def test_grid_mismatch_fails_the_case_only(tmp, capsys):
    ref_dir = plain_folder(tmp / "ref", {c: tumour() for c in IDS})
    moved = AFFINE.copy()
    moved[0, 3] = 0.5
    pred_dir = plain_folder(tmp / "pred", {IDS[0]: tumour()})
    save(pred_dir / f"{IDS[1]}.nii.gz", tumour(), moved)
    save(pred_dir / f"{IDS[2]}.nii.gz", tumour()[:, :, :19].copy(), AFFINE)
    result = evaluate_collections(pred_dir, ref_dir)
    assert set(result.cases.case) == {IDS[0]}
    messages = dict(zip(result.failures.case, result.failures.message, strict=True))
    assert str(pred_dir / f"{IDS[1]}.nii.gz") in messages[IDS[1]]
    assert str(ref_dir / f"{IDS[1]}.nii.gz") in messages[IDS[1]]
    assert "up to 0.5 mm apart" in messages[IDS[1]]
    assert "(20, 20, 19)" in messages[IDS[2]] and str(ref_dir) in messages[IDS[2]]

    assert main(["evaluate", str(pred_dir), str(ref_dir), "-o", str(tmp / "out")]) == 1
    out = capsys.readouterr().out
    assert f"FAILED {IDS[1]}:" in out and "1 of 3 matched case(s) evaluated" in out
    cases = pd.read_csv(tmp / "out" / "evaluation_cases.csv")
    assert set(cases.case) == {IDS[0]}


def test_unknown_label_values_named_with_the_file(tmp, capsys):
    bad = tumour()
    bad[0, 0, 0] = 7
    pred_dir = plain_folder(tmp / "pred", {IDS[0]: bad, IDS[1]: tumour()})
    ref_dir = brats_collection(tmp / "ref", {c: tumour() for c in IDS[:2]})
    assert main(["evaluate", str(pred_dir), str(ref_dir), "-o", str(tmp / "out")]) == 1
    out = capsys.readouterr().out
    (line,) = [x for x in out.splitlines() if "FAILED" in x]
    assert str(pred_dir / f"{IDS[0]}.nii.gz") in line and "[7]" in line
    record = json.loads((tmp / "out" / "evaluation.json").read_text())
    assert record["counts"]["evaluated"] == 1 and record["failures"][0]["case"] == IDS[0]


def test_unusable_input_exits_2(tmp, capsys):
    a = segment_output(tmp / "seg", "modelA", {"c1": tumour()})
    segment_output(a, "modelB", {"c1": tumour()})
    plain = plain_folder(tmp / "plain", {"other": tumour()})
    out = ["-o", str(tmp / "out")]
    assert main(["evaluate", str(tmp / "nope"), str(plain), *out]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["evaluate", str(a), str(a), *out, "--ref-model", "modelB"]) == 2
    assert "--pred-model" in capsys.readouterr().err
    assert main(["evaluate", str(plain), str(plain), *out]) == 2
    assert "compared with themselves" in capsys.readouterr().err
    assert main(["evaluate", str(a), str(plain), *out, "--pred-model", "modelA"]) == 2
    assert "no case is on both sides" in capsys.readouterr().err
    assert main(["evaluate", str(plain), str(plain), *out, "--ref-scheme", "nope"]) == 2
    assert "Unknown label scheme" in capsys.readouterr().err
    assert main(["evaluate", str(plain), str(plain), *out, "--tolerance-mm", "-1",
                 "--ref-scheme", "brats"]) == 2  # fmt: skip
    assert "tolerance_mm" in capsys.readouterr().err
    assert not (tmp / "out").exists()


# --------------------------------------------------------------------------- CLI outputs


def test_cli_writes_all_outputs(shifted, tmp, capsys):
    pred_dir, ref_dir, _, _ = shifted
    out = tmp / "out"
    argv = ["evaluate", str(pred_dir), str(ref_dir), "-o", str(out), "--empty-penalty", "373.13"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "evaluating" not in captured.err  # no progress bar: stderr is not a terminal
    assert "0.94 ± 0.05" in captured.out and "Surface Dice" in captured.out
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [
            command.CASES_FILE,
            command.SUMMARY_FILE,
            command.TABLE_REGIONS_FILE,
            command.TABLE_NEH_FILE,
            command.RECORD_FILE,
        ]
    )  # no temporary files left
    cases = pd.read_csv(out / "evaluation_cases.csv")
    assert list(cases.columns) == ["case", "region", "metric", "value"]
    assert len(cases) == 3 * 6 * 4
    summary = pd.read_csv(out / "evaluation_summary.csv")
    assert list(summary.columns) == ["region", "metric", "mean", "sd", "median", "n"]
    regions = pd.read_csv(out / "table_regions.csv", index_col="metric")
    assert regions.loc["Hausdorff95", "WT"] == "1.00 ± 1.00"
    neh = pd.read_csv(out / "table_neh.csv", index_col="metric")
    assert list(neh.columns) == ["NEH"]
    record = json.loads((out / "evaluation.json").read_text())
    assert record["parameters"]["empty_penalty_mm"] == 373.13
    assert record["parameters"]["method"] == "voxels"
    assert record["versions"]["nehmap"]
    assert record["counts"] == {
        "pred_label_maps": 3,
        "ref_label_maps": 3,
        "matched": 3,
        "evaluated": 3,
        "failed": 0,
        "only_in_pred": 0,
        "only_in_ref": 0,
    }


def test_output_folder_that_is_a_file(shifted, tmp, capsys):
    pred_dir, ref_dir, _, _ = shifted
    target = tmp / "taken"
    target.write_text("x")
    assert main(["evaluate", str(pred_dir), str(ref_dir), "-o", str(target)]) == 2
    assert "is a file" in capsys.readouterr().err
    assert isinstance(nib.load(str(pred_dir / f"{IDS[0]}.nii.gz")), nib.Nifti1Image)
