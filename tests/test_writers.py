"""Writing cases in the public collections' layouts: exact file names, geometry, labels."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from nehmap.io.image import Grid, new_grid, read_image
from nehmap.io.writers import (
    LAYOUTS,
    case_paths,
    scan_id,
    write_case,
    write_nnunet_dataset_json,
    write_truth_labels,
)

SHAPE = (12, 14, 10)


@pytest.fixture()
def grid() -> Grid:
    return new_grid(SHAPE, (2.0, 2.0, 2.5))


@pytest.fixture()
def arrays():
    rng = np.random.default_rng(0)
    images = {m: rng.random(SHAPE).astype(np.float32) for m in ("t1", "t1c", "t2", "flair")}
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[2:4, 2:4, 2:4] = 1
    labels[4:6, 4:6, 4:6] = 2
    labels[6:8, 6:8, 6:8] = 3
    labels[8:10, 8:10, 6:8] = 4
    rcbv = rng.random(SHAPE).astype(np.float32)
    return images, labels, rcbv


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


EXPECTED = {
    "brats2021": (
        "BraTS2021_00001",
        {
            "BraTS2021_00001/BraTS2021_00001_t1.nii.gz",
            "BraTS2021_00001/BraTS2021_00001_t1ce.nii.gz",
            "BraTS2021_00001/BraTS2021_00001_t2.nii.gz",
            "BraTS2021_00001/BraTS2021_00001_flair.nii.gz",
            "BraTS2021_00001/BraTS2021_00001_seg.nii.gz",
        },
        {0, 1, 2, 4},
    ),
    "brats2020": (
        "BraTS20_Training_001",
        {
            "BraTS20_Training_001/BraTS20_Training_001_t1.nii",
            "BraTS20_Training_001/BraTS20_Training_001_t1ce.nii",
            "BraTS20_Training_001/BraTS20_Training_001_t2.nii",
            "BraTS20_Training_001/BraTS20_Training_001_flair.nii",
            "BraTS20_Training_001/BraTS20_Training_001_seg.nii",
        },
        {0, 1, 2, 4},
    ),
    "brats2018": (
        "Brats18_NEHMAP_1_1",
        {
            f"HGG/Brats18_NEHMAP_1_1/Brats18_NEHMAP_1_1_{tag}.nii.gz"
            for tag in ("t1", "t1ce", "t2", "flair", "seg")
        },
        {0, 1, 2, 4},
    ),
    "brats2023": (
        "BraTS-GLI-00001-000",
        {
            f"BraTS-GLI-00001-000/BraTS-GLI-00001-000-{tag}.nii.gz"
            for tag in ("t1n", "t1c", "t2w", "t2f", "seg")
        },
        {0, 1, 2, 3},
    ),
    "upenn": (
        "UPENN-GBM-00001_11",
        {
            "images_structural/UPENN-GBM-00001_11/UPENN-GBM-00001_11_T1.nii.gz",
            "images_structural/UPENN-GBM-00001_11/UPENN-GBM-00001_11_T1GD.nii.gz",
            "images_structural/UPENN-GBM-00001_11/UPENN-GBM-00001_11_T2.nii.gz",
            "images_structural/UPENN-GBM-00001_11/UPENN-GBM-00001_11_FLAIR.nii.gz",
            "images_segm/UPENN-GBM-00001_11_segm.nii.gz",
        },
        {0, 1, 2, 4},
    ),
    "rhuh": (
        "RHUH-0001",
        {
            f"RHUH-0001/0/RHUH-0001_0_{tag}.nii.gz"
            for tag in ("t1", "t1ce", "t2", "flair", "segmentations")
        },
        {0, 1, 2, 3},
    ),
    "nnunet": (
        "NEHMAP_00001",
        {
            "imagesTr/NEHMAP_00001_0000.nii.gz",
            "imagesTr/NEHMAP_00001_0001.nii.gz",
            "imagesTr/NEHMAP_00001_0002.nii.gz",
            "imagesTr/NEHMAP_00001_0003.nii.gz",
            "labelsTr/NEHMAP_00001.nii.gz",
        },
        {0, 1, 2, 3, 4},
    ),
}


def test_every_layout_is_tested():
    assert set(EXPECTED) == set(LAYOUTS)


@pytest.mark.parametrize("layout", sorted(EXPECTED))
def test_write_case_files_geometry_and_labels(tmp_path, grid, arrays, layout):
    images, labels, _ = arrays
    case_id, expected, native = EXPECTED[layout]
    assert scan_id(layout, 1) == case_id
    written = write_case(tmp_path, layout, case_id, images, grid, labels=labels)
    assert _files(tmp_path) == expected
    assert set(written) == {"t1", "t1c", "t2", "flair", "seg"}
    loaded = {key: nib.load(str(path)) for key, path in written.items()}
    for key, img in loaded.items():
        assert img.shape == SHAPE
        np.testing.assert_allclose(img.affine, grid.affine)
        if key != "seg":
            assert img.get_data_dtype() == np.float32
    seg = np.asanyarray(loaded["seg"].dataobj)
    assert seg.dtype == np.uint8
    assert set(np.unique(seg).tolist()) == native
    # the images read back exactly (canonical orientation)
    np.testing.assert_array_equal(read_image(written["flair"]).array, images["flair"])


def test_native_labels_follow_each_scheme(tmp_path, grid, arrays):
    images, labels, _ = arrays
    expected = {
        "brats2021": {1: 1, 2: 2, 3: 2, 4: 4},  # BraTS 2021: non-enhancing tumour is label 2
        "brats2018": {1: 1, 2: 2, 3: 1, 4: 4},  # BraTS 2017-2020: label 1 is NCR/NET
        "brats2023": {1: 1, 2: 2, 3: 1, 4: 3},
        "upenn": {1: 1, 2: 2, 3: 1, 4: 4},
        "rhuh": {1: 1, 2: 2, 3: 1, 4: 3},
        "nnunet": {1: 1, 2: 2, 3: 3, 4: 4},
    }
    for layout, mapping in expected.items():
        root = tmp_path / layout
        written = write_case(root, layout, scan_id(layout, 1), images, grid, labels=labels)
        seg = np.asanyarray(nib.load(str(written["seg"])).dataobj)
        for ours, theirs in mapping.items():
            assert np.all(seg[labels == ours] == theirs), (layout, ours)
        assert np.all(seg[labels == 0] == 0)


def test_upenn_rcbv_and_rhuh_timepoint(tmp_path, grid, arrays):
    images, labels, rcbv = arrays
    written = write_case(tmp_path / "u", "upenn", "UPENN-GBM-00007_11", images, grid, rcbv=rcbv)
    assert written["rcbv"] == (
        tmp_path / "u/images_DSC/UPENN-GBM-00007_11/UPENN-GBM-00007_11_DSC_ap-rCBV.nii.gz"
    )
    np.testing.assert_array_equal(read_image(written["rcbv"]).array, rcbv)
    assert scan_id("upenn", 7, 1) == "UPENN-GBM-00007_21"
    written = write_case(tmp_path / "r", "rhuh", "RHUH-0003", images, grid, labels, timepoint=2)
    assert _files(tmp_path / "r") == {
        f"RHUH-0003/2/RHUH-0003_2_{tag}.nii.gz"
        for tag in ("t1", "t1ce", "t2", "flair", "segmentations")
    }
    assert scan_id("brats2023", 3, 1) == "BraTS-GLI-00003-001"


def test_extra_maps_use_the_layout_separator(tmp_path):
    paths = case_paths(tmp_path, "brats2023", "BraTS-GLI-00001-000", extra=("brainmask",))
    assert paths["rcbv"].name == "BraTS-GLI-00001-000-rcbv.nii.gz"
    assert paths["brainmask"].name == "BraTS-GLI-00001-000-brainmask.nii.gz"
    paths = case_paths(tmp_path, "nnunet", "NEHMAP_00001")
    assert paths["rcbv"] == tmp_path / "rcbvTr/NEHMAP_00001.nii.gz"


def test_refusals(tmp_path, grid, arrays):
    images, _, _ = arrays
    with pytest.raises(ValueError, match="Unknown layout"):
        write_case(tmp_path, "brats1999", "x", images, grid)
    with pytest.raises(ValueError, match="missing images"):
        write_case(tmp_path, "brats2021", "x", {"t1": images["t1"]}, grid)
    with pytest.raises(ValueError, match="time"):
        write_case(tmp_path, "brats2021", "x", images, grid, timepoint=2)
    with pytest.raises(ValueError, match="single time point"):
        scan_id("brats2021", 1, 1)
    with pytest.raises(ValueError, match="Invalid case ID"):
        write_case(tmp_path, "brats2021", "../x", images, grid)


def test_non_ras_grid_is_kept(tmp_path, arrays):
    images, labels, _ = arrays
    affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    affine[:3, 3] = (0.0, 239.0, 0.0)
    grid = Grid(SHAPE, affine)
    written = write_case(tmp_path, "brats2021", "BraTS2021_00002", images, grid, labels=labels)
    img = nib.load(str(written["t1"]))
    np.testing.assert_allclose(img.affine, affine)
    np.testing.assert_array_equal(read_image(written["t1"]).array, images["t1"])


def test_nnunet_dataset_json_and_truth_labels(tmp_path, grid, arrays):
    images, labels, _ = arrays
    for index in (1, 2):
        write_case(tmp_path, "nnunet", scan_id("nnunet", index), images, grid, labels=labels)
    path = write_nnunet_dataset_json(tmp_path)
    content = json.loads(path.read_text())
    assert content["channel_names"] == {"0": "T1", "1": "T1ce", "2": "T2", "3": "FLAIR"}
    assert content["labels"] == {
        "background": 0,
        "necrosis": 1,
        "edema": 2,
        "NEH": 3,
        "enhancing tumour": 4,
    }
    assert content["numTraining"] == 2
    assert content["file_ending"] == ".nii.gz"
    truth = write_truth_labels(tmp_path / "truth", "BraTS2021_00001", labels, grid)
    assert truth.name == "BraTS2021_00001_truth-labels.nii.gz"
    np.testing.assert_array_equal(np.asanyarray(nib.load(str(truth)).dataobj), labels)
