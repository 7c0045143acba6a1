"""Scoring one case: a predicted label map against its reference, on the same grid.

:func:`evaluate_pair` reads both maps into nehmap's labels (canonical RAS+), refuses maps
whose grids differ by more than :data:`GRID_TOLERANCE_MM` (nothing is resampled), and
scores them with :func:`nehmap.metrics.evaluate_labels` at the reference's spacing (mm).
A map that only holds NEH (:data:`NEH_ONLY_SCHEMES`) is scored on the NEH region only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from nehmap.errors import NehmapInputError
from nehmap.io.label_file import LEVEL_SCHEMES
from nehmap.io.segmentations import LabelMapRef
from nehmap.labels import NEH, scheme_name
from nehmap.metrics import DEFAULT_METRICS, DEFAULT_REGIONS, evaluate_labels

__all__ = ["GRID_TOLERANCE_MM", "NEH_ONLY_SCHEMES", "evaluate_pair"]

GRID_TOLERANCE_MM = 1e-3
"""Largest distance (mm) between corresponding volume corners of two 'same' grids."""

NEH_ONLY_SCHEMES: dict[str, int] = {name: max(values) for name, values in LEVEL_SCHEMES.items()}
"""Schemes of maps that only hold NEH, and the value that is NEH in each."""


def _as_neh_labels(labels: np.ndarray, ref: LabelMapRef) -> tuple[np.ndarray, bool]:
    """nehmap labels of a map, and whether the map only holds NEH."""
    value = NEH_ONLY_SCHEMES.get(scheme_name(ref.scheme))
    if value is None:
        return labels, False
    out = np.zeros(labels.shape, dtype=np.uint8)
    out[labels == value] = NEH
    return out, True


def _check_same_grid(pred_img: Any, ref_img: Any, pred: LabelMapRef, ref: LabelMapRef) -> None:
    """Raise :class:`NehmapInputError` unless both maps lie on the same voxel grid."""
    g_pred, g_ref = pred_img.grid, ref_img.grid
    hint = (
        "Resample the prediction onto the reference's grid (nearest-neighbour "
        "interpolation for label maps) and evaluate again."
    )
    if g_pred.canonical_shape != g_ref.canonical_shape:
        raise NehmapInputError(
            pred.path,
            f"lies on a different grid from the reference {ref.path}: shape "
            f"{g_pred.canonical_shape} (spacing {_fmt_spacing(g_pred.spacing)} mm) against "
            f"{g_ref.canonical_shape} (spacing {_fmt_spacing(g_ref.spacing)} mm), in RAS+ "
            "order.",
            hint,
        )
    distance = g_pred.canonical_distance_mm(g_ref)
    if not distance <= GRID_TOLERANCE_MM:
        raise NehmapInputError(
            pred.path,
            f"lies on a different grid from the reference {ref.path}: their volume corners "
            f"are up to {distance:.4g} mm apart (tolerance {GRID_TOLERANCE_MM} mm).",
            hint,
        )


def _fmt_spacing(spacing: Sequence[float]) -> str:
    return "x".join(f"{s:g}" for s in spacing)


def evaluate_pair(
    pred: LabelMapRef,
    ref: LabelMapRef,
    *,
    method: str = "voxels",
    tolerance_mm: float = 2.0,
    empty_penalty: float | None = None,
) -> pd.DataFrame:
    """Score one case's predicted label map against its reference.

    Parameters
    ----------
    pred, ref : LabelMapRef
        The two label maps (from :func:`find_label_maps`).
    method : str
        Surface convention, ``"voxels"`` or ``"surface_elements"``.
    tolerance_mm : float
        Surface-Dice tolerance in mm.
    empty_penalty : float | None
        HD95 in mm reported when a region is empty in exactly one map
        (NaN when None).

    Returns
    -------
    pd.DataFrame
        Columns ``case``, ``region``, ``metric``, ``value``: regions ET, TC, WT, NC, ED,
        NEH (NEH only, when either map only holds NEH); metrics dice, jaccard, hd95 (mm),
        surface_dice.

    Raises
    ------
    NehmapInputError
        A file is unreadable, holds values its scheme does not define,
        or the two maps lie on different grids (the message names the files).
    """
    pred_labels, pred_img = pred.read()
    ref_labels, ref_img = ref.read()
    _check_same_grid(pred_img, ref_img, pred, ref)
    pred_labels, pred_neh_only = _as_neh_labels(pred_labels, pred)
    ref_labels, ref_neh_only = _as_neh_labels(ref_labels, ref)
    regions = ("NEH",) if (pred_neh_only or ref_neh_only) else DEFAULT_REGIONS
    table = evaluate_labels(
        pred_labels,
        ref_labels,
        ref_img.grid.spacing,
        method=method,
        tolerance_mm=tolerance_mm,
        empty_penalty=empty_penalty,
        regions=regions,
        metrics=DEFAULT_METRICS,
    )
    table.insert(0, "case", ref.case_id)
    return table
