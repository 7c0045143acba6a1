"""The H3 cohort: pairing each patient's two scans, and finding their segmentation maps.

**Pairing.** :func:`select_subjects` groups a longitudinal collection by patient (after
the optional selection by ID or clinical table, :func:`nehmap.validate.cohort.select_cases`)
and :func:`pair_exclusion` says why a patient has no usable pair: left out by the user,
or no pre-operative or no recurrence scan.

**Maps used.** On ``nehmap segment`` output with no model named, the pNEH is the fused
consensus NEH mask (``<case>_neh-mask``, model name ``fused``; the paper's pNEH is the
consensus) and the pre-operative tumour core and the recurrence ET come from
:data:`DEFAULT_ET_MODEL` when that model is present (else the only, or first, network
by name); see :func:`resolve_maps`. Elsewhere :func:`find_segmentation` finds a plain
label map. :func:`load_scan` reads one time point with its maps as a
:class:`~nehmap.validate.recurrence_masks.Scan`, and :func:`describe_maps` records
which kinds of map were used.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nehmap.validate.recurrence_masks import Scan

__all__ = [
    "DEFAULT_ET_MODEL",
    "describe_maps",
    "find_segmentation",
    "load_scan",
    "pair_exclusion",
    "resolve_maps",
    "select_subjects",
]

DEFAULT_ET_MODEL = "unetrpp"
"""Network whose map gives the tumour core and the recurrence ET on segment output."""


# ---------------------------------------------------------------------- pairing


def select_subjects(
    collection: Any,
    *,
    include: Sequence[str] = (),
    clinical: str | Path | None = None,
    clinical_id: str = "ID",
    exclude_where: Sequence[str] = (),
) -> tuple[dict[str, dict[str | None, Any]], list[dict[str, str]]]:
    """The collection's scans by patient, then time point, after the optional selection.

    Parameters
    ----------
    collection : nehmap.io.Collection
        A discovered longitudinal collection.
    include : iterable of str
        Patient or scan IDs to keep (empty: all).
    clinical : path, optional
        Clinical table (CSV) for ``exclude_where``.
    clinical_id : str
        Its ID column.
    exclude_where : sequence of str
        Conditions on the clinical table that exclude a case.

    Returns
    -------
    (subjects, excluded)
        Patient -> time point -> case files; and one ``{"case", "reason"}`` row per
        case the selection left out.
    """
    subjects = collection.by_subject()
    excluded: list[dict[str, str]] = []
    if include or exclude_where:
        from nehmap.validate.cohort import select_cases

        table = pd.read_csv(clinical) if clinical else None
        selection = select_cases(
            collection.cases,
            include=set(include) or None,
            clinical=table,
            clinical_id=clinical_id,
            exclude_where=exclude_where,
        )
        excluded.extend(selection.excluded)
        subjects = {}
        for case in selection.cases:
            subjects.setdefault(case.subject, {})[case.timepoint] = case
    return subjects, excluded


def _match_excluded(subject: str, scans: Iterable[str], exclude: Iterable[str]) -> bool:
    wanted = set(exclude)
    return subject in wanted or any(s in wanted for s in scans)


def pair_exclusion(
    subject: str, scans: Mapping[str | None, Any], exclude: Iterable[str] = ()
) -> str | None:
    """Why a patient has no (pre-operative, recurrence) pair to analyse; None when it has.

    Parameters
    ----------
    subject : str
        Patient ID.
    scans : mapping
        Time point -> case files of the patient (``"preop"``, ``"recurrence"``...).
    exclude : iterable of str
        Patient or scan IDs left out by the user.
    """
    if _match_excluded(subject, [f.case_id for f in scans.values()], exclude):
        return "excluded by the user (--exclude)"
    if scans.get("preop") is None or scans.get("recurrence") is None:
        which = "pre-operative" if scans.get("preop") is None else "recurrence"
        return f"no {which} scan"
    return None


# ---------------------------------------------------------------------- maps


def find_segmentation(seg_dir: str | Path, case_id: str, model: str | None = None) -> Path:
    """The label map of ``case_id`` in a segmentation folder.

    Looked for, in order: ``<dir>/<case>/<case>_seg-<model>.nii.gz`` (``nehmap segment``
    output; with ``model`` None the only ``_seg-*`` file of the case), then
    ``<dir>/<case>_seg-<model>.nii.gz``, then a plain label map ``<dir>/<case>.nii.gz``
    (or ``.nii``).

    Raises
    ------
    nehmap.errors.NehmapInputError
        When nothing is found, or several models are and none was named.
    """
    from nehmap.errors import NehmapInputError

    root = Path(seg_dir)
    folder = root / case_id
    candidates: list[Path] = []
    if model:
        candidates += [
            folder / f"{case_id}_seg-{model}.nii.gz",
            root / f"{case_id}_seg-{model}.nii.gz",
        ]
    elif folder.is_dir():
        found = sorted(folder.glob(f"{case_id}_seg-*.nii.gz"))
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            raise NehmapInputError(
                folder,
                f"holds segmentations of several models ({names}).",
                "Name the model with --preop-model / --recurrence-model.",
            )
        candidates += found
    candidates += [root / f"{case_id}.nii.gz", root / f"{case_id}.nii"]
    for path in candidates:
        if path.is_file():
            return path
    wanted = f"{case_id}/{case_id}_seg-{model or '<model>'}.nii.gz or {case_id}.nii.gz"
    raise NehmapInputError(
        root,
        f"has no segmentation of {case_id} ({wanted}).",
        "Run 'nehmap segment' on the scan, or check the folder and --*-model options.",
    )


def resolve_maps(
    seg_dir: str | Path,
    case_id: str,
    model: str | None,
    role: str,
    core_model: str | None = None,
) -> dict[str, Path]:
    """The maps of one scan: ``labels`` (a nehmap label map) and, pre-operatively, ``neh``.

    On ``nehmap segment`` output (``<dir>/<case>/<case>_seg-*.nii.gz``):

    * the label map is ``model``'s when a network is named, else ``core_model``'s when
      given and present, else :data:`DEFAULT_ET_MODEL`'s (``unetrpp``), else the one
      network of the UNETR++ family (a name containing ``unetrpp``, not the consensus
      network), else the only network with nehmap labels;
    * pre-operatively (``role="preop"``), with ``model`` None or ``"fused"``, the pNEH is
      the fused consensus mask ``<case>_neh-mask.nii.gz`` (the paper's pNEH is the
      consensus) when present; a named network gives its own NEH (label 3).

    Elsewhere :func:`find_segmentation` finds the label map (and NEH is its label 3).

    Parameters
    ----------
    seg_dir : path
        Segmentation folder of the time point (``nehmap segment`` output or label maps).
    case_id : str
        The scan's case id in that folder.
    model : str or None
        Network name, ``"fused"`` (pre-operative only) or None.
    role : {"preop", "recurrence"}
        The time point: pre-operative scans also give the pNEH.
    core_model : str, optional
        Network for the label map when ``model`` is None or ``"fused"``.

    Returns
    -------
    dict of str to pathlib.Path
        ``{"labels": ...}`` plus ``"neh"`` when the fused mask is used.

    Raises
    ------
    nehmap.errors.NehmapInputError
        Nothing found, ``fused`` asked for a recurrence ET, or several networks and no
        default among them.
    """
    from nehmap.errors import NehmapInputError
    from nehmap.io.segmentations import _model_scheme

    folder = Path(seg_dir) / case_id
    fused = folder / f"{case_id}_neh-mask.nii.gz"
    if model == "fused" and role != "preop":
        raise NehmapInputError(
            seg_dir,
            "'fused' is the fused NEH mask: it holds no enhancing tumour for the recurrence.",
            "Name a network with --recurrence-model (or leave it out for the default "
            f"{DEFAULT_ET_MODEL}).",
        )
    networks = (
        sorted(
            p.name[len(case_id) + 5 : -len(".nii.gz")]
            for p in folder.glob(f"{case_id}_seg-*.nii.gz")
        )
        if folder.is_dir()
        else []
    )
    if not networks:
        if model == "fused":
            raise NehmapInputError(
                seg_dir,
                f"has no 'nehmap segment' output for {case_id} (no {case_id}/{fused.name}).",
                "Run 'nehmap segment' on the scans, or name the model of the label maps.",
            )
        return {"labels": find_segmentation(seg_dir, case_id, model)}
    out: dict[str, Path] = {}
    if model in (None, "fused") and role == "preop" and fused.is_file():
        out["neh"] = fused
    elif model == "fused":
        raise NehmapInputError(
            folder, f"has no fused NEH mask ({fused.name}).", "Run 'nehmap segment' again."
        )
    if model and model != "fused":
        out["labels"] = find_segmentation(seg_dir, case_id, model)
        return out
    usable = [m for m in networks if _model_scheme(folder, case_id, m) == "nehmap"]
    family = [m for m in usable if DEFAULT_ET_MODEL in m and "consensus" not in m]
    if core_model and core_model in usable:
        chosen = core_model
    elif DEFAULT_ET_MODEL in usable:
        chosen = DEFAULT_ET_MODEL
    elif len(family) == 1:
        chosen = family[0]
    elif len(usable) == 1:
        chosen = usable[0]
    else:
        option = "--preop-model" if role == "preop" else "--recurrence-model"
        raise NehmapInputError(
            folder,
            f"holds segmentations of several models ({', '.join(networks)}) and not the "
            f"default {DEFAULT_ET_MODEL}.",
            f"Name the model with {option}.",
        )
    out["labels"] = folder / f"{case_id}_seg-{chosen}.nii.gz"
    return out


def load_scan(
    files: Any,
    seg_dir: Path,
    model: str | None,
    modalities: Sequence[str],
    role: str = "preop",
    core_model: str | None = None,
) -> tuple:
    """(Scan, Case, maps used) of one time point (see :func:`resolve_maps`)."""
    from nehmap.errors import CaseError
    from nehmap.io import load_case, read_image
    from nehmap.labels import unexpected_values

    case = load_case(files, load_labels=False, load_rcbv=False)
    maps = resolve_maps(seg_dir, case.case_id, model, role, core_model)
    arrays = {}
    for key, seg_path in maps.items():
        seg = read_image(seg_path, dtype=None, kind="label map")
        if seg.array.shape != case.shape or seg.grid.canonical_distance_mm(case.grid) > 1e-3:
            raise CaseError(
                case.case_id,
                seg_path,
                f"the segmentation (shape {seg.array.shape}) is not on the scan's grid "
                f"(shape {case.shape}).",
                "Segment the scan itself (nehmap segment writes on the input grid).",
            )
        labels = np.asarray(seg.array)
        if labels.dtype.kind == "f":
            if not np.all(labels == np.round(labels)):
                raise CaseError(case.case_id, seg_path, "holds non-integer labels.", "")
        arrays[key] = labels.astype(np.int64)
    labels = arrays["labels"]
    bad = unexpected_values(labels, "nehmap")
    if bad:
        raise CaseError(
            case.case_id,
            maps["labels"],
            f"holds labels {list(bad)} outside nehmap's 0-4.",
            "Give nehmap label maps (0 background, 1 NC, 2 ED, 3 NEH, 4 ET).",
        )
    neh = arrays["neh"] > 0 if "neh" in arrays else None
    images = {m: case.images[m] for m in modalities}
    scan = Scan(images, labels.astype(np.uint8), case.affine, case.brain_mask(), case.case_id, neh)
    return scan, case, maps


def _map_kind(path: str) -> str:
    name = Path(path).name
    if name.endswith("_neh-mask.nii.gz"):
        return "fused consensus NEH mask (<case>_neh-mask)"
    if "_seg-" in name:
        model = name.split("_seg-")[-1].removesuffix(".nii.gz")
        return f"{model} label map (<case>_seg-{model})"
    return "label map (<case>.nii.gz)"


def describe_maps(segmentations: Mapping[str, Mapping[str, str]]) -> dict[str, list[str]]:
    """Which maps gave pNEH, the pre-operative core and the recurrence ET (for the record).

    Parameters
    ----------
    segmentations : mapping
        Patient -> ``{"preop", "preop_neh", "recurrence"}`` file paths.

    Returns
    -------
    dict
        ``pneh``, ``preop_core`` and ``recurrence_et`` -> the kinds of map used (sorted).
    """
    kinds: dict[str, set[str]] = {"pneh": set(), "preop_core": set(), "recurrence_et": set()}
    for files in segmentations.values():
        kinds["pneh"].add(_map_kind(files.get("preop_neh", files["preop"])))
        kinds["preop_core"].add(_map_kind(files["preop"]))
        kinds["recurrence_et"].add(_map_kind(files["recurrence"]))
    return {key: sorted(value) for key, value in kinds.items()}
