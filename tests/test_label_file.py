"""The one reader of label files: schemes, level maps and the errors it raises."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from nehmap.errors import CaseError, NehmapInputError
from nehmap.io.label_file import read_label_map


def _write(path, data):
    nib.save(nib.Nifti1Image(np.asarray(data), np.diag([2.0, 2.0, 2.0, 1.0])), path)
    return path


def test_brats_labels_become_nehmap_labels_on_the_file_grid(tmp_path):
    data = np.zeros((4, 5, 6), np.int16)
    data[1, 1, 1], data[2, 2, 2], data[3, 3, 3] = 1, 2, 4
    labels, image = read_label_map(_write(tmp_path / "seg.nii.gz", data), "brats2021")
    assert labels.dtype == np.uint8 and labels.shape == (4, 5, 6)
    assert (labels[1, 1, 1], labels[2, 2, 2], labels[3, 3, 3]) == (1, 2, 4)
    assert image.grid.spacing == pytest.approx((2.0, 2.0, 2.0))


def test_level_maps_keep_their_values(tmp_path):
    data = np.array([[[0, 1, 2]]], np.uint8)
    labels, _ = read_label_map(_write(tmp_path / "levels.nii.gz", data), "neh-consensus")
    assert labels.tolist() == data.tolist()
    with pytest.raises(NehmapInputError, match=r"holds values \[2\]; a binary-neh map"):
        read_label_map(tmp_path / "levels.nii.gz", "binary-neh")


@pytest.mark.parametrize(
    ("data", "scheme", "message"),
    [
        (np.array([[[0.0, 0.5]]], np.float32), "nehmap", "non-integer values"),
        (np.array([[[0, 3]]], np.uint8), "brats2021", r"values \[3\] outside the 'brats2021'"),
        (np.array([[[0, 1]]], np.uint8), "no-such-scheme", "Unknown label scheme"),
    ],
)
def test_errors_name_the_file_and_with_a_case_the_case(tmp_path, data, scheme, message):
    path = _write(tmp_path / "bad.nii.gz", data)
    with pytest.raises(NehmapInputError, match=message) as plain:
        read_label_map(path, scheme)
    assert plain.value.path == path and not isinstance(plain.value, CaseError)
    with pytest.raises(CaseError, match=f"case P7: .*{message}"):
        read_label_map(path, scheme, case_id="P7")


def test_an_unreadable_file_is_a_case_error_with_a_case(tmp_path):
    path = tmp_path / "broken.nii.gz"
    path.write_bytes(b"not a nifti")
    with pytest.raises(NehmapInputError) as plain:
        read_label_map(path, "nehmap")
    assert not isinstance(plain.value, CaseError)
    with pytest.raises(CaseError, match="case P7"):
        read_label_map(path, "nehmap", case_id="P7")
