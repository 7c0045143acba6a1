r"""Surface-distance metrics of two binary masks, in mm: HD95, Hausdorff, ASSD, surface Dice.

All distances are physical: ``spacing`` gives the voxel size in mm along each array axis
(in array-axis order), so anisotropic voxels are handled exactly. Two conventions for
"the surface of a mask" are implemented. Both are exact re-implementations of widely used
reference code; the section "Computation" below says how they are computed.

Convention ``method="voxels"`` (the MONAI 1.6 defaults)
-------------------------------------------------------
*Surface points.* The boundary voxels of a mask :math:`M` are
:math:`\partial M = M \setminus \mathrm{erode}(M)`, the erosion using the 6-connected
(in 2D: 4-connected) structuring element and treating everything outside the array as
background. A foreground voxel is therefore a boundary voxel when one of its face
neighbours is background *or lies outside the array*: a mask touching the array edge has
boundary voxels on that edge. (MONAI crops both masks to the bounding box of their union
grown by one voxel, zero-padding where that box leaves the array, and erodes with
``scipy.ndimage.binary_erosion``, whose border value is 0; this is the same set.) Each
boundary voxel is represented by its centre.

*Distances.* For every boundary voxel of the prediction, the Euclidean distance in mm
to the nearest boundary voxel centre of the reference,
:math:`d(x, \partial R) = \min_{y \in \partial R} \lVert (x - y) \odot s \rVert_2`,
and vice versa.

*HD (percentile).* With :math:`D_{PR}` the distances from :math:`\partial P` to
:math:`\partial R` and :math:`D_{RP}` the reverse,
:math:`\mathrm{HD}_q = \max(Q_q(D_{PR}), Q_q(D_{RP}))`, where :math:`Q_q` is the
percentile with linear interpolation between order statistics (numpy's and torch's
default): for sorted :math:`d_{(0)} \le \dots \le d_{(n-1)}` and :math:`h = (n-1)q/100`,
:math:`Q_q = d_{(\lfloor h \rfloor)} + (h - \lfloor h \rfloor)(d_{(\lceil h \rceil)} -
d_{(\lfloor h \rfloor)})`. HD95 uses :math:`q = 95`; the Hausdorff distance is
:math:`q = 100`, the maximum.

*Surface Dice at tolerance* :math:`\tau`:
:math:`(|\{d \in D_{PR}: d \le \tau\}| + |\{d \in D_{RP}: d \le \tau\}|) /
(|D_{PR}| + |D_{RP}|)`, i.e. every boundary voxel counts once. The comparison is
``<=`` and, as in MONAI, is made in single precision (both the distance and
:math:`\tau` are rounded to float32), so a distance that equals the tolerance up to
rounding counts as within it.

*ASSD*: the mean of all distances in :math:`D_{PR} \cup D_{RP}`.

Convention ``method="surface_elements"`` (DeepMind's ``surface-distance``)
---------------------------------------------------------------------------
*Surface elements.* The surface lives on voxel *corners*. For each corner, the 2x2x2
(2D: 2x2) block of voxels around it gives an 8-bit (2D: 4-bit) neighbourhood code, the
voxel at block offset :math:`\delta \in \{0,1\}^n` setting bit
:math:`2^n - 1 - \sum_i \delta_i 2^{n-1-i}`; voxels outside the array count as
background. A corner whose code is neither 0 nor all-ones carries a surface element.
Its area (2D: length) in mm² is the measure of the marching-cubes (2D: marching-squares)
surface inside that block, with vertices at the midpoints of the block edges whose two
voxels differ, computed for the given spacing:

* the polygon pieces follow the face crossings; on a face with two diagonally opposite
  marked corners the marked corners are cut off separately, where "marked" means the
  foreground corners when at most half of the block's corners are foreground and the
  background corners otherwise (so a code with more than half of its corners in the
  foreground gets the surface of its complement);
* each polygon is split into the triangles that give the largest total area in voxel
  units (this choice, derived here rather than tabulated, reproduces the reference's
  area table for all 256 codes and any spacing, to rounding; the tests check it);
* a triangle with area vector :math:`a = \tfrac12 (v_1 - v_0) \times (v_2 - v_0)` in
  voxel units has area :math:`\lVert (a_0 s_1 s_2,\ a_1 s_0 s_2,\ a_2 s_0 s_1) \rVert`
  in mm² (a 2D segment :math:`v` has length :math:`\lVert v \odot s \rVert`), and the
  element's area is the sum over its triangles.

*Distances* are between corner points, with the same Euclidean formula as above.

*HD (percentile)*: per direction, the elements are sorted by distance and the distance of
the first element whose cumulative area fraction reaches :math:`q/100` is taken (no
interpolation); :math:`\mathrm{HD}_q` is the larger of the two directions.

*Surface Dice at tolerance* :math:`\tau`: the area of both surfaces lying within
:math:`\tau` (``<=``, double precision) of the other surface, divided by the total area of
both surfaces. *ASSD* is the area-weighted mean distance over both surfaces.

Empty masks
-----------
The reference implementations return NaN or infinity here; nehmap uses fixed values:

* both masks empty: HD95 = Hausdorff = ASSD = 0 mm and surface Dice = 1;
* exactly one empty: surface Dice = 0 and the distances are NaN, or ``empty_penalty``
  (e.g. 373.13 mm, the diagonal of the 240x240x155 BraTS grid) when one is given.

Computation
-----------
Both masks are cropped to the bounding box of their union, grown by one background voxel
(the outside of the array is background in both conventions, so the grown box sees the
same surfaces as the whole array). The surface points of each mask (boundary-voxel
centres, or surface-element corners) are found in that box. The distance from each
surface point of one mask to the nearest surface point of the other comes from
:mod:`nehmap.metrics._nearest`, once in each direction: a Euclidean distance transform
of the other's surface points, computed only where these points need it
(:mod:`nehmap.metrics._query_edt`: the planes that hold the other's points, then the
points themselves), gives each distance to within a known rounding bound, and the exact
value is then read off the table of lattice-offset lengths (a KD-tree settles near-ties).
On one thread this costs about 15-35 ms on a BraTS-size pair, close or centimetres apart
(``benchmarks/bench_metrics.py``).

*The crop is exact.* A distance transform gives each grid point the distance to the
nearest *marked* point of its array: only the surface points of the other mask are
marked, and they all lie in the box, so the minimum over the box is the minimum over the
whole grid (the KD-tree holds the same points). Nothing outside the box is needed,
because no distance is measured to the background (a transform of a mask's complement,
as for signed distances, would need the true background around the box; this one does
not). The tests compare cropped results with an all-pairs computation on the uncropped
grid.

*The values are exact.* Every distance is :math:`\sqrt{\sum_i (k_i s_i)^2}` in double
precision for the nearest integer offset :math:`k`, the same number a brute-force search
gives (ties between offsets included): the transform only selects the candidate
lengths, see :mod:`nehmap.metrics._nearest`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from nehmap.metrics._grid import _crop, _extent, _union, _voxel_boundary
from nehmap.metrics._nearest import nearest_distances
from nehmap.metrics._surfels import _corner_codes, surface_element_areas
from nehmap.metrics._validation import (
    check_empty_penalty,
    check_ndim,
    check_nonnegative,
    check_pair,
    check_percentile,
    check_spacing,
    check_workers,
)

__all__ = [
    "METHODS",
    "SurfaceMetrics",
    "average_surface_distance",
    "hausdorff",
    "hd95",
    "surface_dice",
    "surface_element_areas",
    "surface_metrics",
]

METHODS: tuple[str, ...] = ("voxels", "surface_elements")
"""The two surface conventions, see the module docstring."""


@dataclass(frozen=True)
class _Directed:
    """Distances (mm) of one direction in increasing order, with each point's weight."""

    values: np.ndarray
    weights: np.ndarray

    @classmethod
    def of(cls, distances: np.ndarray, weights: np.ndarray) -> _Directed:
        order = np.argsort(distances, kind="stable")
        return cls(distances[order], weights[order])


