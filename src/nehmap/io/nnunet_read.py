"""Reading nnU-Net v2 raw datasets: their cases, and label maps in a dataset's scheme.

:func:`parse_nnunet` finds the cases of a dataset folder (the ``nnunet`` layout of
:func:`nehmap.io.discover`): channels named by ``dataset.json``, label files from
``labelsTr``/``labelsTs``, their meaning from
:func:`nehmap.io.nnunet_json.dataset_label_scheme`. Label files are read by
:func:`nehmap.io.label_file.read_label_map` (:mod:`nehmap.io.grid_check` checks that
each lies on its case's grid).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from nehmap.errors import NehmapInputError
from nehmap.io.collection import CaseFiles
from nehmap.io.modalities import LABEL, MODALITIES, normalise_modality
from nehmap.io.nnunet_json import dataset_label_scheme


def nnunet_root(root: Path) -> Path | None:
    """``root`` when it looks like an nnU-Net raw dataset (``dataset.json`` or ``imagesTr``)."""
    if (root / "dataset.json").is_file() or (root / "imagesTr").is_dir():
        return root
    return None


def parse_nnunet(root: Path) -> tuple[list[CaseFiles], list[Path]]:
    """The cases of the nnU-Net raw dataset ``root`` and the files no case claims.

    Channels are named by ``dataset.json``; a case's label file (``labelsTr``/``labelsTs``)
    fills its ``seg`` slot, or its ``neh_levels`` extra for a consensus training set.
    """
    meta_path = root / "dataset.json"
    if not meta_path.is_file():
        raise NehmapInputError(
            root,
            "looks like an nnU-Net dataset but has no dataset.json.",
            "Add dataset.json with channel_names and labels.",
        )
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise NehmapInputError(meta_path, f"is not valid JSON ({exc}).", "Fix the file.") from exc
    channels = meta.get("channel_names") or meta.get("modality")
    if not isinstance(channels, dict):
        raise NehmapInputError(
            meta_path,
            "has no channel_names entry.",
            'Add e.g. "channel_names": {"0": "T1", "1": "T1ce", ...}.',
        )
    channel_keys: dict[int, str] = {}
    for index, name in channels.items():
        key = normalise_modality(str(name))
        if key not in MODALITIES:
            raise NehmapInputError(
                meta_path,
                f"channel {index} is named {name!r}, which is not one of T1, T1ce, T2, FLAIR.",
                "Rename the channel in dataset.json to its MRI sequence.",
            )
        channel_keys[int(index)] = key
    scheme = dataset_label_scheme(meta, meta_path)
    # None: a two-level NEH consensus set; its label files hold levels 0/1/2, not tissue
    # labels, so they never fill the "seg" slot
    levels_only = scheme is None
    ending = meta.get("file_ending", ".nii.gz")
    cases: dict[str, CaseFiles] = {}
    unmatched: list[Path] = []
    channel_re = re.compile(rf"^(?P<id>.+)_(?P<ch>\d{{4}}){re.escape(ending)}$")
    for split in ("imagesTr", "imagesTs"):
        folder = root / split
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            m = channel_re.match(path.name)
            if m is None or int(m.group("ch")) not in channel_keys:
                if not path.name.startswith("."):
                    unmatched.append(path)
                continue
            case_id = m.group("id")
            case = cases.setdefault(
                case_id, CaseFiles(case_id, case_id, None, "nnunet", label_scheme=scheme)
            )
            case.files[channel_keys[int(m.group("ch"))]] = path
            label = root / split.replace("images", "labels") / f"{case_id}{ending}"
            if label.is_file():
                if levels_only:
                    case.extras["neh_levels"] = label
                else:
                    case.files[LABEL] = label
    return [cases[k] for k in sorted(cases)], unmatched
