r"""Exact distances (mm) from one set of grid points to the nearest point of another.

For point sets :math:`A, B` on one grid with spacing :math:`s` (mm per axis), the
distance of :math:`x \in A` is :math:`\min_{y \in B} E(y - x)`, where
:math:`E(k) = \sqrt{\sum_i (k_i s_i)^2}` is evaluated in double precision, summing over
the axes in order (:func:`nehmap.metrics._grid._euclidean`). "Exact" means that value,
bit for bit, whatever route computes it.

How
---
1. :func:`nehmap.metrics._query_edt.squared_distances` gives every point of :math:`A` an
   approximate squared distance :math:`\tilde D` to :math:`B`, in double precision with
   an error below a bound :math:`h` (:func:`~nehmap.metrics._query_edt.error_bound`).
   Only points inside the array count as :math:`B`, so a crop is exact as long as it
   holds all of :math:`A` and :math:`B`; the callers crop to the box around both sets.
2. The true squared distance :math:`D` lies in the band
   :math:`[\tilde D - h, \tilde D + h]`. Where every voxel size is a short binary
   fraction (1, 0.9375, 2, 0.5 mm...), every squared offset length is a whole number of
   one unit :math:`u` (a power of two, see :func:`_lattice_unit`), exactly in double
   precision, and :math:`h < u/4`: :math:`D` is then :math:`\tilde D` rounded to whole
   units, and :math:`\sqrt{D}` the distance. Otherwise the lengths :math:`E(k)` of all
   lattice offsets
   are tabulated once per spacing, sorted and without repeats (they depend only on
   :math:`|k_i|`, so one orthant suffices). When exactly one tabulated length falls in
   the band, it is the answer: the nearest offset's length is in the band, and so is
   that of any offset whose double-precision length could tie with it.
3. Points whose band holds several lengths (near-ties of different offsets, as with
   spacings that are not binary fractions) or lies beyond the table get the minimum of
   :math:`E` over the points of :math:`B` within the band's radius, found with a
   KD-tree.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial import cKDTree

from nehmap.metrics._grid import _euclidean

# Most orthant offsets a length table may hold (memory: 8 bytes each while sorting).
_TABLE_LIMIT = 2_000_000
# Tables longer than this (8 bytes a length) are searched with sorted keys.
_SORT_KEYS_ABOVE = 16_384
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


def _lattice_unit(spacing: tuple[float, ...], shape: tuple[int, ...]) -> float | None:
    r"""A power of two ``u`` (mm²) of which every squared offset length on a grid of this
    shape is a whole multiple, held exactly in double precision with all its partial
    sums; None where no such ``u`` exists (spacings such as 0.7 or 1.2 mm, which are not
    binary fractions).

    With ``s_i = p_i / q_i`` (``q_i`` a power of two) and ``q = max q_i``,
    :math:`\sum_i (k_i s_i)^2 = u \sum_i (k_i p_i q / q_i)^2` with ``u = 1 / q**2``:
    exact while the whole-number sum stays below ``2**53`` for offsets ``|k_i| < n_i``.
    """
    ratios = [float(step).as_integer_ratio() for step in spacing]
    q = max(den for _, den in ratios)
    largest = sum((n * num * (q // den)) ** 2 for n, (num, den) in zip(shape, ratios, strict=True))
    return 1.0 / float(q) ** 2 if largest < 2**53 else None


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


def _indices(mask: np.ndarray) -> np.ndarray:
    """Grid indices (n, ndim) of the points of ``mask``, in C order."""
    return np.stack(np.unravel_index(np.flatnonzero(mask), mask.shape), axis=1)


def _exact(
    squared: np.ndarray,
    half_width: float,
    src_idx: np.ndarray,
    dst: np.ndarray,
    spacing: tuple[float, ...],
    workers: int,
) -> np.ndarray:
    """The exact distances (mm) that squared distances (mm²) known to ``half_width`` mean."""
    unit = _lattice_unit(spacing, dst.shape)
    if unit is not None and half_width < unit / 4:
        # Every squared offset length is a whole number of units, exactly in double
        # precision: the nearest whole number is the true minimum, its root the distance.
        count = np.rint(squared / unit)
        if np.all(np.abs(squared - count * unit) <= half_width):
            return np.sqrt(count * unit)
    low = np.sqrt(np.maximum(squared - half_width, 0.0))
    high = np.sqrt(squared + half_width)
    radius, table = _lengths(spacing, float(high.max()))
    lengths = table[: np.searchsorted(table, high.max(), side="right") + 1]  # those in reach
    # Speed only: once the table outgrows the CPU's cache, keys in increasing order let
    # the binary searches walk it in order (the sort costs less than the cache misses).
    order = np.argsort(squared) if len(lengths) > _SORT_KEYS_ABOVE else None
    if order is not None:
        low, high = low[order], high[order]
    first = np.searchsorted(lengths, low, side="left")
    last = np.searchsorted(lengths, high, side="right")
    found = lengths[np.minimum(first, len(lengths) - 1)]
    unsure = (last - first != 1) | (high > radius)
    if unsure.any():
        where = np.flatnonzero(unsure) if order is None else order[unsure]
        found[unsure] = _ball_minimum(src_idx[where], _indices(dst), high[unsure], spacing, workers)
    if order is None:
        return found
    out = np.empty_like(found)
    out[order] = found
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
    # Imported here: Numba's import costs ~0.3 s, which `import nehmap.metrics` need not pay.
    from nehmap.metrics._query_edt import error_bound, squared_distances

    src_idx = _indices(src)
    if len(src_idx) == 0:
        return np.empty(0)
    squared = squared_distances(dst, src_idx, spacing, workers)
    return _exact(squared, error_bound(dst.shape, spacing), src_idx, dst, spacing, workers)
