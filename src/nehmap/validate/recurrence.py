r"""H3: the pre-operative NEH against the enhancing tumour at first recurrence.

For every patient with a pre-operative scan and a scan at first recurrence:

1. **Registration.** The pre-operative T1 (``modalities``; several give a multi-channel
   SyN metric) is registered onto the recurrence T1 with
   :func:`nehmap.validate.registration.register` (fixed: recurrence, moving:
   pre-operative). T1 is the default because it is the contrast least changed by the
   disease between the two time points: T1c gains new enhancement at recurrence, T2 and
   FLAIR change with the edema. The similarity metric ignores the lesions
   (:func:`registration_masks`): by default the whole tumour (NC, ED, NEH, ET) of each
   scan, dilated by 2 mm at recurrence, so that neither the resection cavity nor the
   changing edema pulls the deformation and the peritumoral region follows the
   surrounding normal-appearing tissue (``mask_exclude="core"`` excludes only ET and
   NC, as the method paper describes; on synthetic pairs with changing edema that lets
   the deformation distort the NEH region, see the tests and the benchmark).
2. **Warping.** The pre-operative NEH (pNEH, label 3) and the pre-operative resection
   target (ET + NC) are pulled onto the recurrence grid with ``genericLabel``
   interpolation.
3. **Spatial metrics** of pNEH (``a``) against the recurrence enhancing tumour (ETRL,
   label 4 of the recurrence segmentation, ``b``), from :mod:`nehmap.metrics.spatial`:

   ===============================  =================  ========  ========================
   metric                           paper name         unit      agreement means
   ===============================  =================  ========  ========================
   ``mean_edge_distance``           MeanEdgeDistance   mm        small
   ``fraction_near_edge``           FractionNearEdge   fraction  large (within 5 mm)
   ``volume_containment``           VolumeContainment  mm^3      large (overlap volume)
   ``volume_containment_fraction``  VolumeContainment  fraction  large (of smaller mask)
   ``fraction_inside``              FractionInside     fraction  large
   ===============================  =================  ========  ========================

4. **Chance model per case** (``chance``):

   ``"brain"`` (default; the paper's reading of "chance")
       :func:`nehmap.stats.spatial_null`: pNEH, with its shape and size, rotated
       uniformly at random and put with its centroid on a random voxel of the
       recurrence brain (at least 95 % of it inside, the rest clipped), ``null_n``
       times (default 500: the chance mean to within ~4.5 % of the null's SD and a
       per-case p-value resolution of 0.002). It answers "is pNEH closer to the
       recurrence than the same shape anywhere in the brain?". Because recurrences
       arise at the resection margin in most patients and pNEH lies at that margin by
       construction, this null favours proximity for *any* peritumoral region.
   ``"spin"``
       pNEH rotated uniformly at random about the centre of the warped pre-operative
       resection target (ET + NC), clipped to the brain: the same distance from the
       cavity, a random side. It answers the sharper question "does the recurrence
       arise on the NEH side of the cavity?".

   Per metric: ``chance_expected`` (null mean), ``chance_sd``, ``ratio = value /
   chance_expected`` (NaN when the expectation is 0), ``p_spatial`` (one-sided in the
   direction of agreement, ``(1 + #{null at least as good}) / (1 + n)``, ties counting
   against agreement) and ``chance_rank`` (the share of null values worse than the
   observed one, ties counting half: 0.5 is chance, 1 is better than every placement).

5. **Cohort tests** (:func:`cohort_tests`), sign-flip permutation tests of the mean
   (:func:`nehmap.stats.sign_flip_test`: exact for n <= 40, otherwise 10,000 random
   flips), one row per metric and test in ``recurrence_tests.csv``:

   ``paper``
       As the method paper: raw mean edge distance against 0, the other metrics as
       chance ratios against 1 (alternative "greater"). **The distance test is
       degenerate**: distances are never negative, so any non-empty sample has a mean
       above 0 and the test's p-value only reflects the sample size (the paper's p <
       0.0001 for MeanEdgeDistance says nothing about proximity). It is reported for
       comparison with the paper only.
   ``chance_ratio``
       Every metric as ``ratio`` against 1, in the direction of agreement ("less" for
       the distance, "greater" for the others): is pNEH nearer to / more overlapping
       with the recurrence than chance?
   ``chance_rank``
       ``chance_rank`` against 0.5, alternative "greater". Ratios are skewed under the
       null (mostly below 1, a few large values), which the sign-flip test's symmetry
       assumption does not allow for; the rank is uniform under the null (symmetric
       about 0.5 up to ties), so this test keeps its false-positive rate.

Excluded from the tests, with the reason in ``excluded.csv``: patients without one of the
two scans or segmentations, a recurrence segmentation without ET, a pre-operative one
without NEH, a pNEH that leaves the brain when warped, a failed registration, and (unless
``keep_flagged``) a registration flagged by its quality check. Excluded cases with
metrics keep their rows in ``recurrence_cases.csv`` with ``included = False``.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from nehmap.labels import ED, ET, NC, NEH
from nehmap.metrics.spatial import (
    fraction_inside,
    fraction_near_edge,
    mean_edge_distance,
    volume_containment,
)
from nehmap.stats import sign_flip_test, spatial_null
from nehmap.validate.registration import (
    Preset,
    Registration,
    RegistrationError,
    RegistrationQuality,
    quality_columns,
    register,
    warp_labels,
)

__all__ = [
    "CHANCE_MODELS",
    "METRICS",
    "CaseExcluded",
    "MetricSpec",
    "PairResult",
    "RecurrenceConfig",
    "RecurrenceRun",
    "Scan",
    "analyse_pair",
    "chance_comparison",
    "cohort_summary",
    "cohort_tests",
    "find_segmentation",
    "registration_masks",
    "run_recurrence",
    "spatial_relation",
]

Chance = Literal["brain", "spin"]
CHANCE_MODELS: tuple[str, ...] = ("brain", "spin")
MaskExclude = Literal["tumour", "core"]


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

CASE_COLUMNS: Mapping[str, str] = {
    "case": "patient (subject) ID",
    "preop_case": "ID of the pre-operative scan",
    "recurrence_case": "ID of the recurrence scan",
    "metric": "spatial metric of pNEH against ETRL (see the module documentation)",
    "paper_metric": "the method paper's name of the metric",
    "unit": "mm, mm3 or fraction",
    "value": "observed metric of the warped pNEH against the recurrence ET",
    "chance_expected": "mean of the metric over the chance model's placements of pNEH",
    "chance_sd": "standard deviation of the metric over those placements",
    "ratio": "value / chance_expected (NaN when the expectation is 0)",
    "chance_rank": "share of placements with a worse metric (ties half); 0.5 = chance",
    "p_spatial": "one-sided p-value of the case against its chance model",
    "agreement": "direction of agreement: less (distances) or greater (overlaps)",
    "chance_model": "brain (random placement in the brain) or spin (rotation about cavity)",
    "null_n": "number of chance placements",
    "pneh_volume_mm3": "volume of the warped pNEH (mm^3)",
    "etrl_volume_mm3": "volume of the recurrence ET (mm^3)",
    "brain_dice": "Dice of the recurrence brain and the warped pre-operative brain",
    "jacobian_min": "minimum Jacobian determinant of the transform in the brain",
    "jacobian_max": "maximum Jacobian determinant of the transform in the brain",
    "registration_flag": "True when the registration looks wrong (see the reason)",
    "registration_flag_reason": "why it was flagged",
    "registration_seconds": "wall time of the registration (s)",
    "included": "whether the case enters the cohort tests",
}
"""Columns of ``recurrence_cases.csv``."""

TEST_COLUMNS: Mapping[str, str] = {
    "metric": "spatial metric",
    "paper_metric": "the method paper's name",
    "test": "paper, chance_ratio or chance_rank (see the module documentation)",
    "scale": "raw, ratio or rank: what was averaged",
    "baseline": "the value the mean takes by chance",
    "alternative": "direction of the one-sided test",
    "observed_mean": "mean over the included cases",
    "observed_sd": "standard deviation over the included cases",
    "null_mean": "mean of the sign-flip null distribution",
    "p_greater": "p-value for a mean above the baseline",
    "p_less": "p-value for a mean below the baseline",
    "p_two_sided": "two-sided p-value (|T*| >= |T|)",
    "p_value": "p-value in the direction of 'alternative'",
    "n": "cases in the test",
    "n_omitted": "included cases without a value (ratio undefined)",
    "method": "exact (all 2^n sign patterns) or monte-carlo",
    "note": "caveats",
}
"""Columns of ``recurrence_tests.csv``."""


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


class _Panel:
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

    def __call__(self, a: np.ndarray, b: np.ndarray, spacing: tuple[float, ...]) -> float:
        rec = self.values(np.flatnonzero(a))
        self.records.append(rec)
        return rec[0]


def _summarise_null(
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


def _spin_placements(
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
    within_mm: float = 5.0,
    min_inside: float = 0.95,
) -> pd.DataFrame:
    """The spatial metrics of one case and their chance expectation.

    Parameters
    ----------
    pneh, etrl, brain : numpy.ndarray of bool, shape (X, Y, Z)
        Warped pre-operative NEH, recurrence ET and recurrence brain (the domain of the
        chance placements), on the recurrence grid.
    spacing : sequence of float
        Voxel size (mm) per axis.
    n : int, default 500
        Number of chance placements.
    seed : int, default 0
        Seed of the placements.
    chance : {"brain", "spin"}, default "brain"
        Chance model (see the module documentation).
    centre_mm : numpy.ndarray, shape (3,), optional
        Rotation centre of the ``"spin"`` model, in array mm (index times spacing).
    within_mm : float, default 5.0
        Distance of ``fraction_near_edge`` (mm).
    min_inside : float, default 0.95
        Share of a placed pNEH that must lie in the brain.

    Returns
    -------
    pandas.DataFrame
        One row per metric: ``metric, value, chance_expected, chance_sd, ratio,
        chance_rank, p_spatial, agreement, chance_model, null_n``.
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
    panel = _Panel(b, sp, within_mm)
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
        gen = _spin_placements(a, brain_, sp, np.asarray(centre_mm, float), n, rng, min_inside)
        records = np.asarray([panel.values(flat) for flat in gen], dtype=float)
    else:
        raise ValueError(f"chance must be one of {CHANCE_MODELS}, got {chance!r}")
    rows = []
    for j, spec in enumerate(METRICS):
        value = observed[spec.name]
        expected, sd, p, rank = _summarise_null(value, records[:, j], spec.agreement)
        ratio = value / expected if expected and math.isfinite(expected) else math.nan
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
            }
        )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------- one patient


