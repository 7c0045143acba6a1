"""Reading images into nehmap's canonical arrays and writing results back on the input's grid.

In memory, nehmap holds every volume as a float32 (or integer, for labels) numpy array
in **canonical RAS+ orientation**: array axis 0 runs from left to Right, axis 1 from
posterior to Anterior, axis 2 from inferior to Superior. Spacing is a tuple of voxel
sizes in mm, one per array axis, in array-axis order.

Reorientation only permutes and flips axes (no interpolation), so a result computed on
the canonical array maps back voxel for voxel onto the original file: :class:`Grid`
remembers the file's shape, affine, header and orientation, and :func:`write_image`
writes an array back with exactly that geometry, so the output overlays its input in
3D Slicer, ITK-SNAP or any other viewer.

NIfTI (``.nii``, ``.nii.gz``) is read with nibabel; NRRD and MetaImage (``.nrrd``,
``.nhdr``, ``.mha``, ``.mhd``) through SimpleITK, whose LPS world is converted to RAS.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel import orientations as ornt

from nehmap.errors import NehmapInputError
from nehmap.io.atomic import atomic_path
from nehmap.io.checks import check_affine, check_file, check_nifti_header, check_shape_and_type

NIFTI_SUFFIXES = (".nii", ".nii.gz")
SITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")
IMAGE_SUFFIXES = NIFTI_SUFFIXES + SITK_SUFFIXES

DEFAULT_GRID_TOLERANCE_MM = 1e-3
"""Largest allowed distance (mm) between the corners of two images' grids."""

