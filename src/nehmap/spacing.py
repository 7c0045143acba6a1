"""Voxel spacing arguments: one size in mm per array axis, checked once for every module.

Core functions take arrays and their spacing (mm per array axis, in array-axis order,
not world order); :func:`check_spacing` is how each of them validates it, so that a
wrong spacing fails early with a message that says what to pass.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["check_spacing"]


def check_spacing(spacing: object, ndim: int, name: str = "spacing") -> tuple[float, ...]:
    """Validate a voxel spacing and return it as a tuple of floats.

    Parameters
    ----------
    spacing : sequence of float
        Voxel size in mm along each array axis, in array-axis order.
    ndim : int
        Number of axes of the arrays (masks, label maps, images).
    name : str
        The argument's name, used in error messages.

    Returns
    -------
    tuple of float
        ``ndim`` finite, positive voxel sizes in mm.

    Raises
    ------
    ValueError
        If ``spacing`` is not a sequence of ``ndim`` finite positive numbers.
    """
    example = "(" + ", ".join(["1.0"] * max(ndim, 1)) + ")"
    if isinstance(spacing, numbers.Number) or isinstance(spacing, (str, bytes)):
        raise ValueError(
            f"{name} must be a sequence with one voxel size in mm per array axis "
            f"({ndim} values, in array-axis order), got {spacing!r}; e.g. {example}."
        )
    try:
        values = np.asarray(spacing, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be a sequence of {ndim} numbers (voxel sizes in mm, in array-axis "
            f"order), got {spacing!r}."
        ) from None
    if values.ndim != 1 or values.size != ndim:
        raise ValueError(
            f"{name} has {values.size} value(s) {tuple(values.ravel().tolist())} but the arrays "
            f"have {ndim} axes: give one voxel size in mm per array axis, in array-axis order, "
            f"e.g. {example}."
        )
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(
            f"{name} must hold finite, positive voxel sizes in mm, got {tuple(values.tolist())}. "
            "Read the spacing from the image header (e.g. nibabel's `img.header.get_zooms()`)."
        )
    return tuple(float(v) for v in values)