@dataclass
class Scan:
    """One time point as canonical arrays.

    Attributes
    ----------
    images : mapping of str to numpy.ndarray, shape (X, Y, Z)
        ``t1``, ``t1c``, ``t2``, ``flair`` (those needed for registration at least).
    labels : numpy.ndarray of uint8, shape (X, Y, Z)
        nehmap labels (1 NC, 2 ED, 3 NEH, 4 ET).
    affine : numpy.ndarray, shape (4, 4)
        Voxel-to-world affine (RAS mm) of the canonical arrays.
    brain : numpy.ndarray of bool, optional
        Brain mask; default: voxels where any image is non-zero.
    case_id : str
    """

    images: Mapping[str, np.ndarray]
    labels: np.ndarray
    affine: np.ndarray
    brain: np.ndarray | None = None
    case_id: str = ""

    def __post_init__(self) -> None:
        shape = self.labels.shape
        for key, img in self.images.items():
            if img.shape != shape:
                raise ValueError(
                    f"{self.case_id or 'scan'}: image {key} has shape {img.shape} but the "
                    f"labels have {shape}; resample the segmentation onto the scan"
                )
        if self.brain is None:
            brain = np.zeros(shape, dtype=bool)
            for img in self.images.values():
                brain |= img != 0
            self.brain = brain

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm per array axis."""
        z = np.sqrt((np.asarray(self.affine)[:3, :3] ** 2).sum(axis=0))
        return (float(z[0]), float(z[1]), float(z[2]))

    @property
    def mask(self) -> np.ndarray:
        """The brain mask (never None after construction)."""
        assert self.brain is not None
        return self.brain


def _dilate_mm(mask: np.ndarray, spacing: Sequence[float], radius_mm: float) -> np.ndarray:
    """``mask`` grown by ``radius_mm`` (Euclidean, in mm), computed on its bounding box."""
    if radius_mm <= 0 or not mask.any():
        return mask.copy()
    sp = np.asarray(spacing, dtype=float)
    pad = np.ceil(radius_mm / sp).astype(int) + 1
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(axis=0) - pad, 0)
    hi = np.minimum(idx.max(axis=0) + 1 + pad, mask.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    out = np.zeros_like(mask, dtype=bool)
    out[box] = ndi.distance_transform_edt(~mask[box], sampling=sp) <= radius_mm
    return out


def registration_masks(
    preop: Scan,
    recurrence: Scan,
    exclude: MaskExclude = "tumour",
    dilate_mm: float = 2.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Metric masks of the registration: each brain without its lesion.

    Parameters
    ----------
    preop, recurrence : Scan
    exclude : {"tumour", "core"}, default "tumour"
        ``"tumour"`` leaves out every tumour label (NC, ED, NEH, ET) of both scans;
        ``"core"`` only ET and NC (the resection target before surgery; new enhancement,
        its necrosis and the cavity, labelled NC, at recurrence).
    dilate_mm : float, default 2.0
        Margin (mm) added around the recurrence lesion.

    Returns
    -------
    (fixed_mask, moving_mask) : tuple of numpy.ndarray of bool
        On the recurrence and pre-operative grids.
    """
    labels = (NC, ED, NEH, ET) if exclude == "tumour" else (NC, ET)
    if exclude not in ("tumour", "core"):
        raise ValueError(f"exclude must be 'tumour' or 'core', got {exclude!r}")
    rec_lesion = _dilate_mm(np.isin(recurrence.labels, labels), recurrence.spacing, dilate_mm)
    fixed_mask = recurrence.mask & ~rec_lesion
    moving_mask = preop.mask & ~np.isin(preop.labels, labels)
    return fixed_mask, moving_mask


