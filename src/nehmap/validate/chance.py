r"""Chance models of H3: where else could the pre-operative NEH (pNEH) have been?

Every model places the pNEH shape ``null_n`` times and measures each placement against
the recurrence ET exactly as the pNEH itself (:class:`EdgePanel`); the observed metric is
then compared with its placements (expectation, ratio, one-sided p, chance rank).

``"matched"`` (default; the study's primary H3 test)
    Distance-matched placements: pNEH rotated about the tumour core *in the core's own
    distance coordinates*. Every pNEH voxel has a direction from the centroid of the
    tumour core (pre-operative ET + NC; on the recurrence grid: the warped core, i.e. the
    resection cavity) and a distance (mm) to the core. A uniformly random rotation turns
    the directions; each voxel lands on the tissue voxel nearest to (rotated direction,
    same distance to the core), searched only in the *peritumoral domain*, tissue that
    could hold NEH (the brain without the core or cavity, the recurrence necrosis and
    T1-dark CSF such as the ventricles), and only within ``tolerance_mm`` (default
    ``max(2 mm, largest voxel side)``). So a placement keeps the pNEH's angular extent and
    its **distance profile** to the core voxel by voxel, and lies in tissue that could
    hold NEH. It is kept when its distinct voxels make up at least ``min_inside`` (80 %)
    of the pNEH's volume (voxels can merge where the band is narrower, or drop where it
    is cut by a ventricle or the brain's edge) and its 10th, 50th and 90th distance
    percentiles stay within the tolerance of the pNEH's. A placement's VolumeContainment
    is its overlap per voxel times the pNEH's voxel count (:func:`scale_to_volume`), so
    that a placement that lost voxels is not counted as worse for its size alone.

    The question it answers is the one H3 asks: *is the pNEH nearer to the recurrence
    than other tissue equally near the tumour?* Recurrences arise at the resection
    margin whatever their origin; the matched placements are at the margin too, so
    proximity to the margin alone does not count as agreement. A patient for whom fewer
    than ``min_found`` placements fit (a pNEH larger than its band, a band cut by the
    brain's edge) is excluded with that reason (:class:`CaseExcluded`).

    The same placements also give the **matched controls** of the paired comparison:
    those overlapping the pNEH by at most 10 % of its volume, i.e. *other* tissue of
    equal volume in the same distance band around the tumour. ``control_value`` is their
    mean metric (see :mod:`nehmap.validate.recurrence_tests`, test ``matched_control``).
``"brain"`` (as the paper)
    :func:`nehmap.stats.spatial_null`: pNEH rotated at random and put with its centroid on
    a random voxel of the recurrence brain (at least 95 % inside, the rest clipped). It
    answers "is pNEH closer to the recurrence than the same shape anywhere in the
    brain?". Any tissue beside the resection cavity is closer to a recurrence than a
    random spot in the brain, so this model "finds" H3 when the recurrence grows from
    the cavity wall far from the NEH: measured false-positive rates are in
    ``docs/method.md`` (benchmarks/bench_h3_calibration.py).
``"spin"``
    pNEH rotated at random about the core's centre, clipped to the brain, with no
    distance matching and no tissue exclusion: the same distance from the cavity centre,
    a random side.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from nehmap.stats import spatial_null
from nehmap.validate.recurrence_metrics import (
    METRICS,
    CaseExcluded,
    EdgePanel,
    spatial_relation,
    summarise_null,
)

__all__ = [
    "CHANCE_MODELS",
    "CONTROL_MAX_OVERLAP",
    "MatchedPlacements",
    "chance_comparison",
    "dark_csf",
    "matched_placements",
    "peritumoral_domain",
    "scale_to_volume",
]

Chance = Literal["matched", "brain", "spin"]
CHANCE_MODELS: tuple[str, ...] = get_args(Chance)
"""The chance models; the first is the default and the study's primary test."""

CONTROL_MAX_OVERLAP = 0.10
"""A matched placement is a *control* when it overlaps pNEH by at most this share of it."""

PROFILE_QUANTILES: tuple[float, ...] = (0.1, 0.5, 0.9)
"""Percentiles of the distance to the core compared by the matched model."""


# --------------------------------------------------------------------------- domain


