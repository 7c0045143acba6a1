"""Surface elements of DeepMind's ``surface-distance`` convention, and their areas in mm².

A mask's surface lives on voxel corners: every corner whose 2x2x2 (2D: 2x2) block of
voxels is neither all background nor all foreground carries one surface element, named
by the block's neighbourhood code. :func:`_corner_codes` computes the codes of a box;
:func:`surface_element_areas` gives the area of each code's element for a spacing. The
exact definitions are in the docstring of :mod:`nehmap.metrics.surface`.
"""

from __future__ import annotations

import itertools
from functools import cache, lru_cache

import numpy as np

from nehmap.metrics._validation import check_ndim


def _corner_codes(box: np.ndarray) -> np.ndarray:
    """Neighbourhood code of every voxel corner of a zero-margined box.

    ``code[c]`` encodes the 2**ndim voxels ``box[c + delta]``, ``delta`` in {0, 1}**ndim,
    the voxel at offset ``delta`` setting bit ``2**ndim - 1 - (delta read as a binary
    number)``. The result has one element fewer than ``box`` along every axis. It is built
    one axis at a time, last axis first: pairing neighbours along an axis doubles the
    number of bits per element.
    """
    code = box.view(np.uint8)
    width = 1
    for axis in range(box.ndim - 1, -1, -1):
        lower = [slice(None)] * box.ndim
        upper = [slice(None)] * box.ndim
        lower[axis] = slice(0, -1)
        upper[axis] = slice(1, None)
        code = (code[tuple(lower)] << np.uint8(width)) | code[tuple(upper)]
        width *= 2
    return code


def _square_cycle(free_axes: tuple[int, int], fixed: dict[int, int], ndim: int):
    """The four corners of a square face of the unit cell, in cyclic order."""
    corners = []
    for u, w in ((0, 0), (0, 1), (1, 1), (1, 0)):
        c = [0] * ndim
        for axis, value in fixed.items():
            c[axis] = value
        c[free_axes[0]], c[free_axes[1]] = u, w
        corners.append(tuple(c))
    return corners


def _face_segments(cycle, marked):
    """Segments (pairs of edge midpoints) where the surface crosses one square face."""
    flags = [c in marked for c in cycle]
    count = sum(flags)
    if count in (0, 4):
        return []

    def mid(i, j):
        return tuple((a + b) / 2 for a, b in zip(cycle[i % 4], cycle[j % 4], strict=True))

    if count == 2 and flags[0] == flags[2]:  # diagonal pair: cut each marked corner off
        return [(mid(i, i - 1), mid(i, i + 1)) for i in range(4) if flags[i]]
    cuts = [mid(i, i + 1) for i in range(4) if flags[i] != flags[(i + 1) % 4]]
    return [tuple(cuts)]


def _loops(segments):
    """Chain segments that share end points into closed polygons (vertex lists)."""
    neighbours: dict[tuple, list[tuple]] = {}
    for a, b in segments:
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    loops, seen = [], set()
    for start in neighbours:
        if start in seen:
            continue
        loop, prev, cur = [start], None, start
        seen.add(start)
        while True:
            a, b = neighbours[cur]
            nxt = b if a == prev else a
            if nxt == start:
                break
            loop.append(nxt)
            seen.add(nxt)
            prev, cur = cur, nxt
        loops.append(np.array(loop, dtype=np.float64))
    return loops


def _triangulations(n: int) -> list[list[tuple[int, int, int]]]:
    """All triangulations of a polygon with vertices 0..n-1 (as vertex-index triples)."""

    @cache
    def between(i: int, j: int) -> tuple:
        if j - i < 2:
            return ((),)
        out = []
        for k in range(i + 1, j):
            for left in between(i, k):
                for right in between(k, j):
                    out.append((*left, *right, (i, k, j)))
        return tuple(out)

    return [list(t) for t in between(0, n - 1)]


def _largest_triangulation(poly: np.ndarray) -> np.ndarray:
    """Area vectors (voxel units) of the triangulation of ``poly`` with the largest area."""
    best, best_area = None, -1.0
    for tris in _triangulations(len(poly)):
        i, j, k = np.array(tris).T
        vecs = 0.5 * np.cross(poly[j] - poly[i], poly[k] - poly[i])
        area = float(np.sqrt((vecs**2).sum(axis=1)).sum())
        if area > best_area + 1e-12:
            best, best_area = vecs, area
    assert best is not None
    return best


@cache
def _surface_pieces(ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """Pieces of the surface inside the unit cell, for every neighbourhood code.

    Returns ``(codes, vectors)``: piece ``i`` belongs to code ``codes[i]``; in 3D
    ``vectors[i]`` is a triangle's area vector, in 2D a contour segment, in voxel units.
    """
    n_corners = 2**ndim
    corners = list(itertools.product((0, 1), repeat=ndim))
    if ndim == 2:
        faces = [_square_cycle((0, 1), {}, 2)]
    else:
        faces = []
        for axis in range(3):
            free = tuple(a for a in range(3) if a != axis)
            for value in (0, 1):
                faces.append(_square_cycle(free, {axis: value}, 3))
    codes, vectors = [], []
    for code in range(2**n_corners):
        inside = {c for i, c in enumerate(corners) if code >> (n_corners - 1 - i) & 1}
        marked = inside if 2 * len(inside) <= n_corners else set(corners) - inside
        segments = [s for face in faces for s in _face_segments(face, marked)]
        if ndim == 2:
            pieces = [np.subtract(b, a) for a, b in segments]
        else:
            pieces = [v for poly in _loops(segments) for v in _largest_triangulation(poly)]
        codes.extend([code] * len(pieces))
        vectors.extend(pieces)
    codes_arr = np.array(codes, dtype=np.intp)
    vectors_arr = np.array(vectors, dtype=np.float64).reshape(-1, ndim)
    codes_arr.setflags(write=False)
    vectors_arr.setflags(write=False)
    return codes_arr, vectors_arr


@lru_cache(maxsize=64)
def surface_element_areas(spacing: tuple[float, ...]) -> np.ndarray:
    """Area in mm² (2D: length in mm) of the surface element of every neighbourhood code.

    Parameters
    ----------
    spacing : tuple of float
        Voxel size in mm per axis (2 or 3 values).

    Returns
    -------
    numpy.ndarray of float64, shape (256,) in 3D or (16,) in 2D
        Indexed by the neighbourhood code described in the module docstring; entries 0
        and all-ones are 0. The array is read-only.
    """
    ndim = len(spacing)
    check_ndim(ndim, (2, 3), "surface_elements")
    codes, vectors = _surface_pieces(ndim)
    s = np.asarray(spacing, dtype=np.float64)
    scale = s if ndim == 2 else np.array([s[1] * s[2], s[0] * s[2], s[0] * s[1]])
    measures = np.sqrt(((vectors * scale) ** 2).sum(axis=1))
    table = np.bincount(codes, weights=measures, minlength=2 ** (2**ndim))
    table.setflags(write=False)
    return table