@dataclass
class PairResult:
    """Outcome of :func:`analyse_pair`.

    Attributes
    ----------
    metrics : pandas.DataFrame
        One row per metric (see :func:`chance_comparison`) plus the volumes.
    pneh : numpy.ndarray of bool, shape of the recurrence grid
        The warped pre-operative NEH.
    core : numpy.ndarray of bool
        The warped pre-operative ET + NC (the resection target).
    quality : RegistrationQuality
    registration_seconds : float
    """

    metrics: pd.DataFrame
    pneh: np.ndarray
    core: np.ndarray
    quality: RegistrationQuality
    registration_seconds: float


def analyse_pair(
    preop: Scan,
    recurrence: Scan,
    *,
    modalities: Sequence[str] = ("t1",),
    preset: Preset = "quick",
    threads: int | None = 2,
    null_n: int = 500,
    seed: int = 0,
    chance: Chance = "brain",
    within_mm: float = 5.0,
    mask_exclude: MaskExclude = "tumour",
    min_brain_dice: float = 0.9,
    min_jacobian: float = 0.0,
    transforms_dir: str | Path | None = None,
    register_fn: Callable[..., Registration] = register,
) -> PairResult:
    """Register one patient's scans and compare pNEH with the recurrence ET.

    Parameters
    ----------
    preop, recurrence : Scan
    modalities : sequence of str, default ("t1",)
        Images registered (several: multi-channel SyN metric).
    preset, threads, min_brain_dice, min_jacobian
        Passed to :func:`nehmap.validate.registration.register`.
    null_n, seed, chance, within_mm
        Passed to :func:`chance_comparison`.
    mask_exclude : {"tumour", "core"}
        See :func:`registration_masks`.
    transforms_dir : path, optional
        Keep the transforms there (:meth:`Registration.save`).
    register_fn : callable
        The registration function (replaceable for tests).

    Returns
    -------
    PairResult

    Raises
    ------
    CaseExcluded
        No ET at recurrence, no NEH before surgery, or pNEH outside the brain after
        warping (checked before registering where possible).
    RegistrationError
        When the registration fails.
    """
    if not np.any(recurrence.labels == ET):
        raise CaseExcluded("no enhancing tumour (ET) in the recurrence segmentation")
    if not np.any(preop.labels == NEH):
        raise CaseExcluded("no NEH in the pre-operative segmentation")
    missing = [m for m in modalities if m not in preop.images or m not in recurrence.images]
    if missing:
        raise ValueError(f"modalities {missing} not loaded for registration")
    fixed_mask, moving_mask = registration_masks(preop, recurrence, mask_exclude)
    reg = register_fn(
        [recurrence.images[m] for m in modalities],
        [preop.images[m] for m in modalities],
        recurrence.affine,
        preop.affine,
        fixed_mask=fixed_mask,
        moving_mask=moving_mask,
        fixed_brain=recurrence.mask,
        moving_brain=preop.mask,
        preset=preset,
        threads=threads,
        seed=seed,
        min_brain_dice=min_brain_dice,
        min_jacobian=min_jacobian,
    )
    with reg:
        if transforms_dir is not None:
            reg.save(transforms_dir)
        source = np.where(preop.labels == NEH, 1, np.where(np.isin(preop.labels, (NC, ET)), 2, 0))
        warped = warp_labels(reg, source.astype(np.uint8))
        quality = reg.quality
        seconds = reg.seconds
    assert quality is not None
    pneh = (warped == 1) & recurrence.mask
    core = warped == 2
    if not pneh.any():
        raise CaseExcluded("the warped pre-operative NEH lies outside the recurrence brain")
    etrl = recurrence.labels == ET
    sp = recurrence.spacing
    centre = None
    if chance == "spin":
        ref = core if core.any() else pneh
        centre = np.argwhere(ref).mean(axis=0) * np.asarray(sp)
    table = chance_comparison(
        pneh,
        etrl,
        recurrence.mask,
        sp,
        n=null_n,
        seed=seed,
        chance=chance,
        centre_mm=centre,
        within_mm=within_mm,
    )
    voxel = float(np.prod(sp))
    table["pneh_volume_mm3"] = float(pneh.sum()) * voxel
    table["etrl_volume_mm3"] = float(etrl.sum()) * voxel
    return PairResult(table, pneh, core, quality, seconds)


