"""What an H3 run writes: the case table's columns, the warped masks and the run record.

* :data:`CASE_COLUMNS`: the columns of ``recurrence_cases.csv`` and what each means.
* :func:`write_warped`: a patient's pNEH, pre-operative core and matched controls as
  NIfTI label maps on the recurrence grid (``warped/<patient>_<mask>.nii.gz``).
* :func:`case_frame`: a patient's rows of the case table.
* :func:`run_record`: the content of ``recurrence_run.json`` (parameters, versions,
  counts, exclusions, the maps used, the columns and the tests).
* :class:`RecurrenceRun`: what :func:`nehmap.validate.recurrence.run_recurrence`
  computed and wrote.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nehmap.validate.recurrence_cohort import describe_maps
from nehmap.validate.recurrence_masks import control_map
from nehmap.validate.recurrence_pair import PairResult
from nehmap.validate.recurrence_tests import TEST_COLUMNS
from nehmap.validate.registration import quality_columns

__all__ = ["CASE_COLUMNS", "RecurrenceRun", "case_frame", "run_record", "write_warped"]

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


def write_warped(
    result: PairResult, subject: str, rec_case: Any, out_dir: Path, written: dict[str, Path]
) -> None:
    """Write a patient's warped masks (and matched controls) on the recurrence grid."""
    from nehmap.io import write_image

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


def case_frame(
    result: PairResult, subject: str, pre_files: Any, rec_files: Any, included: bool
) -> pd.DataFrame:
    """A patient's rows of ``recurrence_cases.csv`` (before the column order is set)."""
    frame = result.metrics
    frame.insert(0, "recurrence_case", rec_files.case_id)
    frame.insert(0, "preop_case", pre_files.case_id)
    frame.insert(0, "case", subject)
    for key, value in quality_columns(result.quality).items():
        frame[key] = value
    frame["registration_seconds"] = result.registration_seconds
    frame["included"] = included
    return frame


def run_record(
    cohort: str | Path,
    layout: str,
    parameters: Mapping[str, Any],
    started: float,
    n_patients: int,
    cases: pd.DataFrame,
    excluded: list[dict[str, str]],
    segmentations: dict[str, dict[str, str]],
) -> dict[str, Any]:
    """The content of ``recurrence_run.json``.

    Parameters
    ----------
    cohort : path
        The collection analysed.
    layout : str
        Its layout.
    parameters : mapping
        The run's options (:meth:`RecurrenceConfig.as_dict`).
    started : float
        Start time (seconds since the epoch).
    n_patients : int
        Patients in the collection after the selection.
    cases : pandas.DataFrame
        The case table (columns of :data:`CASE_COLUMNS`).
    excluded : list of dict
        ``{"case", "reason"}`` rows.
    segmentations : dict
        Patient -> the files of its maps (see :func:`describe_maps`).
    """
    return {
        "command": "nehmap validate recurrence",
        "cohort": str(Path(cohort).absolute()),
        "layout": layout,
        "parameters": parameters,
        "versions": _versions(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "patients": n_patients,
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
