"""The spatial metrics of H3: the warped pre-operative NEH (pNEH) against the recurrence ET.

Definitions from :mod:`nehmap.metrics.spatial`; :class:`EdgePanel` computes all of them
for many placements of a mask against one fixed recurrence ET from a single edge-distance
map (the chance models' inner loop), and :func:`summarise_null` compares an observed
value with its chance placements.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage as ndi

from nehmap.metrics.spatial import (
    fraction_inside,
    fraction_near_edge,
    mean_edge_distance,
    volume_containment,
)

__all__ = [
    "FAMILY_METRICS",
    "METRICS",
    "CaseExcluded",
    "EdgePanel",
    "MetricSpec",
    "spatial_relation",
    "summarise_null",
]


@dataclass(frozen=True)
class MetricSpec:
    """One spatial metric of pNEH against ETRL.

    Attributes
    ----------
    name : str
        Column value in the tables.
    paper : str
        The method paper's name.
    unit : str
        ``"mm"``, ``"mm3"`` or ``"fraction"``.
    agreement : {"less", "greater"}
        Direction in which the metric means closer / more overlap.
    """

    name: str
    paper: str
    unit: str
    agreement: Literal["less", "greater"]


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("mean_edge_distance", "MeanEdgeDistance", "mm", "less"),
    MetricSpec("fraction_near_edge", "FractionNearEdge", "fraction", "greater"),
    MetricSpec("volume_containment", "VolumeContainment", "mm3", "greater"),
    MetricSpec("volume_containment_fraction", "VolumeContainment", "fraction", "greater"),
    MetricSpec("fraction_inside", "FractionInside", "fraction", "greater"),
)
"""The metrics, in table order."""

_SPEC = {m.name: m for m in METRICS}

FAMILY_METRICS: tuple[str, ...] = (
    "mean_edge_distance",
    "fraction_near_edge",
    "volume_containment",
    "fraction_inside",
)
"""The paper's four metrics: the family of the multiple-testing correction.

``volume_containment_fraction`` is the same paper metric (VolumeContainment) as a
fraction; its test is reported but not counted twice in the family."""


class CaseExcluded(Exception):
    """A case cannot enter the analysis; ``reason`` says why (for ``excluded.csv``)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


# ------------------------------------------------------------------------ spatial metrics


def spatial_relation(
    pneh: np.ndarray, etrl: np.ndarray, spacing: Sequence[float], within_mm: float = 5.0
) -> dict[str, float]:
    """The spatial metrics of ``pneh`` against ``etrl`` (see :data:`METRICS`).

    Parameters
    ----------
    pneh, etrl : numpy.ndarray of bool, shape (X, Y, Z)
        The warped pre-operative NEH and the recurrence ET on the recurrence grid.
    spacing : sequence of float
        Voxel size in mm per axis.
    within_mm : float, default 5.0
        Distance (mm) of :func:`nehmap.metrics.fraction_near_edge`.

    Returns
    -------
    dict
        Metric name -> value (NaN when a mask is empty).
    """
    sp = tuple(float(s) for s in spacing)
    vc = volume_containment(pneh, etrl, sp)
    return {
        "mean_edge_distance": mean_edge_distance(pneh, etrl, sp),
        "fraction_near_edge": fraction_near_edge(pneh, etrl, sp, within_mm),
        "volume_containment": vc.overlap_mm3,
        "volume_containment_fraction": vc.fraction_of_smaller,
        "fraction_inside": fraction_inside(pneh, etrl),
    }


class EdgePanel:
    """All metrics of a moved mask against a fixed ``etrl`` from one edge-distance map.

    The map holds, for every voxel, the distance (mm) from its centre to the nearest
    edge voxel of ``etrl`` (edge: ``etrl`` minus its face-connected erosion, the border
    of the array counting as background), which is the definition of
    :mod:`nehmap.metrics.spatial`; every call records the five metrics in
    :attr:`records` and returns the mean edge distance.
    """

    def __init__(self, etrl: np.ndarray, spacing: Sequence[float], within_mm: float) -> None:
        b = np.asarray(etrl, dtype=bool)
        edge = b & ~ndi.binary_erosion(b, structure=ndi.generate_binary_structure(3, 1))
        self.distance = ndi.distance_transform_edt(~edge, sampling=spacing).ravel()
        self.b = b.ravel()
        self.n_b = int(b.sum())
        self.voxel_mm3 = float(np.prod(spacing))
        self.within = float(within_mm)
        self.records: list[tuple[float, ...]] = []

    def values(self, flat: np.ndarray) -> tuple[float, ...]:
        """The five metrics of one placed mask, from its flat indices into the ETRL array.

        NaN for every metric when either mask is empty.
        """
        n_a = flat.size
        if n_a == 0 or self.n_b == 0:
            return (math.nan,) * len(METRICS)
        d = self.distance[flat]
        overlap = int(np.count_nonzero(self.b[flat]))
        return (
            float(d.mean()),
            float(np.count_nonzero(d <= self.within) / n_a),
            overlap * self.voxel_mm3,
            overlap / min(n_a, self.n_b),
            overlap / n_a,
        )

    def values_many(self, flats: Sequence[np.ndarray]) -> np.ndarray:
        """The metrics of many placements at once (same as :meth:`values` per row).

        Parameters
        ----------
        flats : sequence of numpy.ndarray of int
            Flat indices (into the ETRL array) of each placed mask.

        Returns
        -------
        numpy.ndarray, shape (len(flats), len(METRICS))
            NaN rows for empty placements.
        """
        out = np.full((len(flats), len(METRICS)), math.nan)
        sizes = np.array([f.size for f in flats], dtype=np.int64)
        if not len(flats) or self.n_b == 0 or not sizes.any():
            return out
        keep = sizes > 0
        cat = np.concatenate([f for f in flats if f.size])
        starts = np.concatenate([[0], np.cumsum(sizes[keep])[:-1]])
        n_a = sizes[keep].astype(float)
        d = self.distance[cat]
        overlap = np.add.reduceat(self.b[cat].astype(np.int64), starts).astype(float)
        out[keep, 0] = np.add.reduceat(d, starts) / n_a
        out[keep, 1] = np.add.reduceat((d <= self.within).astype(np.int64), starts) / n_a
        out[keep, 2] = overlap * self.voxel_mm3
        out[keep, 3] = overlap / np.minimum(n_a, self.n_b)
        out[keep, 4] = overlap / n_a
        return out

    def __call__(self, a: np.ndarray, b: np.ndarray, spacing: tuple[float, ...]) -> float:
        rec = self.values(np.flatnonzero(a))
        self.records.append(rec)
        return rec[0]


def summarise_null(
    observed: float, null: np.ndarray, agreement: str
) -> tuple[float, float, float, float]:
    """(expected, sd, one-sided p, chance rank) of ``observed`` against ``null``."""
    null = null[np.isfinite(null)]
    if null.size == 0 or not math.isfinite(observed):
        return math.nan, math.nan, math.nan, math.nan
    expected = float(null.mean())
    sd = float(null.std(ddof=1)) if null.size > 1 else math.nan
    tie = np.isclose(null, observed, rtol=1e-9, atol=1e-12)
    if agreement == "less":
        better_or_tie = (null <= observed) | tie
        worse = (null > observed) & ~tie
    else:
        better_or_tie = (null >= observed) | tie
        worse = (null < observed) & ~tie
    p = (int(better_or_tie.sum()) + 1) / (null.size + 1)
    rank = (int(worse.sum()) + 0.5 * int(tie.sum())) / null.size
    return expected, sd, float(p), float(rank)