def _linear_percentile(d: _Directed, q: float) -> float:
    """Percentile with linear interpolation between order statistics (numpy's default)."""
    n = len(d.values)
    h = (n - 1) * (q / 100.0)
    lo = math.floor(h)
    a, b = float(d.values[lo]), float(d.values[min(lo + 1, n - 1)])
    t = h - lo
    return a + (b - a) * t if t < 0.5 else b - (b - a) * (1.0 - t)


def _area_percentile(d: _Directed, q: float) -> float:
    """Distance of the first element whose cumulative area fraction reaches ``q`` %."""
    cum = np.cumsum(d.weights) / np.sum(d.weights)
    idx = int(np.searchsorted(cum, q / 100.0))
    return float(d.values[min(idx, len(d.values) - 1)])


def _within(d: _Directed, tolerance: float, single_precision: bool) -> float:
    """Total weight of the points whose distance is within ``tolerance`` (``<=``)."""
    if single_precision:
        ok = d.values.astype(np.float32) <= np.float32(tolerance)
    else:
        ok = d.values <= tolerance
    return float(d.weights[ok].sum())


@dataclass(frozen=True)
class SurfaceMetrics:
    """Surface-distance metrics of one pair of masks (see :func:`surface_metrics`).

    Attributes
    ----------
    hd_percentile : float
        Percentile Hausdorff distance in mm at ``percentile`` (the HD95 by default).
    hausdorff : float
        Hausdorff distance (maximum) in mm.
    assd : float
        Average symmetric surface distance in mm.
    surface_dice : float
        Surface Dice at ``tolerance_mm``, in [0, 1].
    percentile : float
        The percentile used for ``hd_percentile``.
    tolerance_mm : float
        The tolerance used for ``surface_dice``.
    method : str
        The surface convention, ``"voxels"`` or ``"surface_elements"``.
    """

    hd_percentile: float
    hausdorff: float
    assd: float
    surface_dice: float
    percentile: float = 95.0
    tolerance_mm: float = 2.0
    method: str = "voxels"

    @property
    def hd95(self) -> float:
        """The HD95 in mm (only when ``percentile`` is 95)."""
        if self.percentile != 95.0:
            raise AttributeError(
                f"these metrics were computed with percentile={self.percentile}; "
                "use `hd_percentile`."
            )
        return self.hd_percentile


