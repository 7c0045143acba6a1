r"""Exact distances (mm) from one set of grid points to the nearest point of another.

For point sets :math:`A, B` on one grid with spacing :math:`s` (mm per axis), the
distance of :math:`x \in A` is :math:`\min_{y \in B} E(y - x)`, where
:math:`E(k) = \sqrt{\sum_i (k_i s_i)^2}` is evaluated in double precision, summing over
the axes in order (:func:`nehmap.metrics._grid._euclidean`). "Exact" means that value,
bit for bit, whatever route computes it.

How
---
1. *Close points.* Integer offsets of a small ball are tried in order of :math:`E`
   (ties in lexicographic order) around every point of :math:`A`; the first offset that
   lands on :math:`B` gives the minimum, exactly. The search stops early when the offsets
   stop resolving points, which happens when the two sets are far apart.
2. *The points left*, all farther than the offsets tried, get an approximate squared
   distance :math:`\tilde D`: from a KD-tree when they are few, otherwise from the
   ``edt`` library's Euclidean distance transform (anisotropic, multi-threaded, single
   precision) of "not :math:`B`". Only points inside the array count as :math:`B`
   (``black_border`` off), so a crop is exact as long as it holds all of :math:`A` and
   :math:`B`; the callers crop to the box around both sets.
3. The true squared distance :math:`D` lies in the band
   :math:`[\tilde D (1 - \rho), \tilde D (1 + \rho) + \alpha]` (single-precision error is
   below :math:`2^{-22} D`; :math:`\rho = 4 \cdot 10^{-6}` leaves a margin of 16). The
   lengths :math:`E(k)` of all lattice offsets are tabulated once per spacing, sorted
   and without repeats (they depend only on :math:`|k_i|`, so one orthant suffices).
   When exactly one tabulated length falls in the band, it is the answer: the nearest
   offset's length is in the band, and so is that of any offset whose double-precision
   length could tie with it.
4. Points whose band holds several lengths (near-ties of different offsets, as with
   isotropic spacings that are not binary fractions) or lies beyond the table get the
   minimum of :math:`E` over the points of :math:`B` within the band's radius, found
   with a KD-tree.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache

import edt
import numpy as np
from scipy.spatial import cKDTree

from nehmap.metrics._grid import _euclidean, _extent

# Relative half-width of the band around the single-precision squared distance, and an
# absolute floor (in units of the smallest squared voxel size).
_REL = 4e-6
_ABS = 1e-9
# Most orthant offsets a length table may hold (memory: 8 bytes each while sorting).
_TABLE_LIMIT = 2_000_000
# Speed only (the results are exact either way): offsets in the stencil tried before the
# distance transform; lookups per vectorised call; the stencil stops once its last
# _PATIENCE offsets resolved under _MIN_RESOLVED of the points left; the points
# left go to a KD-tree rather than the transform when _KD_COST times their number is
# below the number of voxels.
_STENCIL_SIZE = 250
_BLOCK = 16384
_PATIENCE = 16
_MIN_RESOLVED = 0.05
_KD_COST = 200
_tables: dict[tuple[float, ...], tuple[float, np.ndarray]] = {}


def _lengths(spacing: tuple[float, ...], radius: float) -> tuple[float, np.ndarray]:
    """``(r, lengths)``: the sorted distinct lengths (mm) of all lattice offsets up to ``r``.

    ``r >= radius`` unless the table would hold more than about ``_TABLE_LIMIT``
    offsets. Tables are kept per spacing and grown geometrically up to that size.
    """
    known = _tables.get(spacing)
    if known is not None and known[0] >= radius:
        return known
    s = np.asarray(spacing, dtype=np.float64)
    radius = max(radius, 1.5 * known[0] if known else 0.0, 8.0 * float(s.max()))
    cap = (_TABLE_LIMIT * float(np.prod(s))) ** (1.0 / len(s))  # about _TABLE_LIMIT offsets
    radius = min(radius, cap)
    if known is not None and known[0] >= radius:  # already as large as allowed
        return known
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


def _tree(dst: np.ndarray, spacing: tuple[float, ...]) -> cKDTree:
    """KD-tree over grid indices ``dst`` (m, ndim) at their positions in mm."""
    points = dst * np.asarray(spacing, dtype=np.float64)
    return cKDTree(points, leafsize=32, balanced_tree=False, compact_nodes=False)


def _ball_minimum(
    src: np.ndarray, dst: np.ndarray, reach: np.ndarray, spacing: tuple[float, ...], workers: int
) -> np.ndarray:
    """Minimum of ``E(y - x)`` over the points ``y`` of ``dst`` within ``reach`` mm of each ``x``.

    ``src`` (n, ndim) and ``dst`` (m, ndim) are integer grid indices; every ball must hold
    a point of ``dst``.
    """
    s = np.asarray(spacing, dtype=np.float64)
    tree = _tree(dst, spacing)
    # A generous radius: the tree's rounding must not drop the nearest point.
    found = tree.query_ball_point(src * s, reach * (1 + 1e-9) + 1e-9, workers=workers)
    sizes = np.fromiter((len(f) for f in found), dtype=np.intp, count=len(found))
    if np.any(sizes == 0):
        raise AssertionError("nearest-surface search: a distance band held no point")
    near = dst[np.concatenate(found).astype(np.intp)]
    lengths = _euclidean(near - np.repeat(src, sizes, axis=0), spacing)
    return np.minimum.reduceat(lengths, np.concatenate([[0], np.cumsum(sizes)[:-1]]))


@lru_cache(maxsize=32)
def _stencil(spacing: tuple[float, ...], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (k, ndim) of a small ball, sorted by length (mm), then lexicographically.

    Returns ``(offsets, lengths)``. The ball is complete: every offset no longer than the
    last one is listed. It holds about ``size`` offsets.
    """
    s = np.asarray(spacing, dtype=np.float64)
    unit_ball = math.pi ** (len(s) / 2) / math.gamma(len(s) / 2 + 1)
    radius = max((size * float(np.prod(s)) / unit_ball) ** (1 / len(s)), s.max())
    reach = np.floor(radius / s).astype(int)
    grids = np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij")
    offsets = np.stack([g.ravel() for g in grids], axis=1)
    lengths = _euclidean(offsets, spacing)
    keep = lengths <= radius
    order = np.lexsort((*offsets[keep].T[::-1], lengths[keep]))
    return offsets[keep][order], lengths[keep][order]


