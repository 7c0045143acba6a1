import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from conftest import save
from nehmap.errors import NehmapInputError, OutputError
from nehmap.io import new_grid, read_image, write_image

# an oblique-free but scrambled orientation: axes permuted and flipped, anisotropic voxels
ODD_AFFINE = np.array(
    [[0, 0, -2.0, 40], [-0.9, 0, 0, 30], [0, 1.5, 0, -20], [0, 0, 0, 1]], dtype=float
)


def _world_of(affine, ijk):
    return (affine @ np.array([*ijk, 1.0]))[:3]


def test_canonical_orientation_keeps_world_positions(tmp):
    rng = np.random.default_rng(1)
    data = rng.normal(size=(7, 9, 5)).astype(np.float32)
    save(tmp / "a.nii.gz", data, ODD_AFFINE)
    img = read_image(tmp / "a.nii.gz")
    assert img.grid.orientation == "PSL"
    assert "".join(nib.aff2axcodes(img.affine)) == "RAS"
    assert img.spacing == pytest.approx((2.0, 0.9, 1.5))
    # every voxel keeps its world position
    for ijk in [(0, 0, 0), (3, 4, 2), (6, 8, 4)]:
        w = _world_of(ODD_AFFINE, ijk)
        c = np.round(np.linalg.solve(img.affine, np.append(w, 1))[:3]).astype(int)
        assert img.array[tuple(c)] == data[ijk]


def test_write_back_restores_the_original_grid_exactly(tmp):
    data = np.arange(7 * 9 * 5, dtype=np.int16).reshape(7, 9, 5)
    save(tmp / "a.nii.gz", data, ODD_AFFINE)
    img = read_image(tmp / "a.nii.gz")
    out = write_image(img.array * 2, img.grid, tmp / "out" / "b.nii.gz", dtype=np.float32)
    back = nib.load(out)
    np.testing.assert_allclose(back.affine, ODD_AFFINE)
    np.testing.assert_array_equal(np.asarray(back.dataobj), data * 2)
    assert back.get_data_dtype() == np.float32
    # no temporary files left behind
    assert [p.name for p in (tmp / "out").iterdir()] == ["b.nii.gz"]


def test_multichannel_write_back(tmp):
    save(tmp / "a.nii.gz", np.ones((7, 9, 5), np.float32), ODD_AFFINE)
    img = read_image(tmp / "a.nii.gz")
    probs = np.random.default_rng(0).random((*img.array.shape, 3)).astype(np.float32)
    write_image(probs, img.grid, tmp / "p.nii.gz")
    back = nib.load(tmp / "p.nii.gz")
    assert back.shape == (7, 9, 5, 3)
    np.testing.assert_array_equal(img.grid.to_canonical(np.asarray(back.dataobj)), probs)


def test_input_scaling_does_not_leak_into_outputs(tmp):
    img = nib.Nifti1Image(np.ones((4, 4, 4), np.int16), np.eye(4))
    img.header.set_slope_inter(3.0, 7.0)
    img.to_filename(str(tmp / "a.nii.gz"))
    src = read_image(tmp / "a.nii.gz")
    write_image(np.ones((4, 4, 4), np.uint8), src.grid, tmp / "l.nii.gz")
    assert np.asarray(nib.load(tmp / "l.nii.gz").dataobj).max() == 1
    assert np.unique(nib.load(tmp / "l.nii.gz").get_fdata()).tolist() == [1.0]


def test_nrrd_and_nii_agree(tmp):
    data = np.random.default_rng(2).normal(size=(7, 9, 5)).astype(np.float32)
    save(tmp / "a.nii.gz", data, ODD_AFFINE)
    sitk.WriteImage(sitk.ReadImage(str(tmp / "a.nii.gz")), str(tmp / "a.nrrd"))
    sitk.WriteImage(sitk.ReadImage(str(tmp / "a.nii.gz")), str(tmp / "a.mha"))
    a = read_image(tmp / "a.nii.gz")
    for name in ("a.nrrd", "a.mha"):
        b = read_image(tmp / name)
        np.testing.assert_allclose(b.affine, a.affine, atol=1e-5)
        np.testing.assert_array_equal(b.array, a.array)
    b = read_image(tmp / "a.nrrd")
    write_image(b.array + 1, b.grid, tmp / "c.nrrd")
    c = sitk.ReadImage(str(tmp / "c.nrrd"))
    ref = sitk.ReadImage(str(tmp / "a.nrrd"))
    assert c.GetDirection() == pytest.approx(ref.GetDirection())
    assert c.GetOrigin() == pytest.approx(ref.GetOrigin())
    np.testing.assert_allclose(sitk.GetArrayFromImage(c), sitk.GetArrayFromImage(ref) + 1)


def test_uncompressed_nii(tmp):
    save(tmp / "a.nii", np.ones((3, 4, 5), np.float32))
    assert read_image(tmp / "a.nii").array.shape == (3, 4, 5)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: p.write_bytes(b"not an image at all"), "not gzip-compressed"),
        (lambda p: save(p, np.ones((3, 4, 5, 6), np.float32)), "4D image"),
        (lambda p: save(p, np.full((3, 4, 5), np.nan, np.float32)), "NaN or infinite"),
    ],
)
def test_bad_files_are_named(tmp, make, match):
    path = tmp / "bad.nii.gz"
    make(path)
    with pytest.raises(NehmapInputError, match=match) as err:
        read_image(path)
    assert str(path) in str(err.value)


def test_truncated_file_is_reported(tmp):
    save(tmp / "a.nii.gz", np.random.default_rng(0).random((30, 30, 30)).astype(np.float32))
    raw = (tmp / "a.nii.gz").read_bytes()
    (tmp / "t.nii.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(NehmapInputError, match="t.nii.gz.*(truncated|cannot be read)"):
        read_image(tmp / "t.nii.gz")


def test_missing_file_and_unknown_suffix(tmp):
    with pytest.raises(NehmapInputError, match="does not exist"):
        read_image(tmp / "nope.nii.gz")
    (tmp / "a.png").write_bytes(b"x")
    with pytest.raises(NehmapInputError, match="unsupported file type"):
        read_image(tmp / "a.png")


def test_never_overwrites_an_input(tmp):
    src = save(tmp / "a.nii.gz", np.ones((3, 4, 5), np.float32))
    before = src.read_bytes()
    img = read_image(src)
    with pytest.raises(OutputError, match="refusing to write"):
        write_image(img.array * 0, img.grid, src, inputs=[src])
    assert src.read_bytes() == before


def test_new_grid_is_centred_ras():
    grid = new_grid((10, 10, 4), (2.0, 2.0, 3.0))
    assert grid.orientation == "RAS"
    assert grid.spacing == (2.0, 2.0, 3.0)
    centre = grid.affine @ np.array([4.5, 4.5, 1.5, 1.0])
    np.testing.assert_allclose(centre[:3], 0.0)
