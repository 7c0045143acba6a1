"""``nehmap consensus-dataset``: two-level NEH training set from segment outputs."""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import pandas as pd
import pytest

from conftest import save, tiny_volume
from nehmap.commands import consensus_dataset as consensus_cmd
from nehmap.derive.consensus import (
    CONSENSUS_LABELS,
    consensus_dataset,
    consensus_levels,
    find_segment_outputs,
)
from nehmap.errors import NehmapInputError
from nehmap.io import discover
from nehmap.io.image import read_image
from nehmap.io.nnunet import import_nnunet, is_consensus_dataset, read_dataset_json

SHAPE = (10, 10, 8)
CASES = ("BraTS2021_00001", "BraTS2021_00002")


def _probability() -> np.ndarray:
    p = np.zeros(SHAPE, dtype=np.float32)
    p[2:5, 2:5, 2:5] = 0.3
    p[3, 3, 3] = 0.9
    p[6:8, 6:8, 5] = 0.45
    return p


def _images(root, cases=CASES):
    for case_id in cases:
        for i, tok in enumerate(("t1", "t1ce", "t2", "flair")):
            save(root / case_id / f"{case_id}_{tok}.nii.gz", tiny_volume(i, SHAPE))
    return root


def _segdir(root, cases=CASES, *, low=0.4, levels=True, prob=True, record=True):
    """Segment outputs whose levels were made with ``low`` (not the default 0.2)."""
    p = _probability()
    for case_id in cases:
        folder = root / case_id
        if prob:
            save(folder / f"{case_id}_neh-prob.nii.gz", p)
        if levels:
            save(folder / f"{case_id}_neh-levels.nii.gz", consensus_levels(p, low, 0.5))
        if record:
            folder.mkdir(parents=True, exist_ok=True)
            params = {"parameters": {"low": low, "threshold": 0.5, "sigma_mm": 1.5}}
            (folder / f"{case_id}_nehmap.json").write_text(json.dumps(params))
    return root


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    consensus_cmd.add_arguments(parser)
    return consensus_cmd.run(parser.parse_args(argv))


