"""The whole study of the paper on one or two cohorts, resumable, local or on Dask.

Stages (each per-case step is cached under ``OUTPUT/work`` and skipped when complete):

1. ``segment``    every selected case (and both time points of each recurrence
                  subject) with each model, fused (``work/segment/<cohort>/<case>/``);
2. ``measure``    per pre-operative case: model agreement, ED/NEH intensities, rCBV per
                  compartment and rims (``work/measure/<case>/*.csv``);
3. ``recurrence`` per subject: registration, warped pNEH, spatial metrics and their
                  spatial null (``work/recurrence/<subject>/``);
4. ``tables``     cohort tables and tests from the per-case CSVs (``OUTPUT/tables``);
5. ``report``     the self-contained HTML report (``OUTPUT/report.html``).

Failing cases go into ``OUTPUT/tables/errors.csv`` and the study goes on; excluded cases
and their reasons into ``OUTPUT/tables/excluded.csv``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from nehmap.errors import NehmapInputError
from nehmap.io import discover, write_text_atomic
from nehmap.io.layouts import CaseFiles, Collection
from nehmap.study.config import StudyConfig
from nehmap.study.executor import TaskResult, run_tasks
from nehmap.study.steps import MeasureTask, SegmentTask, measure_step, segment_step
from nehmap.validate.cohort import Selection, read_id_list, select_cases

STEPS = ("segment", "measure", "recurrence")


@dataclass
class StudyResult:
    """Where the study wrote its results, and what happened."""

    output: Path
    tables: dict[str, Path] = field(default_factory=dict)
    report: Path | None = None
    errors: pd.DataFrame = field(default_factory=pd.DataFrame)
    excluded: pd.DataFrame = field(default_factory=pd.DataFrame)
    timings: dict[str, float] = field(default_factory=dict)


def _select(config: StudyConfig, name: str) -> tuple[Collection, Selection]:
    spec = config.cohorts[name]
    path = config.resolve(spec.path)
    assert path is not None
    collection = discover(path, layout=spec.layout)
    clinical = None
    if spec.clinical:
        clinical_path = config.resolve(spec.clinical)
        try:
            clinical = pd.read_csv(clinical_path)
        except OSError as exc:
            raise NehmapInputError(
                clinical_path, f"cannot be read ({exc}).", "Check the clinical table's path."
            ) from exc

    def ids(value: str | None) -> set[str] | None:
        if not value:
            return None
        resolved = config.resolve(value)
        return read_id_list(resolved if resolved is not None and resolved.is_file() else value)

    timepoints = ("preop", None) if name == "perfusion" else None
    selection = select_cases(
        collection.cases,
        include=ids(spec.include),
        exclude=ids(spec.exclude),
        timepoints=timepoints,
        clinical=clinical,
        clinical_id=spec.clinical_id,
        exclude_where=spec.exclude_where,
    )
    if name == "recurrence":
        subjects = {}
        for case in selection.cases:
            subjects.setdefault(case.subject, {})[case.timepoint] = case
        for subject, scans in subjects.items():
            if "preop" not in scans or "recurrence" not in scans:
                for case in scans.values():
                    selection.exclude(
                        case, f"subject {subject} lacks a pre-operative or a recurrence scan"
                    )
            elif "postop" in scans:
                selection.exclude(scans["postop"], "early post-operative scan (not analysed)")
    return collection, selection


def _clear_markers(root: Path) -> int:
    count = 0
    for marker in root.rglob("done.json") if root.is_dir() else []:
        marker.unlink()
        count += 1
    return count


def plan_segment_tasks(
    config: StudyConfig, cohort: str, cases: Sequence[CaseFiles], out_dir: Path
) -> list[SegmentTask]:
    """One segmentation task per case of ``cohort``, carrying the ``[segment]`` settings."""
    s = config.segment
    params = config.section_hash("segment")
    return [
        SegmentTask(
            f"{cohort}/{c.case_id}",
            c,
            out_dir,
            tuple(s.models),
            s.device,
            s.tta,
            s.sigma_mm,
            s.threshold,
            s.low,
            params,
            s.fusion,
        )
        for c in cases
    ]


def model_names(config: StudyConfig) -> tuple[str, ...]:
    """Names under which the study's models write their maps (see
    :func:`nehmap.segmentation.model_output_names`)."""
    from nehmap.segmentation import model_output_names

    return tuple(model_output_names(config.segment.models))


def run_study(
    config: StudyConfig,
    *,
    force: Sequence[str] = (),
    progress: bool = True,
    report: bool = True,
) -> StudyResult:
    """Run (or resume) the study described by ``config``.

    Parameters
    ----------
    config : StudyConfig
        The study.
    force : Sequence[str]
        Steps to redo even when cached (``segment``, ``measure``, ``recurrence``).
    progress : bool
        Progress bars per stage.
    report : bool
        Write the HTML report at the end.
    """
    import time

    out = config.output_dir
    work = out / "work"
    result = StudyResult(out)
    for step in force:
        if step not in STEPS:
            raise ValueError(f"--force {step}: unknown step; use one of {', '.join(STEPS)}.")
        _clear_markers(work / step)
    excluded: list[pd.DataFrame] = []
    errors: list[dict] = []
    ex = config.execution

    def run(fn, tasks, stage):  # noqa: ANN001, ANN202
        start = time.perf_counter()
        results: list[TaskResult] = run_tasks(
            fn, tasks, workers=ex.workers, scheduler=ex.scheduler, desc=stage, progress=progress
        )
        result.timings[stage] = time.perf_counter() - start
        for r in results:
            if r.failed:
                errors.append({"stage": stage, "case": r.key, "message": r.message})
        return results

    selections = {}
    for name in config.cohorts:
        collection, selection = _select(config, name)
        selections[name] = selection
        excluded.append(selection.excluded_table().assign(cohort=name))
    # 1. segmentation
    for name, selection in selections.items():
        tasks = plan_segment_tasks(config, name, selection.cases, work / "segment" / name)
        run(segment_step, tasks, f"segment {name}")
    failed = {e["case"] for e in errors}
    # 2. per-case measurements of the pre-operative cohort
    if "perfusion" in selections:
        seg_dir = work / "segment" / "perfusion"
        params = config.section_hash("segment", "agreement", "intensity", "rcbv", "rims")
        tasks = []
        for c in selections["perfusion"].cases:
            if f"perfusion/{c.case_id}" in failed:
                continue
            reason = "" if "rcbv" in c.files else "no rCBV map"
            if reason:
                excluded.append(
                    pd.DataFrame(
                        [{"case": c.case_id, "reason": f"H1/H2: {reason}", "cohort": "perfusion"}]
                    )
                )
            tasks.append(
                MeasureTask(
                    f"perfusion/{c.case_id}",
                    c,
                    seg_dir,
                    work / "measure",
                    model_names(config),
                    {
                        "pred": config.agreement.pred,
                        "ref": config.agreement.ref,
                        "method": config.agreement.method,
                        "tolerance_mm": config.agreement.tolerance_mm,
                    },
                    config.intensity.normalise,
                    config.rcbv.vessel_percentile,
                    config.rcbv.exclude_vessels,
                    {
                        "et_model": config.rims.et_model,
                        "neh_model": config.rims.neh_model,
                        "rims_mm": tuple(config.rims.rims_mm),
                    },
                    reason,
                    params,
                )
            )
        run(measure_step, tasks, "measure")
    # 3. recurrence
    if "recurrence" in selections:
        from nehmap.study.recurrence_step import plan_recurrence_tasks, recurrence_step

        tasks = plan_recurrence_tasks(
            config,
            selections["recurrence"].cases,
            work / "segment" / "recurrence",
            work / "recurrence",
            failed,
        )
        run(recurrence_step, tasks, "recurrence")
    # 4. tables
    from nehmap.study.tables import build_tables

    start = time.perf_counter()
    result.excluded = (
        pd.concat(excluded, ignore_index=True)
        if excluded
        else pd.DataFrame(columns=["case", "reason", "cohort"])
    )
    result.errors = pd.DataFrame(errors, columns=["stage", "case", "message"])
    result.tables = build_tables(config, work, out / "tables", result.excluded, result.errors)
    result.timings["tables"] = time.perf_counter() - start
    record = {
        "study": config.name,
        "config": config.to_dict(),
        "cohorts": {n: len(s.cases) for n, s in selections.items()},
    }
    write_text_atomic(out / "study.json", json.dumps(record, indent=2, default=str))
    # 5. report
    if report:
        from nehmap.report import write_report

        start = time.perf_counter()
        result.report = write_report(config, out, work)
        result.timings["report"] = time.perf_counter() - start
    return result
