r"""Spatial relations between two masks on one grid, in mm and mm³.

Typical use: mask ``a`` is the pre-operative NEH (non-enhancing hypercellular tumour)
warped onto the recurrence scan, mask ``b`` the enhancing tumour of the recurrence. The
functions answer "how far is ``a`` from the edge of ``b``", "how much of ``a`` lies near
that edge" and "how much do the two overlap".

Definitions
-----------
Voxels are points at their centres, :math:`x \odot s` in mm for integer index
:math:`x` and spacing :math:`s`. The *edge* of ``b`` is its set of boundary voxels,
:math:`\partial B = B \setminus \mathrm{erode}(B)` with the face-connected structuring
element and everything outside the array counted as background (the ``"voxels"``
convention of :mod:`nehmap.metrics.surface`). The edge distance of a voxel :math:`x` is

.. math:: e(x) = \min_{y \in \partial B} \lVert (x - y) \odot s \rVert_2 \ \ge 0,

measured the same way whether :math:`x` lies outside ``b``, on its edge (:math:`e = 0`)
or deep inside it: it is the distance *to the edge*, not a signed distance.

* :func:`mean_edge_distance`: :math:`\frac{1}{|A|}\sum_{x \in A} e(x)` in mm.
* :func:`fraction_near_edge`: :math:`|\{x \in A: e(x) \le r\}| / |A|`.
* :func:`volume_containment`: :math:`|A \cap B|\,\prod_i s_i` in mm³ and
  :math:`|A \cap B| / \min(|A|, |B|)`.
* :func:`fraction_inside`: :math:`|A \cap B| / |A|`.

Parameters shared by all
------------------------
``a``, ``b``: masks on the same voxel grid (array_like of bool or {0, 1}, any number of
dimensions >= 1). ``spacing``: voxel size in mm along each array axis, in array-axis
order. ``workers``: threads for the KD-tree query (-1: all cores). Every function raises
``ValueError`` if the masks are not binary or differ in shape, or the spacing is invalid.

Empty masks
-----------
When ``a`` or ``b`` is empty the relation is undefined and every function returns NaN
(both fields of :func:`volume_containment` included), so that such cases drop out of
averages instead of counting as 0. Use ``numpy.nan_to_num`` where 0 is wanted.

The computations are local: only the bounding box of the two masks is cropped out, and the
edge distances come from a KD-tree over the edge voxels of ``b`` queried with the voxels
of ``a``; distances are then recomputed from the integer voxel offsets so that equal
offsets always give bit-identical distances.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy.spatial import cKDTree

from nehmap.metrics._grid import _crop, _euclidean, _extent, _union, _voxel_boundary
from nehmap.metrics._validation import check_nonnegative, check_pair, check_spacing, check_workers

__all__ = [
    "VolumeContainment",
    "fraction_inside",
    "fraction_near_edge",
    "mean_edge_distance",
    "volume_containment",
]


class VolumeContainment(NamedTuple):
    """Overlap of two masks (see :func:`volume_containment`).

    Attributes
    ----------
    overlap_mm3 : float
        Volume of the intersection in mm³.
    fraction_of_smaller : float
        Intersection volume divided by the volume of the smaller mask, in [0, 1].
    """

    overlap_mm3: float
    fraction_of_smaller: float


def _pair(a: ArrayLike, b: ArrayLike, spacing: object) -> tuple[np.ndarray, np.ndarray, tuple]:
    a_, b_ = check_pair(a, b, ("a", "b"))
    if a_.ndim == 0:
        raise ValueError("a and b must be arrays with at least one axis, got scalars.")
    return a_, b_, check_spacing(spacing, a_.ndim)


def _edge_distances(
    a: np.ndarray,
    b: np.ndarray,
    spacing: tuple[float, ...],
    workers: int,
    upper_mm: float | None = None,
) -> np.ndarray | None:
    """Edge distance (mm) of every voxel of ``a`` to the edge of ``b``; None if one is empty.

    With ``upper_mm``, distances beyond it are returned as ``inf`` (faster).
    """
    extent_a, extent_b = _extent(a), _extent(b)
    if extent_a is None or extent_b is None:
        return None
    extent = _union(extent_a, extent_b)
    assert extent is not None
    box_a, box_b = _crop(a, extent, 1), _crop(b, extent, 1)
    edge = np.stack(np.nonzero(_voxel_boundary(box_b)), axis=1)
    points = np.stack(np.nonzero(box_a), axis=1)
    s = np.asarray(spacing, dtype=np.float64)
    tree = cKDTree(edge * s)
    # A slightly generous bound: the tree's own rounding must not drop a voxel whose exact
    # distance equals upper_mm; the exact comparison is made by the caller.
    bound = np.inf if upper_mm is None else upper_mm * (1 + 1e-9) + 1e-12
    _, nearest = tree.query(points * s, k=1, distance_upper_bound=bound, workers=workers)
    found = nearest < len(edge)
    out = np.full(len(points), np.inf)
    out[found] = _euclidean(edge[nearest[found]] - points[found], spacing)
    return out


def mean_edge_distance(
    a: ArrayLike, b: ArrayLike, spacing: tuple[float, ...], *, workers: int = 1
) -> float:
    """Mean distance in mm from the voxels of ``a`` to the edge of ``b``.

    Every voxel of ``a`` counts with the Euclidean distance from its centre to the nearest
    boundary-voxel centre of ``b``. Voxels of ``a`` inside ``b`` count too, with their
    (non-negative) distance to ``b``'s edge; voxels on the edge count 0. Parameters and
    errors: see the module documentation.

    Returns
    -------
    float
        Mean edge distance in mm (>= 0); NaN when ``a`` or ``b`` is empty.
    """
    a_, b_, s = _pair(a, b, spacing)
    d = _edge_distances(a_, b_, s, check_workers(workers))
    return math.nan if d is None else float(d.mean())


def fraction_near_edge(
    a: ArrayLike,
    b: ArrayLike,
    spacing: tuple[float, ...],
    within_mm: float = 5.0,
    *,
    workers: int = 1,
) -> float:
    """Share of the voxels of ``a`` lying within ``within_mm`` of the edge of ``b``.

    A voxel counts when its edge distance is ``<= within_mm`` (mm), inside or outside
    ``b`` alike. Other parameters and errors: see the module documentation; a negative
    ``within_mm`` raises ``ValueError`` too.

    Returns
    -------
    float
        In [0, 1]; NaN when ``a`` or ``b`` is empty.
    """
    a_, b_, s = _pair(a, b, spacing)
    r = check_nonnegative(within_mm, "within_mm")
    d = _edge_distances(a_, b_, s, check_workers(workers), upper_mm=r)
    return math.nan if d is None else float(np.count_nonzero(d <= r) / d.size)


def volume_containment(a: ArrayLike, b: ArrayLike, spacing: tuple[float, ...]) -> VolumeContainment:
    """Overlap volume of ``a`` and ``b`` and its share of the smaller mask.

    Parameters and errors: see the module documentation.

    Returns
    -------
    VolumeContainment
        ``overlap_mm3`` = |a & b| times the voxel volume (mm³) and
        ``fraction_of_smaller`` = |a & b| / min(|a|, |b|); both NaN when ``a`` or ``b`` is
        empty.
    """
    a_, b_, s = _pair(a, b, spacing)
    n_a, n_b = int(np.count_nonzero(a_)), int(np.count_nonzero(b_))
    if n_a == 0 or n_b == 0:
        return VolumeContainment(math.nan, math.nan)
    n_ab = int(np.count_nonzero(a_ & b_))
    return VolumeContainment(n_ab * math.prod(s), n_ab / min(n_a, n_b))


def fraction_inside(a: ArrayLike, b: ArrayLike) -> float:
    """Share of the voxels of ``a`` that lie inside ``b``: |a & b| / |a|.

    Masks as in the module documentation (no spacing needed); ``ValueError`` if they are
    not binary or differ in shape.

    Returns
    -------
    float
        In [0, 1]; NaN when ``a`` or ``b`` is empty.
    """
    a_, b_ = check_pair(a, b, ("a", "b"))
    n_a, n_b = int(np.count_nonzero(a_)), int(np.count_nonzero(b_))
    if n_a == 0 or n_b == 0:
        return math.nan
    return int(np.count_nonzero(a_ & b_)) / n_a