# ---------------------------------------------------------------------- cohort statistics


def _tests_for(
    values: np.ndarray,
    *,
    baseline: float,
    alternative: str,
    n_permutations: int,
    seed: int,
    exact: bool | None,
) -> dict[str, Any]:
    finite = values[np.isfinite(values)]
    n_omitted = int(values.size - finite.size)
    if finite.size == 0:
        return {
            "observed_mean": math.nan,
            "observed_sd": math.nan,
            "null_mean": math.nan,
            "p_greater": math.nan,
            "p_less": math.nan,
            "p_two_sided": math.nan,
            "p_value": math.nan,
            "n": 0,
            "n_omitted": n_omitted,
            "method": "",
        }
    res = sign_flip_test(
        finite,
        baseline=baseline,
        n_permutations=n_permutations,
        seed=seed,
        exact=exact,
        alternative=alternative,  # type: ignore[arg-type]
    )
    return {
        "observed_mean": res.observed_mean,
        "observed_sd": float(finite.std(ddof=1)) if finite.size > 1 else math.nan,
        "null_mean": res.null_mean,
        "p_greater": res.p_greater,
        "p_less": res.p_less,
        "p_two_sided": res.p_two_sided,
        "p_value": res.p_value,
        "n": res.n,
        "n_omitted": n_omitted,
        "method": res.method,
    }


