"""The viewer's cases, read from ``nehmap segment`` outputs and recurrence folders.

A segment case folder ``<out>/<case>/`` holds ``<case>_nehmap.json`` (the record naming
the input images), ``<case>_seg-<model>.nii.gz`` label maps, and, when the models were
fused, ``<case>_neh-prob.nii.gz``, ``<case>_neh-levels.nii.gz`` and
``<case>_neh-uncertainty.nii.gz``. :func:`segment_case` turns them into layers: the
images (T1c, FLAIR, rCBV where present), each model's label map, the consensus models'
and the fused two-level maps, the fused NEH probability and its uncertainty.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from nehmap.errors import NehmapInputError
from nehmap.io import read_image
from nehmap.io.segmentations import CONSENSUS_SCHEME
from nehmap.report.viewer import Layer, ViewerCase

VIEWER_IMAGES = (("t1c", "T1c"), ("flair", "FLAIR"), ("rcbv", "rCBV"), ("t1", "T1"), ("t2", "T2"))
"""Input images shown (modality key in the record, display name), underneath first."""

PNEH_COLOUR = (230, 40, 230)
"""Colour of the warped pNEH mask (magenta: none of the labels' colours)."""

_READ_ERRORS = (OSError, ValueError, EOFError)  # NehmapInputError is a ValueError


def _read(path: Path, dtype: type | None = np.float32) -> tuple[np.ndarray, tuple] | None:
    """Canonical array and spacing (mm), or None when the file is missing or unreadable."""
    if not path.is_file():
        return None
    try:
        image = read_image(path, dtype=dtype)
    except _READ_ERRORS:
        return None
    return image.array, tuple(float(s) for s in image.spacing)


def read_segment_record(folder: Path) -> tuple[str, dict]:
    """The case id and JSON record of a ``nehmap segment`` case folder.

    Raises
    ------
    NehmapInputError
        The folder is missing, holds no ``<case>_nehmap.json`` or holds
        an unreadable one; the message names what is missing and what to do.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NehmapInputError(
            folder, "no such folder.", "Give a case folder written by nehmap segment (OUT/CASE)."
        )
    records = sorted(folder.glob("*_nehmap.json"))
    if not records:
        raise NehmapInputError(
            folder,
            "no <case>_nehmap.json record here, so this is not a case folder written by "
            f"nehmap segment (expected {folder.name}_nehmap.json beside "
            f"{folder.name}_seg-<model>.nii.gz).",
            "Run nehmap segment first, and give one case's folder, e.g. OUT/CASE.",
        )
    path = records[0]
    case_id = path.name.removesuffix("_nehmap.json")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise NehmapInputError(
            path,
            f"cannot read the segment record ({exc}).",
            "Run nehmap segment again with --overwrite.",
        ) from exc
    return case_id, record if isinstance(record, dict) else {}


def _schemes(record: Mapping) -> dict[str, str]:
    schemes = record.get("label_schemes", {})
    return {str(k): str(v) for k, v in schemes.items()} if isinstance(schemes, dict) else {}


def segment_case(
    folder: Path,
    *,
    models: Sequence[str] = (),
    images: Mapping[str, str | Path] | None = None,
    title: str = "",
    threshold: float | None = None,
    strict: bool = False,
    modalities: Sequence[str] | None = None,
) -> ViewerCase:
    """The layers of one ``nehmap segment`` case folder.

    Parameters
    ----------
    folder : Path
        ``<out>/<case>/`` as written by ``nehmap segment``.
    models : Sequence[str]
        Model names to list first (others follow in name order).
    images : Mapping[str, str | Path] | None
        Modality -> image path, replacing the record's inputs (e.g. when the
        images moved since segmentation).
    title : str
        What the case is, shown under the picker.
    threshold : float | None
        The NEH threshold the probability layer opens with (default: the
        record's, else 0.5).
    strict : bool
        Raise when no segmentation output can be read (``nehmap view``);
        otherwise return a case with whatever could be read.
    modalities : Sequence[str] | None
        The input images to show (keys of :data:`VIEWER_IMAGES`; default all).

    Raises
    ------
    NehmapInputError
        With ``strict``, the folder holds no readable map; the message
        lists the files looked for.
    """
    folder = Path(folder)
    case_id, record = read_segment_record(folder)
    schemes = _schemes(record)
    params = record.get("parameters", {}) if isinstance(record.get("parameters"), dict) else {}
    threshold = float(threshold if threshold is not None else params.get("threshold", 0.5))
    names = sorted(
        p.name.removeprefix(f"{case_id}_seg-").removesuffix(".nii.gz")
        for p in folder.glob(f"{case_id}_seg-*.nii.gz")
    )
    ordered = [m for m in models if m in names] + [n for n in names if n not in models]
    maps: list[tuple[Layer, str]] = []
    for name in ordered:
        path = folder / f"{case_id}_seg-{name}.nii.gz"
        read = _read(path, None)
        if read is None:
            continue
        consensus = (
            schemes.get(name) or ("" if "consensus" not in name else CONSENSUS_SCHEME)
        ) == CONSENSUS_SCHEME
        kind = "levels" if consensus else "labels"
        label = f"{name} two-level map" if consensus else f"{name} labels"
        maps.append((Layer(label, kind, read[0], visible=not maps, opacity=0.6), str(path)))
    fused = (
        ("neh-levels", "fused two-level map", "levels", dict(visible=False, opacity=0.6)),
        (
            "neh-prob",
            "fused NEH probability",
            "probability",
            dict(opacity=0.7, threshold=threshold),
        ),
        ("neh-uncertainty", "uncertainty", "uncertainty", dict(visible=False, opacity=0.7)),
    )
    for key, label, kind, options in fused:
        path = folder / f"{case_id}_{key}.nii.gz"
        read = _read(path, None if kind == "levels" else np.float32)
        if read is not None:
            maps.append((Layer(label, kind, read[0], **options), str(path)))
    if not maps:
        expected = [f"{case_id}_seg-<model>.nii.gz", f"{case_id}_neh-prob.nii.gz"]
        error = NehmapInputError(
            folder,
            f"no readable segmentation output ({' or '.join(expected)}) beside "
            f"{case_id}_nehmap.json.",
            "Run nehmap segment again for this case with --overwrite.",
        )
        if strict:
            raise error
        return ViewerCase(case_id, title, (1.0, 1.0, 1.0), [], [str(error)])
    shape = maps[0][0].array.shape
    spacing = (1.0, 1.0, 1.0)
    inputs = record.get("inputs", {}) if isinstance(record.get("inputs"), dict) else {}
    paths = {str(k).lower(): Path(str(v)) for k, v in inputs.items()}
    paths.update({k.lower(): Path(v) for k, v in (images or {}).items()})
    layers: list[Layer] = []
    notes: list[str] = []
    for key, label in VIEWER_IMAGES:
        if key not in paths or (modalities is not None and key not in modalities):
            continue
        read = _read(paths[key])
        if read is None:
            notes.append(f"{label} not shown: {paths[key]} cannot be read.")
        elif read[0].shape != shape:
            notes.append(f"{label} not shown: {paths[key]} is on another grid {read[0].shape}.")
        else:
            layers.append(Layer(label, "image", read[0], visible=not layers))
            spacing = read[1] if len(layers) == 1 else spacing
    if not layers:
        notes.append("No input image could be read: the maps are shown on black.")
        seg_read = _read(Path(maps[0][1]), None)
        spacing = seg_read[1] if seg_read else spacing
    for layer, path in maps:
        if layer.array.shape == shape:
            layers.append(layer)
        else:
            notes.append(f"{layer.name} not shown: {path} is on another grid {layer.array.shape}.")
    return ViewerCase(case_id, title, spacing, layers, notes)  # type: ignore[arg-type]


def recurrence_case(
    subject: str, pneh_path: Path, seg_path: Path, image_path: Path | None, title: str
) -> ViewerCase | None:
    """The H3 patient on the recurrence scan: T1c, recurrence labels and the warped pNEH.

    Returns None when the pNEH or the recurrence segmentation cannot be read or their
    grids differ.
    """
    pneh = _read(Path(pneh_path))
    seg = _read(Path(seg_path), None)
    if pneh is None or seg is None or pneh[0].shape != seg[0].shape:
        return None
    layers: list[Layer] = []
    notes: list[str] = []
    image = _read(Path(image_path)) if image_path is not None else None
    if image is not None and image[0].shape == pneh[0].shape:
        layers.append(Layer("recurrence T1c", "image", image[0]))
    else:
        notes.append("No readable recurrence T1c on the pNEH's grid: shown on black.")
    layers.append(Layer("recurrence labels", "labels", seg[0], opacity=0.5))
    if np.all(np.isin(pneh[0], (0, 1))):  # a mask: magenta, apart from the labels' colours
        palette = {1: (PNEH_COLOUR, "warped pNEH")}
        layers.append(Layer("warped pNEH", "levels", pneh[0], opacity=0.7, palette=palette))
    else:
        layers.append(Layer("warped pNEH", "probability", pneh[0], opacity=0.7, threshold=0.5))
    return ViewerCase(subject, title, pneh[1], layers, notes)  # type: ignore[arg-type]
