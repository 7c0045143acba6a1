"""Checks of an image file before its voxels are read: the file itself, then its header.

Everything here is refused with a :class:`~nehmap.errors.NehmapInputError` that names
the file, the problem and what to do, before nibabel or SimpleITK touch the voxel data:

- the file: a symbolic link that loops or points nowhere, a name that is not valid
  UTF-8, an empty (0-byte) file, a file that cannot be opened (permissions), a
  ``.gz`` name over bytes that are not gzip;
- the NIfTI header: a 2D image or a series of several volumes, a complex or RGB
  datatype, more voxels than :func:`max_voxels` allows (so a header claiming a huge
  image, or a small gzip file that would expand to gigabytes, is refused from its
  header, without allocating anything), a zero, negative or non-finite voxel size, a
  non-finite or singular affine, and a qform and sform that place the volume more
  than :data:`QFORM_SFORM_TOLERANCE_MM` apart.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import numpy as np

from nehmap.errors import NehmapInputError

DEFAULT_MAX_VOXELS = 256 * 1024**2
"""Largest number of voxels in one 3D image (1 GiB as float32); far above any MRI."""

QFORM_SFORM_TOLERANCE_MM = 1.0
"""Largest distance (mm) between the qform's and the sform's placement of the corners."""

_GZIP_MAGIC = b"\x1f\x8b"


def max_voxels() -> int:
    """The voxel limit: ``NEHMAP_MAX_VOXELS`` from the environment, else the default."""
    raw = os.environ.get("NEHMAP_MAX_VOXELS", "")
    try:
        return int(raw) if raw else DEFAULT_MAX_VOXELS
    except ValueError:
        return DEFAULT_MAX_VOXELS


def printable(path: str | Path) -> str:
    """The path as text that can always be printed (undecodable bytes as ``\\xNN``)."""
    return os.fsencode(str(path)).decode("utf-8", "backslashreplace")


def check_file(path: Path, kind: str = "image") -> None:
    """Refuse a file that cannot be a readable image, from the file system alone.

    Raises
    ------
    NehmapInputError
        The message names the file and the problem.
    """
    if path.is_symlink():
        try:
            path.resolve(strict=True)
        except (OSError, RuntimeError) as exc:
            loop = isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == errno.ELOOP
            what = "loops back on itself" if loop else "points to a file that does not exist"
            raise NehmapInputError(
                printable(path),
                f"is a symbolic link that {what}.",
                "Replace the link with the file itself or point it at the real file.",
            ) from None
    try:
        os.fsencode(str(path)).decode("utf-8")
    except UnicodeDecodeError:
        raise NehmapInputError(
            printable(path),
            "has a file name that is not valid UTF-8 text.",
            "Rename the file (and its case folder) with plain UTF-8 characters.",
        ) from None
    if not path.is_file():
        raise NehmapInputError(path, f"{kind} file does not exist.", "Check the path and name.")
    if path.stat().st_size == 0:
        raise NehmapInputError(
            path, f"{kind} file is empty (0 bytes).", "Copy or export the file again."
        )
    try:
        with open(path, "rb") as handle:
            magic = handle.read(2)
    except PermissionError:
        raise NehmapInputError(
            path,
            f"{kind} file cannot be opened: permission denied.",
            "Give your user read access to it (e.g. chmod a+r) or copy it somewhere readable.",
        ) from None
    except OSError as exc:
        raise NehmapInputError(
            path, f"{kind} file cannot be opened ({exc.strerror}).", "Check the file."
        ) from None
    if path.name.lower().endswith(".gz") and magic != _GZIP_MAGIC:
        raise NehmapInputError(
            path,
            "is named .gz but its bytes are not gzip-compressed.",
            "Rename it without .gz if it is a plain .nii, or compress it with gzip.",
        )


def spatial_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape without trailing axes of length 1 (``(x, y, z, 1)`` -> ``(x, y, z)``)."""
    out = tuple(int(s) for s in shape)
    while len(out) > 3 and out[-1] == 1:
        out = out[:-1]
    return out