def _check_method(method: object) -> str:
    if method not in METHODS:
        raise ValueError(
            f"method must be one of {METHODS} ('voxels': MONAI's boundary-voxel "
            f"convention; 'surface_elements': DeepMind surface-distance's), got {method!r}."
        )
    return str(method)


def surface_metrics(
    pred: ArrayLike,
    ref: ArrayLike,
    spacing: tuple[float, ...],
    tolerance_mm: float = 2.0,
    method: str = "voxels",
    percentile: float = 95.0,
    empty_penalty: float | None = None,
    *,
    workers: int = 1,
) -> SurfaceMetrics:
    """Percentile Hausdorff, Hausdorff, ASSD and surface Dice from one distance computation.

    Parameters
    ----------
    pred, ref : array_like of bool or {0, 1}, shape (X, Y, Z) or (X, Y)
        Predicted and reference masks on the same voxel grid.
    spacing : tuple of float
        Voxel size in mm along each array axis, in array-axis order.
    tolerance_mm : float, default 2.0
        Surface-Dice tolerance in mm (distances ``<=`` it count as agreeing).
    method : {"voxels", "surface_elements"}, default "voxels"
        Surface convention: ``"voxels"`` reproduces MONAI's ``compute_hausdorff_distance``
        and ``compute_surface_dice`` (boundary voxels); ``"surface_elements"`` reproduces
        DeepMind's ``surface-distance`` (area-weighted corner surface elements). See the
        module docstring for the exact definitions.
    percentile : float, default 95
        Percentile of the surface distances used for ``hd_percentile``, in [0, 100].
        (MONAI reads ``percentile=0`` as "no percentile" and returns the maximum; nehmap
        returns the 0th percentile, the smallest distance.)
    empty_penalty : float or None, default None
        Distance in mm reported when exactly one mask is empty; NaN when None.
    workers : int, default 1
        Threads for the distance transforms (-1: all cores).

    Returns
    -------
    SurfaceMetrics
        Both masks empty: distances 0 mm, surface Dice 1. Exactly one empty: distances
        NaN (or ``empty_penalty``), surface Dice 0.

    Raises
    ------
    ValueError
        On masks that are not binary, not 2D/3D or of different shapes, a spacing of the
        wrong length or with non-positive values, a negative tolerance, a percentile
        outside [0, 100] or an unknown method.
    """
    p, r = check_pair(pred, ref)
    check_ndim(p.ndim, (2, 3), "surface metrics")
    s = check_spacing(spacing, p.ndim)
    tol = check_nonnegative(tolerance_mm, "tolerance_mm")
    method = _check_method(method)
    q = check_percentile(percentile)
    penalty = check_empty_penalty(empty_penalty)
    workers = check_workers(workers)

    extent_p, extent_r = _extent(p), _extent(r)
    if extent_p is None or extent_r is None:
        if extent_p is None and extent_r is None:
            return SurfaceMetrics(0.0, 0.0, 0.0, 1.0, q, tol, method)
        return SurfaceMetrics(penalty, penalty, penalty, 0.0, q, tol, method)
    extent = _union(extent_p, extent_r)
    assert extent is not None
    box_p, box_r = _crop(p, extent, 1), _crop(r, extent, 1)
    voxels = method == "voxels"
    if voxels:
        surf_p, surf_r = _voxel_boundary(box_p), _voxel_boundary(box_r)
        weight_p = np.ones(int(surf_p.sum()))
        weight_r = np.ones(int(surf_r.sum()))
    else:
        table = surface_element_areas(s)
        code_p, code_r = _corner_codes(box_p), _corner_codes(box_r)
        full = np.uint8(2 ** (2**p.ndim) - 1)
        surf_p = (code_p != 0) & (code_p != full)
        surf_r = (code_r != 0) & (code_r != full)
        weight_p, weight_r = table[code_p[surf_p]], table[code_r[surf_r]]
    d_pr = _Directed.of(nearest_distances(surf_p, surf_r, s, workers), weight_p)
    d_rp = _Directed.of(nearest_distances(surf_r, surf_p, s, workers), weight_r)

    percentile_of = _linear_percentile if voxels else _area_percentile
    hd_q = max(percentile_of(d_pr, q), percentile_of(d_rp, q))
    hd_max = max(percentile_of(d_pr, 100.0), percentile_of(d_rp, 100.0))
    total = float(d_pr.weights.sum()) + float(d_rp.weights.sum())
    within = _within(d_pr, tol, voxels) + _within(d_rp, tol, voxels)
    # Not `@`: a BLAS dot product of this size can cost more than the rest when threaded.
    mean = (
        float(np.sum(d_pr.values * d_pr.weights)) + float(np.sum(d_rp.values * d_rp.weights))
    ) / total
    return SurfaceMetrics(hd_q, hd_max, mean, within / total, q, tol, method)


