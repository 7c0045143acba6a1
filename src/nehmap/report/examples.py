"""Example cases for the image figures: which ones, which files, which slice.

Figure 1 shows a few pre-operative cases chosen deterministically by their NEH volume
(the cases at the lower quartile, the median and the upper quartile, ties broken by case
id), read from ``work/segment/<cohort>/<case>/``. Figure 4 shows one recurrence subject
from ``work/recurrence/<subject>/``. Everything here is defensive: a missing or
unreadable file leaves a panel out (or the whole figure, with a note), never the report.

Display convention: arrays are canonical RAS+ (axis 0 left -> right, 1 posterior ->
anterior, 2 inferior -> superior). An axial slice is shown in the radiological
convention: anterior at the top, the patient's right on the image's left.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from nehmap.io import read_image
from nehmap.io.segmentations import CONSENSUS_SCHEME
from nehmap.labels import ET, NEH

BACKGROUND_MODALITIES = ("t1c", "t1", "flair", "t2")
EXAMPLE_QUANTILES = ((0.5, "median NEH volume"), (0.25, "lower quartile"), (0.75, "upper quartile"))

_READ_ERRORS = (OSError, ValueError, EOFError)  # NehmapInputError is a ValueError


def radiological(slice_2d: np.ndarray) -> np.ndarray:
    """An axial slice (X, Y) of a RAS+ array as an image: anterior up, patient right left.

    Rows run from anterior to posterior, columns from the patient's right to left.
    """
    return np.ascontiguousarray(slice_2d[::-1, ::-1].T)


def safe_read(
    path: Path | None, dtype: type | None = np.float32
) -> tuple[np.ndarray, tuple] | None:
    """The canonical array and spacing of an image, or None when it cannot be read."""
    if path is None or not Path(path).is_file():
        return None
    try:
        image = read_image(path, dtype=dtype)
    except _READ_ERRORS:
        return None
    return image.array, image.spacing


@dataclass
class CaseMaps:
    """One case's images for Figure 1, all canonical arrays on one grid.

    Attributes
    ----------
    case : str
        The case id.
    background : np.ndarray | None
        The T1c (or another modality when T1c is missing), or None.
    background_name : str
        Which modality ``background`` is.
    spacing : tuple[float, float, float]
        Voxel size in mm per axis.
    labels : dict[str, np.ndarray]
        Model -> four-label map (0 bg, 1 NC, 2 ED, 3 NEH, 4 ET).
    consensus : dict[str, np.ndarray]
        Name -> two-level map (0, 1 low, 2 high probability NEH): consensus
        models and the fused levels (``levels``).
    probability : np.ndarray | None
        The fused NEH probability, or None.
    """

    case: str
    background: np.ndarray | None
    background_name: str
    spacing: tuple[float, float, float]
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    consensus: dict[str, np.ndarray] = field(default_factory=dict)
    probability: np.ndarray | None = None

    def shape(self) -> tuple[int, ...] | None:
        """The common grid shape (from any map), or None when nothing was read."""
        for array in (
            *self.labels.values(),
            *self.consensus.values(),
            self.probability,
            self.background,
        ):
            if array is not None:
                return tuple(array.shape)
        return None


def segment_cases(work_dir: Path, cohort: str) -> list[str]:
    """Cases of a cohort with a complete segmentation record, sorted."""
    root = work_dir / "segment" / cohort
    if not root.is_dir():
        return []
    return sorted(
        p.name for p in root.iterdir() if p.is_dir() and (p / f"{p.name}_nehmap.json").is_file()
    )


def _neh_counts_from_table(table: pd.DataFrame | None, label_column: str) -> pd.DataFrame:
    if table is None or not {"case", "model", label_column, "n_voxels"} <= set(table.columns):
        return pd.DataFrame(columns=["case", "model", "n_voxels"])
    rows = table[table[label_column].astype(str) == "NEH"]
    if "modality" in rows.columns:  # one row per modality: the counts repeat
        rows = rows.drop_duplicates(subset=["case", "model"])
    return rows[["case", "model", "n_voxels"]]


def neh_volumes(
    cases: Sequence[str],
    intensity_cases: pd.DataFrame | None,
    rcbv_cases: pd.DataFrame | None,
    models: Sequence[str],
    seg_root: Path,
) -> pd.Series:
    """NEH voxel count per case (first model with counts), for choosing examples.

    Read from the intensity table (NEH voxels of each model), else from the rCBV table
    (measurable NEH voxels), else counted in the fused NEH mask or the first model's map.
    """
    for table, column in ((intensity_cases, "label_name"), (rcbv_cases, "compartment")):
        counts = _neh_counts_from_table(table, column)
        counts = counts[counts["case"].astype(str).isin(set(cases))]
        for model in [*models, *sorted(set(counts["model"].astype(str)))]:
            sub = counts[counts["model"].astype(str) == model]
            if len(sub):
                return sub.set_index(sub["case"].astype(str))["n_voxels"].astype(float)
    volumes = {}
    for case in cases:
        folder = seg_root / case
        mask = safe_read(folder / f"{case}_neh-mask.nii.gz", None)
        if mask is None and models:
            seg = safe_read(folder / f"{case}_seg-{models[0]}.nii.gz", None)
            mask = None if seg is None else (seg[0] == NEH, seg[1])
        if mask is not None:
            volumes[case] = float(np.count_nonzero(mask[0]))
    return pd.Series(volumes, dtype=float)


def pick_examples(volumes: pd.Series, n: int = 3) -> list[tuple[str, str]]:
    """Up to ``n`` cases with NEH, at the median then the quartiles of NEH volume.

    Returns (case, why chosen) pairs; deterministic (ties broken by case id).
    """
    frame = pd.DataFrame({"case": volumes.index.astype(str), "v": volumes.to_numpy(dtype=float)})
    frame = frame[np.isfinite(frame["v"]) & (frame["v"] > 0)]
    if frame.empty:
        return []
    frame = frame.sort_values(["v", "case"], kind="mergesort").reset_index(drop=True)
    chosen: list[tuple[str, str]] = []
    for quantile, why in EXAMPLE_QUANTILES[:n]:
        index = int(round(quantile * (len(frame) - 1)))
        case = str(frame.loc[index, "case"])
        if case not in [c for c, _ in chosen]:
            chosen.append((case, f"{why} ({int(frame.loc[index, 'v'])} NEH voxels)"))
    return chosen


def figure1_choice(
    work_dir: Path,
    cohorts: Sequence[str],
    intensity_cases: pd.DataFrame | None,
    rcbv_cases: pd.DataFrame | None,
    models: Sequence[str],
    n: int,
) -> tuple[str, Path, list[tuple[str, str]]] | None:
    """The Figure 1 cases: the first cohort (in ``cohorts`` order) with segment outputs,
    its segment folder, and the cases :func:`pick_examples` chooses (with the reason).

    None when no cohort has segment outputs. The figure and the report's viewer both
    use this, so they show the same patients.
    """
    cohort = next((c for c in cohorts if segment_cases(work_dir, c)), None)
    if cohort is None:
        return None
    seg_root = work_dir / "segment" / cohort
    cases = segment_cases(work_dir, cohort)
    volumes = neh_volumes(cases, intensity_cases, rcbv_cases, models, seg_root)
    return cohort, seg_root, pick_examples(volumes, n)


def read_record(folder: Path, case: str) -> dict:
    """The case's ``<case>_nehmap.json`` (empty when absent or unreadable)."""
    path = folder / f"{case}_nehmap.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def background_path(record: dict) -> tuple[Path | None, str]:
    """The T1c input of a case (or the first other structural modality) and its name."""
    inputs = record.get("inputs", {})
    if not isinstance(inputs, dict):
        return None, ""
    lowered = {str(k).lower(): v for k, v in inputs.items()}
    for name in BACKGROUND_MODALITIES:
        if lowered.get(name):
            return Path(str(lowered[name])), name
    return None, ""