_DEGENERATE = (
    "degenerate: distances are never negative, so the mean always exceeds 0; says "
    "nothing about proximity (reported for comparison with the paper only)"
)


def cohort_tests(
    cases: pd.DataFrame,
    *,
    n_permutations: int = 10_000,
    seed: int = 0,
    exact: bool | None = None,
) -> pd.DataFrame:
    """Sign-flip tests of the per-case metrics (see the module documentation).

    Parameters
    ----------
    cases : pandas.DataFrame
        Tidy per-case table with at least ``case, metric, value, ratio, chance_rank``
        and optionally ``included`` (rows with ``included == False`` are left out).
    n_permutations : int, default 10000
        Random sign patterns when the test is not exact.
    seed : int, default 0
    exact : bool or None, default None
        None: exact for n <= 40, Monte Carlo otherwise.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`TEST_COLUMNS`, one row per metric and test.
    """
    table = cases
    if "included" in table.columns:
        table = table[table["included"].astype(bool)]
    rows = []
    for spec in METRICS:
        sub = table[table["metric"] == spec.name]
        plans: list[tuple[str, str, str, float, str, str]] = []
        if spec.name == "mean_edge_distance":
            plans.append(("paper", "raw", "value", 0.0, "greater", _DEGENERATE))
        else:
            plans.append(("paper", "ratio", "ratio", 1.0, "greater", ""))
        plans.append(("chance_ratio", "ratio", "ratio", 1.0, spec.agreement, ""))
        plans.append(
            (
                "chance_rank",
                "rank",
                "chance_rank",
                0.5,
                "greater",
                "rank oriented so that larger = more agreement than chance",
            )
        )
        for test, scale, column, baseline, alternative, note in plans:
            values = sub[column].to_numpy(dtype=float) if column in sub else np.array([])
            stats = _tests_for(
                values,
                baseline=baseline,
                alternative=alternative,
                n_permutations=n_permutations,
                seed=seed,
                exact=exact,
            )
            if stats["n_omitted"] and not note:
                note = f"{stats['n_omitted']} case(s) without a ratio (chance expectation 0)"
            rows.append(
                {
                    "metric": spec.name,
                    "paper_metric": spec.paper,
                    "test": test,
                    "scale": scale,
                    "baseline": baseline,
                    "alternative": alternative,
                    **stats,
                    "note": note,
                }
            )
    return pd.DataFrame(rows, columns=list(TEST_COLUMNS))


def cohort_summary(cases: pd.DataFrame) -> pd.DataFrame:
    """Mean, SD, median and n of every metric, raw and as chance ratio (the paper's Table 6).

    Parameters
    ----------
    cases : pandas.DataFrame
        Per-case table (rows with ``included == False`` are left out).

    Returns
    -------
    pandas.DataFrame
        Columns ``metric, paper_metric, scale, unit, mean, sd, median, n``.
    """
    table = cases
    if "included" in table.columns:
        table = table[table["included"].astype(bool)]
    rows = []
    for spec in METRICS:
        sub = table[table["metric"] == spec.name]
        for scale, column, unit in (
            ("raw", "value", spec.unit),
            ("ratio", "ratio", "ratio"),
            ("chance_expected", "chance_expected", spec.unit),
        ):
            v = sub[column].to_numpy(dtype=float) if column in sub else np.array([])
            v = v[np.isfinite(v)]
            rows.append(
                {
                    "metric": spec.name,
                    "paper_metric": spec.paper,
                    "scale": scale,
                    "unit": unit,
                    "mean": float(v.mean()) if v.size else math.nan,
                    "sd": float(v.std(ddof=1)) if v.size > 1 else math.nan,
                    "median": float(np.median(v)) if v.size else math.nan,
                    "n": int(v.size),
                }
            )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------- files and cohort


