"""Evaluating two folders of label maps case by case: :func:`evaluate_collections`.

Pairs the label maps of PRED and REF by case id, scores each pair with
:func:`nehmap.evaluate.pair.evaluate_pair`, keeps going past a failing case (its message
names the files), lists the cases present on one side only, and summarises the cohort
with :func:`nehmap.evaluate.summary.summarise` into an :class:`EvaluationResult`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from nehmap.bars import case_bar
from nehmap.errors import NehmapInputError
from nehmap.evaluate.pair import GRID_TOLERANCE_MM, NEH_ONLY_SCHEMES, evaluate_pair
from nehmap.evaluate.summary import NEH_COLUMNS, REGION_COLUMNS, paper_table, summarise
from nehmap.io.segmentations import LabelMapRef, find_label_maps
from nehmap.labels import NEH, get_scheme, scheme_name
from nehmap.metrics import METHODS
from nehmap.metrics._validation import check_empty_penalty, check_nonnegative

__all__ = [
    "CASE_COLUMNS",
    "FAILURE_COLUMNS",
    "MISSING_COLUMNS",
    "EvaluationResult",
    "evaluate_collections",
]

CASE_COLUMNS: tuple[str, ...] = ("case", "region", "metric", "value")
"""Columns of :attr:`EvaluationResult.cases`."""

MISSING_COLUMNS: tuple[str, ...] = ("case", "only_in", "path")
"""Columns of :attr:`EvaluationResult.missing` (``only_in``: ``pred`` or ``ref``)."""

FAILURE_COLUMNS: tuple[str, ...] = ("case", "message")
"""Columns of :attr:`EvaluationResult.failures`."""


@dataclass
class EvaluationResult:
    """The outcome of :func:`evaluate_collections`.

    Attributes
    ----------
    cases : pd.DataFrame
        One row per case, region and metric: ``case``, ``region``, ``metric``,
        ``value`` (Dice, Jaccard and surface Dice in [0, 1]; HD95 in mm; NaN when
        undefined).
    summary : pd.DataFrame
        One row per region and metric: ``region``, ``metric``, ``mean``, ``sd``
        (sample standard deviation), ``median``, ``n`` (cases with a defined value).
    missing : pd.DataFrame
        Cases with a label map on one side only: ``case``, ``only_in``
        (``pred`` or ``ref``, the side that has it) and ``path`` (its file).
    failures : pd.DataFrame
        Matched cases that could not be evaluated: ``case``, ``message``.
    parameters : dict[str, Any]
        The settings of the evaluation (paths, models, schemes, method,
        tolerance and empty penalty in mm).
    counts : dict[str, int]
        Label maps per side, matched, evaluated, failed and one-sided cases.
    notes : list[str]
        Remarks about the evaluation: a reference scheme without NEH label, and
        warnings raised while reading (e.g. label values dropped), with their cases.
    inputs : list[Path]
        Every label-map file (and manifest) of either side, never to be overwritten.
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
    return same and scheme_name(pred.scheme) == scheme_name(ref.scheme)


def _reference_notes(refs: Mapping[str, LabelMapRef]) -> list[str]:
    """Notes about reference schemes in which NEH cannot occur."""
    notes = []
    schemes = {scheme_name(r.scheme): r.scheme for r in refs.values()}
    for name, scheme in sorted(schemes.items()):
        if name in NEH_ONLY_SCHEMES:
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

    Parameters
    ----------
    pred : str | Path
        Folder of predictions: ``nehmap segment`` output, a collection, or a folder
        of ``<case>.nii.gz`` label maps.
    ref : str | Path
        Folder of reference label maps, in any of the same forms.
    pred_model, ref_model : str | None
        Which model's maps to take from a ``nehmap segment`` output
        folder (``fused``: the fused NEH mask; ``levels``: the two-level map).
    pred_scheme, ref_scheme : str | None
        Label scheme of plain label maps (default ``nehmap``), or
        to override a collection's (e.g. ``brats2021``).
    method : str
        Surface convention of HD95 and surface Dice, ``"voxels"`` (MONAI) or
        ``"surface_elements"`` (DeepMind's surface-distance).
    tolerance_mm : float
        Surface-Dice tolerance in mm.
    empty_penalty : float | None
        HD95 in mm when a region is empty in exactly one map (NaN, and
        left out of the summary, when None).
    progress : bool
        Show a progress bar over the cases (tqdm, on stderr).

    Returns
    -------
    EvaluationResult
        :class:`EvaluationResult` with the per-case table, the summary, the one-sided
        cases and the failed cases.

    Raises
    ------
    NehmapInputError
        A side holds no label maps, a model is missing or ambiguous,
        both sides give the same files, or no case id is on both sides.
    ValueError
        An invalid method, tolerance, empty penalty or label scheme.
    """
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
    bar = case_bar(matched, "evaluating", progress)
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
