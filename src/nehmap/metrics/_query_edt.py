r"""Squared Euclidean distances (mm²) from chosen grid points to a set of seed points.

A Euclidean distance transform gives *every* voxel of a box its distance to the nearest
seed, at a cost that grows with the box. Surface metrics need the distance at the
surface points of the other mask only, a few per cent of the box. This module computes
the same separable transform (Felzenszwalb and Huttenlocher's lower envelope of
parabolas, as scipy's and the ``edt`` library's) but only as far as those points need:

1. *Along axis 1*, only in the planes ``i`` that hold a seed: the squared distance to
   the nearest seed of each column ``(i, :, k)``, by a forward and a backward sweep.
2. *Along axis 2*, in the same planes and only in the rows ``j`` where a query lies: the
   lower envelope of the parabolas :math:`s_2^2 (k - k')^2 + g_1(i, j, k')` over the
   finite :math:`g_1(i, j, k')`, evaluated at every ``k`` of the box. After this pass,
   ``g_2(i, j, k)`` is the squared distance from voxel ``(i, j, k)`` to the nearest seed
   *in plane i*.
3. *Along axis 0*, only at the query points: :math:`\min_i s_0^2 (i_0 - i)^2 +
   g_2(i, j_0, k_0)`, searched outwards from the query's own plane and stopped once
   :math:`s_0^2 (i_0 - i)^2` alone exceeds the best value found.

The first two passes cost in proportion to the planes that hold seeds, the last in
proportion to the queries; no pass touches the box's empty planes. On the far-apart
pairs of ``benchmarks/bench_metrics.py`` this is 3-4 times faster than the ``edt``
library's transform of the whole box on one thread, with the same values (the tests
compare both, and scipy's, with a brute-force search).

Arithmetic is in double precision. The result is the exact squared distance up to an
error below :func:`error_bound` (rounding of the sums, and of the envelope's breakpoints
where two parabolas all but tie); :mod:`nehmap.metrics._nearest` turns it into the exact
distance. The kernels are compiled by Numba on first use (cached on disk afterwards) and
release the GIL, so ``workers`` threads share the planes, then the queries.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

# Largest rounding error as a fraction of the box's squared diagonal (see error_bound).
# A breakpoint of the envelope misplaced by rounding costs at most 8 n eps of it for n
# voxels along the axis: 9e-13 at n = 1000 (a margin of over 100), 9e-12 at n = 10**4.
_ERROR_PER_DIAGONAL = 1e-10


@njit(cache=True, nogil=True)
def _envelope(f: np.ndarray, weight: float, out: np.ndarray, v: np.ndarray, z: np.ndarray):
    """``out[x] = min_q weight (x - q)² + f[q]`` over the finite ``f[q]`` (else inf)."""
    n = f.shape[0]
    k = -1
    for q in range(n):
        fq = f[q]
        if fq == np.inf:
            continue
        s = -np.inf
        while k >= 0:
            p = v[k]
            s = ((fq + weight * q * q) - (f[p] + weight * p * p)) / (2.0 * weight * (q - p))
            if s <= z[k]:
                k -= 1
            else:
                break
        k += 1
        v[k] = q
        z[k] = s if k > 0 else -np.inf
        z[k + 1] = np.inf
    if k < 0:
        out[:] = np.inf
        return
    k = 0
    for x in range(n):
        while z[k + 1] < x:
            k += 1
        d = x - v[k]
        out[x] = weight * d * d + f[v[k]]


@njit(cache=True, nogil=True)
def _plane_distances(seeds, g, needed_rows, w1, w2, first, stop):
    """Passes 1 and 2 for planes ``first <= i < stop``: ``g[i, j]`` becomes the squared
    distance to the nearest seed in plane ``i`` (inf where the plane holds none), in the
    rows ``j`` that hold a query (``needed_rows[j]``); pass 3 reads no other row."""
    n1, n2 = seeds.shape[1], seeds.shape[2]
    line = np.empty(n2)
    v = np.empty(n2, np.int64)
    z = np.empty(n2 + 1)
    last = np.empty(n2, np.int64)
    for i in range(first, stop):
        # Pass 1 along axis 1, all columns k at once (memory order): forward, backward.
        last[:] = -1
        for j in range(n1):
            for k in range(n2):
                if seeds[i, j, k]:
                    last[k] = j
                if last[k] >= 0:
                    d = j - last[k]
                    g[i, j, k] = w1 * d * d
        if not np.any(last >= 0):
            continue  # no seed in this plane
        last[:] = -1
        for j in range(n1 - 1, -1, -1):
            for k in range(n2):
                if seeds[i, j, k]:
                    last[k] = j
                if last[k] >= 0:
                    d = last[k] - j
                    value = w1 * d * d
                    if value < g[i, j, k]:
                        g[i, j, k] = value
        # Pass 2 along axis 2, row by row.
        for j in range(n1):
            if needed_rows[j]:
                line[:] = g[i, j]
                _envelope(line, w2, g[i, j], v, z)


@njit(cache=True, nogil=True)
def _query_distances(g, queries, w0, out, first, stop):
    """Pass 3 for queries ``first <= q < stop``: the minimum over the planes of
    ``w0 (i0 - i)² + g[i, j0, k0]``, searched outwards from ``i0``."""
    n0 = g.shape[0]
    for q in range(first, stop):
        i0, j0, k0 = queries[q, 0], queries[q, 1], queries[q, 2]
        best = np.inf
        t = 0
        while w0 * t * t < best and (i0 - t >= 0 or i0 + t < n0):
            if 0 <= i0 - t < n0:
                value = w0 * t * t + g[i0 - t, j0, k0]
                if value < best:
                    best = value
            if t > 0 and 0 <= i0 + t < n0:
                value = w0 * t * t + g[i0 + t, j0, k0]
                if value < best:
                    best = value
            t += 1
        out[q] = best


def _chunks(n: int, parts: int) -> list[tuple[int, int]]:
    edges = np.linspace(0, n, parts + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def _run(kernel, n: int, workers: int, *args) -> None:
    """Run ``kernel(*args, first, stop)`` over ``range(n)`` split among ``workers`` threads."""
    parts = _chunks(n, max(1, min(workers, n)))
    if len(parts) <= 1:
        for first, stop in parts:
            kernel(*args, first, stop)
        return
    with ThreadPoolExecutor(len(parts)) as pool:
        for job in [pool.submit(kernel, *args, a, b) for a, b in parts]:
            job.result()


def error_bound(shape: tuple[int, ...], spacing: tuple[float, ...]) -> float:
    """Largest error (mm²) of :func:`squared_distances` on a box of this shape and spacing.

    A fixed fraction of the box's squared diagonal in mm² (every intermediate value of
    the transform is below it).
    """
    diagonal = sum((n * s) ** 2 for n, s in zip(shape, spacing, strict=True))
    return _ERROR_PER_DIAGONAL * diagonal


def squared_distances(
    seeds: np.ndarray, queries: np.ndarray, spacing: tuple[float, ...], workers: int = 1
) -> np.ndarray:
    """Squared distance (mm²) from each query point to the nearest seed.

    Parameters
    ----------
    seeds : numpy.ndarray of bool, shape (X, Y, Z) or (X, Y)
        The seed points; at least one must be set. Points outside the array are not
        seeds.
    queries : numpy.ndarray of int, shape (n, ndim)
        Grid indices of the query points, inside the array.
    spacing : tuple of float
        Grid step in mm per axis.
    workers : int, default 1
        Threads (-1: all cores).

    Returns
    -------
    numpy.ndarray of float64, shape (n,)
        Within :func:`error_bound` of the exact squared distance.
    """
    if seeds.ndim == 2:  # a single plane of a 3D box
        seeds, spacing = seeds[None], (1.0, *spacing)
        queries = np.column_stack([np.zeros(len(queries), dtype=np.int64), queries])
    threads = (os.cpu_count() or 1) if workers == -1 else workers
    planes = np.flatnonzero(seeds.reshape(seeds.shape[0], -1).any(axis=1))
    lo, hi = int(planes[0]), int(planes[-1]) + 1
    slab = np.ascontiguousarray(seeds[lo:hi])
    g = np.full(slab.shape, np.inf)
    w0, w1, w2 = (float(s) ** 2 for s in spacing)
    needed_rows = np.zeros(seeds.shape[1], dtype=bool)
    needed_rows[queries[:, 1]] = True
    _run(_plane_distances, hi - lo, threads, slab, g, needed_rows, w1, w2)
    shifted = np.array(queries, dtype=np.int64, order="C")  # a copy: the caller's stays
    shifted[:, 0] -= lo  # query planes outside the slab still search it
    out = np.empty(len(queries))
    _run(_query_distances, len(queries), threads, g, shifted, w0, out)
    return out