def _distance_metric(name: str, field: str, percentile: float, doc: str):
    """One public distance function (HD95, Hausdorff, ASSD): a field of
    :func:`surface_metrics`, with the shared signature and its own docstring."""

    def metric(
        pred: ArrayLike,
        ref: ArrayLike,
        spacing: tuple[float, ...],
        method: str = "voxels",
        empty_penalty: float | None = None,
        *,
        workers: int = 1,
    ) -> float:
        metrics = surface_metrics(
            pred, ref, spacing, 0.0, method, percentile, empty_penalty, workers=workers
        )
        return float(getattr(metrics, field))

    metric.__name__ = metric.__qualname__ = name
    metric.__doc__ = doc
    return metric


hd95 = _distance_metric(
    "hd95",
    "hd_percentile",
    95.0,
    """95th-percentile Hausdorff distance in mm.

    ``pred``, ``ref``, ``spacing`` (mm per array axis) and ``workers`` are those of
    :func:`surface_metrics`. With ``method="voxels"`` the larger of the two directed 95th
    percentiles (linear interpolation) of boundary-voxel distances, as MONAI's
    ``compute_hausdorff_distance(percentile=95)``; with ``"surface_elements"`` the
    area-weighted rule of DeepMind's ``compute_robust_hausdorff(..., 95)``.
    ``empty_penalty`` is returned when exactly one mask is empty (NaN when None).

    Returns
    -------
    float
        HD95 in mm; 0.0 when both masks are empty.

    Raises
    ------
    ValueError
        On invalid masks, spacing or method (see :func:`surface_metrics`).
    """,
)

hausdorff = _distance_metric(
    "hausdorff",
    "hausdorff",
    100.0,
    """Hausdorff distance (the maximum surface distance, both directions) in mm.

    Parameters and empty-mask rules are those of :func:`hd95`.

    Returns
    -------
    float
        Hausdorff distance in mm; 0.0 when both masks are empty, NaN (or
        ``empty_penalty``) when exactly one is.
    """,
)

average_surface_distance = _distance_metric(
    "average_surface_distance",
    "assd",
    95.0,
    """Average symmetric surface distance (ASSD) in mm.

    With ``method="voxels"`` the mean of the boundary-voxel distances of both directions
    pooled together (MONAI's ``compute_average_surface_distance(symmetric=True)``); with
    ``"surface_elements"`` the area-weighted mean over both surfaces,
    ``(sum a_i d_i + sum b_j e_j) / (sum a_i + sum b_j)`` with DeepMind's elements.
    Parameters and empty-mask rules are those of :func:`hd95`.

    Returns
    -------
    float
        ASSD in mm; 0.0 when both masks are empty, NaN (or ``empty_penalty``) when
        exactly one is.
    """,
)


def surface_dice(
    pred: ArrayLike,
    ref: ArrayLike,
    spacing: tuple[float, ...],
    tolerance_mm: float = 2.0,
    method: str = "voxels",
    *,
    workers: int = 1,
) -> float:
    """Surface Dice (normalised surface distance) at a tolerance in mm.

    ``pred``, ``ref``, ``spacing`` (mm per array axis) and ``workers`` are those of
    :func:`surface_metrics`; distances ``<= tolerance_mm`` count as agreeing. With
    ``method="voxels"`` the share of boundary voxels of both masks within the tolerance
    of the other boundary, as MONAI's ``compute_surface_dice(class_thresholds=[tol])``
    (comparison in float32, as MONAI); with ``"surface_elements"`` the share of surface
    area, as DeepMind's ``compute_surface_dice_at_tolerance``.

    Returns
    -------
    float
        In [0, 1]; 1.0 when both masks are empty and 0.0 when exactly one is.

    Raises
    ------
    ValueError
        On invalid masks, spacing, tolerance or method.
    """
    metrics = surface_metrics(pred, ref, spacing, tolerance_mm, method, workers=workers)
    return metrics.surface_dice