def model_maps(
    folder: Path, case: str, models: Sequence[str], record: dict
) -> list[tuple[str, str]]:
    """(model, scheme) of the segmentations in ``folder``: the study's models first."""
    found = sorted(p.name for p in folder.glob(f"{case}_seg-*.nii.gz"))
    names = [n.removeprefix(f"{case}_seg-").removesuffix(".nii.gz") for n in found]
    schemes = (
        record.get("label_schemes", {}) if isinstance(record.get("label_schemes"), dict) else {}
    )
    ordered_names = [m for m in models if m in names] + [n for n in names if n not in models]
    out = []
    for name in ordered_names:
        scheme = schemes.get(name) or (CONSENSUS_SCHEME if "consensus" in name else "nehmap")
        out.append((name, str(scheme)))
    return out


def load_case_maps(seg_root: Path, case: str, models: Sequence[str]) -> CaseMaps:
    """Read a case's background image, segmentations, fused levels and probability."""
    folder = seg_root / case
    record = read_record(folder, case)
    path, name = background_path(record)
    background = safe_read(path)
    spacing: tuple = background[1] if background else (1.0, 1.0, 1.0)
    maps = CaseMaps(case, background[0] if background else None, name, spacing)
    for model, scheme in model_maps(folder, case, models, record):
        seg = safe_read(folder / f"{case}_seg-{model}.nii.gz", None)
        if seg is None:
            continue
        target = maps.consensus if scheme == CONSENSUS_SCHEME else maps.labels
        target[model] = seg[0].astype(np.uint8)
        spacing = seg[1] if background is None else spacing
    levels = safe_read(folder / f"{case}_neh-levels.nii.gz", None)
    if levels is not None:
        maps.consensus["levels"] = levels[0].astype(np.uint8)
    probability = safe_read(folder / f"{case}_neh-prob.nii.gz")
    if probability is not None:
        maps.probability = probability[0]
    maps.spacing = tuple(float(s) for s in spacing)  # type: ignore[assignment]
    _drop_mismatched(maps)
    return maps


