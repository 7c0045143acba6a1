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

4. **Chance models per case** (``chance``, :mod:`nehmap.validate.chance`; default
   ``("matched", "brain")``): ``matched`` places pNEH's shape at other positions of the
   same distance profile to the tumour core / cavity, in tissue that could hold NEH
   (the study's primary test); ``brain`` places it anywhere in the brain, as the paper;
   ``spin`` rotates it about the cavity. Per metric and model: ``chance_expected``,
   ``chance_sd``, ``ratio = value / chance_expected``, ``p_spatial`` and ``chance_rank``;
   with ``matched`` also ``control_value``, the mean metric of the matched controls.
5. **Cohort tests** (:mod:`nehmap.validate.recurrence_tests`): sign-flip tests per
   chance model, metric and test, Holm-adjusted across the paper's four metrics; the
   primary H3 test is the ``matched`` model's ``chance_rank`` test.

**Maps used.** On ``nehmap segment`` output with no model named, the pNEH is the fused
consensus NEH mask (``<case>_neh-mask``, model name ``fused``; the paper's pNEH is the
consensus) and the pre-operative tumour core and the recurrence ET come from
:data:`DEFAULT_ET_MODEL` when that model is present (else the only, or first, network
by name); see :func:`resolve_maps`. ``recurrence_run.json`` records the files used.

Excluded from the tests, with the reason in ``excluded.csv``: patients without one of the
two scans or segmentations, a recurrence segmentation without ET, a pre-operative one
without NEH, a pNEH that leaves the brain when warped, a failed registration, and (unless
``keep_flagged``) a registration flagged by its quality check. Excluded cases with
metrics keep their rows in ``recurrence_cases.csv`` with ``included = False``.
"""

from __future__ import annotations

import json
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
from nehmap.validate.chance import (
    CHANCE_MODELS,
    Chance,
    chance_comparison,
    dark_csf,
    peritumoral_domain,
)
from nehmap.validate.recurrence_metrics import (
    METRICS,
    CaseExcluded,
    EdgePanel,
    MetricSpec,
    spatial_relation,
    summarise_null,
)
from nehmap.validate.recurrence_tests import TEST_COLUMNS, cohort_summary, cohort_tests
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
    "DEFAULT_ET_MODEL",
    "TEST_COLUMNS",
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

MaskExclude = Literal["tumour", "core"]

_Panel = EdgePanel  # former private names, kept for callers
_summarise_null = summarise_null

DEFAULT_ET_MODEL = "unetrpp"
"""Network whose map gives the tumour core and the recurrence ET on segment output."""

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
    "chance_model": "matched (distance-matched, primary), brain (as the paper) or spin",
    "null_n": "number of chance placements",
    "control_value": "matched: mean metric of the matched controls (overlap <= 10 %)",
    "n_controls": "matched: number of matched controls",
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
    neh : numpy.ndarray of bool, optional
        The NEH mask when it comes from another map than ``labels`` (the fused consensus
        mask of ``nehmap segment``); default: ``labels == 3``.
    """

    images: Mapping[str, np.ndarray]
    labels: np.ndarray
    affine: np.ndarray
    brain: np.ndarray | None = None
    case_id: str = ""
    neh: np.ndarray | None = None

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
    def neh_mask(self) -> np.ndarray:
        """The NEH mask: :attr:`neh` when given, else ``labels == 3``."""
        if self.neh is not None:
            return np.asarray(self.neh, dtype=bool)
        return self.labels == NEH

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
    controls : list of numpy.ndarray of int
        Flat indices (recurrence grid) of the matched placements, least overlapping pNEH
        first, when ``matched`` ran.
    """

    metrics: pd.DataFrame
    pneh: np.ndarray
    core: np.ndarray
    quality: RegistrationQuality
    registration_seconds: float
    controls: list[np.ndarray] = field(default_factory=list)


def analyse_pair(
    preop: Scan,
    recurrence: Scan,
    *,
    modalities: Sequence[str] = ("t1",),
    preset: Preset = "quick",
    threads: int | None = 2,
    null_n: int = 500,
    seed: int = 0,
    chance: Chance | Sequence[str] = ("matched", "brain"),
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
    null_n, seed, within_mm
        Passed to :func:`chance_comparison`.
    chance : str or sequence of str, default ("matched", "brain")
        Chance model(s), each giving one row per metric. ``matched`` places pNEH in the
        recurrence brain without the warped core, the recurrence necrosis and the T1-dark
        CSF (:func:`nehmap.validate.chance.dark_csf`).
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
    if not np.any(preop.neh_mask):
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
        source = np.where(preop.neh_mask, 1, np.where(np.isin(preop.labels, (NC, ET)), 2, 0))
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
    models = (chance,) if isinstance(chance, str) else tuple(chance)
    ref = core if core.any() else pneh
    centre = np.argwhere(ref).mean(axis=0) * np.asarray(sp)
    csf = dark_csf(recurrence.images["t1"], recurrence.mask) if "t1" in recurrence.images else None
    exclude = recurrence.labels == NC
    if csf is not None:
        exclude |= csf
    domain = peritumoral_domain(recurrence.mask, core, exclude) | pneh
    controls: list[np.ndarray] = []
    tables = [
        chance_comparison(
            pneh,
            etrl,
            recurrence.mask,
            sp,
            n=null_n,
            seed=seed,
            chance=model,  # type: ignore[arg-type]
            centre_mm=centre,
            core=core if core.any() else None,
            domain=domain,
            within_mm=within_mm,
            controls_out=controls if model == "matched" else None,
        )
        for model in models
    ]
    table = pd.concat(tables, ignore_index=True)
    voxel = float(np.prod(sp))
    table["pneh_volume_mm3"] = float(pneh.sum()) * voxel
    table["etrl_volume_mm3"] = float(etrl.sum()) * voxel
    return PairResult(table, pneh, core, quality, seconds, controls)


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
        Model names of the segmentations (``paunet``, ``unetrpp``...; ``fused`` for the
        fused NEH mask before surgery); None: the defaults of :func:`resolve_maps`.
    preset : str
        Registration preset.
    threads : int
        ITK threads.
    null_n : int
        Chance placements per case.
    seed : int
    chance : tuple of str
        Chance models (:data:`CHANCE_MODELS`); default ``("matched", "brain")``: the
        distance-matched model (primary test) and the paper's whole-brain model.
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
    chance: tuple[str, ...] = ("matched", "brain")
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


def resolve_maps(
    seg_dir: str | Path,
    case_id: str,
    model: str | None,
    role: str,
    core_model: str | None = None,
) -> dict[str, Path]:
    """The maps of one scan: ``labels`` (a nehmap label map) and, pre-operatively, ``neh``.

    On ``nehmap segment`` output (``<dir>/<case>/<case>_seg-*.nii.gz``):

    * the label map is ``model``'s when a network is named, else ``core_model``'s when
      given and present, else :data:`DEFAULT_ET_MODEL`'s (``unetrpp``), else the one
      network of the UNETR++ family (a name containing ``unetrpp``, not the consensus
      network), else the only network with nehmap labels;
    * pre-operatively (``role="preop"``), with ``model`` None or ``"fused"``, the pNEH is
      the fused consensus mask ``<case>_neh-mask.nii.gz`` (the paper's pNEH is the
      consensus) when present; a named network gives its own NEH (label 3).

    Elsewhere :func:`find_segmentation` finds the label map (and NEH is its label 3).

    Parameters
    ----------
    seg_dir : path
    case_id : str
    model : str or None
        Network name, ``"fused"`` (pre-operative only) or None.
    role : {"preop", "recurrence"}
    core_model : str, optional
        Network for the label map when ``model`` is None or ``"fused"``.

    Returns
    -------
    dict of str to pathlib.Path
        ``{"labels": ...}`` plus ``"neh"`` when the fused mask is used.

    Raises
    ------
    nehmap.errors.NehmapInputError
        Nothing found, ``fused`` asked for a recurrence ET, or several networks and no
        default among them.
    """
    from nehmap.errors import NehmapInputError
    from nehmap.io.segmentations import _model_scheme

    folder = Path(seg_dir) / case_id
    fused = folder / f"{case_id}_neh-mask.nii.gz"
    if model == "fused" and role != "preop":
        raise NehmapInputError(
            seg_dir,
            "'fused' is the fused NEH mask: it holds no enhancing tumour for the recurrence.",
            "Name a network with --recurrence-model (or leave it out for the default "
            f"{DEFAULT_ET_MODEL}).",
        )
    networks = (
        sorted(
            p.name[len(case_id) + 5 : -len(".nii.gz")]
            for p in folder.glob(f"{case_id}_seg-*.nii.gz")
        )
        if folder.is_dir()
        else []
    )
    if not networks:
        if model == "fused":
            raise NehmapInputError(
                seg_dir,
                f"has no 'nehmap segment' output for {case_id} (no {case_id}/{fused.name}).",
                "Run 'nehmap segment' on the scans, or name the model of the label maps.",
            )
        return {"labels": find_segmentation(seg_dir, case_id, model)}
    out: dict[str, Path] = {}
    if model in (None, "fused") and role == "preop" and fused.is_file():
        out["neh"] = fused
    elif model == "fused":
        raise NehmapInputError(
            folder, f"has no fused NEH mask ({fused.name}).", "Run 'nehmap segment' again."
        )
    if model and model != "fused":
        out["labels"] = find_segmentation(seg_dir, case_id, model)
        return out
    usable = [m for m in networks if _model_scheme(folder, case_id, m) == "nehmap"]
    family = [m for m in usable if DEFAULT_ET_MODEL in m and "consensus" not in m]
    if core_model and core_model in usable:
        chosen = core_model
    elif DEFAULT_ET_MODEL in usable:
        chosen = DEFAULT_ET_MODEL
    elif len(family) == 1:
        chosen = family[0]
    elif len(usable) == 1:
        chosen = usable[0]
    else:
        option = "--preop-model" if role == "preop" else "--recurrence-model"
        raise NehmapInputError(
            folder,
            f"holds segmentations of several models ({', '.join(networks)}) and not the "
            f"default {DEFAULT_ET_MODEL}.",
            f"Name the model with {option}.",
        )
    out["labels"] = folder / f"{case_id}_seg-{chosen}.nii.gz"
    return out


def load_scan(
    files: Any,
    seg_dir: Path,
    model: str | None,
    modalities: Sequence[str],
    role: str = "preop",
    core_model: str | None = None,
) -> tuple:
    """(Scan, Case, maps used) of one time point (see :func:`resolve_maps`)."""
    from nehmap.errors import CaseError
    from nehmap.io import load_case, read_image
    from nehmap.labels import unexpected_values

    case = load_case(files, load_labels=False, load_rcbv=False)
    maps = resolve_maps(seg_dir, case.case_id, model, role, core_model)
    arrays = {}
    for key, seg_path in maps.items():
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
        arrays[key] = labels.astype(np.int64)
    labels = arrays["labels"]
    bad = unexpected_values(labels, "nehmap")
    if bad:
        raise CaseError(
            case.case_id,
            maps["labels"],
            f"holds labels {list(bad)} outside nehmap's 0-4.",
            "Give nehmap label maps (0 background, 1 NC, 2 ED, 3 NEH, 4 ET).",
        )
    neh = arrays["neh"] > 0 if "neh" in arrays else None
    images = {m: case.images[m] for m in modalities}
    scan = Scan(images, labels.astype(np.uint8), case.affine, case.brain_mask(), case.case_id, neh)
    return scan, case, maps


def control_map(controls: Sequence[np.ndarray], shape: tuple[int, ...], k: int = 8) -> np.ndarray:
    """A label map of the first ``k`` matched placements (label i = placement i; later win).

    Parameters
    ----------
    controls : sequence of numpy.ndarray of int
        Flat indices of each control on a grid of ``shape``.
    shape : tuple of int
    k : int, default 8

    Returns
    -------
    numpy.ndarray of uint8, shape ``shape``
    """
    out = np.zeros(int(np.prod(shape)), dtype=np.uint8)
    for i, flat in enumerate(controls[:k]):
        out[flat] = i + 1
    return out.reshape(shape)


def _map_kind(path: str) -> str:
    name = Path(path).name
    if name.endswith("_neh-mask.nii.gz"):
        return "fused consensus NEH mask (<case>_neh-mask)"
    if "_seg-" in name:
        model = name.split("_seg-")[-1].removesuffix(".nii.gz")
        return f"{model} label map (<case>_seg-{model})"
    return "label map (<case>.nii.gz)"


def describe_maps(segmentations: Mapping[str, Mapping[str, str]]) -> dict[str, list[str]]:
    """Which maps gave pNEH, the pre-operative core and the recurrence ET (for the record).

    Parameters
    ----------
    segmentations : mapping
        Patient -> ``{"preop", "preop_neh", "recurrence"}`` file paths.

    Returns
    -------
    dict
        ``pneh``, ``preop_core`` and ``recurrence_et`` -> the kinds of map used (sorted).
    """
    kinds: dict[str, set[str]] = {"pneh": set(), "preop_core": set(), "recurrence_et": set()}
    for files in segmentations.values():
        kinds["pneh"].add(_map_kind(files.get("preop_neh", files["preop"])))
        kinds["preop_core"].add(_map_kind(files["preop"]))
        kinds["recurrence_et"].add(_map_kind(files["recurrence"]))
    return {key: sorted(value) for key, value in kinds.items()}


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
            pre, _, pre_maps = load_scan(
                pre_files, config.preop_seg, config.preop_model, config.modalities, "preop"
            )
            rec, rec_case, rec_maps = load_scan(
                rec_files,
                config.recurrence_seg,
                config.recurrence_model,
                config.modalities,
                "recurrence",
            )
            segmentations[subject] = {
                "preop": str(pre_maps["labels"]),
                "preop_neh": str(pre_maps.get("neh", pre_maps["labels"])),
                "recurrence": str(rec_maps["labels"]),
            }
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
        masks = [("pneh", result.pneh), ("preop-core", result.core)]
        if result.controls:
            masks.append(("matched-controls", control_map(result.controls, result.pneh.shape)))
        for name, mask in masks:
            path = write_image(
                np.asarray(mask).astype(np.uint8),
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
        "maps": describe_maps(segmentations),
        "columns": {
            "recurrence_cases.csv": dict(CASE_COLUMNS),
            "recurrence_tests.csv": dict(TEST_COLUMNS),
            "excluded.csv": {"case": "patient ID", "reason": "why it is not in the tests"},
        },
        "tests": (
            "primary: the matched chance model's chance_rank test (pNEH against "
            "distance-matched placements in tissue that could hold NEH), Holm-adjusted "
            "across the four paper metrics; matched_control: pNEH minus its matched "
            "controls vs 0; paper (brain model, as the paper): raw mean edge distance vs 0 "
            "(degenerate) and the other chance ratios vs 1; chance_ratio: chance ratio vs 1"
        ),
    }
    path = out_dir / "recurrence_run.json"
    write_text_atomic(path, json.dumps(record, indent=2, default=str))
    written["recurrence_run.json"] = path
    return RecurrenceRun(cases, tests, summary, excluded_df, written)
