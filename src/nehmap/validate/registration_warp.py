"""Pulling data of the moving (pre-operative) scan onto the fixed grid of a registration.

:func:`warp_labels` moves label maps and masks with ANTs' ``genericLabel`` interpolation
(each label interpolated as its own smooth indicator, the most likely one wins);
:func:`warp_image` moves images (linear by default). Both return arrays on the full
fixed grid, shape ``registration.fixed_shape``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nehmap.validate.registration_ants import to_ants
from nehmap.validate.registration_transform import Registration

__all__ = ["warp_image", "warp_labels"]


def _reference(registration: Registration) -> Any:
    return to_ants(np.zeros(registration.fixed_shape, dtype=np.float32), registration.fixed_affine)


def _check_moving(registration: Registration, array: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(array)
    if arr.shape != registration.moving_shape:
        raise ValueError(
            f"{what} has shape {arr.shape}, but the moving scan of this registration has "
            f"{registration.moving_shape}"
        )
    return arr


def warp_labels(registration: Registration, label_map: np.ndarray) -> np.ndarray:
    """Pull a label map (or mask) of the moving scan onto the fixed grid.

    Parameters
    ----------
    registration : Registration
        Fixed and moving grids and the transforms between them.
    label_map : numpy.ndarray of int or bool, shape ``registration.moving_shape``
        Integer labels on the moving scan's canonical grid.

    Returns
    -------
    numpy.ndarray, shape ``registration.fixed_shape``
        Labels on the fixed grid (``genericLabel`` interpolation: each label is
        interpolated as its own smooth indicator and the most likely one wins), with
        the input's dtype.
    """
    import ants

    arr = _check_moving(registration, label_map, "label_map")
    if arr.dtype.kind not in "biu":
        raise ValueError(f"label_map must hold integers or booleans, got {arr.dtype}")
    moving = to_ants(arr.astype(np.float32), registration.moving_affine)
    out = ants.apply_transforms(
        _reference(registration),
        moving,
        registration.forward,
        interpolator="genericLabel",
    )
    values = np.rint(out.numpy())
    return values.astype(arr.dtype if arr.dtype != np.bool_ else np.uint8).astype(arr.dtype)


def warp_image(
    registration: Registration, image: np.ndarray, interpolator: str = "linear"
) -> np.ndarray:
    """Pull an image of the moving scan onto the fixed grid.

    Parameters
    ----------
    registration : Registration
        Fixed and moving grids and the transforms between them.
    image : numpy.ndarray, shape ``registration.moving_shape``
        Intensities on the moving scan's canonical grid.
    interpolator : str, default "linear"
        Any ANTs interpolator (``"linear"``, ``"bSpline"``, ``"nearestNeighbor"``...).

    Returns
    -------
    numpy.ndarray of float32, shape ``registration.fixed_shape``
        0 outside the moving scan's field of view.
    """
    import ants

    arr = _check_moving(registration, image, "image")
    moving = to_ants(arr.astype(np.float32), registration.moving_affine)
    out = ants.apply_transforms(
        _reference(registration), moving, registration.forward, interpolator=interpolator
    )
    return out.numpy().astype(np.float32)