def find_segmentation(seg_dir: str | Path, case_id: str, model: str | None = None) -> Path:
    """The label map of ``case_id`` in a segmentation folder.

    Looked for, in order: ``<dir>/<case>/<case>_seg-<model>.nii.gz`` (``nehmap segment``
    output; with ``model`` None the only ``_seg-*`` file of the case), then
    ``<dir>/<case>_seg-<model>.nii.gz``, then a plain label map ``<dir>/<case>.nii.gz``
    (or ``.nii``).

    Raises
    ------
    nehmap.errors.NehmapInputError
        When nothing is found, or several models are and none was named.
    """
    from nehmap.errors import NehmapInputError

    root = Path(seg_dir)
    folder = root / case_id
    candidates: list[Path] = []
    if model:
        candidates += [
            folder / f"{case_id}_seg-{model}.nii.gz",
            root / f"{case_id}_seg-{model}.nii.gz",
        ]
    elif folder.is_dir():
        found = sorted(folder.glob(f"{case_id}_seg-*.nii.gz"))
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            raise NehmapInputError(
                folder,
                f"holds segmentations of several models ({names}).",
                "Name the model with --preop-model / --recurrence-model.",
            )
        candidates += found
    candidates += [root / f"{case_id}.nii.gz", root / f"{case_id}.nii"]
    for path in candidates:
        if path.is_file():
            return path
    wanted = f"{case_id}/{case_id}_seg-{model or '<model>'}.nii.gz or {case_id}.nii.gz"
    raise NehmapInputError(
        root,
        f"has no segmentation of {case_id} ({wanted}).",
        "Run 'nehmap segment' on the scan, or check the folder and --*-model options.",
    )


@dataclass
class RecurrenceConfig:
    """Options of :func:`run_recurrence` (the command's options).

    Attributes
    ----------
    preop_seg, recurrence_seg : path
        Segmentation folders (see :func:`find_segmentation`).
    preop_model, recurrence_model : str or None
        Model names of the segmentations (``paunet``, ``unetrpp``...).
    preset : str
        Registration preset.
    threads : int
        ITK threads.
    null_n : int
        Chance placements per case.
    seed : int
    chance : str
        ``"brain"`` or ``"spin"``.
    modalities : tuple of str
        Images registered.
    mask_exclude : str
        ``"tumour"`` or ``"core"``.
    within_mm : float
        Distance of FractionNearEdge (mm).
    exclude : tuple of str
        Patient or scan IDs left out by the user.
    keep_transforms : bool
        Keep every registration's transforms under ``OUT/transforms/<patient>/``.
    keep_flagged : bool
        Keep cases with a flagged registration in the cohort tests.
    n_permutations : int
        Monte Carlo sign flips (when not exact).
    min_brain_dice, min_jacobian : float
        Registration quality thresholds.
    layout : str or None
        Force the collection's layout.
    """

    preop_seg: Path
    recurrence_seg: Path
    preop_model: str | None = None
    recurrence_model: str | None = None
    preset: str = "quick"
    threads: int = 2
    null_n: int = 500
    seed: int = 0
    chance: str = "brain"
    modalities: tuple[str, ...] = ("t1",)
    mask_exclude: str = "tumour"
    within_mm: float = 5.0
    exclude: tuple[str, ...] = ()
    keep_transforms: bool = False
    keep_flagged: bool = False
    n_permutations: int = 10_000
    min_brain_dice: float = 0.9
    min_jacobian: float = 0.0
    layout: str | None = None
    include: tuple[str, ...] = ()
    clinical: Path | None = None
    clinical_id: str = "ID"
    exclude_where: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        out = {}
        for key, value in self.__dict__.items():
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[key] = value
        return out


@dataclass
class RecurrenceRun:
    """What :func:`run_recurrence` computed and wrote.

    Attributes
    ----------
    cases, tests, summary, excluded : pandas.DataFrame
        The tables written as ``recurrence_cases.csv``, ``recurrence_tests.csv``,
        ``recurrence_summary.csv`` and ``excluded.csv``.
    paths : dict of str to pathlib.Path
        The files written.
    """

    cases: pd.DataFrame
    tests: pd.DataFrame
    summary: pd.DataFrame
    excluded: pd.DataFrame
    paths: dict[str, Path] = field(default_factory=dict)


