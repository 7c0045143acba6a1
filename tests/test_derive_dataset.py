"""``nehmap derive-neh`` on tiny collections: outputs, links, volume table and error cases."""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import pandas as pd
import pytest

from conftest import save, tiny_volume
from nehmap.commands import derive_neh as derive_cmd
from nehmap.derive.neh import SecondSegmentations, derive_dataset, derive_neh
from nehmap.io import discover, load_case

SHAPE = (14, 14, 12)
AFFINE = np.diag([1.0, 1.0, 1.0, 1.0])
CASES = ("Brats18_TCIA01_001_1", "Brats18_TCIA01_002_1")  # BraTS 2018: label 1 is NCR/NET


def _reference_labels() -> np.ndarray:
    """BraTS 2017-2020 style: edema, an NCR/NET block (necrosis and non-enhancing
    tumour), an enhancing cube inside it."""
    ref = np.zeros(SHAPE, dtype=np.uint8)
    ref[1:13, 1:13, 1:11] = 2
    ref[2:10, 2:10, 2:9] = 1
    ref[4:6, 4:6, 4:6] = 4
    return ref


def _second_labels() -> np.ndarray:
    """BraTS 2021 style: the same tumour, its necrosis only in rows 2-4, the rest of the
    NCR/NET called edema (where BraTS 2021 puts non-enhancing tumour)."""
    sec = np.where(_reference_labels() > 0, 2, 0).astype(np.uint8)
    sec[2:5, 2:10, 2:9] = 1
    sec[3, 2:10, 5] = 2  # a thin line of disagreement inside the necrosis: opened away
    sec[4:6, 4:6, 4:6] = 4
    return sec


def _collection(root, cases=CASES, labels=None):
    for case_id in cases:
        for i, tok in enumerate(("t1", "t1ce", "t2", "flair")):
            save(root / case_id / f"{case_id}_{tok}.nii.gz", tiny_volume(i, SHAPE))
        save(
            root / case_id / f"{case_id}_seg.nii.gz",
            _reference_labels() if labels is None else labels,
        )
    return root


def _second(root, cases=CASES, name="{case}.nii.gz", data=None, affine=AFFINE):
    for case_id in cases:
        save(root / name.format(case=case_id), _second_labels() if data is None else data, affine)
    return root


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    derive_cmd.add_arguments(parser)
    return derive_cmd.run(parser.parse_args(argv))


def _expected() -> np.ndarray:
    labels, _ = derive_neh(_reference_labels(), _second_labels(), (1.0, 1.0, 1.0), 1.0, 50.0)
    return labels


def test_derive_writes_nnunet_dataset_with_links_and_volumes(tmp, capsys):
    ref, sec, out = _collection(tmp / "ref"), _second(tmp / "sec"), tmp / "out"
    assert _run([str(ref), "--second", str(sec), "-o", str(out)]) == 0
    assert "2 case(s) derived" in capsys.readouterr().out
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["numTraining"] == 2 and meta["label_scheme"] == "nehmap"
    assert meta["labels"] == {
        "background": 0,
        "necrosis": 1,
        "edema": 2,
        "NEH": 3,
        "enhancing tumour": 4,
    }
    assert meta["channel_names"] == {"0": "T1", "1": "T1ce", "2": "T2", "3": "FLAIR"}
    # images are hard links of the inputs: same file, no copy
    t1c_in = ref / CASES[0] / f"{CASES[0]}_t1ce.nii.gz"
    assert os.path.samefile(out / "imagesTr" / f"{CASES[0]}_0001.nii.gz", t1c_in)
    # nehmap reads the result back as nnU-Net with NEH
    col = discover(out)
    assert col.layout == "nnunet" and col.ids == list(CASES)
    case = load_case(col[CASES[1]])
    expected = _expected()
    np.testing.assert_array_equal(case.labels, expected)
    assert (expected == 3).sum() > 0 and expected[3, 5, 5] == 1  # the line stayed NC
    assert expected[8, 8, 5] == 3  # NCR/NET called edema by the second: NEH
    assert expected[4, 4, 4] == 4 and expected[2, 2, 2] == 1 and expected[11, 5, 5] == 2
    table = pd.read_csv(out / "neh_volumes.csv")
    assert list(table.columns) == ["case", "rule", "stage", "voxels", "volume_mm3"]
    assert set(table.rule) == {"paper"}
    final = table[(table.case == CASES[0]) & (table.stage == "final")]
    assert final.volume_mm3.item() == (expected == 3).sum()
    before = table[(table.case == CASES[0]) & (table.stage == "candidates")].voxels.item()
    assert before > final.voxels.item()
    record = json.loads((out / "derive-neh.json").read_text())
    assert record["parameters"]["opening_mm"] == 1.0 and record["failures"] == {}
    assert record["rule_per_case"] == {c: "paper" for c in CASES}
    assert "does not call necrosis" in record["rules"]["paper"]


