"""nehmap arrays as ANTs images: physical space (RAS/LPS), ITK threads, the error type.

Geometry
--------
nehmap holds volumes as canonical RAS+ arrays with a voxel-to-world affine in RAS mm
(see :mod:`nehmap.io.image`). ITK, and so ANTs, works in LPS world coordinates:
:func:`to_ants` builds the ANTs image from the array and the affine with
``LPS = diag(-1, -1, 1) @ RAS``, so origin, spacing and direction (obliquity included)
describe the same physical space. Transforms are therefore physical: a shift of +5 mm
towards the patient's right in nehmap's terms is a shift of -5 mm along ITK's x axis.

Threads
-------
ANTs reads ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS``; :func:`itk_threads` sets it for a
block and restores the previous value afterwards. ITK reads the variable when it first
needs threads in a process and keeps that value, so within one process use the same
``threads`` for every call.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = [
    "RAS_TO_LPS",
    "RegistrationError",
    "ants_pointer",
    "itk_threads",
    "to_ants",
    "voxel_sizes",
]

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
"""4x4 matrix turning RAS world coordinates into LPS ones (it is its own inverse)."""

THREADS_ENV = "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"


class RegistrationError(RuntimeError):
    """A registration could not be computed (bad input, or ANTs failed)."""


def voxel_sizes(affine: np.ndarray) -> np.ndarray:
    """Voxel size (mm) per array axis of a 4x4 voxel-to-world affine; shape (3,)."""
    return np.sqrt((np.asarray(affine, dtype=float)[:3, :3] ** 2).sum(axis=0))


def to_ants(array: np.ndarray, affine: np.ndarray, dtype: type = np.float32) -> Any:
    """An ANTs image of a canonical nehmap array, in the right physical space.

    Parameters
    ----------
    array : numpy.ndarray, shape (X, Y, Z)
        Voxel values.
    affine : numpy.ndarray, shape (4, 4)
        Voxel-to-world affine, RAS mm (nehmap's convention).
    dtype : numpy dtype, default float32
        Pixel type of the ANTs image: float32 for images, uint8 for masks (ANTs reads
        metric masks as unsigned char images).

    Returns
    -------
    ants.ANTsImage
        Same voxels; origin, spacing and direction in ITK's LPS world.
    """
    import ants

    arr = np.asarray(array)
    if arr.ndim != 3:
        raise ValueError(f"expected a 3-D array, got shape {arr.shape}")
    lps = RAS_TO_LPS @ np.asarray(affine, dtype=float)
    spacing = voxel_sizes(lps)
    if np.any(spacing <= 0) or not np.all(np.isfinite(lps)):
        raise ValueError(f"invalid affine (spacing {spacing.tolist()})")
    direction = lps[:3, :3] / spacing[None, :]
    return ants.from_numpy(
        np.ascontiguousarray(arr, dtype=dtype),
        origin=tuple(float(v) for v in lps[:3, 3]),
        spacing=tuple(float(v) for v in spacing),
        direction=direction,
    )


@contextlib.contextmanager
def itk_threads(threads: int | None) -> Iterator[None]:
    """Set ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS`` for the block; restore it afterwards.

    ``None`` leaves the environment alone.
    """
    if threads is None:
        yield
        return
    if int(threads) < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    previous = os.environ.get(THREADS_ENV)
    os.environ[THREADS_ENV] = str(int(threads))
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(THREADS_ENV, None)
        else:
            os.environ[THREADS_ENV] = previous


def ants_pointer(image: Any) -> str:
    """The pointer string by which ``antsRegistration`` arguments name an ANTs image."""
    try:
        from ants.internal import get_pointer_string
    except ImportError:  # older ANTsPy
        from ants.utils import get_pointer_string  # type: ignore[no-redef]
    return get_pointer_string(image)