def dark_csf(t1: np.ndarray, brain: np.ndarray, fraction: float = 0.5) -> np.ndarray:
    """CSF (ventricles, sulci, cavity): brain voxels darker on T1 than ``fraction`` times
    the brain's median T1. ``t1`` and ``brain`` share one shape (X, Y, Z); returns bool.
    On synthetic cases it finds about half of the ventricles (their partial-volume rim
    is left) and no tumour tissue (tests/test_validate_chance.py).
    """
    brain = np.asarray(brain, dtype=bool)
    values = np.asarray(t1, dtype=np.float32)
    if not brain.any():
        return np.zeros(brain.shape, dtype=bool)
    median = float(np.median(values[brain]))
    return brain & (values < fraction * median)


def peritumoral_domain(
    brain: np.ndarray, core: np.ndarray, exclude: np.ndarray | None = None
) -> np.ndarray:
    """Tissue that could hold NEH: the brain without the tumour core / cavity and ``exclude``.

    Parameters
    ----------
    brain, core : numpy.ndarray of bool, shape (X, Y, Z)
        Brain mask; tumour core (pre-operative ET + NC) or resection cavity.
    exclude : numpy.ndarray of bool, optional
        More tissue that cannot hold NEH (ventricles / CSF, recurrence necrosis).

    Returns
    -------
    numpy.ndarray of bool
    """
    domain = np.asarray(brain, dtype=bool) & ~np.asarray(core, dtype=bool)
    if exclude is not None:
        domain &= ~np.asarray(exclude, dtype=bool)
    return domain


# --------------------------------------------------------------------------- placements


def scale_to_volume(records: np.ndarray, n_a: int, n_b: int, voxel_mm3: float) -> np.ndarray:
    """The volume metrics of placements rescaled to the pNEH's volume.

    A matched placement may hold fewer voxels than the pNEH (merged or dropped voxels);
    its overlap with the recurrence is taken per voxel (its FractionInside) times the
    pNEH's voxel count, so that a smaller placement does not look worse by its size
    alone. Rows of :meth:`EdgePanel.values_many`; columns 2 (VolumeContainment, mm^3)
    and 3 (its fraction of the smaller region) are replaced.

    Parameters
    ----------
    records : numpy.ndarray, shape (n, len(METRICS))
        One row of metric values per placement.
    n_a, n_b : int
        Voxels of the pNEH and of the recurrence ET.
    voxel_mm3 : float
        Volume of one voxel in mm^3.

    Returns
    -------
    numpy.ndarray, shape (n, len(METRICS))
    """
    out = np.array(records, dtype=float, copy=True)
    inside = out[:, 4]
    out[:, 2] = inside * n_a * voxel_mm3
    out[:, 3] = inside * n_a / max(min(n_a, n_b), 1)
    return out


@dataclass
class MatchedPlacements:
    """Distance-matched placements of pNEH (see the module documentation).

    Attributes
    ----------
    flats : list of numpy.ndarray of int
        Flat indices of each placement (clipped to the domain).
    overlap : numpy.ndarray of float, shape (len(flats),)
        Share of the pNEH's voxels that each placement covers.
    attempts : int
        Rotations tried.
    profile_mm : tuple of float
        The pNEH's distance-to-core percentiles (:data:`PROFILE_QUANTILES`), mm.
    tolerance_mm : float
    """

    flats: list[np.ndarray]
    overlap: np.ndarray
    attempts: int
    profile_mm: tuple[float, ...]
    tolerance_mm: float
    centre_mm: np.ndarray = field(default_factory=lambda: np.zeros(3))


def _box(lo: np.ndarray, hi: np.ndarray, shape: Sequence[int]) -> tuple[slice, ...]:
    lo = np.maximum(np.floor(lo).astype(int), 0)
    hi = np.minimum(np.ceil(hi).astype(int) + 1, np.asarray(shape))
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))


