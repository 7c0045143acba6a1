"""Segmentation and spatial-relation metrics, as plain functions on numpy arrays.

Overlap (:mod:`nehmap.metrics.overlap`)
    :func:`dice`, :func:`jaccard`.
Surface distances in mm (:mod:`nehmap.metrics.surface`)
    :func:`hd95`, :func:`hausdorff`, :func:`average_surface_distance`,
    :func:`surface_dice`, and :func:`surface_metrics` for all of them from one pass; two
    exact conventions, ``method="voxels"`` (MONAI) and ``method="surface_elements"``
    (DeepMind's surface-distance).
Spatial relations in mm (:mod:`nehmap.metrics.spatial`)
    :func:`mean_edge_distance`, :func:`fraction_near_edge`, :func:`volume_containment`,
    :func:`fraction_inside`.
Tables (:mod:`nehmap.metrics.table`)
    :func:`evaluate_labels`: all regions and metrics of a label-map pair as a tidy
    :class:`pandas.DataFrame`.

Conventions: masks are boolean (or 0/1) arrays of equal shape; ``spacing`` is the voxel
size in mm along each array axis, in array-axis order; every distance and tolerance is in
mm. Empty masks give fixed values, documented in each module. Invalid input raises a
:class:`ValueError` that says how to fix it.
"""

from nehmap.metrics.overlap import dice, jaccard
from nehmap.metrics.spatial import (
    VolumeContainment,
    fraction_inside,
    fraction_near_edge,
    mean_edge_distance,
    volume_containment,
)
from nehmap.metrics.surface import (
    METHODS,
    SurfaceMetrics,
    average_surface_distance,
    hausdorff,
    hd95,
    surface_dice,
    surface_element_areas,
    surface_metrics,
)
from nehmap.metrics.table import (
    DEFAULT_METRICS,
    DEFAULT_REGIONS,
    METRIC_NAMES,
    evaluate_labels,
)

__all__ = [
    "DEFAULT_METRICS",
    "DEFAULT_REGIONS",
    "METHODS",
    "METRIC_NAMES",
    "SurfaceMetrics",
    "VolumeContainment",
    "average_surface_distance",
    "dice",
    "evaluate_labels",
    "fraction_inside",
    "fraction_near_edge",
    "hausdorff",
    "hd95",
    "jaccard",
    "mean_edge_distance",
    "surface_dice",
    "surface_element_areas",
    "surface_metrics",
    "volume_containment",
]
