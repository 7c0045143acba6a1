"""Input checks shared by the metrics.

Every public metric validates its inputs with these helpers, so that a wrong call fails
early with a :class:`ValueError` that says what is wrong and how to fix it, instead of
returning a silently wrong number.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from nehmap.spacing import check_spacing

__all__ = [
    "as_mask",
    "check_empty_penalty",
    "check_ndim",
    "check_nonnegative",
    "check_pair",
    "check_percentile",
    "check_spacing",
    "check_workers",
]


def _describe_values(arr: np.ndarray, limit: int = 6) -> str:
    """A short list of the values of ``arr`` that are not 0 or 1 (error messages only)."""
    flat = arr.ravel()
    with np.errstate(invalid="ignore"):
        bad = flat[~((flat == 0) | (flat == 1))]
    values = np.unique(bad[:1_000_000])
    shown = ", ".join(repr(v.item()) for v in values[:limit])
    if values.size > limit:
        shown += ", ..."
    return shown


def as_mask(mask: object, name: str) -> np.ndarray:
    """Return ``mask`` as a boolean numpy array, checking that it is binary.

    Parameters
    ----------
    mask : array_like
        A binary mask: a boolean array, or a numeric array holding only 0 and 1.
    name : str
        The argument's name, used in error messages.

    Returns
    -------
    numpy.ndarray of bool
        Same shape as ``mask``. Boolean input is returned without a copy; 0/1 ``uint8``
        and ``int8`` input is reinterpreted without a copy.

    Raises
    ------
    ValueError
        If ``mask`` holds values other than 0/1/False/True (NaN included), or has a
        non-numeric dtype.
    """
    arr = np.asarray(mask)
    if arr.dtype == np.bool_:
        return arr
    kind = arr.dtype.kind
    if kind in "iu":
        if arr.size == 0:
            return arr.astype(bool)
        binary = arr.max() <= 1 and (kind == "u" or arr.min() >= 0)
        if binary:
            if arr.dtype.itemsize == 1:
                return arr.view(np.bool_)
            return arr.astype(bool)
    elif kind == "f":
        if arr.size == 0 or bool(np.all((arr == 0) | (arr == 1))):
            return arr.astype(bool)
    else:
        raise ValueError(
            f"{name} must be a binary mask (bool, or numbers 0/1) but has dtype {arr.dtype}. "
            f"Convert it first, e.g. `np.asarray({name}, dtype=bool)`."
        )
    raise ValueError(
        f"{name} must be a binary mask (values 0/1 or False/True) but it contains "
        f"{_describe_values(arr)}. For a label map, select a region first (e.g. "
        f"`nehmap.labels.region_mask({name}, 'WT')` or `{name} == label`); for a "
        f"probability map, threshold it (e.g. `{name} >= 0.5`)."
    )


def check_pair(
    pred: object, ref: object, names: tuple[str, str] = ("pred", "ref")
) -> tuple[np.ndarray, np.ndarray]:
    """Validate two binary masks that are compared with each other.

    Parameters
    ----------
    pred, ref : array_like
        Binary masks (see :func:`as_mask`).
    names : tuple of str
        The arguments' names, used in error messages.

    Returns
    -------
    tuple of numpy.ndarray
        The two masks as boolean arrays of equal shape.

    Raises
    ------
    ValueError
        If a mask is not binary or the shapes differ.
    """
    a = as_mask(pred, names[0])
    b = as_mask(ref, names[1])
    if a.shape != b.shape:
        raise ValueError(
            f"{names[0]} has shape {a.shape} but {names[1]} has shape {b.shape}: resample one "
            "onto the other's grid first (nearest-neighbour interpolation for masks), so that "
            "both masks lie on the same voxel grid."
        )
    return a, b


def check_ndim(ndim: int, allowed: tuple[int, ...], what: str) -> None:
    """Raise a :class:`ValueError` unless ``ndim`` is one of ``allowed``."""
    if ndim not in allowed:
        dims = " or ".join(f"{d}D" for d in allowed)
        raise ValueError(
            f"{what} supports {dims} masks, but the masks have {ndim} dimension(s). "
            "Compute the metric on each volume (or slice) separately."
        )


def check_nonnegative(value: object, name: str, unit: str = "mm") -> float:
    """Return ``value`` as a float after checking that it is finite and >= 0.

    Raises
    ------
    ValueError
        If ``value`` is not a real number, is NaN or infinite, or is negative.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number in {unit}, got {value!r}.")
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise ValueError(
            f"{name} must be a finite, non-negative distance in {unit}, got {value!r}. "
            f"Use e.g. {name}=2.0."
        )
    return v


def check_percentile(value: object, name: str = "percentile") -> float:
    """Return ``value`` as a float after checking it lies in [0, 100]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number between 0 and 100, got {value!r}.")
    v = float(value)
    if not (0.0 <= v <= 100.0):
        raise ValueError(f"{name} must lie between 0 and 100 (e.g. 95 for HD95), got {value!r}.")
    return v


def check_empty_penalty(value: object) -> float:
    """Return the distance reported when exactly one mask is empty (NaN for ``None``)."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(
            f"empty_penalty must be None or a distance in mm (e.g. 373.13, the diagonal of "
            f"the BraTS grid), got {value!r}."
        )
    v = float(value)
    if math.isnan(v) or v < 0:
        raise ValueError(
            f"empty_penalty must be None or a non-negative distance in mm, got {value!r}."
        )
    return v


def check_workers(workers: object) -> int:
    """Return ``workers`` (threads: a positive int, or -1 for all cores) or raise ValueError."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers == 0 or workers < -1:
        raise ValueError(f"workers must be a positive int or -1 (all cores), got {workers!r}.")
    return workers
