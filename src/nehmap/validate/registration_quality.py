"""Masks and quality checks of a registration: input checks, brain crop, brain Dice, Jacobian.

Before registering, :func:`check_channels` and :func:`check_mask` refuse unusable
input (empty or non-finite images, masks of the wrong shape or empty), and
:func:`crop_box` gives the bounding box of a brain (plus a margin in mm) to which
each scan is cropped.

After registering, :func:`assess` reports the Dice of the fixed brain mask and the
moving brain mask warped onto it, and the minimum and maximum Jacobian determinant of
the whole transform inside the fixed brain (the SyN field's determinant times the
affine's); the registration is flagged when the brain Dice is below ``min_brain_dice``
(default 0.9) or the Jacobian minimum is at or below ``min_jacobian`` (default 0:
folding). :func:`quality_columns` writes the result as columns of a tidy table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nehmap.validate.registration_ants import (
    RegistrationError,
    itk_threads,
    to_ants,
    voxel_sizes,
)
from nehmap.validate.registration_transform import Registration, RegistrationQuality
from nehmap.validate.registration_warp import warp_labels

__all__ = [
    "assess",
    "brain_dice",
    "check_channels",
    "check_mask",
    "crop_box",
    "quality_columns",
]


def brain_dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two masks (NaN when both are empty)."""
    a_ = np.asarray(a, dtype=bool)
    b_ = np.asarray(b, dtype=bool)
    total = int(a_.sum()) + int(b_.sum())
    if total == 0:
        return math.nan
    return 2.0 * int(np.count_nonzero(a_ & b_)) / total


def check_channels(images: np.ndarray | Sequence[np.ndarray], name: str) -> list[np.ndarray]:
    """The channels of ``images`` (one 3-D array, a 4-D stack or a sequence), checked.

    Raises
    ------
    RegistrationError
        When there is no channel, or one is not 3-D of the first one's shape, holds NaN
        or infinite voxels, or is all zero. ``name`` says which input in the message.
    """
    if isinstance(images, np.ndarray) and images.ndim == 3:
        chans = [images]
    elif isinstance(images, np.ndarray) and images.ndim == 4:
        chans = list(images)
    else:
        chans = [np.asarray(c) for c in images]
    if not chans:
        raise RegistrationError(f"{name}: no image given")
    shape = chans[0].shape
    for i, c in enumerate(chans):
        if c.ndim != 3 or c.shape != shape:
            raise RegistrationError(
                f"{name}: channel {i} has shape {c.shape}; every channel must be 3-D of "
                f"shape {shape}"
            )
        if not np.all(np.isfinite(c)):
            raise RegistrationError(f"{name}: channel {i} holds NaN or infinite voxels")
        if not np.any(c):
            raise RegistrationError(
                f"{name}: channel {i} is empty (all zero); check that the scan was read correctly"
            )
    return chans


def check_mask(mask: np.ndarray | None, shape: tuple[int, ...], name: str) -> np.ndarray | None:
    """``mask != 0`` after checking its shape against the image's (None passes through).

    Raises
    ------
    RegistrationError
        When the shape differs from ``shape`` or the mask is empty.
    """
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.shape != shape:
        raise RegistrationError(f"{name} has shape {m.shape}, but the image has {shape}")
    m = m != 0
    if not m.any():
        raise RegistrationError(f"{name} is empty: nothing would be compared")
    return m


def crop_box(
    mask: np.ndarray, affine: np.ndarray, margin_mm: float | None
) -> tuple[tuple[slice, ...], np.ndarray]:
    """Bounding box of ``mask`` plus ``margin_mm``, and the affine of the cropped array."""
    shape = mask.shape
    if margin_mm is None:
        return tuple(slice(0, n) for n in shape), np.asarray(affine, dtype=float)
    spacing = voxel_sizes(affine)
    idx = np.argwhere(mask)
    pad = np.ceil(float(margin_mm) / spacing).astype(int)
    lo = np.maximum(idx.min(axis=0) - pad, 0)
    hi = np.minimum(idx.max(axis=0) + 1 + pad, shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    shifted = np.asarray(affine, dtype=float).copy()
    shifted[:3, 3] = affine[:3, :3] @ lo + affine[:3, 3]
    return box, shifted


def assess(
    registration: Registration,
    fixed_brain: np.ndarray,
    moving_brain: np.ndarray,
    *,
    jacobian_domain: tuple[tuple[slice, ...], np.ndarray] | None = None,
    min_brain_dice: float = 0.9,
    min_jacobian: float = 0.0,
    threads: int | None = 2,
) -> RegistrationQuality:
    """Quality of a registration: brain Dice after warping and Jacobian extremes.

    Parameters
    ----------
    registration : Registration
        The registration to assess.
    fixed_brain, moving_brain : numpy.ndarray of bool
        Brain masks on the full fixed and moving grids.
    jacobian_domain : (box, affine), optional
        Sub-box of the fixed grid (and its affine) on which to evaluate the Jacobian;
        default: the whole fixed grid.
    min_brain_dice, min_jacobian : float
        Flag thresholds.
    threads : int or None
        ITK threads.

    Returns
    -------
    RegistrationQuality
    """
    import ants

    with itk_threads(threads):
        warped = warp_labels(registration, moving_brain.astype(np.uint8)) > 0
        dice = brain_dice(warped, fixed_brain)
        det_affine = float(np.linalg.det(registration.affine_ras()[:3, :3]))
        if registration.warp_file is None:
            jmin = jmax = det_affine
        else:
            if jacobian_domain is None:
                box = tuple(slice(0, n) for n in registration.fixed_shape)
                aff = registration.fixed_affine
            else:
                box, aff = jacobian_domain
            domain = to_ants(np.zeros(fixed_brain[box].shape, dtype=np.float32), aff)
            jac = ants.create_jacobian_determinant_image(domain, registration.warp_file)
            if jac.shape != domain.shape:  # the field is on the coarsest grid it needs
                jac = ants.resample_image_to_target(jac, domain, interp_type="linear")
            values = jac.numpy()[fixed_brain[box]] * det_affine
            if values.size == 0 or not np.all(np.isfinite(values)):
                raise RegistrationError("the Jacobian determinant is not finite")
            jmin, jmax = float(values.min()), float(values.max())
    reasons = []
    if not dice >= min_brain_dice:
        reasons.append(f"brain Dice {dice:.3f} < {min_brain_dice:g}")
    if jmin <= min_jacobian:
        reasons.append(f"Jacobian minimum {jmin:.3g} <= {min_jacobian:g}")
    return RegistrationQuality(dice, jmin, jmax, bool(reasons), tuple(reasons))


def quality_columns(quality: RegistrationQuality | None) -> Mapping[str, Any]:
    """Columns of a quality record for a tidy table (NaN/None when missing)."""
    if quality is None:
        return {
            "brain_dice": math.nan,
            "jacobian_min": math.nan,
            "jacobian_max": math.nan,
            "registration_flag": None,
            "registration_flag_reason": "",
        }
    return quality.as_dict()