def _indices(mask: np.ndarray) -> np.ndarray:
    """Grid indices (n, ndim) of the points of ``mask``, in C order."""
    return np.stack(np.unravel_index(np.flatnonzero(mask), mask.shape), axis=1)


def _stencil_pass(src: np.ndarray, dst: np.ndarray, spacing: tuple[float, ...]):
    """Exact distances of the points of ``src`` whose nearest point of ``dst`` is close.

    Tries the stencil's offsets in order of length: the first that lands on ``dst`` gives
    the smallest length. Returns ``(found, lengths, far)``: a mask over the points of
    ``src`` (C order), the distances of those found, and the grid indices (m, ndim) of
    the others.
    """
    offsets, lengths = _stencil(spacing, _STENCIL_SIZE)
    reach = np.abs(offsets).max(axis=0)
    pads = [(int(r), int(r)) for r in reach]
    padded = np.pad(dst, pads)
    strides = np.array(padded.strides) // padded.itemsize
    padded = padded.ravel()
    steps = offsets @ strides
    padded_src = np.pad(src, pads)
    lin = np.flatnonzero(padded_src)
    todo = np.arange(len(lin))
    hit_at = np.full(len(lin), -1)
    k, mark_k, mark_n = 0, 0, len(todo)
    while k < len(steps) and todo.size:
        # One offset per call while many points are left, several once few are.
        block = max(1, min(len(steps) - k, _BLOCK // todo.size))
        hits = padded[lin[todo, None] + steps[None, k : k + block]]
        hit = hits.any(axis=1)
        hit_at[todo[hit]] = k + hits[hit].argmax(axis=1)
        todo = todo[~hit]
        k += block
        if k - mark_k >= _PATIENCE:
            if todo.size > (1.0 - _MIN_RESOLVED) * mark_n:
                break  # the last offsets hardly resolved any: the points left are far
            mark_k, mark_n = k, todo.size
    found = hit_at >= 0
    far = np.stack(np.unravel_index(lin[~found], padded_src.shape), axis=1) - reach
    return found, lengths[hit_at[found]], far


def _transform(
    src_idx: np.ndarray, dst: np.ndarray, spacing: tuple[float, ...], workers: int
) -> np.ndarray:
    """Single-precision squared distance (mm²) from each point of ``src_idx`` to ``dst``.

    The transform runs on the box holding these points and all of ``dst``: exact, since
    every point of ``dst`` is inside it.
    """
    parallel = (os.cpu_count() or 1) if workers == -1 else workers
    extent = _extent(dst)
    assert extent is not None
    lo = np.minimum(src_idx.min(axis=0), [a for a, _ in extent])
    hi = np.maximum(src_idx.max(axis=0), [b for _, b in extent]) + 1
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    background = np.ascontiguousarray(~dst[box]).view(np.uint8)
    field = edt.edtsq(background, anisotropy=spacing, parallel=parallel)
    return field[tuple((src_idx - lo).T)].astype(np.float64)


def _exact(
    squared: np.ndarray,
    src_idx: np.ndarray,
    dst: np.ndarray,
    spacing: tuple[float, ...],
    workers: int,
) -> np.ndarray:
    """The exact distances (mm) that approximate squared distances (mm²) stand for.

    ``squared`` may come from the single-precision transform or from a KD-tree query
    (double precision, far better than the band needs).
    """
    floor = _ABS * min(spacing) ** 2
    low = np.sqrt(squared * (1.0 - _REL))
    high = np.sqrt(squared * (1.0 + _REL) + floor)
    radius, lengths = _lengths(spacing, float(high.max()))
    first = np.searchsorted(lengths, low, side="left")
    last = np.searchsorted(lengths, high, side="right")
    out = lengths[np.minimum(first, len(lengths) - 1)]
    unsure = (last - first != 1) | (high > radius)
    if unsure.any():
        out[unsure] = _ball_minimum(src_idx[unsure], _indices(dst), high[unsure], spacing, workers)
    return out


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
    found, near, far = _stencil_pass(src, dst, spacing)
    out = np.empty(len(found))
    out[found] = near
    if len(far) and _KD_COST * len(far) < dst.size:  # few left: a KD-tree is cheaper
        s = np.asarray(spacing, dtype=np.float64)
        nearest, _ = _tree(_indices(dst), spacing).query(far * s, k=1, workers=workers)
        out[~found] = _exact(nearest**2, far, dst, spacing, workers)
    elif len(far):
        out[~found] = _exact(_transform(far, dst, spacing, workers), far, dst, spacing, workers)
    return out
