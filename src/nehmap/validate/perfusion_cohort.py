"""Running H1 (compartment rCBV) and H2 (peri-enhancing rims) over a cohort.

Both read a collection with rCBV maps (e.g. UPenn-GBM) and the segmentations written by
``nehmap segment`` for it, select the cohort (:mod:`nehmap.validate.cohort`), measure
every case, and write tidy tables:

``rcbv_cases.csv``   case, model, compartment, mean, median, n_voxels
``rcbv_summary.csv`` model, compartment, mean_of_means, sd, median_of_means, n_cases
``rcbv_tests.csv``   model, test, a, b, statistic, df, p, p_adjusted, n, note
``rcbv_vessel_sensitivity.csv``  vessels (kept/excluded), then as rcbv_tests: H1 both ways
``rims_cases.csv``   case, region (rim_2mm, rim_4mm, rim_6mm, NEH), mean, median, n_voxels
``rims_tests.csv``   test, a, b, statistic, df, p, p_adjusted, n, note
``excluded.csv``     case, reason
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from nehmap.bars import case_bar
from nehmap.errors import NehmapInputError
from nehmap.io import Case, Collection, load_case, write_text_atomic
from nehmap.io.segmentations import (
    CONSENSUS_SCHEME,
    LabelMapRef,
    find_label_maps,
    segment_output_models,
)
from nehmap.validate.cohort import Selection
from nehmap.validate.perfusion import DEFAULT_VESSEL_PERCENTILE, PerfusionMask, perfusion_mask
from nehmap.validate.rcbv import (
    CASE_COLUMNS,
    compartment_rcbv,
    rcbv_summary,
    rcbv_tests,
    vessel_sensitivity,
)
from nehmap.validate.rims import DEFAULT_RIMS_MM, rim_rcbv, rim_tests, rims_summary

GRID_TOLERANCE_MM = 1e-3


@dataclass
class PerfusionSettings:
    """Settings shared by H1 and H2.

    H2 always leaves out large vessels (the paper). H1 keeps them unless
    ``h1_exclude_vessels`` (the paper excludes them in H2 only); it is also computed the
    other way, as a sensitivity analysis.
    """

    vessel_percentile: float | None = DEFAULT_VESSEL_PERCENTILE
    vessel_masks: Path | None = None
    min_value: float = 0.0
    h1_exclude_vessels: bool = False


@dataclass
class CohortTables:
    """Tables produced by a validation run."""

    cases: pd.DataFrame
    tests: pd.DataFrame
    excluded: pd.DataFrame
    summary: pd.DataFrame | None = None
    extra: dict = field(default_factory=dict)
    sensitivity: pd.DataFrame | None = None


def _segmentation_sources(segdir: Path, models: Sequence[str]) -> dict[str, dict[str, LabelMapRef]]:
    return {m: find_label_maps(segdir, model=m) for m in models}


def _labels_on_case_grid(ref: LabelMapRef, case: Case) -> np.ndarray:
    labels, img = ref.read()
    if labels.shape != case.shape or img.grid.canonical_distance_mm(case.grid) > GRID_TOLERANCE_MM:
        raise NehmapInputError(
            ref.path,
            f"is on another grid than the case's images ({case.grid.source}).",
            "Segment the case with nehmap segment, which writes on the input grid.",
        )
    return labels


def _perfusion(case: Case, settings: PerfusionSettings) -> PerfusionMask:
    vessel_mask = None
    if settings.vessel_masks is not None:
        refs = find_label_maps(settings.vessel_masks)
        if case.case_id not in refs:
            raise NehmapInputError(
                settings.vessel_masks,
                f"has no vessel mask for {case.case_id}.",
                "Give one mask per case, or use the percentile rule.",
            )
        vessel_mask = _labels_on_case_grid(refs[case.case_id], case) > 0
    assert case.rcbv is not None
    return perfusion_mask(
        case.rcbv,
        case.brain_mask(),
        vessel_percentile=settings.vessel_percentile,
        vessel_mask=vessel_mask,
        min_value=settings.min_value,
    )


def _iter_loaded(selection: Selection, progress: bool, desc: str) -> Iterator[Case]:
    for files in case_bar(list(selection.cases), desc, progress):
        try:
            case = load_case(files, load_labels=False, load_rcbv=True)
        except NehmapInputError as exc:
            selection.exclude(files, f"cannot be loaded: {exc}")
            continue
        if case.rcbv is None:
            selection.exclude(files, "no rCBV map")
            continue
        yield case


def default_models(segdir: Path) -> list[str]:
    """Every model of a segment output folder, plus the fused two-level map (``levels``)."""
    models = segment_output_models(segdir)
    if not models:
        raise NehmapInputError(
            segdir,
            "holds no nehmap segment output.",
            "Run nehmap segment on the cohort first and give its output folder.",
        )
    return [*models, "levels"]


def run_rcbv(
    collection: Collection,
    selection: Selection,
    segdir: Path,
    *,
    models: Sequence[str] | None = None,
    settings: PerfusionSettings | None = None,
    progress: bool = False,
) -> CohortTables:
    """H1 over a cohort: per-case compartment rCBV per model, then the cohort tests."""
    settings = settings or PerfusionSettings()
    models = list(models or default_models(segdir))
    sources = _segmentation_sources(segdir, models)
    rows: list[pd.DataFrame] = []
    other_rows: list[pd.DataFrame] = []
    for case in _iter_loaded(selection, progress, "rCBV per compartment"):
        excluded = _perfusion(case, settings)
        kept = perfusion_mask(case.rcbv, case.brain_mask(), vessel_percentile=None,
                              min_value=settings.min_value)  # fmt: skip
        perf, other = (excluded, kept) if settings.h1_exclude_vessels else (kept, excluded)
        for model in models:
            ref = sources[model].get(case.case_id)
            if ref is None:
                selection.excluded.append(
                    {"case": case.case_id, "reason": f"no segmentation of model {model}"}
                )
                continue
            try:
                labels = _labels_on_case_grid(ref, case)
            except NehmapInputError as exc:
                selection.excluded.append({"case": case.case_id, "reason": str(exc)})
                continue
            consensus = ref.scheme == CONSENSUS_SCHEME
            for mask, into in ((perf, rows), (other, other_rows)):
                table = compartment_rcbv(case.rcbv, labels, mask, consensus=consensus)
                table.insert(0, "model", model)
                table.insert(0, "case", case.case_id)
                into.append(table)
    cases = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=CASE_COLUMNS)
    primary = "excluded" if settings.h1_exclude_vessels else "kept"
    alternative = "kept" if settings.h1_exclude_vessels else "excluded"
    sensitivity = (
        vessel_sensitivity({primary: cases, alternative: pd.concat(other_rows, ignore_index=True)})
        if rows
        else None
    )
    return CohortTables(
        cases,
        rcbv_tests(cases, models) if len(cases) else pd.DataFrame(),
        selection.excluded_table(),
        rcbv_summary(cases) if len(cases) else None,
        extra={"h1_large_vessels": primary},
        sensitivity=sensitivity,
    )


def run_rims(
    collection: Collection,
    selection: Selection,
    segdir: Path,
    *,
    et_model: str | None = None,
    neh_model: str | None = None,
    distances_mm: Sequence[float] = DEFAULT_RIMS_MM,
    settings: PerfusionSettings | None = None,
    progress: bool = False,
) -> CohortTables:
    """H2 over a cohort: rims around one model's ET against the NEH compartment.

    Parameters
    ----------
    collection : Collection
        The cohort's collection; the cases measured are those of ``selection``.
    selection : Selection
        Its cases to measure; cases that cannot be measured are added to
        ``selection.excluded`` with the reason.
    segdir : Path
        Output folder of ``nehmap segment`` over the same cases.
    et_model : str | None
        The model whose ET defines the rims (default ``paunet`` when present,
        else the first model).
    neh_model : str | None
        The NEH to compare with: a model name, or ``fused`` for the fused NEH
        mask (default: the same model as ``et_model``).
    distances_mm : Sequence[float]
        Outer distances of the rims from the lesion core, in mm (default 2, 4, 6).
    settings : PerfusionSettings | None
        Vessel exclusion and the smallest rCBV counted (default: :class:`PerfusionSettings`).
    progress : bool
        Show a progress bar over the cases (on stderr).

    Returns
    -------
    CohortTables
        The per-case rim table, the tests, the excluded cases, the summary over cases
        and the models used.
    """
    settings = settings or PerfusionSettings()
    models = segment_output_models(segdir)
    if et_model is None:
        if not models:
            raise NehmapInputError(
                segdir, "holds no nehmap segment output.", "Run nehmap segment first."
            )
        et_model = "paunet" if "paunet" in models else models[0]
    neh_model = neh_model or et_model
    et_refs = find_label_maps(segdir, model=et_model)
    neh_refs = find_label_maps(segdir, model=neh_model)
    rows = []
    for case in _iter_loaded(selection, progress, "rCBV in rims"):
        if case.case_id not in et_refs or case.case_id not in neh_refs:
            selection.excluded.append(
                {"case": case.case_id, "reason": f"no segmentation of {et_model}/{neh_model}"}
            )
            continue
        try:
            labels = _labels_on_case_grid(et_refs[case.case_id], case)
            neh_labels = _labels_on_case_grid(neh_refs[case.case_id], case)
        except NehmapInputError as exc:
            selection.excluded.append({"case": case.case_id, "reason": str(exc)})
            continue
        if not (labels == 4).any():
            selection.excluded.append(
                {"case": case.case_id, "reason": f"no enhancing tumour in the {et_model} map"}
            )
            continue
        neh = neh_labels == (1 if neh_model == "fused" else 3)
        table = rim_rcbv(
            case.rcbv, labels, neh, _perfusion(case, settings), case.spacing, distances_mm
        )
        table.insert(0, "case", case.case_id)
        rows.append(table)
    cases = (
        pd.concat(rows, ignore_index=True)
        if rows
        else pd.DataFrame(columns=["case", "region", "mean", "median", "n_voxels"])
    )
    summary = rims_summary(cases) if len(cases) else None
    return CohortTables(
        cases,
        rim_tests(cases) if len(cases) else pd.DataFrame(),
        selection.excluded_table(),
        summary,
        {"et_model": et_model, "neh_model": neh_model},
    )


def write_tables(out: Path, prefix: str, tables: CohortTables, record: dict) -> list[Path]:
    """Write ``<prefix>_cases.csv``, ``<prefix>_tests.csv``, ``<prefix>_summary.csv``,
    ``excluded.csv`` and ``<prefix>_run.json`` atomically."""
    out.mkdir(parents=True, exist_ok=True)
    written = [
        write_text_atomic(out / f"{prefix}_cases.csv", tables.cases.to_csv(index=False)),
        write_text_atomic(out / f"{prefix}_tests.csv", tables.tests.to_csv(index=False)),
        write_text_atomic(out / "excluded.csv", tables.excluded.to_csv(index=False)),
    ]
    if tables.summary is not None:
        written.append(
            write_text_atomic(out / f"{prefix}_summary.csv", tables.summary.to_csv(index=False))
        )
    if tables.sensitivity is not None:
        path = out / f"{prefix}_vessel_sensitivity.csv"
        written.append(write_text_atomic(path, tables.sensitivity.to_csv(index=False)))
    from nehmap.segmentation import software_versions

    record = {
        **record,
        **tables.extra,
        "versions": software_versions(),
        "n_cases": int(tables.cases["case"].nunique()) if len(tables.cases) else 0,
        "n_excluded": len(tables.excluded),
    }
    written.append(
        write_text_atomic(out / f"{prefix}_run.json", json.dumps(record, indent=2, default=str))
    )
    return written