def test_reference_whose_release_cannot_be_told_asks_for_the_scheme(tmp, capsys):
    cases = ("case_01", "case_02")  # BraTS file names, no release in the IDs
    ref, sec = _collection(tmp / "ref", cases=cases), _second(tmp / "sec", cases=cases)
    assert _run([str(ref), "--second", str(sec), "-o", str(tmp / "out")]) == 2
    err = capsys.readouterr().err
    assert "case_01_seg.nii.gz" in err and "--reference-scheme brats2018" in err
    assert not (tmp / "out").exists()  # nothing written
    argv = [str(ref), "--second", str(sec), "-o", str(tmp / "out"), "--reference-scheme"]
    assert _run([*argv, "brats2018"]) == 0
    labels = load_case(discover(tmp / "out")[cases[0]]).labels
    np.testing.assert_array_equal(labels, _expected())


def test_brats2021_reference_is_refused_unless_mirrored(tmp, capsys):
    cases = ("BraTS2021_00001",)
    ref, sec = _collection(tmp / "ref", cases=cases), _second(tmp / "sec", cases=cases)
    assert _run([str(ref), "--second", str(sec), "-o", str(tmp / "out")]) == 2
    assert "BraTS 2021-style" in capsys.readouterr().err
    argv = [str(ref), "--second", str(sec), "-o", str(tmp / "out"), "--second-scheme"]
    assert _run([*argv, "brats2018"]) == 0
    record = json.loads((tmp / "out" / "derive-neh.json").read_text())
    assert record["rule_per_case"] == {cases[0]: "mirrored"}


def test_derive_manifest_format_keeps_neh(tmp):
    ref, sec = _collection(tmp / "ref"), _second(tmp / "sec", name="{case}_seg-model.nii.gz")
    report = derive_dataset(ref, sec, tmp / "out", output_format="manifest", link="copy")
    assert report.cases == list(CASES) and report.placed == {"copy": 8}
    col = discover(tmp / "out" / "manifest.csv")
    assert col.layout == "manifest" and col.ids == list(CASES)
    case = load_case(col[CASES[0]])
    np.testing.assert_array_equal(case.labels, _expected())
    t1 = tmp / "out" / CASES[0] / f"{CASES[0]}_t1.nii.gz"
    assert not os.path.samefile(t1, ref / CASES[0] / f"{CASES[0]}_t1.nii.gz")


def test_missing_case_in_second_is_reported_and_others_written(tmp, capsys):
    ref = _collection(tmp / "ref")
    sec = _second(tmp / "sec", cases=CASES[:1])
    out = tmp / "out"
    assert _run([str(ref), "--second", str(sec), "-o", str(out)]) == 1
    text = capsys.readouterr().out
    assert f"FAILED {CASES[1]}" in text and "no second segmentation" in text
    assert json.loads((out / "dataset.json").read_text())["numTraining"] == 1


def test_values_outside_the_second_scheme_are_refused(tmp):
    ref = _collection(tmp / "ref", cases=CASES[:1])
    bad = _second_labels()
    bad[5, 5, 5] = 3  # not a brats2021 label
    sec = _second(tmp / "sec", cases=CASES[:1], data=bad)
    report = derive_dataset(ref, sec, tmp / "out")
    ((case_id, message),) = report.failures
    assert case_id == CASES[0] and "values [3]" in message and "brats2021" in message
    assert f"{CASES[0]}.nii.gz" in message and "--second-scheme" in message
    # declared as nehmap labels, 3 is NEH and the case goes through
    report = derive_dataset(
        ref, SecondSegmentations(sec, scheme="nehmap"), tmp / "out2", output_format="manifest"
    )
    assert report.cases == [CASES[0]]