def _drop_mismatched(maps: CaseMaps) -> None:
    """Drop maps whose grid differs from the majority (never raise on odd files)."""
    shapes = [a.shape for a in (*maps.labels.values(), *maps.consensus.values())]
    if maps.probability is not None:
        shapes.append(maps.probability.shape)
    if not shapes:
        return
    common = max(set(shapes), key=shapes.count)
    maps.labels = {k: v for k, v in maps.labels.items() if v.shape == common}
    maps.consensus = {k: v for k, v in maps.consensus.items() if v.shape == common}
    if maps.probability is not None and maps.probability.shape != common:
        maps.probability = None
    if maps.background is not None and maps.background.shape != common:
        maps.background = None


def best_axial_slice(masks: Sequence[np.ndarray], fallback: Sequence[np.ndarray] = ()) -> int:
    """The axial index (axis 2) with the most voxels in ``masks`` (then ``fallback``)."""
    for group in (masks, fallback):
        arrays = [m for m in group if m is not None and m.ndim == 3]
        if arrays:
            counts = sum(np.count_nonzero(m, axis=(0, 1)) for m in arrays)
            if np.max(counts) > 0:
                return int(np.argmax(counts))
    arrays = [m for m in (*masks, *fallback) if m is not None and m.ndim == 3]
    return arrays[0].shape[2] // 2 if arrays else 0


def crop_box(masks: Sequence[np.ndarray], margin: int = 6) -> tuple[slice, slice]:
    """In-plane (rows, columns) crop of displayed 2D slices around their non-zero union."""
    union = None
    for m in masks:
        if m is not None:
            union = m != 0 if union is None else union | (m != 0)
    if union is None or not union.any():
        shape = masks[0].shape if masks else (1, 1)
        return slice(0, shape[0]), slice(0, shape[1])
    rows = np.flatnonzero(union.any(axis=1))
    cols = np.flatnonzero(union.any(axis=0))
    return (
        slice(max(0, rows[0] - margin), min(union.shape[0], rows[-1] + margin + 1)),
        slice(max(0, cols[0] - margin), min(union.shape[1], cols[-1] + margin + 1)),
    )


