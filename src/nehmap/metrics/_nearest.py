r"""Exact distances (mm) from one set of grid points to the nearest point of another.

For point sets :math:`A, B` on one grid with spacing :math:`s` (mm per axis), the
distance of :math:`x \in A` is :math:`\min_{y \in B} E(y - x)`, where
:math:`E(k) = \sqrt{\sum_i (k_i s_i)^2}` is evaluated in double precision, summing over
the axes in order (:func:`nehmap.metrics._grid._euclidean`). "Exact" means that value,
bit for bit, whatever route computes it.

How
---
1. The ``edt`` library's Euclidean distance transform (anisotropic, multi-threaded) of
   "not :math:`B`" gives every grid point the squared distance to :math:`B`, in single
   precision: :math:`\tilde D`. Only points inside the array count as :math:`B`
   (``black_border`` off), so a crop is exact as long as it holds all of :math:`A` and
   :math:`B`; the callers crop to the box around both sets.
2. The true squared distance :math:`D` lies in the band
   :math:`[\tilde D (1 - \rho), \tilde D (1 + \rho) + \alpha]` (single-precision error is
   below :math:`2^{-22} D`; :math:`\rho = 4 \cdot 10^{-6}` leaves a margin of 16). The
   lengths :math:`E(k)` of all lattice offsets are tabulated once per spacing, sorted
   and without repeats (they depend only on :math:`|k_i|`, so one orthant suffices).
   When exactly one tabulated length falls in the band, it is the answer: the nearest
   offset's length is in the band, and so is that of any offset whose double-precision
   length could tie with it.
3. Points whose band holds several lengths (near-ties of different offsets, as with
   isotropic spacings that are not binary fractions) or lies beyond the table get the
   minimum of :math:`E` over the points of :math:`B` within the band's radius, found
   with a KD-tree.
"""

from __future__ import annotations

import math
import os

import edt
import numpy as np
from scipy.spatial import cKDTree

from nehmap.metrics._grid import _euclidean

# Relative half-width of the band around the single-precision squared distance, and an
# absolute floor (in units of the smallest squared voxel size).
_REL = 4e-6
_ABS = 1e-9
# Most orthant offsets a length table may hold (memory: 8 bytes each while sorting).
_TABLE_LIMIT = 4_000_000
_tables: dict[tuple[float, ...], tuple[float, np.ndarray]] = {}


def _lengths(spacing: tuple[float, ...], radius: float) -> tuple[float, np.ndarray]:
    """``(r, lengths)``: the sorted distinct lengths (mm) of all lattice offsets up to ``r``.

    ``r >= radius`` unless the table would exceed ``_TABLE_LIMIT`` offsets. Tables are
    kept per spacing and grown geometrically.
    """
    known = _tables.get(spacing)
    if known is not None and known[0] >= radius:
        return known
    s = np.asarray(spacing, dtype=np.float64)
    radius = max(radius, 1.5 * known[0] if known else 0.0, 8.0 * float(s.max()))
    count = float(np.prod(np.floor(radius / s) + 1))
    if count > _TABLE_LIMIT:
        radius *= (_TABLE_LIMIT / count) ** (1.0 / len(s))
    total = np.zeros((), dtype=np.float64)
    for axis, step in enumerate(spacing):
        k = np.arange(int(math.floor(radius / step)) + 1, dtype=np.float64)
        shape = [1] * len(spacing)
        shape[axis] = -1
        total = total + ((k * step) ** 2).reshape(shape)  # same order of sums as _euclidean
    lengths = np.sqrt(total.ravel())
    table = (radius, np.unique(lengths[lengths <= radius]))
    if len(_tables) >= 16:
        _tables.clear()
    _tables[spacing] = table
    return table


def _threads(workers: int) -> int:
    return (os.cpu_count() or 1) if workers == -1 else workers


def _ball_minimum(
    src: np.ndarray, dst: np.ndarray, reach: np.ndarray, spacing: tuple[float, ...], workers: int
) -> np.ndarray:
    """Minimum of ``E(y - x)`` over the points ``y`` of ``dst`` within ``reach`` mm of each ``x``.

    ``src`` (n, ndim) and ``dst`` (m, ndim) are integer grid indices; every ball must hold
    a point of ``dst``.
    """
    s = np.asarray(spacing, dtype=np.float64)
    tree = cKDTree(dst * s)
    # A generous radius: the tree's rounding must not drop the nearest point.
    found = tree.query_ball_point(src * s, reach * (1 + 1e-9) + 1e-9, workers=workers)
    sizes = np.fromiter((len(f) for f in found), dtype=np.intp, count=len(found))
    if np.any(sizes == 0):
        raise AssertionError("nearest-surface search: a distance band held no point")
    near = dst[np.concatenate(found).astype(np.intp)]
    lengths = _euclidean(near - np.repeat(src, sizes, axis=0), spacing)
    return np.minimum.reduceat(lengths, np.concatenate([[0], np.cumsum(sizes)[:-1]]))


def nearest_distances(
    src: np.ndarray, dst: np.ndarray, spacing: tuple[float, ...], workers: int = 1
) -> np.ndarray:
    """Exact distance (mm) from every point of ``src`` to the nearest point of ``dst``.

    Parameters
    ----------
    src, dst : numpy.ndarray of bool, shape (X, Y, Z) or (X, Y)
        The two point sets on one grid; ``dst`` must not be empty.
    spacing : tuple of float
        Grid step in mm per axis.
    workers : int, default 1
        Threads for the distance transform and the KD-tree (-1: all cores).

    Returns
    -------
    numpy.ndarray of float64, shape (n,)
        One distance per point of ``src``, in C order (``numpy.flatnonzero``'s).
    """
    background = np.ascontiguousarray(~dst).view(np.uint8)
    field = edt.edtsq(background, anisotropy=spacing, parallel=_threads(workers))
    squared = field[src].astype(np.float64)
    if squared.size == 0:
        return squared
    floor = _ABS * min(spacing) ** 2
    low = np.sqrt(squared * (1.0 - _REL))
    high = np.sqrt(squared * (1.0 + _REL) + floor)
    radius, lengths = _lengths(spacing, float(high.max()))
    first = np.searchsorted(lengths, low, side="left")
    last = np.searchsorted(lengths, high, side="right")
    out = lengths[np.minimum(first, len(lengths) - 1)]
    unsure = (last - first != 1) | (high > radius)
    if unsure.any():
        src_idx = np.argwhere(src)[unsure]
        out[unsure] = _ball_minimum(src_idx, np.argwhere(dst), high[unsure], spacing, workers)
    return out