def load_scan(files: Any, seg_dir: Path, model: str | None, modalities: Sequence[str]) -> tuple:
    """(Scan, Case, segmentation path) of one time point."""
    from nehmap.errors import CaseError
    from nehmap.io import load_case, read_image
    from nehmap.labels import unexpected_values

    case = load_case(files, load_labels=False, load_rcbv=False)
    seg_path = find_segmentation(seg_dir, case.case_id, model)
    seg = read_image(seg_path, dtype=None, kind="label map")
    if seg.array.shape != case.shape or seg.grid.canonical_distance_mm(case.grid) > 1e-3:
        raise CaseError(
            case.case_id,
            seg_path,
            f"the segmentation (shape {seg.array.shape}) is not on the scan's grid "
            f"(shape {case.shape}).",
            "Segment the scan itself (nehmap segment writes on the input grid).",
        )
    labels = np.asarray(seg.array)
    if labels.dtype.kind == "f":
        if not np.all(labels == np.round(labels)):
            raise CaseError(case.case_id, seg_path, "holds non-integer labels.", "")
    labels = labels.astype(np.int64)
    bad = unexpected_values(labels, "nehmap")
    if bad:
        raise CaseError(
            case.case_id,
            seg_path,
            f"holds labels {list(bad)} outside nehmap's 0-4.",
            "Give nehmap label maps (0 background, 1 NC, 2 ED, 3 NEH, 4 ET).",
        )
    images = {m: case.images[m] for m in modalities}
    scan = Scan(images, labels.astype(np.uint8), case.affine, case.brain_mask(), case.case_id)
    return scan, case, seg_path


def _versions() -> dict[str, str]:
    import platform

    import nibabel
    import scipy

    from nehmap._version import __version__

    out = {
        "nehmap": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pandas": pd.__version__,
        "nibabel": nibabel.__version__,
    }
    try:
        import ants

        out["antspyx"] = getattr(ants, "__version__", "unknown")
    except ImportError:  # pragma: no cover - ants is a dependency
        out["antspyx"] = "missing"
    return out


def _match_excluded(subject: str, scans: Iterable[str], exclude: Iterable[str]) -> bool:
    wanted = set(exclude)
    return subject in wanted or any(s in wanted for s in scans)


