"""Collections laid out by hand, file for file as the public collections name them."""

import json

import numpy as np
import pytest

from conftest import save, tiny_labels, tiny_volume
from nehmap.errors import NehmapInputError
from nehmap.io import discover, load_case
from nehmap.labels import ED, ET, NC


def _brats2021(root, case_id, ext=".nii.gz", seg=True, skip=()):
    for i, tok in enumerate(("t1", "t1ce", "t2", "flair")):
        if tok not in skip:
            save(root / case_id / f"{case_id}_{tok}{ext}", tiny_volume(i))
    if seg:
        save(root / case_id / f"{case_id}_seg{ext}", tiny_labels((1, 2, 4)))


def test_brats2021_with_missing_modality(tmp):
    _brats2021(tmp, "BraTS2021_00000")
    _brats2021(tmp, "BraTS2021_00002", skip=("t2",))
    col = discover(tmp)
    assert col.layout == "brats2021"
    assert col.ids == ["BraTS2021_00000", "BraTS2021_00002"]
    assert col["BraTS2021_00002"].missing() == ["t2"]
    case = load_case(col["BraTS2021_00000"])
    assert set(np.unique(case.labels)) == {0, NC, ED, ET}
    assert case.images["t1c"].dtype == np.float32


def test_brats2018_nested_hgg_lgg(tmp):
    _brats2021(tmp / "HGG", "Brats18_2013_2_1")
    _brats2021(tmp / "LGG", "Brats18_TCIA10_103_1")
    col = discover(tmp)
    assert col.layout == "brats2021"
    assert col.ids == ["Brats18_2013_2_1", "Brats18_TCIA10_103_1"]
    assert all(c.complete for c in col)
    # BraTS 2017-2020 label 1 is NCR/NET, not BraTS 2021's NCR: the scheme says which
    assert {c.label_scheme for c in col} == {"brats2018"}


def test_brats_release_told_per_case_from_the_ids(tmp):
    for case_id in ("BraTS2021_00000", "BraTS20_Training_001", "mycase_07"):
        _brats2021(tmp, case_id)
    schemes = {c.case_id: c.label_scheme for c in discover(tmp)}
    assert schemes == {
        "BraTS2021_00000": "brats2021",
        "BraTS20_Training_001": "brats2018",
        "mycase_07": "brats",
    }
    # the three read alike: label 1 is NC, 2 ED, 4 ET
    for case_id in schemes:
        labels = load_case(discover(tmp)[case_id]).labels
        assert set(np.unique(labels)) == {0, NC, ED, ET}


def test_brats2020_uncompressed_and_misnamed_label(tmp):
    _brats2021(tmp, "BraTS20_Training_001", ext=".nii")
    _brats2021(tmp, "BraTS20_Training_355", ext=".nii", seg=False)
    save(tmp / "BraTS20_Training_355" / "W39_1998.09.19_Segm.nii", tiny_labels((1, 2, 4)))
    col = discover(tmp)
    assert col.ids == ["BraTS20_Training_001", "BraTS20_Training_355"]
    case = col["BraTS20_Training_355"]
    assert case.files["seg"].name == "W39_1998.09.19_Segm.nii"
    assert any("unusually named" in n for n in case.notes)


def test_single_case_folder(tmp):
    _brats2021(tmp, "BraTS2021_00000")
    col = discover(tmp / "BraTS2021_00000")
    assert col.ids == ["BraTS2021_00000"]


def test_brats2023(tmp):
    cid = "BraTS-GLI-00000-000"
    for i, tok in enumerate(("t1n", "t1c", "t2w", "t2f")):
        save(tmp / cid / f"{cid}-{tok}.nii.gz", tiny_volume(i))
    save(tmp / cid / f"{cid}-seg.nii.gz", tiny_labels((1, 2, 3)))
    col = discover(tmp)
    assert col.layout == "brats2023"
    case = load_case(col[cid])
    assert set(np.unique(case.labels)) == {0, NC, ED, ET}
    np.testing.assert_array_equal(case.images["flair"], tiny_volume(3))


