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
consensus NEH mask and the pre-operative tumour core and the recurrence ET come from
:data:`DEFAULT_ET_MODEL` (see :func:`resolve_maps`). ``recurrence_run.json`` records the
files used.

Excluded from the tests, with the reason in ``excluded.csv``: patients without one of the
two scans or segmentations, a recurrence segmentation without ET, a pre-operative one
without NEH, a pNEH that leaves the brain when warped, a failed registration, and (unless
``keep_flagged``) a registration flagged by its quality check. Excluded cases with
metrics keep their rows in ``recurrence_cases.csv`` with ``included = False``.

Where each step lives (all re-exported here):

================================================  =====================================
module                                            holds
================================================  =====================================
:mod:`~nehmap.validate.recurrence_cohort`         pairing the scans of each patient,
                                                  finding and loading their maps
:mod:`~nehmap.validate.recurrence_masks`          :class:`Scan`, the registration masks,
                                                  pNEH, core and ETRL on the recurrence
                                                  grid, the chance domain
:mod:`~nehmap.validate.recurrence_pair`           :func:`analyse_pair`: one patient
:mod:`~nehmap.validate.chance`                    the chance models
:mod:`~nehmap.validate.recurrence_metrics`        the per-patient metrics
:mod:`~nehmap.validate.recurrence_tests`          the cohort tests
this module                                       :func:`run_recurrence` over a cohort
:mod:`~nehmap.validate.recurrence_outputs`        the tables' columns, warped masks and
                                                  the run record
================================================  =====================================
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from nehmap.validate.chance import CHANCE_MODELS, chance_comparison
from nehmap.validate.recurrence_cohort import (
    DEFAULT_ET_MODEL,
    describe_maps,
    find_segmentation,
    load_scan,
    pair_exclusion,
    resolve_maps,
    select_subjects,
)
from nehmap.validate.recurrence_masks import (
    MaskExclude,
    Scan,
    control_map,
    registration_masks,
)
from nehmap.validate.recurrence_metrics import (
    METRICS,
    CaseExcluded,
    EdgePanel,
    MetricSpec,
    spatial_relation,
    summarise_null,
)
from nehmap.validate.recurrence_outputs import (
    CASE_COLUMNS,
    RecurrenceRun,
    case_frame,
    run_record,
    write_warped,
)
from nehmap.validate.recurrence_pair import PairResult, analyse_pair
from nehmap.validate.recurrence_tests import TEST_COLUMNS, cohort_summary, cohort_tests
from nehmap.validate.registration import Registration, RegistrationError, register

__all__ = [
    "CASE_COLUMNS",
    "CHANCE_MODELS",
    "DEFAULT_ET_MODEL",
    "TEST_COLUMNS",
    "METRICS",
    "CaseExcluded",
    "MaskExclude",
    "MetricSpec",
    "PairResult",
    "RecurrenceConfig",
    "RecurrenceRun",
    "Scan",
    "analyse_pair",
    "chance_comparison",
    "cohort_summary",
    "cohort_tests",
    "control_map",
    "describe_maps",
    "find_segmentation",
    "load_scan",
    "registration_masks",
    "resolve_maps",
    "run_recurrence",
    "spatial_relation",
]

_Panel = EdgePanel  # former private names, kept for callers
_summarise_null = summarise_null


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
        Segmentation folders, models, registration and chance settings.
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
    from nehmap.io import discover, write_text_atomic

    started = time.time()
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    collection = discover(cohort, layout=config.layout)
    case_frames: list[pd.DataFrame] = []
    subjects, excluded = select_subjects(
        collection,
        include=config.include,
        clinical=config.clinical,
        clinical_id=config.clinical_id,
        exclude_where=config.exclude_where,
    )
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
        reason = pair_exclusion(subject, scans, config.exclude)
        if reason is not None:
            excluded.append({"case": subject, "reason": reason})
            continue
        pre_files, rec_files = scans["preop"], scans["recurrence"]
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
        write_warped(result, subject, rec_case, out_dir, written)
        included = not result.quality.flag or config.keep_flagged
        if not included:
            reason = "; ".join(result.quality.reasons)
            excluded.append({"case": subject, "reason": f"registration flagged: {reason}"})
        case_frames.append(case_frame(result, subject, pre_files, rec_files, included))
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
    record = run_record(
        cohort,
        collection.layout,
        config.as_dict(),
        started,
        len(subjects),
        cases,
        excluded,
        segmentations,
    )
    path = out_dir / "recurrence_run.json"
    write_text_atomic(path, json.dumps(record, indent=2, default=str))
    written["recurrence_run.json"] = path
    return RecurrenceRun(cases, tests, summary, excluded_df, written)