def run_recurrence(
    cohort: str | Path,
    out: str | Path,
    config: RecurrenceConfig,
    *,
    progress: bool = True,
    register_fn: Callable[..., Registration] = register,
) -> RecurrenceRun:
    """Run the H3 analysis over a longitudinal collection and write the tables.

    Parameters
    ----------
    cohort : path
        Collection with pre-operative and recurrence time points (RHUH-GBM layout or a
        manifest with time points).
    out : path
        Output folder; gets ``recurrence_cases.csv``, ``recurrence_tests.csv``,
        ``recurrence_summary.csv``, ``excluded.csv``, ``recurrence_run.json``,
        ``warped/<patient>_pneh.nii.gz`` and ``warped/<patient>_preop-core.nii.gz`` (on
        the recurrence grid), and with ``keep_transforms`` ``transforms/<patient>/``.
    config : RecurrenceConfig
    progress : bool, default True
        Show a progress bar over the patients (on stderr).
    register_fn : callable
        The registration function (replaceable for tests).

    Returns
    -------
    RecurrenceRun
    """
    from tqdm import tqdm

    from nehmap.errors import NehmapInputError
    from nehmap.io import discover, write_image, write_text_atomic

    started = time.time()
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    collection = discover(cohort, layout=config.layout)
    case_frames: list[pd.DataFrame] = []
    excluded: list[dict[str, str]] = []
    subjects = collection.by_subject()
    if config.include or config.exclude_where:
        from nehmap.validate.cohort import select_cases

        clinical = pd.read_csv(config.clinical) if config.clinical else None
        selection = select_cases(
            collection.cases,
            include=set(config.include) or None,
            clinical=clinical,
            clinical_id=config.clinical_id,
            exclude_where=config.exclude_where,
        )
        excluded.extend(selection.excluded)
        subjects = {}
        for case in selection.cases:
            subjects.setdefault(case.subject, {})[case.timepoint] = case
    segmentations: dict[str, dict[str, str]] = {}
    written: dict[str, Path] = {}
    bar = tqdm(
        sorted(subjects),
        desc="patients",
        unit="patient",
        file=sys.stderr,
        disable=not progress,
    )
    for subject in bar:
        scans = subjects[subject]
        pre_files = scans.get("preop")
        rec_files = scans.get("recurrence")
        scan_ids = [f.case_id for f in scans.values()]
        if _match_excluded(subject, scan_ids, config.exclude):
            excluded.append({"case": subject, "reason": "excluded by the user (--exclude)"})
            continue
        if pre_files is None or rec_files is None:
            which = "pre-operative" if pre_files is None else "recurrence"
            excluded.append({"case": subject, "reason": f"no {which} scan"})
            continue
        bar.set_postfix_str(subject)
        try:
            pre, _, pre_seg = load_scan(
                pre_files, config.preop_seg, config.preop_model, config.modalities
            )
            rec, rec_case, rec_seg = load_scan(
                rec_files, config.recurrence_seg, config.recurrence_model, config.modalities
            )
            segmentations[subject] = {"preop": str(pre_seg), "recurrence": str(rec_seg)}
            transforms = out_dir / "transforms" / subject if config.keep_transforms else None
            result = analyse_pair(
                pre,
                rec,
                modalities=config.modalities,
                preset=config.preset,  # type: ignore[arg-type]
                threads=config.threads,
                null_n=config.null_n,
                seed=config.seed,
                chance=config.chance,  # type: ignore[arg-type]
                within_mm=config.within_mm,
                mask_exclude=config.mask_exclude,  # type: ignore[arg-type]
                min_brain_dice=config.min_brain_dice,
                min_jacobian=config.min_jacobian,
                transforms_dir=transforms,
                register_fn=register_fn,
            )
        except CaseExcluded as exc:
            excluded.append({"case": subject, "reason": exc.reason})
            continue
        except RegistrationError as exc:
            excluded.append({"case": subject, "reason": f"registration failed: {exc}"})
            tqdm.write(f"{subject}: registration failed: {exc}", file=sys.stderr)
            continue
        except (NehmapInputError, OSError) as exc:
            excluded.append({"case": subject, "reason": f"cannot be read: {exc}"})
            tqdm.write(f"{subject}: {exc}", file=sys.stderr)
            continue
        except (RuntimeError, ValueError) as exc:  # e.g. no chance placement fits the brain
            excluded.append({"case": subject, "reason": f"analysis failed: {exc}"})
            tqdm.write(f"{subject}: analysis failed: {exc}", file=sys.stderr)
            continue
        warped_dir = out_dir / "warped"
        for name, mask in (("pneh", result.pneh), ("preop-core", result.core)):
            path = write_image(
                mask.astype(np.uint8),
                rec_case.grid,
                warped_dir / f"{subject}_{name}.nii.gz",
                dtype=np.uint8,
                inputs=rec_case.inputs,
                description=f"nehmap pre-operative {name} in recurrence space",
            )
            written[f"{subject}:{name}"] = path
        included = not result.quality.flag or config.keep_flagged
        if not included:
            reason = "; ".join(result.quality.reasons)
            excluded.append({"case": subject, "reason": f"registration flagged: {reason}"})
        frame = result.metrics
        frame.insert(0, "recurrence_case", rec_files.case_id)
        frame.insert(0, "preop_case", pre_files.case_id)
        frame.insert(0, "case", subject)
        for key, value in quality_columns(result.quality).items():
            frame[key] = value
        frame["registration_seconds"] = result.registration_seconds
        frame["included"] = included
        case_frames.append(frame)
    cases = (
        pd.concat(case_frames, ignore_index=True)
        if case_frames
        else pd.DataFrame(columns=list(CASE_COLUMNS))
    )
    cases = cases[[c for c in CASE_COLUMNS if c in cases.columns]]
    tests = cohort_tests(cases, n_permutations=config.n_permutations, seed=config.seed)
    summary = cohort_summary(cases)
    excluded_df = pd.DataFrame(excluded, columns=["case", "reason"])
    tables = {
        "recurrence_cases.csv": cases,
        "recurrence_tests.csv": tests,
        "recurrence_summary.csv": summary,
        "excluded.csv": excluded_df,
    }
    for name, frame in tables.items():
        path = out_dir / name
        write_text_atomic(path, frame.to_csv(index=False))
        written[name] = path
    record = {
        "command": "nehmap validate recurrence",
        "cohort": str(Path(cohort).absolute()),
        "layout": collection.layout,
        "parameters": config.as_dict(),
        "versions": _versions(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "patients": len(subjects),
        "analysed": int(cases["case"].nunique()) if len(cases) else 0,
        "in_tests": int(cases.loc[cases["included"].astype(bool), "case"].nunique())
        if len(cases)
        else 0,
        "excluded": excluded,
        "segmentations": segmentations,
        "columns": {
            "recurrence_cases.csv": dict(CASE_COLUMNS),
            "recurrence_tests.csv": dict(TEST_COLUMNS),
            "excluded.csv": {"case": "patient ID", "reason": "why it is not in the tests"},
        },
        "tests": (
            "paper: raw mean edge distance vs 0 (degenerate) and the other metrics' chance "
            "ratios vs 1; chance_ratio: every chance ratio vs 1 in the direction of "
            "agreement; chance_rank: chance rank vs 0.5 (valid under a skewed null)"
        ),
    }
    path = out_dir / "recurrence_run.json"
    write_text_atomic(path, json.dumps(record, indent=2, default=str))
    written["recurrence_run.json"] = path
    return RecurrenceRun(cases, tests, summary, excluded_df, written)
