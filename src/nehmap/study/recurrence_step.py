"""The per-subject recurrence step of a study (H3) and its cohort tables."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from nehmap.io import write_image, write_text_atomic
from nehmap.io.layouts import CaseFiles
from nehmap.study.config import StudyConfig
from nehmap.study.executor import TaskResult
from nehmap.study.steps import marker_matches, write_marker


@dataclass(frozen=True)
class RecurrenceTask:
    """Register one subject's pre-operative scan to its recurrence scan and compare."""

    key: str
    subject: str
    preop: CaseFiles
    recurrence: CaseFiles
    seg_dir: Path
    out_dir: Path
    params: dict
    params_hash: str


def plan_recurrence_tasks(
    config: StudyConfig,
    cases: Sequence[CaseFiles],
    seg_dir: Path,
    out_dir: Path,
    failed: Iterable[str],
) -> list[RecurrenceTask]:
    """One task per subject that has both scans segmented without error."""
    failed = set(failed)
    by_subject: dict[str, dict] = {}
    for case in cases:
        by_subject.setdefault(case.subject, {})[case.timepoint] = case
    r = config.recurrence
    params = {
        "preop_model": r.preop_model,
        "recurrence_model": r.recurrence_model,
        "preset": r.preset,
        "threads": r.threads,
        "null_n": r.null_n,
        "chance": list(r.chance),
        "seed": config.seed,
    }
    params_hash = config.section_hash("segment", "recurrence") + str(config.seed)
    tasks = []
    for subject in sorted(by_subject):
        scans = by_subject[subject]
        if "preop" not in scans or "recurrence" not in scans:
            continue
        if {f"recurrence/{scans[t].case_id}" for t in ("preop", "recurrence")} & failed:
            continue
        tasks.append(
            RecurrenceTask(
                f"recurrence/{subject}",
                subject,
                scans["preop"],
                scans["recurrence"],
                seg_dir,
                out_dir,
                params,
                params_hash,
            )
        )
    return tasks


def recurrence_step(task: RecurrenceTask) -> TaskResult:
    """Register one patient's scans and write its H3 rows into ``out_dir/<subject>/``.

    Skipped when the folder's ``done.json`` records the same parameters; an excluded
    patient (no NEH, no ET at recurrence, a failed registration...) writes
    ``excluded.csv`` with the reason.
    """
    from nehmap.errors import NehmapInputError
    from nehmap.validate.recurrence import CaseExcluded, analyse_pair, load_scan
    from nehmap.validate.registration import RegistrationError, quality_columns

    folder = task.out_dir / task.subject
    marker = folder / "done.json"
    if marker_matches(marker, task.params_hash):
        return TaskResult(task.key, "skipped")
    p = task.params
    core = p["recurrence_model"]
    pre, _, _ = load_scan(task.preop, task.seg_dir, p["preop_model"], ("t1",), "preop", core)
    rec, rec_case, _ = load_scan(
        task.recurrence, task.seg_dir, p["recurrence_model"], ("t1",), "recurrence", core
    )
    excluded = ""
    try:
        result = analyse_pair(
            pre,
            rec,
            preset=p["preset"],
            threads=p["threads"],
            null_n=p["null_n"],
            seed=p["seed"],
            chance=tuple(p.get("chance", ("matched", "brain"))),
        )
    except CaseExcluded as exc:
        excluded = exc.reason
    except RegistrationError as exc:
        excluded = f"registration failed: {exc}"
    except (NehmapInputError, RuntimeError, ValueError) as exc:
        excluded = f"analysis failed: {exc}"
    if excluded:
        table = pd.DataFrame([{"case": task.subject, "reason": excluded}])
        write_text_atomic(folder / "excluded.csv", table.to_csv(index=False))
        (folder / "recurrence.csv").unlink(missing_ok=True)
        write_marker(marker, task.params_hash, excluded=excluded)
        return TaskResult(task.key, "done", excluded)
    write_image(
        result.pneh.astype(np.uint8),
        rec_case.grid,
        folder / f"{task.subject}_pneh.nii.gz",
        dtype=np.uint8,
        inputs=rec_case.inputs,
        description="nehmap pre-operative NEH, recurrence space",
    )
    if result.controls:
        from nehmap.validate.recurrence import control_map

        write_image(
            control_map(result.controls, result.pneh.shape),
            rec_case.grid,
            folder / f"{task.subject}_matched-controls.nii.gz",
            dtype=np.uint8,
            inputs=rec_case.inputs,
            description="nehmap distance-matched placements of pNEH, recurrence space",
        )
    frame = result.metrics
    frame.insert(0, "recurrence_case", task.recurrence.case_id)
    frame.insert(0, "preop_case", task.preop.case_id)
    frame.insert(0, "case", task.subject)
    for key, value in quality_columns(result.quality).items():
        frame[key] = value
    frame["included"] = not result.quality.flag
    write_text_atomic(folder / "recurrence.csv", frame.to_csv(index=False))
    if result.quality.flag:
        reason = "registration flagged: " + "; ".join(result.quality.reasons)
        write_text_atomic(
            folder / "excluded.csv",
            pd.DataFrame([{"case": task.subject, "reason": reason}]).to_csv(index=False),
        )
    else:
        (folder / "excluded.csv").unlink(missing_ok=True)
    write_marker(marker, task.params_hash)
    return TaskResult(task.key, "done")


def recurrence_tables(cases: pd.DataFrame, config: StudyConfig) -> dict[str, pd.DataFrame]:
    """Tables 6 and 7 from the per-subject rows."""
    from nehmap.validate.recurrence import CASE_COLUMNS, cohort_summary, cohort_tests

    cases = cases[[c for c in CASE_COLUMNS if c in cases.columns]]
    return {
        "recurrence_cases": cases,
        "recurrence_summary": cohort_summary(cases),
        "recurrence_tests": cohort_tests(
            cases, n_permutations=config.recurrence.n_permutations, seed=config.seed
        ),
    }