def test_upenn_as_tcia_ships_it(tmp):
    root = tmp / "NIfTI-files"
    for cid in ("UPENN-GBM-00001_11", "UPENN-GBM-00001_21", "UPENN-GBM-00002_11"):
        for i, tok in enumerate(("T1", "T1GD", "T2", "FLAIR")):
            save(root / "images_structural" / cid / f"{cid}_{tok}.nii.gz", tiny_volume(i))
    for cid in ("UPENN-GBM-00001_11",):
        d = root / "images_DSC" / cid
        save(d / f"{cid}_DSC_ap-rCBV.nii.gz", tiny_volume(9))
        save(d / f"{cid}_DSC_PH.nii.gz", tiny_volume(9))
        save(d / f"{cid}_DSC.nii.gz", np.ones((12, 14, 10, 3), np.float32))
    save(root / "images_segm" / "UPENN-GBM-00001_11_segm.nii.gz", tiny_labels((1, 2, 4)))
    save(
        root / "automated_segm" / "UPENN-GBM-00001_11_automated_approx_segm.nii.gz",
        tiny_labels((1, 2)),
    )
    save(
        root / "automated_segm" / "UPENN-GBM-00002_11_automated_approx_segm.nii.gz",
        tiny_labels((1, 2, 4)),
    )
    col = discover(tmp)  # the parent of NIfTI-files works too
    assert col.layout == "upenn"
    assert col.ids == ["UPENN-GBM-00001_11", "UPENN-GBM-00001_21", "UPENN-GBM-00002_11"]
    c1 = col["UPENN-GBM-00001_11"]
    assert c1.subject == "UPENN-GBM-00001" and c1.timepoint == "preop"
    assert c1.files["seg"].name.endswith("_segm.nii.gz")  # expert segmentation preferred
    assert c1.files["rcbv"].name.endswith("_DSC_ap-rCBV.nii.gz")
    assert col["UPENN-GBM-00001_21"].timepoint == "followup"
    assert "seg" not in col["UPENN-GBM-00001_21"].files
    c2 = col["UPENN-GBM-00002_11"]
    assert c2.files["seg"].name.endswith("automated_approx_segm.nii.gz")
    case = load_case(c1)
    assert case.rcbv is not None and case.rcbv.shape == case.shape
    # the 4D DSC series and PH maps are not claimed by any case
    assert {p.name for p in col.unmatched} >= {"UPENN-GBM-00001_11_DSC.nii.gz"}


def test_upenn_one_folder_per_case(tmp):
    cid = "UPENN-GBM-00007_11"
    for i, tok in enumerate(("T1", "T1GD", "T2", "FLAIR", "DSC_ap-rCBV")):
        save(tmp / cid / f"{cid}_{tok}.nii.gz", tiny_volume(i))
    save(tmp / cid / f"{cid}_segm.nii.gz", tiny_labels((1, 2, 4)))
    col = discover(tmp)
    assert col.layout == "upenn"
    assert sorted(col[cid].files) == ["flair", "rcbv", "seg", "t1", "t1c", "t2"]


def test_rhuh_as_tcia_ships_it(tmp):
    root = tmp / "RHUH-GBM_nii_v1"
    for subject in ("RHUH-0001", "RHUH-0035"):
        for tp in ("0", "1", "2"):
            for i, tok in enumerate(("t1", "t1ce", "t2", "flair", "adc")):
                save(root / subject / tp / f"{subject}_{tp}_{tok}.nii.gz", tiny_volume(i))
            name = f"{subject}_{tp}_segmentations.nii.gz"
            if subject == "RHUH-0035" and tp == "2":
                name = "segmentation.nii.gz"  # as misnamed in the published collection
            save(root / subject / tp / name, tiny_labels((1, 2, 3)))
    col = discover(root)
    assert col.layout == "rhuh"
    assert len(col) == 6
    assert col["RHUH-0035_2"].files["seg"].name == "segmentation.nii.gz"
    subjects = col.by_subject()
    assert set(subjects["RHUH-0001"]) == {"preop", "postop", "recurrence"}
    assert "adc" in col["RHUH-0001_0"].extras
    case = load_case(col["RHUH-0001_2"])
    assert set(np.unique(case.labels)) == {0, NC, ED, ET}


