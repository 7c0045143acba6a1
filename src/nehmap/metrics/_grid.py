"""Bounding boxes, crops, boundary voxels and exact voxel-offset lengths (mm).

Shared by :mod:`nehmap.metrics.surface` and :mod:`nehmap.metrics.spatial`. An extent is a
list of inclusive index ranges ``(lo, hi)``, one per array axis.
"""

from __future__ import annotations

import numpy as np


def _any_per_row(rows: np.ndarray) -> np.ndarray:
    """``rows.any(axis=1)`` for a 2D boolean array, reading 8 bytes at a time if possible."""
    if rows.flags.c_contiguous and rows.shape[1] % 8 == 0 and rows.shape[1] > 0:
        return rows.view(np.uint64).any(axis=1)
    return rows.any(axis=1)


def _extent(mask: np.ndarray) -> list[tuple[int, int]] | None:
    """Inclusive index range ``(lo, hi)`` of the foreground along each axis, or None if empty."""
    if mask.size == 0:
        return None
    if mask.ndim > 1 and mask.flags.f_contiguous and not mask.flags.c_contiguous:
        # Fortran order (as nibabel returns NIfTI data): scan the transpose, no copy.
        flipped = _extent(mask.T)
        return None if flipped is None else flipped[::-1]
    rows = _any_per_row(np.ascontiguousarray(mask).reshape(mask.shape[0], -1))
    nz = np.flatnonzero(rows)
    if nz.size == 0:
        return None
    lo, hi = int(nz[0]), int(nz[-1])
    if mask.ndim == 1:
        return [(lo, hi)]
    projection = np.logical_or.reduce(mask[lo : hi + 1], axis=0)
    rest = _extent(projection)
    assert rest is not None
    return [(lo, hi), *rest]


def _union(
    a: list[tuple[int, int]] | None, b: list[tuple[int, int]] | None
) -> list[tuple[int, int]] | None:
    """The smallest extent holding both (None stands for an empty mask)."""
    if a is None:
        return b
    if b is None:
        return a
    return [(min(x[0], y[0]), max(x[1], y[1])) for x, y in zip(a, b, strict=True)]


def _crop(mask: np.ndarray, extent: list[tuple[int, int]], margin: int) -> np.ndarray:
    """Copy of ``mask[extent]`` grown by ``margin`` voxels, zero outside the array."""
    out = np.zeros([hi - lo + 1 + 2 * margin for lo, hi in extent], dtype=bool)
    src, dst = [], []
    for (lo, hi), n in zip(extent, mask.shape, strict=True):
        a, b = max(lo - margin, 0), min(hi + margin + 1, n)
        src.append(slice(a, b))
        dst.append(slice(a - (lo - margin), b - (lo - margin)))
    out[tuple(dst)] = mask[tuple(src)]
    return out


def _voxel_boundary(box: np.ndarray) -> np.ndarray:
    """Boundary voxels ``box & ~erode(box)`` (face connectivity) of a zero-margined box.

    ``box`` must be background on its outer one-voxel layer, which makes this identical to
    an erosion that treats everything outside the original array as background.
    """
    core = (slice(1, -1),) * box.ndim
    interior = box[core].copy()
    for axis in range(box.ndim):
        for start in (0, 2):
            sl = [slice(1, -1)] * box.ndim
            sl[axis] = slice(start, start + box.shape[axis] - 2)
            interior &= box[tuple(sl)]
    boundary = box.copy()
    boundary[core] &= ~interior
    return boundary


def _euclidean(offsets: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """``sqrt(sum_i (offset_i * s_i)**2)`` in mm for integer offsets of shape (n, ndim).

    The sum runs over the axes in order, like scipy's Euclidean distance transform, so an
    offset always gives the same, bit-identical distance.
    """
    total = np.zeros(len(offsets), dtype=np.float64)
    for axis, s in enumerate(spacing):
        total += (offsets[:, axis].astype(np.float64) * s) ** 2
    return np.sqrt(total)
