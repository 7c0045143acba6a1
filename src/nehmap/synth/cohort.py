"""A synthetic cohort written in a public collection's layout, with its ground truth.

:func:`write_cohort` generates ``n`` cases and writes them under ``OUT`` in one of the
layouts of :mod:`nehmap.io.writers`. The truth goes to the sibling folder
``OUT_truth`` (beside, never inside, the collection, so readers of the collection see
only the public files):

* ``<ID>_truth-labels.nii.gz``: nehmap's labels (1 NC, 2 ED, 3 NEH, 4 ET; uint8);
* ``<ID>_brain-mask.nii.gz``: the brain mask (uint8);
* with a recurrence time point: ``<ID>_recurrence-labels.nii.gz`` (follow-up labels),
  ``<ID>_recurrence-cavity.nii.gz``, ``<ID>_recurrence-preop-neh.nii.gz`` (the
  pre-operative NEH mapped into recurrence space), ``<ID>_recurrence-brain-mask.nii.gz``,
  ``<ID>_recurrence-displacement.nii.gz`` (the displacement field, shape X x Y x Z x 3,
  mm) and ``<ID>_recurrence-transform.json`` (the rigid matrix and the convention);
  layouts without time points (BraTS 2018-2021, nnU-Net) get the follow-up scans as a
  second collection in the same layout under ``OUT_truth/recurrence``;
* with ``second_segmentation``: ``second/<ID>_seg.nii.gz``, a BraTS 2021-style
  segmentation of each case as another model would make it (NEH called edema,
  boundaries perturbed; :mod:`nehmap.synth.second`), the ``--second`` input of
  ``nehmap derive-neh`` next to a ``brats2018``/``brats2020`` layout collection, whose
  label files hold NEH in label 1 (NCR/NET) as BraTS 2017-2020 did;
* ``cohort.json``: every parameter of the cohort and of each case (its tumour family
  included);
* ``truth.csv``: one row per case: seed, tumour family, tumour volume per label (mm^3), NEH coverage,
  planted rCBV means and scale, recurrence origin...

``<ID>`` is the pre-operative case ID of the layout (for RHUH the patient ID).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nehmap._version import __version__
from nehmap.bars import case_bar
from nehmap.errors import OutputError
from nehmap.io.atomic import write_text_atomic
from nehmap.io.image import write_image
from nehmap.io.writers import (
    TIMEPOINT_LAYOUTS,
    get_layout,
    scan_id,
    write_case,
    write_nnunet_dataset_json,
    write_truth_labels,
)
from nehmap.labels import from_nehmap
from nehmap.synth.anatomy import SpacingLike, as_spacing
from nehmap.synth.case import SyntheticCase, generate_case
from nehmap.synth.families import check_family
from nehmap.synth.params import jsonable, merge_params
from nehmap.synth.second import (
    DEFAULT_CORRELATION_MM,
    DEFAULT_DISPLACEMENT_MM,
    DEFAULT_SPECKLE,
)
from nehmap.synth.second import second_segmentation as second_segmentation_of

GENERATOR = "nehmap.synth"
RECURRENCE_TIMEPOINT_RHUH = 2
DISPLACEMENT_RESOLUTION_MM = 1.0 / 128.0
"""The stored displacement field is rounded to this (mm); the exact field is the sum of
the sine waves listed in the transform JSON."""

TRANSFORM_CONVENTION = (
    "World coordinates are RAS mm. The recurrence voxel at world position y shows the "
    "pre-operative position x = rigid_matrix @ (y + u(y)), where u is the displacement "
    "field (mm, RAS components, on the recurrence grid) stored in displacement_file. "
    "Both scans share the same grid. The stored field is rounded to 1/128 mm; the exact "
    "field is the sum over displacement_waves of amplitude_mm * sin(2 pi (direction . y) "
    "/ wavelength_mm + phase)."
)


@dataclass(frozen=True)
class CohortResult:
    """What :func:`write_cohort` wrote.

    Attributes
    ----------
    collection : Path
        The collection folder (``OUT``).
    truth : Path
        The truth folder (``OUT_truth``).
    case_ids : list[str]
        Pre-operative case IDs, in order.
    table : pd.DataFrame
        The per-case facts (the content of ``truth.csv``).
    """

    collection: Path
    truth: Path
    case_ids: list[str]
    table: pd.DataFrame


def truth_folder(out: str | Path) -> Path:
    """The truth folder that belongs to the collection folder ``out`` (``OUT_truth``)."""
    path = Path(out).absolute()
    return path.with_name(f"{path.name}_truth")


def default_rcbv(layout: str) -> bool:
    """Whether a layout gets an rCBV map by default (UPenn-GBM ships DSC maps)."""
    return get_layout(layout).name == "upenn"


def default_recurrence(layout: str) -> bool:
    """Whether a layout gets a recurrence time point by default (RHUH-GBM)."""
    return get_layout(layout).name == "rhuh"


def case_seeds(seed: int, n: int) -> list[int]:
    """Per-case seeds spawned from the cohort seed (case ``i`` does not depend on ``n``)."""
    children = np.random.SeedSequence(int(seed)).spawn(n)
    return [int(child.generate_state(1, dtype=np.uint32)[0]) for child in children]


def write_cohort(
    out: str | Path,
    n: int,
    seed: int,
    spacing: SpacingLike = 1.0,
    layout: str = "brats2021",
    rcbv: bool | None = None,
    recurrence: bool | None = None,
    progress: bool = True,
    *,
    params: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    second_segmentation: bool = False,
    family: str = "ellipsoidal",
) -> CohortResult:
    """Generate ``n`` synthetic cases and write them in ``layout`` under ``out``.

    Parameters
    ----------
    out : str | Path
        The collection folder; the truth goes to ``<out>_truth`` beside it.
    n : int
        Number of cases (patients).
    seed : int
        Cohort seed; case ``i``'s seed is spawned from it (recorded in the truth).
    spacing : SpacingLike
        Voxel size in mm (one value or one per axis).
    layout : str
        ``brats2021``, ``brats2020``, ``brats2018``, ``brats2023``, ``upenn``,
        ``rhuh`` or ``nnunet``.
    rcbv : bool | None
        Write rCBV maps; None: only for ``upenn``.
    recurrence : bool | None
        Add a recurrence time point; None: only for ``rhuh``.
    progress : bool
        Show a progress bar.
    params : Mapping[str, Any] | None
        Overrides of the case parameters (see :mod:`nehmap.synth.params`).
    overwrite : bool
        Replace an existing non-empty collection previously written by
        this function.
    second_segmentation : bool
        Also write a BraTS 2021-style second segmentation of each
        case under ``<out>_truth/second`` (for ``nehmap derive-neh``).
    family : str
        Tumour family (:mod:`nehmap.synth.families`) or ``mixed`` (one drawn
        per case); each case's family is recorded in ``cohort.json`` and ``truth.csv``.

    Returns
    -------
    CohortResult
        :class:`CohortResult`.

    Raises
    ------
    OutputError
        The collection or truth folder exists and is not empty (and
        ``overwrite`` is false, or it was not written by nehmap synth).
    ValueError
        Bad ``n``, ``seed``, ``layout`` or parameters.
    """
    spec = get_layout(layout)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}.")
    if int(seed) < 0:
        raise ValueError(f"seed must be non-negative, got {seed}.")
    merge_params(params)  # fail early on unknown parameter names
    spacing_mm = as_spacing(spacing)
    check_family(family, spacing_mm, params)
    with_rcbv = default_rcbv(spec.name) if rcbv is None else bool(rcbv)
    with_recurrence = default_recurrence(spec.name) if recurrence is None else bool(recurrence)
    collection = Path(out).absolute()
    truth = truth_folder(collection)
    _prepare_folders(collection, truth, overwrite)
    settings = {
        "generator": GENERATOR,
        "nehmap_version": __version__,
        "status": "incomplete",
        "layout": spec.name,
        "label_scheme": spec.label_scheme,
        "truth_label_scheme": "nehmap",
        "n": int(n),
        "seed": int(seed),
        "spacing_mm": list(spacing_mm),
        "rcbv": with_rcbv,
        "recurrence": with_recurrence,
        "overrides": jsonable(dict(params or {})),
        "family": family,
        "second_segmentation": (
            {"folder": SECOND_FOLDER, "label_scheme": "brats2021", **SECOND_SETTINGS}
            if second_segmentation
            else None
        ),
        "collection": str(collection),
        "truth": str(truth),
    }
    _write_json(truth / "cohort.json", {**settings, "cases": []})
    records = []
    rows = []
    for index, case_seed in enumerate(
        case_bar(case_seeds(seed, n), "nehmap synth", progress), start=1
    ):
        case = generate_case(
            case_seed,
            spacing_mm,
            rcbv=with_rcbv,
            recurrence=with_recurrence,
            params=params,
            family=family,
        )
        record = _write_one(collection, truth, spec.name, index, case, with_rcbv)
        if second_segmentation:
            record["truth_files"]["second"] = _write_second(truth, record["case_id"], case)
        records.append(record)
        rows.append(_row(record, case))
    if spec.name == "nnunet":
        write_nnunet_dataset_json(collection, n)
        if with_recurrence:
            write_nnunet_dataset_json(truth / "recurrence", n)
    table = pd.DataFrame(rows)
    write_text_atomic(truth / "truth.csv", table.to_csv(index=False))
    _write_json(truth / "cohort.json", {**settings, "status": "complete", "cases": records})
    return CohortResult(collection, truth, [r["case_id"] for r in records], table)


def _is_empty(folder: Path) -> bool:
    return not folder.exists() or (folder.is_dir() and not any(folder.iterdir()))


def _prepare_folders(collection: Path, truth: Path, overwrite: bool) -> None:
    """Refuse to write into non-empty folders unless allowed; clear them when allowed."""
    busy = [folder for folder in (collection, truth) if not _is_empty(folder)]
    for folder in (collection, truth):
        if folder.exists() and not folder.is_dir():
            raise OutputError(f"{folder} exists and is not a folder. Choose another folder.")
    if busy and not overwrite:
        raise OutputError(
            f"{busy[0]} already exists and is not empty. Pass --overwrite (overwrite=True) "
            "to replace it, or choose another folder."
        )
    if busy:
        if not _written_by_us(truth):
            raise OutputError(
                f"{busy[0]} is not empty and was not written by nehmap synth (no "
                f"{truth / 'cohort.json'} from it); refusing to delete it. Choose another "
                "folder."
            )
        for folder in busy:
            shutil.rmtree(folder)
    collection.mkdir(parents=True, exist_ok=True)
    truth.mkdir(parents=True, exist_ok=True)


def _written_by_us(truth: Path) -> bool:
    try:
        content = json.loads((truth / "cohort.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(content, dict) and content.get("generator") == GENERATOR


def _write_json(path: Path, content: Mapping[str, Any]) -> Path:
    return write_text_atomic(path, json.dumps(jsonable(content), indent=2) + "\n")


def _relative(paths: Mapping[str, Path], base: Path) -> dict[str, str]:
    return {key: str(Path(p).relative_to(base)) for key, p in paths.items()}


def _write_one(
    collection: Path, truth: Path, layout: str, index: int, case: SyntheticCase, with_rcbv: bool
) -> dict[str, Any]:
    """Write one case and its truth; returns its record for ``cohort.json``."""
    case_id = scan_id(layout, index)
    files = write_case(
        collection,
        layout,
        case_id,
        case.images,
        case.grid,
        labels=case.labels,
        rcbv=case.rcbv if with_rcbv else None,
    )
    truth_files = {
        "truth-labels": write_truth_labels(truth, case_id, case.labels, case.grid),
        "brain-mask": write_image(
            case.brain_mask, case.grid, truth / f"{case_id}_brain-mask.nii.gz", dtype=np.uint8
        ),
    }
    record: dict[str, Any] = {
        "index": index,
        "case_id": case_id,
        "seed": case.seed,
        "family": case.params["family"],
        "files": _relative(files, collection),
        "params": case.params,
        "facts": case.facts,
    }
    if case.recurrence is not None:
        rec_files, rec_truth, rec_id = _write_recurrence(
            collection, truth, layout, index, case_id, case
        )
        truth_files.update(rec_truth)
        record["recurrence"] = {
            "scan_id": rec_id,
            "files": rec_files,
            "origin": case.recurrence.origin,
            "facts": case.recurrence.facts,
        }
    record["truth_files"] = _relative(truth_files, truth)
    return record


SECOND_FOLDER = "second"
"""Folder (in the truth folder) of the synthetic second segmentations."""

SECOND_SETTINGS = {
    "displacement_mm": DEFAULT_DISPLACEMENT_MM,
    "correlation_mm": DEFAULT_CORRELATION_MM,
    "speckle": DEFAULT_SPECKLE,
}


def _write_second(truth: Path, case_id: str, case: SyntheticCase) -> str:
    """Write the BraTS 2021-style second segmentation; returns its path in ``truth``."""
    rng = np.random.default_rng([int(case.seed) % 2**32, 2021])
    labels = second_segmentation_of(case.labels, case.spacing, rng)
    path = truth / SECOND_FOLDER / f"{case_id}_seg.nii.gz"
    write_image(from_nehmap(labels, "brats2021"), case.grid, path, dtype=np.uint8)
    return str(path.relative_to(truth))


def _write_recurrence(
    collection: Path, truth: Path, layout: str, index: int, case_id: str, case: SyntheticCase
) -> tuple[dict[str, str], dict[str, Path], str]:
    """Write the follow-up scan and its truth; returns (scan files, truth files, scan ID)."""
    rec = case.recurrence
    assert rec is not None
    if layout == "rhuh":
        rec_id = case_id
        written = write_case(
            collection,
            layout,
            case_id,
            rec.images,
            case.grid,
            labels=rec.labels,
            timepoint=RECURRENCE_TIMEPOINT_RHUH,
        )
        files = _relative(written, collection)
    elif layout in TIMEPOINT_LAYOUTS:
        rec_id = scan_id(layout, index, 1)
        written = write_case(collection, layout, rec_id, rec.images, case.grid, labels=rec.labels)
        files = _relative(written, collection)
    else:
        rec_id = case_id
        written = write_case(
            truth / "recurrence", layout, case_id, rec.images, case.grid, labels=rec.labels
        )
        files = _relative(written, truth)
    grid = case.grid
    stem = f"{case_id}_recurrence"
    out = {
        "recurrence-labels": write_truth_labels(
            truth, case_id, rec.labels, grid, tag="recurrence-labels"
        ),
        "recurrence-cavity": write_image(
            rec.cavity, grid, truth / f"{stem}-cavity.nii.gz", dtype=np.uint8
        ),
        "recurrence-preop-neh": write_image(
            rec.preop_neh, grid, truth / f"{stem}-preop-neh.nii.gz", dtype=np.uint8
        ),
        "recurrence-brain-mask": write_image(
            rec.brain_mask, grid, truth / f"{stem}-brain-mask.nii.gz", dtype=np.uint8
        ),
        "recurrence-displacement": write_image(
            rec.displacement(grid, resolution_mm=DISPLACEMENT_RESOLUTION_MM),
            grid,
            truth / f"{stem}-displacement.nii.gz",
            dtype=np.float32,
            description="displacement u (mm, RAS), see transform json",
        ),
    }
    transform = {
        "convention": TRANSFORM_CONVENTION,
        "rigid_matrix": rec.rigid.tolist(),
        "displacement_file": out["recurrence-displacement"].name,
        "displacement_waves": rec.params["waves"],
        "preop_scan_id": case_id,
        "recurrence_scan_id": rec_id,
        "recurrence_origin": rec.origin,
        "seed_mm": rec.params["seed_mm"],
    }
    out["recurrence-transform"] = _write_json(truth / f"{stem}-transform.json", transform)
    return files, out, rec_id


def _row(record: Mapping[str, Any], case: SyntheticCase) -> dict[str, Any]:
    """One row of ``truth.csv``."""
    geometry = case.params["geometry"]
    row: dict[str, Any] = {
        "case_id": record["case_id"],
        "seed": case.seed,
        "family": case.params["family"],
        "spacing_mm": "x".join(f"{s:g}" for s in case.spacing),
        "hemisphere": geometry["hemisphere"],
        "centre_x_mm": geometry["centre_mm"][0],
        "centre_y_mm": geometry["centre_mm"][1],
        "centre_z_mm": geometry["centre_mm"][2],
    }
    for label, volume in case.facts["volume_mm3"].items():
        row[f"volume_{label}_mm3"] = volume
    row["neh_coverage"] = case.facts["neh_coverage"]
    row["neh_cnr"] = case.params["contrast"]["neh_cnr"]
    rcbv = case.params.get("rcbv")
    if rcbv is not None:
        for name, value in rcbv["rcbv_means"].items():
            row[f"rcbv_mean_{name}"] = value
        row["rcbv_scale"] = rcbv["rcbv_scale"]
    rec = record.get("recurrence")
    if rec is not None:
        row["recurrence_scan_id"] = rec["scan_id"]
        row["recurrence_origin"] = rec["origin"]
        row["recurrence_et_in_preop_neh"] = rec["facts"]["et_in_preop_neh"]
        row["recurrence_volume_ET_mm3"] = rec["facts"]["volume_mm3"]["ET"]
    return row
