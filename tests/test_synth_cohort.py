"""Synthetic cohorts on disk: layouts, the truth folder, overwriting, the command."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from nehmap.commands.synth import add_arguments, run
from nehmap.errors import OutputError
from nehmap.synth import case_seeds, generate_case, truth_folder, write_cohort

SPACING = 4.0
SHAPE = (60, 60, 39)


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def _labels(path: Path) -> set[int]:
    return set(np.unique(np.asanyarray(nib.load(str(path)).dataobj)).tolist())


@pytest.mark.parametrize(
    ("layout", "native", "rcbv_file", "recurrence_dir"),
    [
        ("brats2021", {0, 1, 2, 4}, None, None),
        ("brats2023", {0, 1, 2, 3}, None, None),
        (
            "upenn",
            {0, 1, 2, 4},
            "images_DSC/UPENN-GBM-00001_11/UPENN-GBM-00001_11_DSC_ap-rCBV.nii.gz",
            None,
        ),
        ("rhuh", {0, 1, 2, 3}, None, "RHUH-0001/2"),
        ("nnunet", {0, 1, 2, 3, 4}, None, None),
    ],
)
def test_cohort_layouts_and_truth(tmp_path, layout, native, rcbv_file, recurrence_dir):
    out = tmp_path / "cohort"
    result = write_cohort(out, 2, 3, spacing=SPACING, layout=layout, progress=False)
    truth = tmp_path / "cohort_truth"
    assert result.truth == truth == truth_folder(out)
    assert not any("truth" in name for name in _files(out))
    content = json.loads((truth / "cohort.json").read_text())
    assert content["status"] == "complete" and content["layout"] == layout
    assert len(content["cases"]) == 2
    for record in content["cases"]:
        files = record["files"]
        assert set(files) >= {"t1", "t1c", "t2", "flair", "seg"}
        shapes = set()
        affines = []
        for rel in files.values():
            img = nib.load(str(out / rel))
            shapes.add(img.shape)
            affines.append(img.affine)
        assert shapes == {SHAPE}
        for affine in affines:
            np.testing.assert_allclose(affine, affines[0])
        assert _labels(out / files["seg"]) == native
        truth_labels = truth / f"{record['case_id']}_truth-labels.nii.gz"
        assert _labels(truth_labels) == {0, 1, 2, 3, 4}
        assert (truth / f"{record['case_id']}_brain-mask.nii.gz").is_file()
    table = pd.read_csv(truth / "truth.csv")
    assert list(table["case_id"]) == result.case_ids
    assert (table[[f"volume_{k}_mm3" for k in ("NC", "ED", "NEH", "ET")]] > 0).all().all()
    if rcbv_file:
        assert (out / rcbv_file).is_file()
        assert {"rcbv_mean_ET", "rcbv_mean_NEH", "rcbv_mean_ED", "rcbv_mean_WM"} <= set(table)
    else:
        assert not any("rcbv" in name.lower() for name in _files(out))
    if recurrence_dir:
        assert (out / recurrence_dir).is_dir()
        case_id = result.case_ids[0]
        for suffix in ("labels", "cavity", "preop-neh", "brain-mask", "displacement"):
            assert (truth / f"{case_id}_recurrence-{suffix}.nii.gz").is_file()
        transform = json.loads((truth / f"{case_id}_recurrence-transform.json").read_text())
        assert np.asarray(transform["rigid_matrix"]).shape == (4, 4)
        assert transform["recurrence_origin"] in ("neh", "random")
        assert set(table["recurrence_origin"]) <= {"neh", "random"}
        field = nib.load(str(truth / f"{case_id}_recurrence-displacement.nii.gz"))
        assert field.shape == (*SHAPE, 3)
    if layout == "nnunet":
        dataset = json.loads((out / "dataset.json").read_text())
        assert dataset["numTraining"] == 2 and dataset["labels"]["NEH"] == 3


def test_cohort_matches_generate_case(tmp_path):
    result = write_cohort(tmp_path / "c", 1, 9, spacing=SPACING, progress=False)
    seed = int(result.table["seed"][0])
    assert seed == case_seeds(9, 1)[0]
    case = generate_case(seed, SPACING)
    truth = nib.load(str(result.truth / f"{result.case_ids[0]}_truth-labels.nii.gz"))
    np.testing.assert_array_equal(np.asanyarray(truth.dataobj), case.labels)


def test_case_seeds_do_not_depend_on_cohort_size():
    assert case_seeds(4, 3)[:2] == case_seeds(4, 2)
    assert len(set(case_seeds(4, 50))) == 50


def test_recurrence_without_timepoints_goes_to_truth(tmp_path):
    out = tmp_path / "b"
    write_cohort(out, 1, 0, spacing=SPACING, recurrence=True, progress=False)
    rec = tmp_path / "b_truth" / "recurrence" / "BraTS2021_00001"
    assert (rec / "BraTS2021_00001_flair.nii.gz").is_file()
    assert _files(out) == {
        f"BraTS2021_00001/BraTS2021_00001_{t}.nii.gz" for t in ("t1", "t1ce", "t2", "flair", "seg")
    }


def test_never_overwrites_without_permission(tmp_path):
    out = tmp_path / "c"
    write_cohort(out, 1, 0, spacing=SPACING, progress=False)
    with pytest.raises(OutputError, match=r"--overwrite") as info:
        write_cohort(out, 1, 1, spacing=SPACING, progress=False)
    assert str(out) in str(info.value)
    result = write_cohort(out, 1, 1, spacing=SPACING, progress=False, overwrite=True)
    assert json.loads((result.truth / "cohort.json").read_text())["seed"] == 1
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError, match="refusing to delete"):
        write_cohort(foreign, 1, 0, spacing=SPACING, progress=False, overwrite=True)
    assert (foreign / "notes.txt").read_text() == "keep me"


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="nehmap synth")
    add_arguments(parser)
    return parser.parse_args(argv)


def test_command(tmp_path, capsys):
    out = tmp_path / "u"
    args = _parse(
        [
            str(out),
            "--n",
            "1",
            "--seed",
            "2",
            "--spacing",
            "4",
            "--layout",
            "upenn",
            "--no-rcbv",
            "--quiet",
        ]
    )
    assert args.rcbv is False and args.recurrence is None and args.spacing == 4.0
    assert run(args) == 0
    assert not (out / "images_DSC").exists()
    assert (out / "images_segm" / "UPENN-GBM-00001_11_segm.nii.gz").is_file()
    assert run(args) == 2  # nothing could start
    assert "--overwrite" in capsys.readouterr().err
    assert (
        run(
            _parse(
                [
                    str(out),
                    "--n",
                    "1",
                    "--spacing",
                    "4",
                    "--layout",
                    "upenn",
                    "--quiet",
                    "--overwrite",
                ]
            )
        )
        == 0
    )
    assert (out / "images_DSC").is_dir()
    assert _parse(["x", "--spacing", "1,1,3"]).spacing == (1.0, 1.0, 3.0)
    with pytest.raises(SystemExit):
        _parse(["x", "--layout", "brats1999"])
