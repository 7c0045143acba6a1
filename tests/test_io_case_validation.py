"""Every malformed input is rejected with a message naming the file, and nothing is written."""

import numpy as np
import pytest

from conftest import AFFINE, save, tiny_labels, tiny_volume
from nehmap.errors import CaseError
from nehmap.io import CaseFailure, discover, iter_cases, load_case

CID = "UPENN-GBM-00001_11"


def _case(root, cid=CID):
    d = root / cid
    for i, tok in enumerate(("T1", "T1GD", "T2", "FLAIR")):
        save(d / f"{cid}_{tok}.nii.gz", tiny_volume(i))
    save(d / f"{cid}_DSC_ap-rCBV.nii.gz", tiny_volume(7))
    save(d / f"{cid}_segm.nii.gz", tiny_labels((1, 2, 4)))
    return d


def _load(root, cid=CID):
    return load_case(discover(root)[cid])


def test_good_case_loads(tmp):
    _case(tmp)
    case = _load(tmp)
    assert case.stack().shape == (4, 12, 14, 10)
    assert case.spacing == (1.0, 1.0, 1.0)
    assert case.brain_mask().sum() == 10 * 14 * 10


def _expect(tmp, file_part, message):
    before = sorted(p.name for p in tmp.rglob("*"))
    with pytest.raises(CaseError, match=message) as err:
        _load(tmp)
    text = str(err.value)
    assert CID in text and file_part in text
    assert sorted(p.name for p in tmp.rglob("*")) == before  # nothing written
    return text


def test_missing_modality(tmp):
    d = _case(tmp)
    (d / f"{CID}_T2.nii.gz").unlink()
    _expect(tmp, CID, "missing modality t2")


def test_truncated_file(tmp):
    d = _case(tmp)
    big = np.random.default_rng(0).random((12, 14, 10)).astype(np.float32) + 1
    save(d / f"{CID}_T1GD.nii.gz", big)
    raw = (d / f"{CID}_T1GD.nii.gz").read_bytes()
    (d / f"{CID}_T1GD.nii.gz").write_bytes(raw[: len(raw) // 2])
    _expect(tmp, "T1GD.nii.gz", "truncated|cannot be read")


def test_unreadable_file(tmp):
    d = _case(tmp)
    (d / f"{CID}_FLAIR.nii.gz").write_bytes(b"garbage")
    _expect(tmp, "FLAIR.nii.gz", "not gzip-compressed")


def test_4d_perfusion_series_given_as_rcbv(tmp):
    d = _case(tmp)
    save(d / f"{CID}_DSC_ap-rCBV.nii.gz", np.ones((12, 14, 10, 45), np.float32))
    text = _expect(tmp, "rCBV.nii.gz", "4D image")
    assert "derived 3D map" in text


def test_different_shapes(tmp):
    d = _case(tmp)
    save(d / f"{CID}_T2.nii.gz", tiny_volume(2, shape=(12, 14, 11)))
    _expect(tmp, "T2.nii.gz", r"shape \(12, 14, 11\).*\(12, 14, 10\)")


def test_affines_beyond_tolerance_say_how_far(tmp):
    d = _case(tmp)
    shifted = AFFINE.copy()
    shifted[0, 3] = 2.5
    save(d / f"{CID}_FLAIR.nii.gz", tiny_volume(3), shifted)
    _expect(tmp, "FLAIR.nii.gz", r"up to 2\.5 mm apart")


def test_affine_within_tolerance_is_accepted(tmp):
    d = _case(tmp)
    shifted = AFFINE.copy()
    shifted[0, 3] = 1e-5
    save(d / f"{CID}_FLAIR.nii.gz", tiny_volume(3), shifted)
    assert _load(tmp).case_id == CID


def test_same_grid_stored_in_another_orientation_is_accepted(tmp):
    d = _case(tmp)
    # the FLAIR stored flipped along x, with the affine saying so: same physical grid
    flipped = np.diag([-1.0, 1, 1, 1])
    flipped[0, 3] = 11.0
    save(d / f"{CID}_FLAIR.nii.gz", tiny_volume(3)[::-1].copy(), flipped)
    case = _load(tmp)
    np.testing.assert_array_equal(case.images["flair"], tiny_volume(3))


def test_nan_voxels(tmp):
    d = _case(tmp)
    bad = tiny_volume(0)
    bad[5, 5, 5] = np.nan
    bad[6, 5, 5] = np.inf
    save(d / f"{CID}_T1.nii.gz", bad)
    _expect(tmp, "T1.nii.gz", "2 NaN or infinite")


def test_all_zero_image(tmp):
    d = _case(tmp)
    save(d / f"{CID}_T2.nii.gz", np.zeros((12, 14, 10), np.float32))
    _expect(tmp, "T2.nii.gz", "all zero")


def test_label_values_outside_scheme(tmp):
    d = _case(tmp)
    save(d / f"{CID}_segm.nii.gz", tiny_labels((1, 2, 3, 7)))
    _expect(tmp, "segm.nii.gz", r"values \[3, 7\] outside the 'upenn' scheme")


def test_probability_map_given_as_labels(tmp):
    d = _case(tmp)
    save(d / f"{CID}_segm.nii.gz", tiny_labels((1, 2)).astype(np.float32) * 0.3)
    _expect(tmp, "segm.nii.gz", "non-integer")


def test_label_map_on_another_grid(tmp):
    d = _case(tmp)
    save(d / f"{CID}_segm.nii.gz", tiny_labels((1, 2, 4)), np.diag([2.0, 2, 2, 1]))
    _expect(tmp, "segm.nii.gz", "not on the grid of the t1")


def test_rcbv_on_another_grid(tmp):
    d = _case(tmp)
    save(d / f"{CID}_DSC_ap-rCBV.nii.gz", tiny_volume(7, shape=(6, 7, 5)))
    _expect(tmp, "rCBV.nii.gz", "shape")


def test_collection_lists_bad_cases_and_yields_good_ones(tmp):
    _case(tmp, "UPENN-GBM-00001_11")
    d2 = _case(tmp, "UPENN-GBM-00002_11")
    _case(tmp, "UPENN-GBM-00003_11")
    save(d2 / "UPENN-GBM-00002_11_T1.nii.gz", np.zeros((12, 14, 10), np.float32))
    failures: list[CaseFailure] = []
    good = [c.case_id for c in iter_cases(discover(tmp), on_error=failures.append)]
    assert good == ["UPENN-GBM-00001_11", "UPENN-GBM-00003_11"]
    assert [f.case_id for f in failures] == ["UPENN-GBM-00002_11"]
    assert "UPENN-GBM-00002_11_T1.nii.gz" in failures[0].message
