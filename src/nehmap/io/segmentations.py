"""Finding label maps (segmentations) per case, wherever they come from.

Three kinds of folder are recognised, in this order:

1. the output of ``nehmap segment``: ``<root>/<case>/<case>_seg-<model>.nii.gz``
   (nehmap labels; the model is chosen with ``model=``, required when several are
   present). The consensus-family models' maps hold levels 0/1/2 (scheme
   ``neh-consensus``), as recorded in the case's ``<case>_nehmap.json``;
2. a collection in any layout :func:`nehmap.io.discover` reads (its label files, in the
   collection's scheme);
3. a plain folder of label maps named ``<case>.nii.gz`` (or ``<case>_seg.nii.gz``,
   ``<case>-seg.nii.gz``, ``<case>_segm.nii.gz``), in a declared scheme (default
   ``nehmap``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nehmap.errors import NehmapInputError
from nehmap.io.image import Image, image_suffix, strip_image_suffix
from nehmap.io.label_file import read_label_map
from nehmap.io.layouts import discover
from nehmap.io.nnunet_json import CONSENSUS_SCHEME
from nehmap.io.writers import TRUTH_LABELS_TAG
from nehmap.labels import LabelScheme

_SEGMENT_OUTPUT = re.compile(r"^(?P<case>.+)_seg-(?P<model>.+)$")
_PLAIN_SUFFIX = re.compile(r"[_-](seg|segm|segmentation|segmentations|labels?)$", re.IGNORECASE)


@dataclass(frozen=True)
class LabelMapRef:
    """Where a case's label map is and how to read it."""

    case_id: str
    path: Path
    scheme: str | LabelScheme
    model: str | None = None

    def read(self) -> tuple[np.ndarray, Image]:
        """The map in nehmap labels (or levels) and the file as read: see
        :func:`nehmap.io.label_file.read_label_map`."""
        return read_label_map(self.path, self.scheme)


def segment_output_models(root: str | Path) -> list[str]:
    """Model names present in a ``nehmap segment`` output folder (sorted)."""
    models = set()
    for path in Path(root).glob("*/*_seg-*"):
        m = _SEGMENT_OUTPUT.match(strip_image_suffix(path.name))
        if m and image_suffix(path.name) and m.group("case") == path.parent.name:
            models.add(m.group("model"))
    return sorted(models)


def _model_scheme(folder: Path, case_id: str, model: str) -> str:
    record = folder / f"{case_id}_nehmap.json"
    if record.is_file():
        try:
            schemes = json.loads(record.read_text()).get("label_schemes", {})
        except json.JSONDecodeError:
            schemes = {}
        if model in schemes:
            return schemes[model]
    return CONSENSUS_SCHEME if "consensus" in model else "nehmap"


def find_label_maps(
    root: str | Path, *, model: str | None = None, scheme: str | None = None
) -> dict[str, LabelMapRef]:
    """Label maps under ``root`` by case id.

    Parameters
    ----------
    root : str | Path
        A ``nehmap segment`` output folder, a collection, the truth folder of a
        synthetic cohort (``nehmap synth``), or a folder of label maps.
    model : str | None
        Which model's maps to take from a segment output folder. Besides the
        networks' names, ``fused`` selects the fused NEH mask and ``levels`` the
        fused two-level map.
    scheme : str | None
        Label scheme of plain label maps (or to override a collection's).

    Raises
    ------
    NehmapInputError
        Nothing usable under ``root``, or ``model`` missing/ambiguous.
    """
    base = Path(root)
    if not base.exists():
        raise NehmapInputError(base, "does not exist.", "Check the path.")
    models = segment_output_models(base) if base.is_dir() else []
    if models:
        return _from_segment_output(base, models, model)
    if model is not None:
        raise NehmapInputError(
            base,
            f"is not a nehmap segment output folder, so --model {model} cannot apply.",
            "Drop the model option, or give the folder written by nehmap segment.",
        )
    truth = _from_truth_folder(base) if base.is_dir() else {}
    if truth:
        return truth
    try:
        collection = discover(base, label_scheme=scheme)
        refs = {
            c.case_id: LabelMapRef(c.case_id, c.files["seg"], c.label_scheme or "nehmap")
            for c in collection
            if "seg" in c.files
        }
        if refs:
            return refs
    except NehmapInputError:
        pass
    return _from_plain_folder(base, scheme or "nehmap")


SPECIAL_MAPS: dict[str, tuple[str, str]] = {
    "fused": ("neh-mask", "binary-neh"),
    "levels": ("neh-levels", CONSENSUS_SCHEME),
}
"""Pseudo-models of a segment output folder: the fused NEH mask and two-level map."""


def segment_output_ref(root: Path, case_id: str, model: str) -> LabelMapRef | None:
    """The label map of ``model`` (or ``fused`` / ``levels``) for one case, if present."""
    folder = Path(root) / case_id
    if model in SPECIAL_MAPS:
        suffix, scheme = SPECIAL_MAPS[model]
        path = folder / f"{case_id}_{suffix}.nii.gz"
    else:
        path = folder / f"{case_id}_seg-{model}.nii.gz"
        scheme = _model_scheme(folder, case_id, model)
    return LabelMapRef(case_id, path, scheme, model) if path.is_file() else None


def _from_segment_output(base: Path, models: list[str], model: str | None) -> dict:
    if model is None:
        if len(models) != 1:
            raise NehmapInputError(
                base,
                f"holds the maps of several models ({', '.join(models)}).",
                "Choose one with --model (or 'fused' for the fused NEH mask).",
            )
        model = models[0]
    if model not in models and model not in SPECIAL_MAPS:
        raise NehmapInputError(
            base,
            f"holds no maps of model {model!r}.",
            f"Models present: {', '.join(models)}, fused, levels.",
        )
    refs = {}
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        ref = segment_output_ref(base, folder.name, model)
        if ref is not None:
            refs[folder.name] = ref
    return refs


def _from_truth_folder(base: Path) -> dict[str, LabelMapRef]:
    """The truth labels of a synthetic cohort (``<ID>_truth-labels.nii.gz``, nehmap labels,
    beside brain masks and recurrence files), by case id; empty for any other folder."""
    suffix = f"_{TRUTH_LABELS_TAG}"
    refs = {}
    for path in sorted(base.glob(f"*{suffix}.nii.gz")):
        case_id = strip_image_suffix(path.name).removesuffix(suffix)
        refs[case_id] = LabelMapRef(case_id, path, "nehmap")
    return refs


def _from_plain_folder(base: Path, scheme: str) -> dict[str, LabelMapRef]:
    files = [base] if base.is_file() else sorted(p for p in base.iterdir() if p.is_file())
    refs: dict[str, LabelMapRef] = {}
    for path in files:
        if path.name.startswith(".") or image_suffix(path.name) is None:
            continue
        case_id = _PLAIN_SUFFIX.sub("", strip_image_suffix(path.name))
        if case_id in refs:
            raise NehmapInputError(
                path,
                f"is a second label map for case {case_id} (first: {refs[case_id].path}).",
                "Keep one label map per case in the folder.",
            )
        refs[case_id] = LabelMapRef(case_id, path, scheme)
    if not refs:
        raise NehmapInputError(
            base,
            "holds no label maps (no nehmap segment output, collection or .nii.gz files).",
            "Give a folder of label maps named <case>.nii.gz, a collection, or nehmap segment "
            "output.",
        )
    return refs