# --------------------------------------------------------------------------- recurrence


@dataclass
class RecurrenceMaps:
    """One recurrence subject for Figure 4, on the recurrence grid.

    Attributes
    ----------
    subject : str
        The subject id.
    pneh : np.ndarray
        Warped pre-operative NEH mask (bool).
    et : np.ndarray
        Enhancing tumour of the recurrence scan (bool).
    background : np.ndarray | None
        The recurrence T1c, or None.
    spacing : tuple[float, float, float]
        Voxel size in mm.
    sources : list[str]
        The files read (named in the caption).
    controls : np.ndarray | None
        Label map of the distance-matched placements of pNEH
        (``<subject>_matched-controls.nii.gz`` beside the pNEH), or None.
    """

    subject: str
    pneh: np.ndarray
    et: np.ndarray
    background: np.ndarray | None
    spacing: tuple[float, float, float]
    sources: list[str] = field(default_factory=list)
    controls: np.ndarray | None = None


_NIFTI = re.compile(r"\.nii(\.gz)?$", re.IGNORECASE)
_PNEH_SUFFIX = re.compile(r"[_\-.]?(pneh|warped[_\-]?neh)(\.nii(\.gz)?)$", re.IGNORECASE)
_NOT_PNEH = ("core", "t1", "t2", "flair", "image", "brain")


def _images(folder: Path) -> list[Path]:
    """NIfTI files in ``folder`` and below, sorted."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and _NIFTI.search(p.name))


def _is_pneh(path: Path) -> bool:
    """A warped pre-operative NEH mask, by name: ``pneh``, or ``warped`` without image words."""
    name = path.name.lower()
    if "pneh" in name:
        return True
    return "warped" in name and not any(word in name for word in _NOT_PNEH)


def _pneh_subject(path: Path) -> str | None:
    """``S1`` for ``S1_pneh.nii.gz``; None when the name holds no subject before the suffix."""
    match = _PNEH_SUFFIX.search(path.name)
    stem = path.name[: match.start()] if match else ""
    return stem or None


def find_pneh_files(work_dir: Path) -> dict[str, Path]:
    """Subject -> warped pNEH mask under ``work/recurrence``.

    Either one folder per subject (``recurrence/<subject>/...``, searched recursively;
    a name with ``pneh`` preferred) or a shared folder of ``<subject>_pneh.nii.gz`` files
    (e.g. ``recurrence/warped/``).
    """
    root = work_dir / "recurrence"
    found: dict[str, Path] = {}
    if not root.is_dir():
        return found
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        hits = sorted(
            (p for p in _images(folder) if _is_pneh(p)),
            key=lambda p: ("pneh" not in p.name.lower(), str(p)),
        )
        subjects = {_pneh_subject(p) for p in hits} - {None}
        shared = bool(subjects) and folder.name not in subjects
        shared = shared and not (folder / "recurrence.csv").is_file()
        if not shared and hits:
            found.setdefault(folder.name, hits[0])
        for path in hits if shared else []:
            subject = _pneh_subject(path)
            if subject is not None:
                found.setdefault(subject, path)
    return found


def _recurrence_seg_file(folder: Path) -> Path | None:
    """A recurrence label map in a subject's folder, by name (``et``, ``seg``, ``label``...)."""
    if not folder.is_dir():
        return None
    images = [p for p in _images(folder) if not _is_pneh(p) and "warped" not in p.name.lower()]
    for key in ("et", "seg", "label", "recurrence"):
        hits = [p for p in images if re.search(rf"(^|[_\-.]){key}", p.name.lower())]
        if hits:
            return hits[0]
    return None


