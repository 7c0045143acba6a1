"""Writing nnU-Net v2 raw datasets: folder and file names, channel order, :class:`NnunetWriter`.

A dataset is one folder ``DatasetXXX_Name`` (:func:`dataset_folder_name`) holding
``imagesTr/<ID>_0000.nii.gz`` ... (one file per channel, in the order of
:func:`parse_channels`), ``labelsTr/<ID>.nii.gz`` and ``imagesTs`` for cases without
labels (:func:`nnunet_case_paths`), and ``dataset.json`` (:mod:`nehmap.io.nnunet_json`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nehmap.io.modalities import LABEL, MODALITIES, normalise_modality
from nehmap.io.nnunet_json import CHANNEL_NAMES, DEFAULT_CHANNELS, FILE_ENDING, write_dataset_json
from nehmap.io.output_dataset import DatasetWriter
from nehmap.io.writers import check_case_id

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def dataset_folder_name(dataset_id: int, name: str) -> str:
    """nnU-Net's folder name of a dataset: ``Dataset501_NEH`` for ``(501, "NEH")``.

    Raises
    ------
    ValueError
        When the id is not in 1-999 or the name is empty or holds characters other than
        letters, digits, ``_``, ``-`` and ``.``.
    """
    if not 1 <= int(dataset_id) <= 999:
        raise ValueError(f"nnU-Net dataset ids are 1-999, got {dataset_id}.")
    if not _NAME_RE.match(name or ""):
        raise ValueError(
            f"Dataset name {name!r}: use letters, digits, '_', '-' or '.', e.g. 'NEH'."
        )
    return f"Dataset{int(dataset_id):03d}_{name}"


def dataset_root(out: str | Path, dataset_id: int | None = None, name: str | None = None) -> Path:
    """The dataset folder: ``out/DatasetXXX_Name`` when id and name are given, else ``out``.

    Raises
    ------
    ValueError
        When only one of ``dataset_id`` and ``name`` is given.
    """
    if (dataset_id is None) != (name is None):
        raise ValueError(
            "Give both --dataset-id and --name (the dataset goes to OUT/DatasetXXX_Name), "
            "or neither (OUT is the dataset folder itself)."
        )
    root = Path(out)
    return root if dataset_id is None else root / dataset_folder_name(dataset_id, str(name))


def parse_channels(spec: str | Sequence[str] | None) -> tuple[str, ...]:
    """Channel order from ``"t1,t1c,t2,flair"`` (aliases such as ``T1Gd`` accepted).

    Returns
    -------
    tuple of str
        The four modality keys, in channel order (channel 0 first).

    Raises
    ------
    ValueError
        Unless each of t1, t1c, t2 and flair appears exactly once.
    """
    if spec is None:
        return DEFAULT_CHANNELS
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    keys = []
    for item in items:
        key = normalise_modality(str(item).strip())
        if key not in MODALITIES:
            raise ValueError(
                f"Channel {item!r} is not one of the MRI sequences t1, t1c, t2, flair."
            )
        keys.append(key)
    if sorted(keys) != sorted(MODALITIES):
        raise ValueError(
            f"Channels {', '.join(keys)}: give each of t1, t1c, t2, flair exactly once "
            "(nehmap's readers and models need all four), e.g. --channels t1,t1c,t2,flair."
        )
    return tuple(keys)


def nnunet_case_paths(
    root: str | Path,
    case_id: str,
    channels: Sequence[str] = DEFAULT_CHANNELS,
    *,
    split: str = "Tr",
    file_ending: str = FILE_ENDING,
) -> dict[str, Path]:
    """Where a case's files go in an nnU-Net dataset.

    Parameters
    ----------
    root : path
        The dataset folder (``DatasetXXX_Name``).
    case_id : str
        The case identifier.
    channels : sequence of str
        Modality keys in channel order.
    split : {"Tr", "Ts"}
        Training (``imagesTr``/``labelsTr``) or test (``imagesTs``/``labelsTs``).
    file_ending : str
        The dataset's file ending.

    Returns
    -------
    dict
        Modality key -> image path, and ``"seg"`` -> label path.
    """
    if split not in ("Tr", "Ts"):
        raise ValueError(f"split must be 'Tr' or 'Ts', got {split!r}.")
    check_case_id(case_id)
    root = Path(root)
    paths = {
        key: root / f"images{split}" / f"{case_id}_{index:04d}{file_ending}"
        for index, key in enumerate(channels)
    }
    paths[LABEL] = root / f"labels{split}" / f"{case_id}{file_ending}"
    return paths


@dataclass
class NnunetWriter(DatasetWriter):
    """Writes cases into an nnU-Net v2 raw dataset folder (``root``).

    A case with labels goes to ``imagesTr``/``labelsTr``, one without to ``imagesTs``.
    The label array is written as given (uint8): nehmap labels for a tissue dataset,
    levels 0/1/2 for a consensus dataset.
    """

    channels: tuple[str, ...] = DEFAULT_CHANNELS

    def paths(self, case_id: str, *, labelled: bool = True) -> dict[str, Path]:
        """Paths of one case's channel images and label file.

        In ``imagesTr``/``labelsTr``, or ``imagesTs``/``labelsTs`` when not ``labelled``.
        """
        return nnunet_case_paths(
            self.root, case_id, self.channels, split="Tr" if labelled else "Ts"
        )

    def _plan(
        self, case_id: str, images: Mapping[str, Path], labels: np.ndarray | None
    ) -> tuple[dict[str, Path], Path, np.ndarray | None]:
        paths = self.paths(case_id, labelled=labels is not None)
        return paths, paths[LABEL], labels

    def stale_cases(self) -> list[str]:
        """Case ids found in ``imagesTr``/``labelsTr`` that this writer did not write.

        They are left over from an earlier run (``--overwrite``); nnU-Net would count
        them, so they are reported.
        """
        found: set[str] = set()
        for split, pattern in (("imagesTr", r"^(.+)_\d{4}"), ("labelsTr", r"^(.+)")):
            folder = self.root / split
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                if path.name.startswith(".") or not path.name.endswith(FILE_ENDING):
                    continue
                m = re.match(pattern + re.escape(FILE_ENDING) + "$", path.name)
                if m:
                    found.add(m.group(1))
        return sorted(found - set(self.labelled))

    def stale_notes(self) -> list[str]:
        """A remark about :meth:`stale_cases`, if there are any."""
        stale = self.stale_cases()
        if not stale:
            return []
        shown = ", ".join(stale[:5]) + (", ..." if len(stale) > 5 else "")
        return [
            f"{len(stale)} case(s) in imagesTr/labelsTr were not written by this run ({shown}): "
            "remove them, or nnU-Net will train on them and numTraining will not match."
        ]

    def finish(self, meta: Mapping[str, Any]) -> Path:
        """Write ``dataset.json``: ``meta`` with ``channel_names``, ``numTraining`` and
        ``file_ending`` filled in from what was written."""
        content = dict(meta)
        content["channel_names"] = {str(i): CHANNEL_NAMES[k] for i, k in enumerate(self.channels)}
        content["numTraining"] = len(self.labelled)
        content["file_ending"] = FILE_ENDING
        ordered = {k: content[k] for k in ("name", "description") if k in content}
        ordered.update(content)
        return write_dataset_json(self.root, ordered)
