import nibabel as nib
import numpy as np
import pytest

from conftest import save
from nehmap.errors import NehmapInputError
from nehmap.io import read_image
from nehmap.io.external import parse_label_order, read_external_probabilities

ODD = np.array([[0, 0, -2.0, 40], [-0.9, 0, 0, 30], [0, 1.5, 0, -20], [0, 0, 0, 1]])


def _probs(shape, k, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.random((*shape, k)).astype(np.float32)
    return p / p.sum(-1, keepdims=True)


def test_parse_label_order():
    assert parse_label_order("background,ED,NC,ET") == [0, 2, 1, 4]
    assert parse_label_order("0, 1, 2, 3, 4") == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="Unknown label"):
        parse_label_order("bg,tumour")


def test_nifti_channels_map_to_nehmap_labels(tmp):
    save(tmp / "t1.nii.gz", np.ones((7, 9, 5), np.float32), ODD)
    grid = read_image(tmp / "t1.nii.gz").grid
    probs = _probs((7, 9, 5), 4)
    save(tmp / "p.nii.gz", probs, ODD)
    out = read_external_probabilities(tmp / "p.nii.gz", grid, [0, 2, 1, 4])
    assert out.shape == (5, *grid.canonical_shape)
    np.testing.assert_allclose(out[2], grid.to_canonical(probs[..., 1]))
    np.testing.assert_allclose(out[1], grid.to_canonical(probs[..., 2]))
    assert (out[3] == 0).all()
    np.testing.assert_allclose(out.sum(0), 1, rtol=1e-5)


def test_nnunet_npz_axis_order(tmp):
    save(tmp / "t1.nii.gz", np.ones((7, 9, 5), np.float32), ODD)
    grid = read_image(tmp / "t1.nii.gz").grid
    probs = _probs((7, 9, 5), 3)  # stored (i, j, k, K)
    np.savez_compressed(tmp / "case.npz", probabilities=probs.transpose(3, 2, 1, 0))
    out = read_external_probabilities(tmp / "case.npz", grid, [0, 3, 4])
    np.testing.assert_allclose(out[3], grid.to_canonical(probs[..., 1]))


def test_external_errors_name_the_file(tmp):
    save(tmp / "t1.nii.gz", np.ones((7, 9, 5), np.float32))
    grid = read_image(tmp / "t1.nii.gz").grid
    save(tmp / "other.nii.gz", _probs((7, 9, 6), 2))
    with pytest.raises(NehmapInputError, match="other.nii.gz.*another grid"):
        read_external_probabilities(tmp / "other.nii.gz", grid, [0, 3])
    save(tmp / "logits.nii.gz", _probs((7, 9, 5), 2) * 5)
    with pytest.raises(NehmapInputError, match="not probabilities"):
        read_external_probabilities(tmp / "logits.nii.gz", grid, [0, 3])
    save(tmp / "p.nii.gz", _probs((7, 9, 5), 3))
    with pytest.raises(NehmapInputError, match="3 channels but 2 labels"):
        read_external_probabilities(tmp / "p.nii.gz", grid, [0, 3])
    nib.save(nib.Nifti1Image(np.ones((7, 9, 5), np.float32), np.eye(4)), str(tmp / "3d.nii.gz"))
    with pytest.raises(NehmapInputError, match="is 3D"):
        read_external_probabilities(tmp / "3d.nii.gz", grid, [0, 3])