def _recurrence_scan_folder(work_dir: Path, subject: str, scan_id: str | None) -> Path | None:
    """The recurrence scan's segmentation folder: ``scan_id`` when known, else by name."""
    root = work_dir / "segment" / "recurrence"
    if not root.is_dir():
        return None
    if scan_id and (root / scan_id).is_dir():
        return root / scan_id
    candidates = sorted(
        p for p in root.iterdir() if p.is_dir() and p.name.startswith(f"{subject}_")
    )
    for suffix in ("_recurrence", "_2"):
        for p in candidates:
            if p.name.endswith(suffix):
                return p
    return candidates[-1] if len(candidates) > 1 else None


def recurrence_scan_ids(cases: pd.DataFrame | None) -> dict[str, str]:
    """Subject -> recurrence scan id, from ``recurrence_cases.csv`` when it names them."""
    if cases is None or not {"case", "recurrence_case"} <= set(cases.columns):
        return {}
    pairs = cases[["case", "recurrence_case"]].dropna().drop_duplicates(subset="case")
    return dict(zip(pairs["case"].astype(str), pairs["recurrence_case"].astype(str), strict=True))


def load_recurrence_maps(
    work_dir: Path,
    subject: str,
    pneh_path: Path,
    recurrence_model: str,
    scan_id: str | None = None,
) -> RecurrenceMaps | None:
    """Read a subject's warped pNEH and recurrence ET (and the recurrence T1c if found).

    The recurrence segmentation is a label map in the subject's folder under
    ``work/recurrence``, else the recurrence model's map in the scan's segmentation
    folder; its ET (label 4) is shown, or all of it when it holds no label 4.
    """
    pneh = safe_read(pneh_path)
    if pneh is None:
        return None
    scan = _recurrence_scan_folder(work_dir, subject, scan_id)
    seg_path = _recurrence_seg_file(work_dir / "recurrence" / subject)
    if seg_path is None and scan is not None:
        seg_path = scan / f"{scan.name}_seg-{recurrence_model}.nii.gz"
    seg = safe_read(seg_path, None)
    if seg is None or seg[0].shape != pneh[0].shape:
        return None
    sources = [str(pneh_path), str(seg_path)]
    labels = seg[0]
    et = labels == ET if np.any(labels == ET) else labels > 0
    background = None
    if scan is not None:
        path, _ = background_path(read_record(scan, scan.name))
        image = safe_read(path)
        if image is not None and image[0].shape == pneh[0].shape:
            background = image[0]
            sources.append(str(path))
    controls = None
    controls_path = Path(pneh_path).parent / f"{subject}_matched-controls.nii.gz"
    read = safe_read(controls_path, None)
    if read is not None and read[0].shape == pneh[0].shape:
        controls = np.asarray(read[0]).astype(np.int64)
        sources.append(str(controls_path))
    return RecurrenceMaps(subject, pneh[0] > 0.5, et, background, pneh[1], sources, controls)


def pick_recurrence_subject(
    subjects: Sequence[str], cases: pd.DataFrame | None
) -> tuple[str | None, bool]:
    """The subject to show: at the median FractionInside when the table has it.

    Returns
    -------
    tuple[str | None, bool]
        The subject (None without subjects) and whether the metric chose it (otherwise
        the first subject in sorted order is taken).
    """
    if not subjects:
        return None, False
    if cases is not None and {"case", "metric", "value"} <= set(cases.columns):
        inside = cases[cases["metric"].astype(str).str.lower().str.contains("inside")]
        inside = inside[inside["case"].astype(str).isin(set(subjects))]
        values = pd.to_numeric(inside["value"], errors="coerce")
        inside = inside.assign(v=values).dropna(subset=["v"])
        if len(inside):
            inside = inside.sort_values(["v", "case"], kind="mergesort").reset_index(drop=True)
            return str(inside.loc[(len(inside) - 1) // 2, "case"]), True
    return sorted(subjects)[0], False
