"""The two-level NEH consensus training set (for ``unetrpp-consensus``).

The paper's section 2.1: the NEH probabilities of two networks are averaged, smoothed
(Gaussian, sigma 1.5 mm) and thresholded at 0.5; the result has a high- and a
low-probability segment, and a third model is trained on that two-level map. nehmap's
``segment`` command writes, per case, ``<case>_neh-prob.nii.gz`` (the smoothed
consensus probability) and ``<case>_neh-levels.nii.gz`` (0 / 1 low / 2 high).

:func:`consensus_dataset` turns those outputs plus the cases' images into an nnU-Net v2
raw dataset whose label files hold the **levels, not nehmap's tissue labels**::

    0  background            probability < low
    1  NEH-low               low <= probability < high
    2  NEH-high              probability >= high

``dataset.json`` says so twice: ``"labels": {"background": 0, "NEH-low": 1,
"NEH-high": 2}`` and ``"label_scheme": "neh-consensus"``. nehmap's readers recognise
either (:func:`nehmap.io.nnunet.is_consensus_dataset`) and never read these files as
tissue labels (a name-based reading would take both levels as NEH and lose the
levels).

Where the levels come from, per case: when ``low`` or ``high`` is given, they are
recomputed from ``<case>_neh-prob.nii.gz`` with those thresholds; otherwise
``<case>_neh-levels.nii.gz`` is used as ``segment`` wrote it, or, when it is missing,
the levels are computed from the probability map with the defaults (0.2, 0.5) that
``segment`` uses.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nehmap.bars import case_bar
from nehmap.errors import CaseError, NehmapInputError, OutputError
from nehmap.fusion import DEFAULT_LOW, DEFAULT_THRESHOLD, probability_levels
from nehmap.io.atomic import write_text_atomic
from nehmap.io.case import DEFAULT_GRID_TOLERANCE_MM, check_case_headers
from nehmap.io.image import Grid, read_image
from nehmap.io.layouts import Collection, discover
from nehmap.io.modalities import MODALITIES
from nehmap.io.nnunet import (
    CONSENSUS_LABELS,
    CONSENSUS_SCHEME,
    DEFAULT_CHANNELS,
    NnunetWriter,
    check_same_grid,
    dataset_root,
    parse_channels,
    prepare_output,
)

__all__ = [
    "CONSENSUS_LABELS",
    "CONSENSUS_SCHEME",
    "ConsensusReport",
    "consensus_dataset",
    "consensus_dataset_json",
    "consensus_levels",
    "find_segment_outputs",
    "read_levels",
    "segment_thresholds",
]

LEVELS_CSV = "consensus_levels.csv"
"""File name of the tidy per-case table of level volumes."""


def consensus_levels(
    probability: np.ndarray, low: float = DEFAULT_LOW, high: float = DEFAULT_THRESHOLD
) -> np.ndarray:
    """Two-level map from a consensus NEH probability map.

    Parameters
    ----------
    probability : ndarray of float, shape (X, Y, Z)
        Smoothed consensus NEH probability in [0, 1].
    low, high : float
        Thresholds, ``0 < low < high <= 1``.

    Returns
    -------
    ndarray of uint8, shape (X, Y, Z)
        2 where ``p >= high``, 1 where ``low <= p < high``, 0 elsewhere.
    """
    p = np.asarray(probability)
    if p.dtype.kind != "f":
        raise ValueError(f"probability must be a float array, got dtype {p.dtype}.")
    if p.size and (np.nanmin(p) < -1e-6 or np.nanmax(p) > 1 + 1e-6 or not np.isfinite(p).all()):
        raise ValueError("probability must hold finite values in [0, 1].")
    return probability_levels(p, low=low, high=high)


def read_levels(path: str | Path, *, case_id: str | None = None) -> tuple[np.ndarray, Grid]:
    """Read a two-level map (``<case>_neh-levels.nii.gz``) and check its values.

    Returns
    -------
    levels : ndarray of uint8, shape (X, Y, Z)
        Canonical (RAS+) levels 0/1/2.
    grid : Grid
        The file's geometry.

    Raises
    ------
    CaseError
        When the file holds values other than 0, 1, 2.
    """
    p = Path(path)
    img = read_image(p, dtype=None, kind="NEH level map")
    data = img.array
    values = {v.item() for v in np.unique(data)}
    if not values <= {0, 1, 2}:
        raise CaseError(
            case_id or p.name,
            p,
            f"NEH level map holds values {sorted(values - {0, 1, 2})}; only 0 (background), "
            "1 (low) and 2 (high) are allowed.",
            "Give the <case>_neh-levels.nii.gz written by nehmap segment, or its "
            "<case>_neh-prob.nii.gz with --low/--high.",
        )
    return data.astype(np.uint8), img.grid


def find_segment_outputs(segdir: str | Path, case_id: str) -> dict[str, Path]:
    """The ``nehmap segment`` outputs of a case that exist: ``levels`` and/or ``prob``.

    Looks in ``segdir/<case>/`` (segment's layout), then in ``segdir/`` itself.
    """
    root = Path(segdir)
    found: dict[str, Path] = {}
    for folder in (root / case_id, root):
        for key, tag in (("levels", "neh-levels"), ("prob", "neh-prob")):
            path = folder / f"{case_id}_{tag}.nii.gz"
            if key not in found and path.is_file():
                found[key] = path
    return found


def segment_thresholds(levels_path: str | Path) -> tuple[float, float] | None:
    """The (low, high) thresholds ``nehmap segment`` used for a levels file, from the
    case's record ``<case>_nehmap.json`` beside it; None when unknown."""
    path = Path(levels_path)
    case_id = path.name.removesuffix("_neh-levels.nii.gz")
    record = path.with_name(f"{case_id}_nehmap.json")
    try:
        params = json.loads(record.read_text(encoding="utf-8")).get("parameters", {})
        return float(params["low"]), float(params["threshold"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def consensus_dataset_json(
    channels: Sequence[str],
    *,
    low: float = DEFAULT_LOW,
    high: float = DEFAULT_THRESHOLD,
    name: str = "",
    source: str = "prob",
) -> dict:
    """``dataset.json`` of the consensus training set (``numTraining`` filled on writing).

    Parameters
    ----------
    channels : sequence of str
        Modality keys in channel order.
    low, high : float
        The thresholds that made the levels.
    name : str
        Dataset name.
    source : str
        Where the levels came from: ``prob`` (recomputed), ``levels`` (segment's files)
        or ``mixed``.
    """
    lo, hi = low, high
    return {
        "name": name,
        "description": (
            "Two-level NEH consensus maps for training unetrpp-consensus. The label files "
            "are NOT nehmap's tissue labels: 0 background, 1 low-probability NEH "
            f"({lo:g} <= p < {hi:g}), 2 high-probability NEH (p >= {hi:g}), p the smoothed "
            "consensus NEH probability of nehmap segment."
        ),
        "channel_names": {},
        "labels": dict(CONSENSUS_LABELS),
        "numTraining": 0,
        "file_ending": ".nii.gz",
        "label_scheme": CONSENSUS_SCHEME,
        "consensus": {"low": lo, "high": hi, "source": source, "channels": list(channels)},
    }


@dataclass
class ConsensusReport:
    """What :func:`consensus_dataset` did.

    Attributes
    ----------
    root : Path
        The dataset folder.
    cases : list of str
        Cases written.
    failures : list of (str, str)
        Case id and message of each case not written.
    sources : dict
        Case id -> ``"levels"`` or ``"prob"`` (which segment output gave the levels).
    thresholds : dict
        Case id -> (low, high) that made its levels (None when unknown: a levels file
        without segment's record beside it).
    notes : list of str
        Remarks (e.g. levels made with different thresholds in different cases).
    placed : dict
        How many images were placed each way.
    index, volumes : Path or None
        ``dataset.json`` and the level-volume CSV.
    """

    root: Path
    cases: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    thresholds: dict[str, tuple[float, float] | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    placed: dict[str, int] = field(default_factory=dict)
    index: Path | None = None
    volumes: Path | None = None


def _check_thresholds(low: float | None, high: float | None) -> tuple[float, float]:
    lo = DEFAULT_LOW if low is None else float(low)
    hi = DEFAULT_THRESHOLD if high is None else float(high)
    if not (math.isfinite(lo) and math.isfinite(hi) and 0.0 < lo < hi <= 1.0):
        raise ValueError(f"Need 0 < low < high <= 1, got low={lo}, high={hi}.")
    return lo, hi


def consensus_dataset(
    segdir: str | Path,
    images: Collection | str | Path,
    out: str | Path,
    *,
    low: float | None = None,
    high: float | None = None,
    dataset_id: int | None = None,
    name: str | None = None,
    channels: Sequence[str] = DEFAULT_CHANNELS,
    link: str = "hard",
    overwrite: bool = False,
    progress: bool = False,
    grid_tolerance_mm: float = DEFAULT_GRID_TOLERANCE_MM,
) -> ConsensusReport:
    """Build the nnU-Net dataset of two-level NEH consensus maps.

    Parameters
    ----------
    segdir : path
        Output folder of ``nehmap segment`` (``<case>/<case>_neh-levels.nii.gz``,
        ``<case>/<case>_neh-prob.nii.gz``).
    images : Collection or path
        The cases whose images are the network's inputs (their label files, if any, are
        not used).
    out : path
        Dataset folder, or ``$nnUNet_raw`` when ``dataset_id`` and ``name`` are given.
    low, high : float, optional
        Thresholds; when either is given the levels are recomputed from the probability
        maps (see the module docstring).
    dataset_id, name, channels, link, overwrite, progress, grid_tolerance_mm
        The dataset's naming, channel order, how images are placed, writing
        into a non-empty folder, the progress bar and the grid tolerance (mm): as for
        :func:`nehmap.io.nnunet.export_nnunet`.

    Returns
    -------
    ConsensusReport
    """
    lo, hi = _check_thresholds(low, high)
    recompute = low is not None or high is not None
    col = images if isinstance(images, Collection) else discover(images)
    seg_root = Path(segdir)
    if not seg_root.is_dir():
        raise NehmapInputError(
            seg_root, "is not a folder.", "Give the output folder of nehmap segment."
        )
    order = parse_channels(channels)
    root = dataset_root(out, dataset_id, name)
    prepare_output(root, sources=[col.root, seg_root], overwrite=overwrite)
    writer = NnunetWriter(root, link=link, channels=order)
    report = ConsensusReport(root)
    rows = []
    for files in case_bar(col.cases, "consensus-dataset", progress):
        case_id = files.case_id
        try:
            grid = check_case_headers(files, grid_tolerance_mm)
            found = find_segment_outputs(seg_root, case_id)
            if recompute and "prob" not in found:
                raise CaseError(
                    case_id,
                    seg_root / case_id,
                    f"has no {case_id}_neh-prob.nii.gz, so the levels cannot be recomputed "
                    "with --low/--high.",
                    "Run nehmap segment on the case, or drop --low/--high to use its "
                    "_neh-levels file.",
                )
            if not found:
                raise CaseError(
                    case_id,
                    seg_root / case_id,
                    f"has no {case_id}_neh-levels.nii.gz or {case_id}_neh-prob.nii.gz.",
                    "Run nehmap segment on the case (with the 4-label models) first, or "
                    "remove it from the image collection.",
                )
            if "levels" in found and not recompute:
                source = "levels"
                levels, levels_grid = read_levels(found["levels"], case_id=case_id)
                used = segment_thresholds(found["levels"])
            else:
                source = "prob"
                used = (lo, hi)
                prob = read_image(found["prob"], kind="NEH probability map")
                levels_grid = prob.grid
                try:
                    levels = consensus_levels(prob.array, lo, hi)
                except ValueError as exc:
                    raise CaseError(
                        case_id,
                        found["prob"],
                        str(exc),
                        "Give the probability map written by nehmap segment.",
                    ) from None
            check_same_grid(
                case_id,
                levels_grid,
                grid,
                what=f"NEH {source} map",
                reference_what=f"{MODALITIES[0]} image",
                tolerance_mm=grid_tolerance_mm,
            )
            writer.add(
                case_id,
                {key: files.files[key] for key in MODALITIES},
                levels,
                grid,
                inputs=[*files.paths, *found.values()],
            )
        except (NehmapInputError, OutputError, OSError, ValueError) as exc:
            report.failures.append((case_id, str(exc)))
            continue
        report.cases.append(case_id)
        report.sources[case_id] = source
        report.thresholds[case_id] = used
        voxel = math.prod(grid.spacing)
        for value, level in ((1, "NEH-low"), (2, "NEH-high")):
            n = int(np.count_nonzero(levels == value))
            rows.append(
                {
                    "case": case_id,
                    "level": level,
                    "voxels": n,
                    "volume_mm3": n * voxel,
                    "source": source,
                }
            )
    report.placed = dict(writer.placed)
    known = {t for t in report.thresholds.values() if t is not None}
    if len(known) > 1:
        report.notes.append(
            "the levels of different cases were made with different thresholds "
            f"{sorted(known)}; rerun with --low/--high to recompute them all alike."
        )
    final_lo, final_hi = known.pop() if len(known) == 1 else (lo, hi)
    kinds = set(report.sources.values())
    report.index = writer.finish(
        consensus_dataset_json(
            order,
            low=final_lo,
            high=final_hi,
            name=name or root.name,
            source=kinds.pop() if len(kinds) == 1 else ("mixed" if kinds else "prob"),
        )
    )
    report.notes.extend(writer.stale_notes())
    import pandas as pd

    buffer = io.StringIO()
    pd.DataFrame(rows, columns=["case", "level", "voxels", "volume_mm3", "source"]).to_csv(
        buffer, index=False
    )
    report.volumes = write_text_atomic(root / LEVELS_CSV, buffer.getvalue())
    write_text_atomic(
        root / "consensus-dataset.json",
        json.dumps(
            {
                "segdir": str(seg_root),
                "images": str(col.root),
                "low": lo,
                "high": hi,
                "recomputed": recompute,
                "sources": report.sources,
                "thresholds": {k: list(v) if v else None for k, v in report.thresholds.items()},
                "notes": report.notes,
                "failures": dict(report.failures),
            },
            indent=2,
        )
        + "\n",
    )
    return report
