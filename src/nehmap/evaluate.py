"""Evaluating predicted label maps against reference ones, case by case and over a cohort.

:func:`evaluate_collections` pairs the label maps of two folders by case id, scores every
pair with :func:`nehmap.metrics.evaluate_labels` (Dice, Jaccard, HD95 and surface Dice of
the regions ET, TC, WT and the labels NC, ED, NEH) and summarises the cohort. Either side
can be anything :func:`nehmap.io.segmentations.find_label_maps` reads: a ``nehmap segment``
output folder (one model chosen, ``fused`` for the fused NEH mask), a collection in a
public layout (BraTS, UPenn-GBM, RHUH-GBM, nnU-Net, manifest) in its own label scheme, or
a plain folder of ``<case>.nii.gz`` label maps. Two models of one ``nehmap segment``
output folder are compared by giving the folder twice with two model names.

Per case:

1. both label maps are read into nehmap's labels in canonical RAS+ orientation;
2. they must lie on the same grid: identical shape and volume corners at most
   :data:`GRID_TOLERANCE_MM` (0.001 mm) apart; nothing is resampled;
3. distances are computed with the reference's voxel spacing (mm, per array axis).

A map that only holds NEH (the fused mask ``fused``: 0/1, or a two-level map such as
``levels`` or a consensus-family model's map: 0 background, 1 low, 2 high probability) is
scored on the NEH region only, its NEH being the mask (value 1) or the high-probability
level (value 2).

A problem with one case (unreadable file, unknown label values, different grids) makes
that case fail with a message naming the files; the other cases go on. Cases present on
one side only are listed in :attr:`EvaluationResult.missing`.

Summary statistics are over the cases with a defined value (an HD95 is undefined, NaN,
when a region is empty in exactly one map and no ``empty_penalty`` is given): mean,
sample standard deviation (``ddof=1``), median and the number of values ``n``.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nehmap.errors import NehmapInputError
from nehmap.io.segmentations import (
    CONSENSUS_SCHEME,
    LabelMapRef,
    find_label_maps,
    read_label_map,
)
from nehmap.labels import NEH, LabelScheme, get_scheme
from nehmap.metrics import DEFAULT_METRICS, DEFAULT_REGIONS, METHODS, evaluate_labels
from nehmap.metrics._validation import check_empty_penalty, check_nonnegative

__all__ = [
    "CASE_COLUMNS",
    "FAILURE_COLUMNS",
    "GRID_TOLERANCE_MM",
    "MISSING_COLUMNS",
    "PAPER_METRICS",
    "SUMMARY_COLUMNS",
    "EvaluationResult",
    "evaluate_collections",
    "evaluate_pair",
    "format_cell",
    "paper_table",
    "summarise",
]

GRID_TOLERANCE_MM = 1e-3
"""Largest distance (mm) between corresponding volume corners of two 'same' grids."""

CASE_COLUMNS: tuple[str, ...] = ("case", "region", "metric", "value")
"""Columns of :attr:`EvaluationResult.cases`."""

SUMMARY_COLUMNS: tuple[str, ...] = ("region", "metric", "mean", "sd", "median", "n")
"""Columns of :attr:`EvaluationResult.summary`."""

MISSING_COLUMNS: tuple[str, ...] = ("case", "only_in", "path")
"""Columns of :attr:`EvaluationResult.missing` (``only_in``: ``pred`` or ``ref``)."""

FAILURE_COLUMNS: tuple[str, ...] = ("case", "message")
"""Columns of :attr:`EvaluationResult.failures`."""

PAPER_METRICS: Mapping[str, str] = {
    "Dice": "dice",
    "Hausdorff95": "hd95",
    "Jaccard": "jaccard",
    "Surface Dice": "surface_dice",
}
"""Row names of the paper-style tables, in order, and the metric each row shows."""

REGION_COLUMNS: tuple[str, ...] = ("ET", "TC", "WT")
"""Columns of the paper-style region table (the paper's Table 1)."""

NEH_COLUMNS: tuple[str, ...] = ("NEH",)
"""Columns of the paper-style NEH table (the paper's Table 2)."""

_NEH_ONLY_SCHEMES = {"binary-neh": 1, CONSENSUS_SCHEME: 2}  # scheme -> value that is NEH


@dataclass
class EvaluationResult:
    """The outcome of :func:`evaluate_collections`.

    Attributes:
        cases: one row per case, region and metric: ``case``, ``region``, ``metric``,
            ``value`` (Dice, Jaccard and surface Dice in [0, 1]; HD95 in mm; NaN when
            undefined).
        summary: one row per region and metric: ``region``, ``metric``, ``mean``, ``sd``
            (sample standard deviation), ``median``, ``n`` (cases with a defined value).
        missing: cases with a label map on one side only: ``case``, ``only_in``
            (``pred`` or ``ref``, the side that has it) and ``path`` (its file).
        failures: matched cases that could not be evaluated: ``case``, ``message``.
        parameters: the settings of the evaluation (paths, models, schemes, method,
            tolerance and empty penalty in mm).
        counts: label maps per side, matched, evaluated, failed and one-sided cases.
        notes: remarks about the evaluation: a reference scheme without NEH label, and
            warnings raised while reading (e.g. label values dropped), with their cases.
        inputs: every label-map file (and manifest) of either side, never to be overwritten.
    """

    cases: pd.DataFrame
    summary: pd.DataFrame
    missing: pd.DataFrame
    failures: pd.DataFrame
    parameters: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    inputs: list[Path] = field(default_factory=list)

    def paper_table(self, regions: Sequence[str] = REGION_COLUMNS, digits: int = 2) -> pd.DataFrame:
        """The summary as a paper-style table (see :func:`paper_table`)."""
        return paper_table(self.summary, regions, digits)

    @property
    def table_regions(self) -> pd.DataFrame:
        """Rows Dice, Hausdorff95, Jaccard, Surface Dice; columns ET, TC, WT ("mean ± sd")."""
        return paper_table(self.summary, REGION_COLUMNS)

    @property
    def table_neh(self) -> pd.DataFrame:
        """Rows Dice, Hausdorff95, Jaccard, Surface Dice; column NEH ("mean ± sd")."""
        return paper_table(self.summary, NEH_COLUMNS)

    @property
    def ok(self) -> bool:
        """True when every matched case was evaluated."""
        return self.failures.empty


# --------------------------------------------------------------------------- summaries


def summarise(cases: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample SD, median and count of each region and metric over the cases.

    Args:
        cases: tidy table with columns ``case``, ``region``, ``metric``, ``value``.

    Returns:
        One row per region and metric present (regions in the order ET, TC, WT, NC, ED,
        NEH, metrics in the order dice, jaccard, hd95, surface_dice, others after), with
        columns ``region``, ``metric``, ``mean``, ``sd``, ``median``, ``n``. NaN values
        are left out; ``n`` counts the rest. ``sd`` uses ``ddof=1`` (NaN when n < 2).
    """
    rows = []
    if not cases.empty:
        regions = _ordered(cases["region"].unique(), DEFAULT_REGIONS)
        metrics = _ordered(cases["metric"].unique(), DEFAULT_METRICS)
        grouped = {key: g["value"] for key, g in cases.groupby(["region", "metric"], sort=False)}
        for region in regions:
            for metric in metrics:
                if (region, metric) not in grouped:
                    continue
                values = grouped[(region, metric)].to_numpy(dtype=float)
                values = values[~np.isnan(values)]
                n = int(values.size)
                rows.append(
                    (
                        region,
                        metric,
                        float(values.mean()) if n else math.nan,
                        float(values.std(ddof=1)) if n > 1 else math.nan,
                        float(np.median(values)) if n else math.nan,
                        n,
                    )
                )
    table = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    return table.astype({"mean": float, "sd": float, "median": float, "n": int})


def _ordered(present: Sequence[str], preferred: Sequence[str]) -> list[str]:
    known = [p for p in preferred if p in set(present)]
    return known + sorted(p for p in present if p not in preferred)


def format_cell(mean: float, sd: float, n: int, digits: int = 2) -> str:
    """A paper-style cell: ``"0.83 ± 0.15"``; the mean alone when n == 1; ``"n/a"`` for n == 0."""
    if n == 0 or not math.isfinite(mean):
        return "n/a"
    if n == 1 or not math.isfinite(sd):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def paper_table(
    summary: pd.DataFrame, regions: Sequence[str] = REGION_COLUMNS, digits: int = 2
) -> pd.DataFrame:
    """A wide table like the method paper's Tables 1 and 2.

    Args:
        summary: the output of :func:`summarise`.
        regions: the columns, e.g. ``("ET", "TC", "WT")`` or ``("NEH",)``.
        digits: decimals of mean and SD (Hausdorff95 in mm).

    Returns:
        Rows ``Dice``, ``Hausdorff95``, ``Jaccard``, ``Surface Dice`` (index named
        ``metric``), one column per region, each cell ``"mean ± sd"`` as text (see
        :func:`format_cell`).
    """
    lookup = {(r.region, r.metric): r for r in summary.itertuples(index=False)}
    data: dict[str, list[str]] = {}
    for region in regions:
        cells = []
        for metric in PAPER_METRICS.values():
            row = lookup.get((region, metric))
            cells.append("n/a" if row is None else format_cell(row.mean, row.sd, row.n, digits))
        data[region] = cells
    table = pd.DataFrame(data, index=pd.Index(list(PAPER_METRICS), name="metric"))
    table.columns.name = None
    return table


# --------------------------------------------------------------------------- one case


def _scheme_name(scheme: str | LabelScheme) -> str:
    return scheme.name if isinstance(scheme, LabelScheme) else str(scheme)


def _as_neh_labels(labels: np.ndarray, ref: LabelMapRef) -> tuple[np.ndarray, bool]:
    """nehmap labels of a map, and whether the map only holds NEH."""
    value = _NEH_ONLY_SCHEMES.get(_scheme_name(ref.scheme))
    if value is None:
        return labels, False
    out = np.zeros(labels.shape, dtype=np.uint8)
    out[labels == value] = NEH
    return out, True


def _check_same_grid(pred_img: Any, ref_img: Any, pred: LabelMapRef, ref: LabelMapRef) -> None:
    """Raise :class:`NehmapInputError` unless both maps lie on the same voxel grid."""
    g_pred, g_ref = pred_img.grid, ref_img.grid
    hint = (
        "Resample the prediction onto the reference's grid (nearest-neighbour "
        "interpolation for label maps) and evaluate again."
    )
    if g_pred.canonical_shape != g_ref.canonical_shape:
        raise NehmapInputError(
            pred.path,
            f"lies on a different grid from the reference {ref.path}: shape "
            f"{g_pred.canonical_shape} (spacing {_fmt_spacing(g_pred.spacing)} mm) against "
            f"{g_ref.canonical_shape} (spacing {_fmt_spacing(g_ref.spacing)} mm), in RAS+ "
            "order.",
            hint,
        )
    distance = g_pred.canonical_distance_mm(g_ref)
    if not distance <= GRID_TOLERANCE_MM:
        raise NehmapInputError(
            pred.path,
            f"lies on a different grid from the reference {ref.path}: their volume corners "
            f"are up to {distance:.4g} mm apart (tolerance {GRID_TOLERANCE_MM} mm).",
            hint,
        )


def _fmt_spacing(spacing: Sequence[float]) -> str:
    return "x".join(f"{s:g}" for s in spacing)


def evaluate_pair(
    pred: LabelMapRef,
    ref: LabelMapRef,
    *,
    method: str = "voxels",
    tolerance_mm: float = 2.0,
    empty_penalty: float | None = None,
) -> pd.DataFrame:
    """Score one case's predicted label map against its reference.

    Args:
        pred, ref: the two label maps (from :func:`find_label_maps`).
        method: surface convention, ``"voxels"`` or ``"surface_elements"``.
        tolerance_mm: surface-Dice tolerance in mm.
        empty_penalty: HD95 in mm reported when a region is empty in exactly one map
            (NaN when None).

    Returns:
        Columns ``case``, ``region``, ``metric``, ``value``: regions ET, TC, WT, NC, ED,
        NEH (NEH only, when either map only holds NEH); metrics dice, jaccard, hd95 (mm),
        surface_dice.

    Raises:
        NehmapInputError: a file is unreadable, holds values its scheme does not define,
            or the two maps lie on different grids (the message names the files).
    """
    pred_labels, pred_img = read_label_map(pred)
    ref_labels, ref_img = read_label_map(ref)
    _check_same_grid(pred_img, ref_img, pred, ref)
    pred_labels, pred_neh_only = _as_neh_labels(pred_labels, pred)
    ref_labels, ref_neh_only = _as_neh_labels(ref_labels, ref)
    regions = ("NEH",) if (pred_neh_only or ref_neh_only) else DEFAULT_REGIONS
    table = evaluate_labels(
        pred_labels,
        ref_labels,
        ref_img.grid.spacing,
        method=method,
        tolerance_mm=tolerance_mm,
        empty_penalty=empty_penalty,
        regions=regions,
        metrics=DEFAULT_METRICS,
    )
    table.insert(0, "case", ref.case_id)
    return table


# --------------------------------------------------------------------------- collections


def _find(
    root: str | Path, model: str | None, scheme: str | None, side: str
) -> dict[str, LabelMapRef]:
    """Label maps of one side; errors say which side and which option to use."""
    try:
        return find_label_maps(root, model=model, scheme=scheme)
    except NehmapInputError as exc:
        hint = exc.hint.replace("--model", f"--{side}-model").replace(
            "Drop the model option", f"Drop --{side}-model"
        )
        raise NehmapInputError(exc.path, f"({side.upper()}) {exc.problem}", hint) from exc


def _check_options(
    method: str,
    tolerance_mm: float,
    empty_penalty: float | None,
    schemes: Sequence[str | None],
) -> None:
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}.")
    check_nonnegative(tolerance_mm, "tolerance_mm")
    check_empty_penalty(empty_penalty)
    for scheme in schemes:
        if scheme is not None:
            get_scheme(scheme)


def _same_files(pred: LabelMapRef, ref: LabelMapRef) -> bool:
    """True when both sides read one file in one scheme."""
    try:
        same = pred.path.resolve() == ref.path.resolve()
    except OSError:
        same = False
    return same and _scheme_name(pred.scheme) == _scheme_name(ref.scheme)


def _reference_notes(refs: Mapping[str, LabelMapRef]) -> list[str]:
    """Notes about reference schemes in which NEH cannot occur."""
    notes = []
    schemes = {_scheme_name(r.scheme): r.scheme for r in refs.values()}
    for name, scheme in sorted(schemes.items()):
        if name in _NEH_ONLY_SCHEMES:
            continue
        try:
            has_neh = NEH in get_scheme(scheme).to_nehmap.values()
        except ValueError:
            continue
        if not has_neh:
            notes.append(
                f"the reference label scheme {name!r} has no NEH label: the NEH rows compare "
                "the prediction's NEH with an empty reference (Dice 1 where both are empty)."
            )
    return notes


def evaluate_collections(
    pred: str | Path,
    ref: str | Path,
    *,
    pred_model: str | None = None,
    ref_model: str | None = None,
    pred_scheme: str | None = None,
    ref_scheme: str | None = None,
    method: str = "voxels",
    tolerance_mm: float = 2.0,
    empty_penalty: float | None = None,
    progress: bool = False,
) -> EvaluationResult:
    """Evaluate every case's predicted label map against its reference.

    Args:
        pred: folder of predictions: ``nehmap segment`` output, a collection, or a folder
            of ``<case>.nii.gz`` label maps.
        ref: folder of reference label maps, in any of the same forms.
        pred_model, ref_model: which model's maps to take from a ``nehmap segment`` output
            folder (``fused``: the fused NEH mask; ``levels``: the two-level map).
        pred_scheme, ref_scheme: label scheme of plain label maps (default ``nehmap``), or
            to override a collection's (e.g. ``brats2021``).
        method: surface convention of HD95 and surface Dice, ``"voxels"`` (MONAI) or
            ``"surface_elements"`` (DeepMind's surface-distance).
        tolerance_mm: surface-Dice tolerance in mm.
        empty_penalty: HD95 in mm when a region is empty in exactly one map (NaN, and
            left out of the summary, when None).
        progress: show a progress bar over the cases (tqdm, on stderr).

    Returns:
        :class:`EvaluationResult` with the per-case table, the summary, the one-sided
        cases and the failed cases.

    Raises:
        NehmapInputError: a side holds no label maps, a model is missing or ambiguous,
            both sides give the same files, or no case id is on both sides.
        ValueError: an invalid method, tolerance, empty penalty or label scheme.
    """
    from tqdm import tqdm

    _check_options(method, tolerance_mm, empty_penalty, (pred_scheme, ref_scheme))
    pred_refs = _find(pred, pred_model, pred_scheme, "pred")
    ref_refs = _find(ref, ref_model, ref_scheme, "ref")
    matched = sorted(set(pred_refs) & set(ref_refs))
    if matched and all(_same_files(pred_refs[c], ref_refs[c]) for c in matched):
        raise NehmapInputError(
            pred,
            "gives the same label maps as PRED and as REF: they would be compared with themselves.",
            "To compare two models of one nehmap segment output folder, name them with "
            "--pred-model and --ref-model.",
        )
    missing_rows = [
        (c, "pred", str(pred_refs[c].path)) for c in sorted(set(pred_refs) - set(ref_refs))
    ]
    missing_rows += [
        (c, "ref", str(ref_refs[c].path)) for c in sorted(set(ref_refs) - set(pred_refs))
    ]
    if not matched:
        raise NehmapInputError(
            None,
            f"no case is on both sides: PRED {pred} has {len(pred_refs)} label map(s) "
            f"(e.g. {', '.join(sorted(pred_refs)[:3])}), REF {ref} has {len(ref_refs)} "
            f"(e.g. {', '.join(sorted(ref_refs)[:3])}).",
            "Cases are paired by case id; check that both folders name the cases alike.",
        )

    tables: list[pd.DataFrame] = []
    failures: list[tuple[str, str]] = []
    bar = tqdm(matched, desc="evaluating", unit="case", disable=not progress, file=sys.stderr)
    warned: dict[str, list[str]] = {}  # warning text -> cases
    for case_id in bar:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                tables.append(
                    evaluate_pair(
                        pred_refs[case_id],
                        ref_refs[case_id],
                        method=method,
                        tolerance_mm=tolerance_mm,
                        empty_penalty=empty_penalty,
                    )
                )
            except (ValueError, OSError) as exc:  # NehmapInputError is a ValueError
                failures.append((case_id, str(exc)))
        for w in caught:
            warned.setdefault(str(w.message), []).append(case_id)

    if tables:
        cases = pd.concat(tables, ignore_index=True)
    else:
        cases = pd.DataFrame({c: pd.Series(dtype=object) for c in CASE_COLUMNS[:3]})
        cases["value"] = pd.Series(dtype=float)
    evaluated_refs = {c: ref_refs[c] for c in matched if c not in dict(failures)}
    only_pred = sum(1 for row in missing_rows if row[1] == "pred")
    return EvaluationResult(
        cases=cases,
        summary=summarise(cases),
        missing=pd.DataFrame(missing_rows, columns=list(MISSING_COLUMNS)),
        failures=pd.DataFrame(failures, columns=list(FAILURE_COLUMNS)),
        parameters={
            "pred": str(Path(pred).resolve()),
            "ref": str(Path(ref).resolve()),
            "pred_model": pred_model,
            "ref_model": ref_model,
            "pred_scheme": pred_scheme,
            "ref_scheme": ref_scheme,
            "method": method,
            "tolerance_mm": float(tolerance_mm),
            "empty_penalty_mm": None if empty_penalty is None else float(empty_penalty),
            "grid_tolerance_mm": GRID_TOLERANCE_MM,
            "hd_percentile": 95.0,
        },
        counts={
            "pred_label_maps": len(pred_refs),
            "ref_label_maps": len(ref_refs),
            "matched": len(matched),
            "evaluated": len(matched) - len(failures),
            "failed": len(failures),
            "only_in_pred": only_pred,
            "only_in_ref": len(missing_rows) - only_pred,
        },
        notes=[
            *_reference_notes(evaluated_refs),
            *(
                f"{text} ({len(ids)} case(s): {', '.join(sorted(set(ids))[:5])}"
                f"{', ...' if len(set(ids)) > 5 else ''})"
                for text, ids in warned.items()
            ),
        ],
        inputs=[
            *(r.path for r in (*pred_refs.values(), *ref_refs.values())),
            *(Path(root) for root in (pred, ref) if Path(root).is_file()),
        ],
    )
