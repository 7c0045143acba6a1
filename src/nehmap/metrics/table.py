"""Every metric of every region for two label-map arrays, as one tidy table (arrays in).

Reading the files and checking their grids is :mod:`nehmap.evaluate.pair`'s job.

:func:`evaluate_labels` scores every evaluation region (ET, TC, WT) and every tumour
label (NC, ED, NEH; ET is both a region and label 4, with identical masks, so it appears
once) with Dice, Jaccard, HD95 and surface Dice, and returns one row per region and
metric. Callers add identifying columns, e.g. ``df.assign(case=case_id, model=name)``, and
stack the tables of many cases with :func:`pandas.concat`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from nehmap.labels import LABEL_NAMES, REGIONS, TUMOUR_LABELS, check_label_map
from nehmap.metrics._grid import _extent, _union
from nehmap.metrics._validation import check_empty_penalty, check_nonnegative, check_spacing
from nehmap.metrics.overlap import dice, jaccard
from nehmap.metrics.surface import METHODS, surface_metrics

__all__ = ["DEFAULT_METRICS", "DEFAULT_REGIONS", "METRIC_NAMES", "evaluate_labels"]

DEFAULT_REGIONS: tuple[str, ...] = ("ET", "TC", "WT", "NC", "ED", "NEH")
"""Regions ET, TC, WT and the labels NC, ED, NEH (label ET is the ET region)."""

METRIC_NAMES: tuple[str, ...] = ("dice", "jaccard", "hd95", "surface_dice", "hausdorff", "assd")
"""Every metric :func:`evaluate_labels` can report."""

DEFAULT_METRICS: tuple[str, ...] = ("dice", "jaccard", "hd95", "surface_dice")
"""The metrics reported by default."""


def _resolve_regions(regions: Sequence[str | int]) -> list[tuple[str, tuple[int, ...]]]:
    """Region name and label values for each requested region, first occurrence kept."""
    if isinstance(regions, (str, int)):
        regions = (regions,)
    names = {v.upper(): k for k, v in LABEL_NAMES.items() if k in TUMOUR_LABELS}
    out: dict[str, tuple[int, ...]] = {}
    for item in regions:
        if isinstance(item, str) and item.upper() in REGIONS:
            key, values = item.upper(), tuple(REGIONS[item.upper()])
        elif isinstance(item, str) and item.upper() in names:
            value = names[item.upper()]
            key, values = LABEL_NAMES[value], (value,)
        elif isinstance(item, (int, np.integer)) and int(item) in TUMOUR_LABELS:
            key, values = LABEL_NAMES[int(item)], (int(item),)
        else:
            known = ", ".join([*REGIONS, *names, *map(str, TUMOUR_LABELS)])
            raise ValueError(f"Unknown region {item!r}: use one of {known}.")
        out.setdefault(key, values)
    return list(out.items())


def evaluate_labels(
    pred_labels: ArrayLike,
    ref_labels: ArrayLike,
    spacing: tuple[float, ...],
    method: str = "voxels",
    tolerance_mm: float = 2.0,
    empty_penalty: float | None = None,
    regions: Sequence[str | int] = DEFAULT_REGIONS,
    metrics: Sequence[str] = DEFAULT_METRICS,
    *,
    workers: int = 1,
) -> pd.DataFrame:
    """Score a predicted label map against a reference, per region and metric.

    Parameters
    ----------
    pred_labels, ref_labels : array_like of int, shape (X, Y, Z) or (X, Y)
        nehmap label maps (0 background, 1 NC, 2 ED, 3 NEH, 4 ET) on the same grid.
    spacing : tuple of float
        Voxel size in mm along each array axis, in array-axis order.
    method : {"voxels", "surface_elements"}, default "voxels"
        Surface convention for HD95 and surface Dice (see :mod:`nehmap.metrics.surface`).
    tolerance_mm : float, default 2.0
        Surface-Dice tolerance in mm.
    empty_penalty : float or None, default None
        Distance reported when a region is empty in exactly one map; NaN when None.
    regions : sequence of str or int, default ("ET", "TC", "WT", "NC", "ED", "NEH")
        Region names (ET, TC, WT), label names (NC, ED, NEH, ET) or label values (1-4),
        case-insensitive. Label 4 is named "ET", like the ET region, whose mask is the
        same, so a region is listed once even when requested twice.
    metrics : sequence of str, default ("dice", "jaccard", "hd95", "surface_dice")
        Any of ``METRIC_NAMES``; ``"hausdorff"`` and ``"assd"`` are also available.
    workers : int, default 1
        Threads for KD-tree queries (-1: all cores).

    Returns
    -------
    pandas.DataFrame
        Columns ``region`` (str), ``metric`` (str) and ``value`` (float; Dice-type values
        are in [0, 1], distances in mm), one row per region and metric, in the requested
        orders. Empty regions follow the rules of :mod:`nehmap.metrics.overlap` and
        :mod:`nehmap.metrics.surface` (both empty: Dice 1, HD95 0; one empty: Dice 0,
        HD95 NaN or ``empty_penalty``).

    Raises
    ------
    ValueError
        If a map holds values that are not nehmap labels, the shapes differ, or a
        region, metric, method, spacing or tolerance is invalid.

    Examples
    --------
    >>> import numpy as np
    >>> ref = np.zeros((20, 20, 20), np.uint8); ref[5:15, 5:15, 5:15] = 2
    >>> ref[8:12, 8:12, 8:12] = 4
    >>> table = evaluate_labels(ref, ref, (1.0, 1.0, 1.0), regions=("WT", "ET"))
    >>> table.shape
    (8, 3)
    """
    pred = check_label_map(pred_labels, "pred_labels")
    ref = check_label_map(ref_labels, "ref_labels")
    if pred.shape != ref.shape:
        raise ValueError(
            f"pred_labels has shape {pred.shape} but ref_labels has shape {ref.shape}: "
            "resample one onto the other's grid first (nearest-neighbour for label maps)."
        )
    s = check_spacing(spacing, pred.ndim)
    tol = check_nonnegative(tolerance_mm, "tolerance_mm")
    check_empty_penalty(empty_penalty)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    if isinstance(metrics, str):
        metrics = (metrics,)
    unknown = [m for m in metrics if m not in METRIC_NAMES]
    if unknown:
        raise ValueError(f"Unknown metric(s) {unknown}: use any of {METRIC_NAMES}.")
    wanted = _resolve_regions(regions)

    # Every region lies inside the tumour's bounding box, so cropping to it changes no
    # metric (outside the crop is background either way) and makes all passes cheap.
    extent = _union(_extent(pred > 0), _extent(ref > 0))
    if extent is not None:
        box = tuple(slice(lo, hi + 1) for lo, hi in extent)
        pred, ref = pred[box], ref[box]
    need_surface = any(m in ("hd95", "surface_dice", "hausdorff", "assd") for m in metrics)

    rows: list[tuple[str, str, float]] = []
    for name, values in wanted:
        mp = np.isin(pred, values) if len(values) > 1 else pred == values[0]
        mr = np.isin(ref, values) if len(values) > 1 else ref == values[0]
        found: dict[str, float] = {}
        if "dice" in metrics:
            found["dice"] = dice(mp, mr)
        if "jaccard" in metrics:
            found["jaccard"] = jaccard(mp, mr)
        if need_surface:
            sm = surface_metrics(mp, mr, s, tol, method, 95.0, empty_penalty, workers=workers)
            found.update(
                hd95=sm.hd_percentile,
                surface_dice=sm.surface_dice,
                hausdorff=sm.hausdorff,
                assd=sm.assd,
            )
        rows.extend((name, m, float(found[m])) for m in metrics)
    return pd.DataFrame(rows, columns=["region", "metric", "value"])