def test_levels_from_probability():
    levels = consensus_levels(_probability(), 0.2, 0.5)
    assert levels.dtype == np.uint8
    assert levels[3, 3, 3] == 2 and levels[2, 2, 2] == 1 and levels[6, 6, 5] == 1
    assert levels[0, 0, 0] == 0
    assert (consensus_levels(_probability(), 0.35, 0.5)[2, 2, 2]) == 0
    with pytest.raises(ValueError, match="low"):
        consensus_levels(_probability(), 0.6, 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        consensus_levels(_probability() + 2, 0.2, 0.5)


def test_dataset_from_segment_levels(tmp, capsys):
    images, seg, out = _images(tmp / "img"), _segdir(tmp / "seg"), tmp / "Dataset502_NEHc"
    assert _run([str(seg), "--images", str(images), "-o", str(out)]) == 0
    assert "2 case(s) written" in capsys.readouterr().out
    meta = json.loads((out / "dataset.json").read_text())
    assert (
        meta["labels"] == dict(CONSENSUS_LABELS) == {"background": 0, "NEH-low": 1, "NEH-high": 2}
    )
    assert meta["label_scheme"] == "neh-consensus" and meta["numTraining"] == 2
    assert meta["file_ending"] == ".nii.gz" and meta["channel_names"]["3"] == "FLAIR"
    assert "NOT nehmap's tissue labels" in meta["description"]
    assert meta["consensus"]["low"] == 0.4 and meta["consensus"]["source"] == "levels"
    labels = read_image(out / "labelsTr" / f"{CASES[0]}.nii.gz", dtype=None).array
    np.testing.assert_array_equal(labels, consensus_levels(_probability(), 0.4, 0.5))
    assert labels[2, 2, 2] == 0  # 0.3 < low = 0.4 of segment's levels
    assert os.path.samefile(
        out / "imagesTr" / f"{CASES[1]}_0003.nii.gz",
        images / CASES[1] / f"{CASES[1]}_flair.nii.gz",
    )
    table = pd.read_csv(out / "consensus_levels.csv")
    assert list(table.columns) == ["case", "level", "voxels", "volume_mm3", "source"]
    assert table[(table.case == CASES[0]) & (table.level == "NEH-high")].voxels.item() == 1


def test_thresholds_recompute_from_probability(tmp):
    images, seg = _images(tmp / "img"), _segdir(tmp / "seg")
    report = consensus_dataset(seg, images, tmp / "out", low=0.1, high=0.4)
    assert report.sources == {c: "prob" for c in CASES}
    labels = read_image(tmp / "out" / "labelsTr" / f"{CASES[0]}.nii.gz", dtype=None).array
    assert labels[2, 2, 2] == 1 and labels[6, 6, 5] == 2  # 0.45 >= high = 0.4
    meta = json.loads((tmp / "out" / "dataset.json").read_text())
    assert meta["consensus"]["low"] == 0.1 and meta["consensus"]["high"] == 0.4


def test_probability_only_uses_default_thresholds(tmp):
    images, seg = _images(tmp / "img"), _segdir(tmp / "seg", levels=False, record=False)
    report = consensus_dataset(seg, images, tmp / "out")
    assert report.sources == {c: "prob" for c in CASES} and not report.failures
    labels = read_image(tmp / "out" / "labelsTr" / f"{CASES[0]}.nii.gz", dtype=None).array
    np.testing.assert_array_equal(labels, consensus_levels(_probability(), 0.2, 0.5))


def test_missing_and_bad_segment_outputs_are_reported(tmp):
    images = _images(tmp / "img")
    seg = _segdir(tmp / "seg", cases=CASES[:1])
    report = consensus_dataset(seg, images, tmp / "out")
    assert report.cases == [CASES[0]]
    ((case_id, message),) = report.failures
    assert case_id == CASES[1] and "neh-levels" in message and "nehmap segment" in message
    # levels with a value that is not a level
    bad = tmp / "bad"
    save(bad / CASES[0] / f"{CASES[0]}_neh-levels.nii.gz", np.full(SHAPE, 3, np.uint8))
    report = consensus_dataset(bad, _images(tmp / "img2", CASES[:1]), tmp / "out2")
    assert "values [3]" in report.failures[0][1]
    # --low without a probability map
    seg_levels = _segdir(tmp / "lv", cases=CASES[:1], prob=False)
    report = consensus_dataset(seg_levels, _images(tmp / "img3", CASES[:1]), tmp / "out3", low=0.3)
    assert "cannot be recomputed" in report.failures[0][1]
    # a map on another grid
    shifted = np.diag([1.0, 1.0, 1.0, 1.0])
    shifted[2, 3] = 5.0
    other = tmp / "other"
    save(other / CASES[0] / f"{CASES[0]}_neh-prob.nii.gz", _probability(), shifted)
    report = consensus_dataset(other, _images(tmp / "img4", CASES[:1]), tmp / "out4")
    assert "not on the grid" in report.failures[0][1]


def test_segment_outputs_found_flat_or_per_case(tmp):
    save(tmp / "c1_neh-prob.nii.gz", _probability())
    save(tmp / "c1" / "c1_neh-levels.nii.gz", np.zeros(SHAPE, np.uint8))
    found = find_segment_outputs(tmp, "c1")
    assert found == {
        "levels": tmp / "c1" / "c1_neh-levels.nii.gz",
        "prob": tmp / "c1_neh-prob.nii.gz",
    }


def test_readers_recognise_the_consensus_dataset(tmp):
    out = tmp / "out"
    consensus_dataset(_segdir(tmp / "seg"), _images(tmp / "img"), out)
    meta = json.loads((out / "dataset.json").read_text())
    assert is_consensus_dataset(meta)
    assert is_consensus_dataset({"labels": {"background": 0, "NEH low": 1, "neh_high": 2}})
    assert read_dataset_json(out).is_consensus
    with pytest.raises(NehmapInputError, match="consensus"):
        import_nnunet(out, tmp / "imported")


def test_discover_keeps_consensus_levels_out_of_the_tissue_labels(tmp):
    out = tmp / "out"
    consensus_dataset(_segdir(tmp / "seg"), _images(tmp / "img"), out)
    case = discover(out)[CASES[0]]
    assert "seg" not in case.files
    assert case.extras["neh_levels"].name == f"{CASES[0]}.nii.gz"