def check_shape_and_type(
    path: Path, shape: tuple[int, ...], dtype: np.dtype, kind: str, channels: bool = False
) -> None:
    """Refuse a non-3D image, a complex/RGB datatype, or more voxels than the limit.

    With ``channels`` a 3D image with trailing channel axes (a probability map) is
    accepted, and the limit counts every channel's voxels.
    """
    dims = spatial_shape(shape)
    if channels and len(dims) > 3:
        dims = (*dims[:3], int(np.prod(dims[3:])))
    if len(dims) < 3:
        raise NehmapInputError(
            path,
            f"is a {len(dims)}D image of shape {dims}, but a 3D {kind} is needed.",
            "Give the whole 3D volume, not a slice.",
        )
    if len(dims) > 3 and not channels:
        volumes = int(np.prod(dims[3:]))
        raise NehmapInputError(
            path,
            f"is a {len(dims)}D image of shape {dims} ({volumes} volumes), but a 3D {kind} "
            "is needed.",
            "A 4D series (e.g. a raw DSC perfusion series) cannot be used directly: give "
            "the derived 3D map (e.g. *_DSC_ap-rCBV.nii.gz) or one volume.",
        )
    if min(dims) < 1:
        raise NehmapInputError(path, f"has an empty shape {dims}.", "Export the image again.")
    dtype = np.dtype(dtype)
    if dtype.fields is not None:
        raise NehmapInputError(
            path,
            f"stores colour (RGB/RGBA) voxels ({len(dtype.fields)} channels), but a "
            f"greyscale {kind} is needed.",
            "Export the scan as a single-channel (greyscale) image.",
        )
    if dtype.kind == "c":
        raise NehmapInputError(
            path,
            f"stores complex voxels ({dtype}), but real values are needed.",
            "Export the magnitude image.",
        )
    if dtype.kind not in "biuf":
        raise NehmapInputError(path, f"has an unsupported datatype {dtype}.", "Export as float32.")
    n = int(np.prod([int(d) for d in dims], dtype=object))
    limit = max_voxels()
    if n > limit:
        raise NehmapInputError(
            path,
            f"declares {n} voxels (shape {dims}), more than the limit of {limit} voxels; "
            "it was refused from its header, before reading its data.",
            "Check the file (a corrupt header, or a gzip bomb); a genuine image this large "
            "can be allowed by raising NEHMAP_MAX_VOXELS.",
        )


def _corners(shape: tuple[int, ...]) -> np.ndarray:
    return np.array(
        [
            [i, j, k, 1.0]
            for i in (0, shape[0] - 1)
            for j in (0, shape[1] - 1)
            for k in (0, shape[2] - 1)
        ]
    ).T


def check_affine(path: Path, affine: np.ndarray, what: str = "affine") -> None:
    """Refuse a non-finite or singular voxel-to-world affine."""
    affine = np.asarray(affine, dtype=float)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise NehmapInputError(
            path,
            f"has an invalid {what}: it holds NaN or infinite values.",
            "Fix the header (qform/sform) with the tool that wrote the file.",
        )
    det = float(np.linalg.det(affine[:3, :3]))
    if not abs(det) > 1e-12:
        raise NehmapInputError(
            path,
            f"has a singular {what} (determinant {det:.3g}): its voxels have no volume.",
            "Fix the header (qform/sform) with the tool that wrote the file.",
        )
    from nibabel.orientations import io_orientation

    try:
        axes = io_orientation(affine)
    except (ValueError, np.linalg.LinAlgError):
        axes = np.full((3, 2), np.nan)
    if np.isnan(axes).any() or len(set(axes[:, 0].tolist())) != 3:
        raise NehmapInputError(
            path,
            f"has a {what} with no clear orientation: its voxel axes cannot be matched to "
            "the left-right, back-front and down-up directions.",
            "Fix the header (qform/sform) with the tool that wrote the file.",
        )


def check_nifti_header(
    path: Path, header: Any, kind: str = "image", channels: bool = False
) -> np.ndarray:
    """Check a NIfTI header; returns the affine nibabel would use.

    ``channels`` accepts trailing channel axes (see :func:`check_shape_and_type`).

    Raises
    ------
    NehmapInputError
        The message names the file and the problem.
    """
    shape = tuple(int(s) for s in header.get_data_shape())
    check_shape_and_type(path, shape, header.get_data_dtype(), kind, channels)
    pixdim = np.asarray(header["pixdim"][1:4], dtype=float)
    if not (np.all(np.isfinite(pixdim)) and np.all(pixdim > 0)):
        raise NehmapInputError(
            path,
            f"has an invalid voxel size (pixdim {pixdim.tolist()} mm): every voxel size "
            "must be a positive number.",
            "Fix the header with the tool that wrote the file.",
        )
    codes = {"qform": int(header["qform_code"]), "sform": int(header["sform_code"])}
    affines = {}
    for name, code in codes.items():
        if code > 0:
            try:
                aff = header.get_qform() if name == "qform" else header.get_sform()
            except Exception as exc:  # noqa: BLE001 - nibabel's decoding of a broken field
                raise NehmapInputError(
                    path, f"has an unreadable {name} ({exc}).", "Fix the header."
                ) from None
            check_affine(path, aff, name)
            affines[name] = aff
    if len(affines) == 2:
        corners = _corners(spatial_shape(shape))
        gap = np.linalg.norm((affines["qform"] @ corners - affines["sform"] @ corners)[:3], axis=0)
        if float(gap.max()) > QFORM_SFORM_TOLERANCE_MM:
            raise NehmapInputError(
                path,
                f"has a qform and an sform that disagree: they place the volume's corners up "
                f"to {gap.max():.3g} mm apart (tolerance {QFORM_SFORM_TOLERANCE_MM:g} mm), so "
                "viewers and tools would put the image in different places.",
                "Fix the header so that both describe the same position (or set one code to 0).",
            )
    try:
        best = header.get_best_affine()
    except Exception as exc:  # noqa: BLE001
        raise NehmapInputError(
            path, f"has an unreadable affine ({exc}).", "Fix the header."
        ) from None
    check_affine(path, best)
    return best