def matched_placements(
    pneh: np.ndarray,
    core: np.ndarray,
    domain: np.ndarray,
    spacing: Sequence[float],
    n: int,
    rng: np.random.Generator,
    *,
    tolerance_mm: float | None = None,
    min_inside: float = 0.8,
    max_attempts: int = 20,
    min_found: int | None = None,
) -> MatchedPlacements:
    """Rotations of ``pneh`` about the core that keep its distance profile to the core.

    Parameters
    ----------
    pneh, core, domain : numpy.ndarray of bool, shape (X, Y, Z)
        pNEH, tumour core (or cavity) and the peritumoral domain
        (:func:`peritumoral_domain`).
    spacing : sequence of float
        Voxel size (mm) per axis.
    n : int
        Placements wanted.
    rng : numpy.random.Generator
        Source of the random rotations.
    tolerance_mm : float, optional
        Largest difference (mm) of the distance percentiles; default ``max(2, max
        voxel side)``.
    min_inside : float, default 0.8
        Distinct voxels of a placement, as a share of the pNEH's voxels.
    max_attempts : int, default 20
        Rotations tried per placement wanted, at most; the search also stops after
        ``2 n`` rotations when fewer than 1 in 100 fitted.
    min_found : int, optional
        Fewest placements accepted before giving up; default ``max(10, n // 10)``.

    Returns
    -------
    MatchedPlacements

    Raises
    ------
    CaseExcluded
        No core, no pNEH, a band smaller than the pNEH, or fewer than ``min_found``
        placements.
    """
    a = np.asarray(pneh, dtype=bool)
    c = np.asarray(core, dtype=bool)
    dom = np.asarray(domain, dtype=bool)
    sp = np.asarray(spacing, dtype=float)
    shape = np.asarray(a.shape)
    if not a.any():
        raise CaseExcluded("the pre-operative NEH is empty")
    if not c.any():
        raise CaseExcluded(
            "no tumour core (pre-operative ET + NC) to match the pNEH's distances to"
        )
    tol = float(tolerance_mm) if tolerance_mm is not None else max(2.0, float(sp.max()))
    min_found = max(10, n // 10) if min_found is None else int(min_found)
    a_idx = np.argwhere(a)
    centre = np.argwhere(c).mean(axis=0) * sp
    reach = float(np.linalg.norm(a_idx * sp - centre, axis=1).max()) + float(sp.max())
    c_idx = np.argwhere(c)
    lo = np.minimum((centre - reach) / sp, c_idx.min(axis=0)) - 2
    hi = np.maximum((centre + reach) / sp, c_idx.max(axis=0)) + 2
    box = _box(lo, hi, a.shape)
    origin = np.array([s.start for s in box])
    d_core = ndi.distance_transform_edt(~c[box], sampling=sp)
    a_local = a_idx - origin
    profile = np.quantile(d_core[tuple(a_local.T)], PROFILE_QUANTILES)
    band = dom[box] & (d_core >= profile[0] - tol) & (d_core <= profile[-1] + tol)
    volume = float(np.prod(sp))
    if band.sum() < a_idx.shape[0]:
        raise CaseExcluded(
            f"the peritumoral band cannot hold the pNEH shape: the tissue "
            f"{max(profile[0] - tol, 0):.0f}-{profile[-1] + tol:.0f} mm from the tumour "
            f"core holds {band.sum() * volume:.0f} mm^3, the pNEH {a_idx.shape[0] * volume:.0f}"
        )
    from scipy.spatial import cKDTree
    from scipy.spatial.transform import Rotation

    band_idx = np.argwhere(band)
    c_local = centre - origin * sp
    band_mm = band_idx * sp - c_local
    band_dir = band_mm / np.maximum(np.linalg.norm(band_mm, axis=1, keepdims=True), 1e-9)
    a_mm = a_local * sp - c_local
    a_radius = np.linalg.norm(a_mm, axis=1)
    a_dir = a_mm / np.maximum(a_radius[:, None], 1e-9)
    a_dist = d_core[tuple(a_local.T)]
    scale = float(np.median(a_radius))  # mm of arc per radian at the pNEH's radius
    tree = cKDTree(np.column_stack([scale * band_dir, d_core[tuple(band_idx.T)]]))
    band_flat = np.ravel_multi_index(tuple((band_idx + origin).T), tuple(shape))
    a_flat = set(np.ravel_multi_index(tuple(a_idx.T), tuple(shape)).tolist())
    n_a = a_idx.shape[0]
    flats: list[np.ndarray] = []
    overlap: list[float] = []
    attempts = 0
    while len(flats) < n and attempts < max_attempts * n:
        if attempts >= 2 * n and len(flats) * 100 < attempts:
            break  # fewer than 1 in 100 rotations fit: hopeless, stop early
        attempts += 1
        rot = Rotation.random(random_state=rng).as_matrix()
        query = np.column_stack([scale * (a_dir @ rot.T), a_dist])
        gap, nearest = tree.query(query, k=1, distance_upper_bound=tol)
        found = np.isfinite(gap)
        flat = np.unique(band_flat[nearest[found]])
        if flat.size < min_inside * n_a:
            continue
        q = np.quantile(a_dist[found], PROFILE_QUANTILES)
        if np.max(np.abs(q - profile)) > tol:
            continue
        flats.append(flat)
        overlap.append(sum(1 for f in flat.tolist() if f in a_flat) / n_a)
    if len(flats) < min_found:
        raise CaseExcluded(
            f"the peritumoral band cannot hold the pNEH shape: only {len(flats)} of "
            f"{attempts} rotations of pNEH ({n_a * volume:.0f} mm^3) about the tumour core "
            f"found {min_inside:.0%} of its volume in tissue that could hold NEH at its "
            f"distances to the core (within {tol:g} mm); at least {min_found} are needed"
        )
    return MatchedPlacements(
        flats,
        np.asarray(overlap, dtype=float),
        attempts,
        tuple(float(x) for x in profile),
        tol,
        centre,
    )


def spin_placements(
    pneh: np.ndarray,
    brain: np.ndarray,
    spacing: Sequence[float],
    centre_mm: np.ndarray,
    n: int,
    rng: np.random.Generator,
    min_inside: float,
    max_attempts: int = 100,
) -> Iterable[np.ndarray]:
    """Flat indices of ``pneh`` rotated at random about ``centre_mm`` (array mm), clipped.

    Every voxel within the rotated shape's reach (a ball about the centre) is pulled
    back through the inverse rotation and takes the value of pNEH's nearest voxel.
    """
    from scipy.spatial.transform import Rotation

    sp = np.asarray(spacing, dtype=float)
    shape = np.asarray(pneh.shape)
    idx = np.argwhere(pneh)
    reach = float(np.linalg.norm(idx * sp - centre_mm, axis=1).max()) + float(sp.max())
    lo = np.maximum(np.floor((centre_mm - reach) / sp).astype(int), 0)
    hi = np.minimum(np.ceil((centre_mm + reach) / sp).astype(int) + 1, shape)
    grid = np.stack(
        np.meshgrid(*(np.arange(a, b) for a, b in zip(lo, hi, strict=True)), indexing="ij"),
        axis=-1,
    ).reshape(-1, 3)
    rel = grid * sp - centre_mm
    keep = np.linalg.norm(rel, axis=1) <= reach
    grid, rel = grid[keep], rel[keep]
    flat_grid = np.ravel_multi_index(grid.T, tuple(shape))
    in_brain = brain.ravel()[flat_grid]
    a_flat = pneh.ravel()
    n_a = idx.shape[0]
    accepted = attempts = 0
    while accepted < n:
        if attempts >= max_attempts * n:
            raise RuntimeError(
                f"only {accepted} of {n} rotations of pNEH kept {min_inside:.0%} of it in "
                "the brain; lower min_inside"
            )
        attempts += 1
        rot = Rotation.random(random_state=rng).as_matrix()
        src = np.floor((rel @ rot + centre_mm) / sp + 0.5).astype(np.int64)
        ok = np.all((src >= 0) & (src < shape), axis=1)
        hit = np.zeros(len(grid), dtype=bool)
        hit[ok] = a_flat[np.ravel_multi_index(src[ok].T, tuple(shape))]
        n_hit = int(hit.sum())
        if n_hit == 0:
            continue
        inside = hit & in_brain
        if inside.sum() < min_inside * max(n_hit, n_a) - 1e-9:
            continue
        accepted += 1
        yield flat_grid[inside]


def chance_comparison(
    pneh: np.ndarray,
    etrl: np.ndarray,
    brain: np.ndarray,
    spacing: Sequence[float],
    *,
    n: int = 500,
    seed: int = 0,
    chance: Chance = "brain",
    centre_mm: np.ndarray | None = None,
    core: np.ndarray | None = None,
    domain: np.ndarray | None = None,
    within_mm: float = 5.0,
    min_inside: float = 0.95,
    controls_out: list[np.ndarray] | None = None,
) -> pd.DataFrame:
    """The spatial metrics of one case and their chance expectation.

    Parameters
    ----------
    pneh, etrl, brain : numpy.ndarray of bool, shape (X, Y, Z)
        Warped pre-operative NEH, recurrence ET and recurrence brain, on the recurrence
        grid.
    spacing : sequence of float
        Voxel size (mm) per axis.
    n : int, default 500
        Number of chance placements.
    seed : int, default 0
        Seed of the placements.
    chance : {"matched", "brain", "spin"}, default "brain"
        Chance model (see the module documentation).
    centre_mm : numpy.ndarray, shape (3,), optional
        Rotation centre of the ``"spin"`` model, in array mm (index times spacing).
    core : numpy.ndarray of bool, optional
        Tumour core / cavity; needed by ``"matched"``.
    domain : numpy.ndarray of bool, optional
        Tissue that could hold NEH (``"matched"``); default: the brain without the core.
    within_mm : float, default 5.0
        Distance of ``fraction_near_edge`` (mm).
    min_inside : float, default 0.95
        Share of a placed pNEH that must lie in the brain (``"brain"``, ``"spin"``;
        ``"matched"``: see :func:`matched_placements`).
    controls_out : list, optional
        With ``"matched"``: receives the flat indices of the matched placements, least
        overlapping pNEH first (the controls, overlap <= 10 %, lead when there are any).

    Returns
    -------
    pandas.DataFrame
        One row per metric: ``metric, value, chance_expected, chance_sd, ratio,
        chance_rank, p_spatial, agreement, chance_model, null_n, control_value,
        n_controls`` (the last two NaN / 0 unless ``"matched"``).
    """
    a = np.asarray(pneh, dtype=bool)
    b = np.asarray(etrl, dtype=bool)
    brain_ = np.asarray(brain, dtype=bool)
    sp = tuple(float(s) for s in spacing)
    if not a.any():
        raise CaseExcluded("the warped pre-operative NEH is empty")
    if not b.any():
        raise CaseExcluded("no enhancing tumour (ET) in the recurrence segmentation")
    observed = spatial_relation(a, b, sp, within_mm)
    panel = EdgePanel(b, sp, within_mm)
    control_records = np.zeros((0, len(METRICS)))
    if chance == "brain":
        result = spatial_null(
            a, b, brain_, sp, panel, n=n, seed=seed, alternative="less", min_inside=min_inside
        )
        records = np.asarray(panel.records[1:], dtype=float)  # the first call is the observed
        if records.shape[0] != result.n + result.n_invalid:
            raise RuntimeError("internal error: the chance placements were not all recorded")
    elif chance == "spin":
        if centre_mm is None:
            raise ValueError("the spin chance model needs centre_mm (the cavity centre)")
        rng = np.random.default_rng(seed)
        gen = spin_placements(a, brain_, sp, np.asarray(centre_mm, float), n, rng, min_inside)
        records = np.asarray([panel.values(flat) for flat in gen], dtype=float)
    elif chance == "matched":
        if core is None:
            raise ValueError("the matched chance model needs core (the tumour core or cavity)")
        dom = domain if domain is not None else peritumoral_domain(brain_, core)
        placed = matched_placements(a, core, dom, sp, n, np.random.default_rng(seed))
        records = scale_to_volume(
            panel.values_many(placed.flats), int(a.sum()), panel.n_b, panel.voxel_mm3
        )
        is_control = placed.overlap <= CONTROL_MAX_OVERLAP
        control_records = records[is_control]
        if controls_out is not None:
            order = np.argsort(placed.overlap, kind="stable")
            controls_out.extend(placed.flats[i] for i in order)
    else:
        raise ValueError(f"chance must be one of {CHANCE_MODELS}, got {chance!r}")
    rows = []
    for j, spec in enumerate(METRICS):
        value = observed[spec.name]
        expected, sd, p, rank = summarise_null(value, records[:, j], spec.agreement)
        ratio = value / expected if expected and math.isfinite(expected) else math.nan
        column = control_records[:, j]
        column = column[np.isfinite(column)]
        rows.append(
            {
                "metric": spec.name,
                "paper_metric": spec.paper,
                "unit": spec.unit,
                "value": value,
                "chance_expected": expected,
                "chance_sd": sd,
                "ratio": ratio,
                "chance_rank": rank,
                "p_spatial": p,
                "agreement": spec.agreement,
                "chance_model": chance,
                "null_n": int(np.isfinite(records[:, j]).sum()),
                "control_value": float(column.mean()) if column.size else math.nan,
                "n_controls": int(column.size),
            }
        )
    return pd.DataFrame(rows)