_RAS = ornt.axcodes2ornt(("R", "A", "S"))
# LPS (ITK world) <-> RAS (NIfTI world)
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def image_suffix(path: str | Path) -> str | None:
    """The recognised image suffix of ``path`` (``.nii.gz``, ``.nrrd``...), or None."""
    name = str(path).lower()
    for suffix in sorted(IMAGE_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    return None


def strip_image_suffix(name: str) -> str:
    """File name without its image suffix (``a_t1.nii.gz`` -> ``a_t1``)."""
    suffix = image_suffix(name)
    return name[: -len(suffix)] if suffix else name


@dataclass(frozen=True)
class Grid:
    """The geometry of an image file, and the map between it and the canonical array.

    Attributes
    ----------
    shape : tuple[int, int, int]
        Spatial shape of the array as stored in the file (3 values).
    affine : np.ndarray
        4x4 voxel-to-world (RAS, mm) affine of the stored array.
    source : Path | None
        The file this grid was read from, if any.
    header : Any
        The NIfTI header of the source (reused when writing back), if any.
    sitk_geometry : dict | None
        Origin/spacing/direction of a SimpleITK-read source, if any.
    """

    shape: tuple[int, int, int]
    affine: np.ndarray
    source: Path | None = None
    header: Any = field(default=None, repr=False, compare=False)
    sitk_geometry: dict | None = field(default=None, repr=False, compare=False)

    @property
    def orientation(self) -> str:
        """Axis codes of the stored array, e.g. ``"RAS"`` or ``"LPS"``."""
        return "".join(nib.aff2axcodes(self.affine))

    @property
    def _to_canonical(self) -> np.ndarray:
        return ornt.ornt_transform(ornt.io_orientation(self.affine), _RAS)

    @property
    def _from_canonical(self) -> np.ndarray:
        return ornt.ornt_transform(_RAS, ornt.io_orientation(self.affine))

    @property
    def canonical_shape(self) -> tuple[int, int, int]:
        """Spatial shape of the canonical (RAS+) array."""
        axes = self._to_canonical[:, 0].astype(int)
        out = [0, 0, 0]
        for src_axis, dst_axis in enumerate(axes):
            out[dst_axis] = self.shape[src_axis]
        return (out[0], out[1], out[2])

    @property
    def canonical_affine(self) -> np.ndarray:
        """4x4 voxel-to-world (RAS, mm) affine of the canonical array."""
        return self.affine @ ornt.inv_ornt_aff(self._to_canonical, self.shape)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along each canonical array axis."""
        zooms = np.sqrt((self.canonical_affine[:3, :3] ** 2).sum(axis=0))
        return (float(zooms[0]), float(zooms[1]), float(zooms[2]))

    def to_canonical(self, array: np.ndarray) -> np.ndarray:
        """Reorient a stored-order array (3D, or 3D + trailing channels) to RAS+."""
        return _apply_spatial_orientation(array, self._to_canonical)

    def from_canonical(self, array: np.ndarray) -> np.ndarray:
        """Reorient a canonical array (3D, or 3D + trailing channels) to the stored order."""
        if tuple(array.shape[:3]) != self.canonical_shape:
            raise ValueError(
                f"Array of shape {array.shape[:3]} does not match this grid's canonical "
                f"shape {self.canonical_shape}; resample it onto the grid first."
            )
        return _apply_spatial_orientation(array, self._from_canonical)

    def distance_mm(self, other: Grid) -> float:
        """Largest distance (mm) between the two grids' world positions of the volume corners.

        Both grids must have the same shape; 0.0 means identical geometry.
        """
        corners = np.array(
            [
                [i, j, k, 1.0]
                for i in (0, self.shape[0] - 1)
                for j in (0, self.shape[1] - 1)
                for k in (0, self.shape[2] - 1)
            ]
        ).T
        a = (self.affine @ corners)[:3]
        b = (other.affine @ corners)[:3]
        return float(np.max(np.linalg.norm(a - b, axis=0)))

    def canonical_distance_mm(self, other: Grid) -> float:
        """Like :meth:`distance_mm`, comparing the canonical grids (orientation-independent)."""
        return Grid(self.canonical_shape, self.canonical_affine).distance_mm(
            Grid(other.canonical_shape, other.canonical_affine)
        )


def _apply_spatial_orientation(array: np.ndarray, transform: np.ndarray) -> np.ndarray:
    if array.ndim < 3:
        raise ValueError(f"Expected a 3D array (or 3D + channels), got shape {array.shape}.")
    out = ornt.apply_orientation(array, transform)
    return np.ascontiguousarray(out)


@dataclass
class Image:
    """A volume in canonical RAS+ orientation with its original geometry.

    Attributes
    ----------
    array : np.ndarray
        Canonical array, shape (X, Y, Z) — axis 0 towards Right, 1 towards
        Anterior, 2 towards Superior.
    grid : Grid
        The geometry of the source file (to write results back onto it).
    """

    array: np.ndarray
    grid: Grid

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm per array axis."""
        return self.grid.spacing

    @property
    def affine(self) -> np.ndarray:
        """Voxel-to-world (RAS, mm) affine of :attr:`array`."""
        return self.grid.canonical_affine

    @property
    def path(self) -> Path | None:
        """The file the image was read from (``None`` for an image built in memory)."""
        return self.grid.source


# what nibabel raises on a damaged file (found by scripts/fuzz_nifti.py): header
# checks, unknown datatype codes, bad offsets, truncated or corrupt gzip streams
_NIBABEL_READ_ERRORS = (
    nib.filebasedimages.ImageFileError,
    nib.spatialimages.HeaderDataError,
    OSError,
    EOFError,
    zlib.error,
    gzip.BadGzipFile,
    ValueError,
    TypeError,
    OverflowError,
    MemoryError,
)


def _fail(path: Path, problem: str, hint: str) -> NehmapInputError:
    return NehmapInputError(path, problem, hint)


def _open_nifti(path: Path, kind: str = "image", channels: bool = False) -> Any:
    """nib.load ``path`` after the file checks, then check its header (no voxel read)."""
    check_file(path, kind)
    try:
        img = nib.load(str(path))
    except _NIBABEL_READ_ERRORS as exc:
        raise _fail(
            path,
            f"cannot be read as NIfTI ({exc}).",
            "Check that the file is complete and a valid .nii/.nii.gz image.",
        ) from exc
    check_nifti_header(path, _raw_header(path, img), kind, channels)
    return img


def _raw_header(path: Path, img: Any) -> Any:
    """The header as stored, before nibabel's silent fixes (e.g. of a zero pixdim)."""
    from nibabel.openers import ImageOpener

    try:
        with ImageOpener(str(path)) as handle:
            return type(img.header).from_fileobj(handle, check=False)
    except Exception:  # noqa: BLE001 - unreadable raw header: fall back to nibabel's view
        return img.header


def _load_nifti(path: Path, kind: str = "image") -> tuple[np.ndarray, np.ndarray, Any]:
    img = _open_nifti(path, kind)
    try:
        data = np.asanyarray(img.dataobj)
    except _NIBABEL_READ_ERRORS as exc:
        raise _fail(
            path,
            f"is truncated or corrupt: its voxel data cannot be read ({exc}).",
            "Copy or download the file again.",
        ) from exc
    return data, img.affine, img.header


def _load_sitk(path: Path, kind: str = "image") -> tuple[np.ndarray, np.ndarray, dict]:
    import SimpleITK as sitk

    check_file(path, kind)
    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        size = tuple(int(s) for s in reader.GetSize())
        if reader.GetNumberOfComponents() == 1:
            check_shape_and_type(path, size, np.float32, kind)
        img = reader.Execute()
    except RuntimeError as exc:
        raise _fail(
            path,
            f"cannot be read ({str(exc).strip().splitlines()[-1]}).",
            "Check that the file is complete and a valid NRRD/MetaImage image.",
        ) from exc
    dim = img.GetDimension()
    if dim != 3 or img.GetNumberOfComponentsPerPixel() != 1:
        raise _fail(
            path,
            f"is not a 3D scalar image (dimension {dim}, "
            f"{img.GetNumberOfComponentsPerPixel()} components per voxel).",
            "Give a single 3D volume.",
        )
    data = sitk.GetArrayFromImage(img).transpose(2, 1, 0)  # (z, y, x) -> (i, j, k)
    direction = np.array(img.GetDirection()).reshape(3, 3)
    spacing = np.array(img.GetSpacing())
    affine_lps = np.eye(4)
    affine_lps[:3, :3] = direction * spacing[None, :]
    affine_lps[:3, 3] = img.GetOrigin()
    geometry = {
        "origin": img.GetOrigin(),
        "spacing": img.GetSpacing(),
        "direction": img.GetDirection(),
    }
    return data, _LPS_TO_RAS @ affine_lps, geometry


def read_grid(path: str | Path, *, channels: bool = False) -> Grid:
    """Read only the geometry of an image file (fast: the voxel data is not loaded).

    The file and its header are checked (:mod:`nehmap.io.checks`); ``channels`` accepts
    a NIfTI with trailing channel axes, e.g. one probability map per class.
    """
    p = Path(path)
    if image_suffix(p) in NIFTI_SUFFIXES:
        img = _open_nifti(p, channels=channels)
        return Grid(tuple(int(s) for s in img.shape[:3]), img.affine, p, img.header)
    check_file(p)
    return read_image(p).grid


def read_image(
    path: str | Path, dtype: np.dtype | type | None = np.float32, *, kind: str = "image"
) -> Image:
    """Read a 3D image into canonical RAS+ orientation.

    Parameters
    ----------
    path : str | Path
        NIfTI (``.nii``/``.nii.gz``), NRRD or MetaImage file.
    dtype : np.dtype | type | None
        dtype of the returned array (float32 by default; None keeps the file's,
        after scaling).
    kind : str
        What the file is, for error messages ("image", "label map", "rCBV map").

    Returns
    -------
    Image
        :class:`Image` with the canonical array and the file's :class:`Grid`.

    Raises
    ------
    NehmapInputError
        The file is missing, unreadable, truncated, not 3D, or holds
        NaN/Inf voxels.
    """
    p = Path(path)
    suffix = image_suffix(p)
    if suffix is None:
        raise _fail(
            p,
            f"has an unsupported file type for a {kind}.",
            f"Use one of: {', '.join(IMAGE_SUFFIXES)}.",
        )
    header = None
    sitk_geometry = None
    if suffix in NIFTI_SUFFIXES:
        data, affine, header = _load_nifti(p, kind)
    else:
        data, affine, sitk_geometry = _load_sitk(p, kind)
    # drop trailing singleton dimensions (x, y, z, 1) that some tools write
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise _fail(
            p,
            f"is a {data.ndim}D image of shape {tuple(data.shape)}, but a 3D {kind} is needed.",
            "A 4D series (e.g. a raw DSC perfusion series) cannot be used directly: give the "
            "derived 3D map (e.g. *_DSC_ap-rCBV.nii.gz).",
        )
    if data.dtype.kind == "f" and not np.all(np.isfinite(data)):
        n_bad = int(np.count_nonzero(~np.isfinite(data)))
        raise _fail(
            p,
            f"contains {n_bad} NaN or infinite voxels.",
            "Replace them (e.g. with 0 outside the brain) before running nehmap.",
        )
    check_affine(p, affine)
    grid = Grid(
        tuple(int(s) for s in data.shape), np.asarray(affine, dtype=float), p, header, sitk_geometry
    )
    array = grid.to_canonical(np.asarray(data))
    if dtype is not None:
        with np.errstate(over="ignore", invalid="ignore"):
            array = array.astype(dtype, copy=False)
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            # found by fuzzing: a header scaling (scl_slope) that overflows float32
            raise _fail(
                p,
                f"holds values beyond the range of {array.dtype} "
                f"(largest {float(np.max(np.abs(data))):.3g}), after the header's scaling.",
                "Check the header's scl_slope/scl_inter, or rescale the image.",
            )
    return Image(array, grid)


def write_image(
    array: np.ndarray,
    grid: Grid,
    path: str | Path,
    *,
    dtype: np.dtype | type | None = None,
    inputs: Iterable[str | Path] = (),
    description: str | None = None,
) -> Path:
    """Write a canonical array back on ``grid``'s original geometry, atomically.

    Parameters
    ----------
    array : np.ndarray
        Canonical (RAS+) array of shape ``grid.canonical_shape`` (+ optional
        trailing channel axis, e.g. one probability channel per label).
    grid : Grid
        Geometry of the input the result belongs to.
    path : str | Path
        Output file; ``.nii.gz``/``.nii`` via nibabel, NRRD/MetaImage via SimpleITK.
    dtype : np.dtype | type | None
        Stored dtype (defaults to the array's).
    inputs : Iterable[str | Path]
        Files that must never be overwritten (the case's inputs).
    description : str | None
        Text for the NIfTI ``descrip`` field (max 80 characters).

    Returns
    -------
    Path
        The written path.
    """
    out = Path(path)
    data = grid.from_canonical(np.asarray(array))
    if dtype is not None:
        data = data.astype(dtype, copy=False)
    if data.dtype == np.bool_:
        data = data.astype(np.uint8)
    if data.dtype == np.float64:
        data = data.astype(np.float32)
    suffix = image_suffix(out)
    if suffix is None:
        raise ValueError(f"{out}: unsupported output file type; use .nii.gz.")
    with atomic_path(out, inputs) as tmp:
        if suffix in NIFTI_SUFFIXES:
            _save_nifti(data, grid, tmp, description)
        else:
            _save_sitk(data, grid, tmp)
    return out


def _save_nifti(data: np.ndarray, grid: Grid, tmp: Path, description: str | None) -> None:
    header = grid.header.copy() if isinstance(grid.header, nib.Nifti1Header) else None
    img = nib.Nifti1Image(data, grid.affine, header=header)
    img.set_data_dtype(data.dtype)
    hdr = img.header
    # never let an input's intensity scaling or display window leak into our values
    hdr.set_slope_inter(1.0, 0.0)
    hdr["cal_min"] = 0.0
    hdr["cal_max"] = 0.0
    hdr["intent_code"] = 0
    if header is None:
        hdr.set_xyzt_units("mm")
    else:
        # keep the input's qform/sform codes, so the output lands where the input does
        qcode = int(header["qform_code"]) or 1
        scode = int(header["sform_code"]) or 1
        img.set_qform(grid.affine, code=qcode)
        img.set_sform(grid.affine, code=scode)
    if description is not None:
        hdr["descrip"] = description[:79].encode("ascii", "replace")
    nib.save(img, str(tmp))


def _save_sitk(data: np.ndarray, grid: Grid, tmp: Path) -> None:
    import SimpleITK as sitk

    if data.ndim != 3:
        raise ValueError("NRRD/MetaImage outputs must be 3D; write multi-channel data as NIfTI.")
    img = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(2, 1, 0)))
    if grid.sitk_geometry is not None:
        img.SetOrigin(grid.sitk_geometry["origin"])
        img.SetSpacing(grid.sitk_geometry["spacing"])
        img.SetDirection(grid.sitk_geometry["direction"])
    else:
        lps = _LPS_TO_RAS @ grid.affine
        spacing = np.sqrt((lps[:3, :3] ** 2).sum(axis=0))
        img.SetSpacing(tuple(float(s) for s in spacing))
        img.SetOrigin(tuple(float(v) for v in lps[:3, 3]))
        img.SetDirection(tuple((lps[:3, :3] / spacing[None, :]).ravel().tolist()))
    sitk.WriteImage(img, str(tmp), useCompression=True)


def new_grid(
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    origin: tuple[float, float, float] | None = None,
) -> Grid:
    """A canonical RAS+ grid of ``shape`` voxels of ``spacing`` mm (no source file).

    The origin defaults to centring the volume on world (0, 0, 0).
    """
    affine = np.diag([*map(float, spacing), 1.0])
    if origin is None:
        origin = tuple(-(n - 1) * s / 2.0 for n, s in zip(shape, spacing, strict=True))
    affine[:3, 3] = origin
    return Grid(tuple(int(s) for s in shape), affine)
