"""The per-case steps of a study: top-level, picklable, idempotent.

Each step reads its inputs, writes its outputs atomically and finally a small
``done.json`` marker holding a hash of the settings that produced them. A rerun skips a
step whose marker exists with the same hash; killing a run at any moment leaves either
a complete step (marker present) or one that is redone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from nehmap.io import write_text_atomic
from nehmap.io.layouts import CaseFiles
from nehmap.study.executor import TaskResult

_MODEL_CACHE: dict[tuple, Any] = {}


def marker_matches(marker: Path, params_hash: str) -> bool:
    """True when ``marker`` exists and records ``params_hash``."""
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()).get("params_hash") == params_hash
    except (json.JSONDecodeError, OSError):
        return False


def write_marker(marker: Path, params_hash: str, **extra: Any) -> None:
    """Record (atomically) that a step finished with the parameters of ``params_hash``."""
    write_text_atomic(
        marker, json.dumps({"params_hash": params_hash, **extra}, indent=2, default=str)
    )


# ----------------------------------------------------------------------------- segment


@dataclass(frozen=True)
class SegmentTask:
    """Segment one case with the study's models and fuse."""

    key: str
    files: CaseFiles
    out_dir: Path
    models: tuple[str, ...]
    device: str
    tta: bool
    sigma_mm: float
    threshold: float
    low: float
    params_hash: str
    fusion: str = "mean"


def _models(names: tuple[str, ...], device: str) -> list:
    from nehmap.segmentation import load_models

    key = (names, device)
    if key not in _MODEL_CACHE:
        _MODEL_CACHE[key] = load_models(list(names), device or None)
    return _MODEL_CACHE[key]


def segment_step(task: SegmentTask) -> TaskResult:
    """Segment and fuse one case into ``out_dir/<case>/``, unless already done alike."""
    from nehmap.io import load_case
    from nehmap.segmentation import segment, write_segmentation

    marker = task.out_dir / task.files.case_id / "done.json"
    if marker_matches(marker, task.params_hash):
        return TaskResult(task.key, "skipped")
    case = load_case(task.files, load_labels=False, load_rcbv=False)
    result = segment(
        case,
        _models(task.models, task.device),
        device=task.device or None,
        mirror=task.tta,
        sigma_mm=task.sigma_mm,
        threshold=task.threshold,
        low=task.low,
        fusion=task.fusion,
    )
    write_segmentation(result, case, task.out_dir)
    write_marker(marker, task.params_hash)
    return TaskResult(task.key, "done")


# ----------------------------------------------------------------------------- measure


@dataclass(frozen=True)
class MeasureTask:
    """Measure one pre-operative case: agreement, intensities, rCBV, rims."""

    key: str
    files: CaseFiles
    seg_dir: Path
    out_dir: Path
    models: tuple[str, ...]
    agreement: dict
    intensity_normalise: str
    vessel_percentile: float
    h1_exclude_vessels: bool  # H1's primary analysis; the other way is the sensitivity one
    rims: dict
    perfusion_excluded: str  # non-empty: the reason this case is left out of H1/H2
    params_hash: str


def measure_step(task: MeasureTask) -> TaskResult:
    """Measure one segmented case: agreement, intensities, rCBV and rims, as CSV tables.

    Skipped when the case's ``done.json`` records the same parameters.
    """
    from nehmap.evaluate import evaluate_pair
    from nehmap.io import load_case
    from nehmap.io.segmentations import CONSENSUS_SCHEME, segment_output_ref
    from nehmap.validate.intensity import label_intensities
    from nehmap.validate.perfusion import perfusion_mask
    from nehmap.validate.rcbv import compartment_rcbv
    from nehmap.validate.rims import rim_rcbv

    case_id = task.files.case_id
    folder = task.out_dir / case_id
    marker = folder / "done.json"
    if marker_matches(marker, task.params_hash):
        return TaskResult(task.key, "skipped")
    case = load_case(task.files, load_labels=False, load_rcbv=not task.perfusion_excluded)
    refs = {
        m: segment_output_ref(task.seg_dir, case_id, m) for m in (*task.models, "fused", "levels")
    }
    missing = [m for m in task.models if refs[m] is None]
    if missing:
        raise FileNotFoundError(
            f"no segmentation of {', '.join(missing)} for {case_id} in {task.seg_dir}"
        )
    labels = {m: r.read()[0] for m, r in refs.items() if r is not None}
    tables: dict[str, pd.DataFrame] = {}
    pred, ref = task.agreement["pred"], task.agreement["ref"]
    if refs.get(pred) is not None and refs.get(ref) is not None:
        agreement = evaluate_pair(
            refs[pred],
            refs[ref],
            method=task.agreement["method"],
            tolerance_mm=task.agreement["tolerance_mm"],
        )
        tables["agreement"] = agreement.assign(pred=pred, ref=ref)
    four_label = [m for m in task.models if refs[m].scheme != CONSENSUS_SCHEME]
    normalise = None if task.intensity_normalise == "none" else task.intensity_normalise
    rows = []
    for m in four_label:
        t = label_intensities(case.images, labels[m], normalise=normalise, brain=case.brain_mask())
        rows.append(t.assign(case=case_id, model=m))
    tables["intensity"] = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    if not task.perfusion_excluded and case.rcbv is not None:
        # H2 always leaves out large vessels (as the paper); H1 does only when asked
        perf = perfusion_mask(
            case.rcbv, case.brain_mask(), vessel_percentile=task.vessel_percentile
        )
        kept = perfusion_mask(case.rcbv, case.brain_mask(), vessel_percentile=None)
        primary, other = (perf, kept) if task.h1_exclude_vessels else (kept, perf)
        for name, mask in (("rcbv", primary), ("rcbv_alt", other)):
            rows = []
            for m, lab in labels.items():
                if m == "fused":
                    continue
                consensus = refs[m].scheme == CONSENSUS_SCHEME
                rows.append(
                    compartment_rcbv(case.rcbv, lab, mask, consensus=consensus).assign(
                        case=case_id, model=m
                    )
                )
            tables[name] = pd.concat(rows, ignore_index=True)
        et_model, neh_model = task.rims["et_model"], task.rims["neh_model"]
        if et_model in labels and neh_model in labels and (labels[et_model] == 4).any():
            neh = labels[neh_model] == (1 if neh_model == "fused" else 3)
            tables["rims"] = rim_rcbv(
                case.rcbv, labels[et_model], neh, perf, case.spacing, task.rims["rims_mm"]
            ).assign(case=case_id)
    for name, table in tables.items():
        write_text_atomic(folder / f"{name}.csv", table.to_csv(index=False))
    for stale in {"agreement", "intensity", "rcbv", "rcbv_alt", "rims"} - set(tables):
        (folder / f"{stale}.csv").unlink(missing_ok=True)
    write_marker(
        marker, task.params_hash, tables=sorted(tables), note=task.perfusion_excluded or ""
    )
    return TaskResult(task.key, "done")