def test_second_on_another_grid_is_refused(tmp):
    ref = _collection(tmp / "ref", cases=CASES[:1])
    shifted = AFFINE.copy()
    shifted[0, 3] = 2.0
    sec = _second(tmp / "sec", cases=CASES[:1], affine=shifted)
    report = derive_dataset(ref, sec, tmp / "out")
    ((_, message),) = report.failures
    assert "not on the grid" in message and "2 mm apart" in message
    sec2 = tmp / "sec2"
    save(sec2 / f"{CASES[0]}.nii.gz", np.zeros((10, 10, 10), np.uint8))
    report = derive_dataset(ref, sec2, tmp / "out2")
    assert "has shape (10, 10, 10)" in report.failures[0][1]


def test_ambiguous_second_needs_a_pattern(tmp):
    ref = _collection(tmp / "ref", cases=CASES[:1])
    sec = _second(tmp / "sec", cases=CASES[:1], name="{case}/{case}_seg-a.nii.gz")
    _second(sec, cases=CASES[:1], name="{case}/{case}_seg-b.nii.gz")
    report = derive_dataset(ref, sec, tmp / "out")
    assert "--second-pattern" in report.failures[0][1]
    pattern = SecondSegmentations(sec, pattern="{case}/{case}_seg-b.nii.gz")
    assert derive_dataset(ref, pattern, tmp / "out2").cases == [CASES[0]]


def test_second_as_a_collection_uses_its_scheme(tmp):
    ref = _collection(tmp / "ref", cases=CASES[:1])
    # a BraTS 2023 collection: 1 NETC, 2 SNFH, 3 ET -- its 1 is the non-enhancing core
    sec = _collection(tmp / "sec23", cases=())
    case_id = CASES[0]
    for i, tok in enumerate(("t1n", "t1c", "t2w", "t2f")):
        save(sec / case_id / f"{case_id}-{tok}.nii.gz", tiny_volume(i, SHAPE))
    save(
        sec / case_id / f"{case_id}-seg.nii.gz",
        np.where(_second_labels() == 4, 3, _second_labels()),
    )
    second = SecondSegmentations(sec)
    path, scheme = second.find(case_id)
    assert path.name == f"{case_id}-seg.nii.gz" and scheme.name == "brats2023"
    report = derive_dataset(ref, second, tmp / "out")
    assert report.cases == [case_id]
    np.testing.assert_array_equal(load_case(discover(tmp / "out")[case_id]).labels, _expected())


def test_outputs_never_land_in_the_inputs(tmp, capsys):
    ref, sec = _collection(tmp / "ref"), _second(tmp / "sec")
    assert _run([str(ref), "--second", str(sec), "-o", str(ref / "derived")]) == 2
    assert "inside the input folder" in capsys.readouterr().err
    out = tmp / "out"
    assert _run([str(ref), "--second", str(sec), "-o", str(out)]) == 0
    assert _run([str(ref), "--second", str(sec), "-o", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert _run([str(ref), "--second", str(sec), "-o", str(out), "--overwrite"]) == 0
    assert "8 kept" in capsys.readouterr().out
    inputs = [p for p in ref.rglob("*.nii.gz")]
    assert all(p.stat().st_size > 0 for p in inputs)
    np.testing.assert_array_equal(load_case(discover(ref)[CASES[0]]).labels, _reference_labels())


def test_nnunet_dataset_id_and_name(tmp):
    ref, sec = _collection(tmp / "ref"), _second(tmp / "sec")
    code = _run(
        [
            str(ref),
            "--second",
            str(sec),
            "-o",
            str(tmp / "raw"),
            "--dataset-id",
            "7",
            "--name",
            "NEH",
        ]
    )
    assert code == 0
    assert (tmp / "raw" / "Dataset007_NEH" / "dataset.json").is_file()
    with pytest.raises(ValueError, match="both"):
        derive_dataset(ref, sec, tmp / "raw2", dataset_id=8)