def test_rhuh_labels_written_with_4_for_enhancing(tmp):
    for i, tok in enumerate(("t1", "t1ce", "t2", "flair")):
        save(tmp / "RHUH-0002" / "0" / f"RHUH-0002_0_{tok}.nii.gz", tiny_volume(i))
    save(tmp / "RHUH-0002" / "0" / "RHUH-0002_0_segmentations.nii.gz", tiny_labels((1, 2, 4)))
    case = load_case(discover(tmp)["RHUH-0002_0"])
    assert set(np.unique(case.labels)) == {0, NC, ED, ET}


def _nnunet(root, labels_json, label_values):
    meta = {
        "channel_names": {"0": "T1", "1": "T1ce", "2": "T2", "3": "FLAIR"},
        "labels": labels_json,
        "numTraining": 2,
        "file_ending": ".nii.gz",
    }
    root.mkdir(parents=True)
    (root / "dataset.json").write_text(json.dumps(meta))
    for cid in ("BraTS2021_00000", "BraTS2021_00002"):
        for ch in range(4):
            save(root / "imagesTr" / f"{cid}_{ch:04d}.nii.gz", tiny_volume(ch))
        save(root / "labelsTr" / f"{cid}.nii.gz", tiny_labels(label_values))


def test_nnunet_brats_regions_permute_labels(tmp):
    root = tmp / "Dataset137_BraTS2021"
    _nnunet(
        root,
        {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]},
        (1, 2, 3),
    )
    col = discover(root)
    assert col.layout == "nnunet" and len(col) == 2
    case = load_case(col["BraTS2021_00000"])
    # slab 0 holds 1 = edema, slab 1 holds 2 = necrosis, slab 2 holds 3 = enhancing
    assert case.labels[2, 4, 4] == ED and case.labels[3, 4, 4] == NC
    assert case.labels[4, 4, 4] == ET
    np.testing.assert_array_equal(case.images["t2"], tiny_volume(2))


def test_nnunet_named_labels_with_neh(tmp):
    root = tmp / "Dataset500_NEH"
    _nnunet(
        root,
        {"background": 0, "necrosis": 1, "edema": 2, "NEH": 3, "enhancing tumour": 4},
        (1, 2, 3, 4),
    )
    case = load_case(discover(root)["BraTS2021_00002"])
    assert [case.labels[2 + i, 4, 4] for i in range(4)] == [1, 2, 3, 4]


def test_manifest(tmp):
    rows = ["case,timepoint,modality,path"]
    for i, mod in enumerate(("T1", "T1Gd", "T2", "FLAIR")):
        save(tmp / "data" / f"p1_{mod}.nii.gz", tiny_volume(i))
        rows.append(f"p1,pre,{mod},data/p1_{mod}.nii.gz")
    save(tmp / "data" / "p1_lab.nii.gz", tiny_labels((1, 2, 3, 4)))
    rows.append("p1,pre,label,data/p1_lab.nii.gz")
    rows.append("p2,,t1,data/missing.nii.gz")
    (tmp / "cases.csv").write_text("\n".join(rows) + "\n")
    col = discover(tmp / "cases.csv")
    assert col.layout == "manifest"
    assert col.ids == ["p1_pre", "p2"]
    assert col["p1_pre"].timepoint == "preop"
    case = load_case(col["p1_pre"])
    assert set(np.unique(case.labels)) == {0, 1, 2, 3, 4}
    assert not col["p2"].complete
    assert "does not exist" in col["p2"].problems[0]


def test_manifest_errors_name_the_file(tmp):
    (tmp / "m.csv").write_text("case,path\nx,y\n")
    with pytest.raises(NehmapInputError, match=r"m\.csv.*modality"):
        discover(tmp / "m.csv")


def test_empty_or_unknown_folder(tmp):
    save(tmp / "random_name.nii.gz", tiny_volume(0))
    with pytest.raises(NehmapInputError, match="no case in a known layout"):
        discover(tmp)
    with pytest.raises(NehmapInputError, match="does not exist"):
        discover(tmp / "nope")


def test_label_only_folders_keep_their_layout(tmp):
    save(tmp / "BraTS2021_00000" / "BraTS2021_00000_seg.nii.gz", tiny_labels((1, 2, 4)))
    assert discover(tmp).layout == "brats2021"
    save(
        tmp / "b" / "BraTS-GLI-00000-000" / "BraTS-GLI-00000-000-seg.nii.gz", tiny_labels((1, 2, 3))
    )
    assert discover(tmp / "b").layout == "brats2023"
