"""nnU-Net v2 raw datasets: exporting a collection as one, and importing one back.

:func:`export_nnunet` writes a collection as a dataset; :func:`import_nnunet` writes a
dataset in a nehmap layout or as a manifest.

A dataset in nnU-Net v2's raw format is one folder (``DatasetXXX_Name``, ``XXX`` a
three-digit id, inside ``$nnUNet_raw``)::

    DatasetXXX_Name/
        dataset.json
        imagesTr/<ID>_0000.nii.gz ... <ID>_0003.nii.gz   one file per channel
        labelsTr/<ID>.nii.gz                              the label map of a training case
        imagesTs/<ID>_0000.nii.gz ...                     cases without labels (optional)

nehmap writes the channels in a declared order (default T1, T1ce, T2, FLAIR) and the
labels in nehmap's own convention (0 background, 1 necrosis, 2 edema, 3 NEH,
4 enhancing tumour). The work is shared by concept; this module re-exports the public
names of each, so ``from nehmap.io.nnunet import ...`` reaches them all:

- :mod:`nehmap.io.nnunet_json`: ``dataset.json`` (its plain and region-based
  ``labels``) and the meaning of a dataset's label values;
- :mod:`nehmap.io.nnunet_read`: the cases of a dataset folder, and label maps read in
  a dataset's scheme;
- :mod:`nehmap.io.nnunet_write`: folder and file names, and :class:`NnunetWriter`;
- :mod:`nehmap.io.layout_writers`: the manifest and public-layout writers;
- :mod:`nehmap.io.output_dataset`: the output folder check and how images are placed
  (hard link, symbolic link or copy; atomically, never over an input file).

nnU-Net's probability exports (``--save_probabilities``, ``<case>.npz``) are read by
:mod:`nehmap.io.external`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nehmap.bars import case_bar
from nehmap.errors import NehmapInputError, OutputError
from nehmap.io.case import check_case_headers
from nehmap.io.collection import CaseFiles, Collection
from nehmap.io.grid_check import check_same_grid
from nehmap.io.image import DEFAULT_GRID_TOLERANCE_MM, Grid
from nehmap.io.label_file import read_label_map
from nehmap.io.layout_writers import (
    MANIFEST_LABEL_TAG,
    MANIFEST_NAME,
    LayoutWriter,
    ManifestWriter,
)
from nehmap.io.layouts import discover
from nehmap.io.modalities import LABEL, MODALITIES
from nehmap.io.nnunet_json import (
    CHANNEL_NAMES,
    CONSENSUS_LABELS,
    CONSENSUS_SCHEME,
    DEFAULT_CHANNELS,
    FILE_ENDING,
    TISSUE_LABELS,
    TISSUE_REGIONS,
    TISSUE_REGIONS_CLASS_ORDER,
    NnunetDataset,
    dataset_label_scheme,
    has_regions,
    is_consensus_dataset,
    is_consensus_labels,
    read_dataset_json,
    region_label_scheme,
    tissue_dataset_json,
    write_dataset_json,
)
from nehmap.io.nnunet_write import (
    NnunetWriter,
    dataset_folder_name,
    dataset_root,
    nnunet_case_paths,
    parse_channels,
)
from nehmap.io.output_dataset import LINK_MODES, DatasetWriter, place_file, prepare_output
from nehmap.io.writers import LAYOUTS as WRITER_LAYOUTS

__all__ = [
    "FILE_ENDING",
    "DEFAULT_CHANNELS",
    "CHANNEL_NAMES",
    "TISSUE_LABELS",
    "TISSUE_REGIONS",
    "TISSUE_REGIONS_CLASS_ORDER",
    "CONSENSUS_SCHEME",
    "CONSENSUS_LABELS",
    "LINK_MODES",
    "IMPORT_LAYOUTS",
    "dataset_folder_name",
    "dataset_root",
    "parse_channels",
    "nnunet_case_paths",
    "tissue_dataset_json",
    "has_regions",
    "is_consensus_labels",
    "is_consensus_dataset",
    "region_label_scheme",
    "dataset_label_scheme",
    "NnunetDataset",
    "read_dataset_json",
    "write_dataset_json",
    "check_same_grid",
    "place_file",
    "prepare_output",
    "DatasetWriter",
    "NnunetWriter",
    "MANIFEST_NAME",
    "MANIFEST_LABEL_TAG",
    "ManifestWriter",
    "LayoutWriter",
    "TransferReport",
    "export_nnunet",
    "import_nnunet",
]

IMPORT_LAYOUTS: tuple[str, ...] = (*WRITER_LAYOUTS, "manifest")
"""Layouts :func:`import_nnunet` can write."""


# --------------------------------------------------------------------------- export / import


@dataclass
class TransferReport:
    """What :func:`export_nnunet` or :func:`import_nnunet` did.

    Attributes
    ----------
    root : Path
        The written dataset folder (or layout root).
    labelled, unlabelled : list of str
        Cases written with and without labels.
    failures : list of (str, str)
        Case id and message of each case that could not be written.
    placed : Counter
        How images were placed (hard, symlink, copy, kept, converted).
    notes : list of str
        Remarks (stale files, ...).
    index : Path or None
        ``dataset.json`` or ``manifest.csv`` when one was written.
    """

    root: Path
    labelled: list[str] = field(default_factory=list)
    unlabelled: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    placed: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    index: Path | None = None


def _case_labels(files: CaseFiles, grid: Grid, tolerance_mm: float) -> np.ndarray | None:
    if LABEL not in files.files:
        return None
    labels, label_image = read_label_map(
        files.files[LABEL], files.label_scheme or "nehmap", case_id=files.case_id
    )
    check_same_grid(
        files.case_id,
        label_image.grid,
        grid,
        what="label map",
        reference_what=f"{MODALITIES[0]} image",
        tolerance_mm=tolerance_mm,
    )
    return labels


def _transfer(
    collection: Collection,
    writer: NnunetWriter | ManifestWriter | LayoutWriter,
    report: TransferReport,
    *,
    desc: str,
    progress: bool,
    tolerance_mm: float,
) -> None:
    for files in case_bar(collection.cases, desc, progress):
        try:
            grid = check_case_headers(files, tolerance_mm)
            labels = _case_labels(files, grid, tolerance_mm)
            writer.add(
                files.case_id,
                {key: files.files[key] for key in MODALITIES},
                labels,
                grid,
                inputs=files.paths,
            )
        except (NehmapInputError, OutputError, OSError, ValueError) as exc:
            report.failures.append((files.case_id, str(exc)))
    report.labelled, report.unlabelled = sorted(writer.labelled), sorted(writer.unlabelled)
    report.placed = writer.placed


def export_nnunet(
    collection: Collection | str | Path,
    out: str | Path,
    *,
    dataset_id: int | None = None,
    name: str | None = None,
    channels: Sequence[str] = DEFAULT_CHANNELS,
    regions: bool = False,
    link: str = "hard",
    overwrite: bool = False,
    progress: bool = False,
    grid_tolerance_mm: float = DEFAULT_GRID_TOLERANCE_MM,
) -> TransferReport:
    """Write a collection as an nnU-Net v2 raw dataset in nehmap's labels.

    Parameters
    ----------
    collection : Collection or path
        The cases (any layout :func:`nehmap.io.discover` reads); their label maps are
        converted from the collection's scheme to nehmap's labels.
    out : path
        ``$nnUNet_raw`` (with ``dataset_id`` and ``name``: the dataset goes to
        ``out/DatasetXXX_Name``) or the dataset folder itself (without them).
    dataset_id, name : int, str, optional
        nnU-Net dataset id (1-999) and name.
    channels : sequence of str
        Modality keys in channel order (default t1, t1c, t2, flair).
    regions : bool
        Write region-based ``labels`` (WT, TC, NEH, ET) with ``regions_class_order``.
    link : {"hard", "symlink", "copy"}
        How images are placed (:func:`place_file`).
    overwrite : bool
        Allow writing into a non-empty folder.
    progress : bool
        Show a progress bar over the cases.
    grid_tolerance_mm : float
        Largest distance (mm) between the grids of a case's files.

    Returns
    -------
    TransferReport
        Cases with labels went to ``imagesTr``/``labelsTr``, cases without to
        ``imagesTs``; failed cases are listed, not written.
    """
    col = collection if isinstance(collection, Collection) else discover(collection)
    root = dataset_root(out, dataset_id, name)
    order = parse_channels(channels)
    prepare_output(root, sources=[col.root], overwrite=overwrite)
    writer = NnunetWriter(root, link=link, channels=order)
    report = TransferReport(root)
    _transfer(col, writer, report, desc="export", progress=progress, tolerance_mm=grid_tolerance_mm)
    meta = tissue_dataset_json(order, len(writer.labelled), regions=regions, name=name or root.name)
    meta["nehmap"] = {"source": str(col.root), "source_layout": col.layout}
    report.index = writer.finish(meta)
    report.notes.extend(writer.stale_notes())
    return report


def import_nnunet(
    dataset: str | Path,
    out: str | Path,
    *,
    layout: str = "manifest",
    link: str = "hard",
    merge_neh: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    grid_tolerance_mm: float = DEFAULT_GRID_TOLERANCE_MM,
) -> TransferReport:
    """Write an nnU-Net v2 raw dataset in one of nehmap's layouts or as a manifest.

    Parameters
    ----------
    dataset : path
        The dataset folder (``DatasetXXX_Name``). The meaning of its label values comes
        from :func:`dataset_label_scheme`.
    out : path
        Output folder.
    layout : str
        ``manifest`` (default: any case IDs, nehmap labels, NEH kept), ``nnunet``,
        ``brats2021``, ``brats2020``, ``brats2018``, ``brats2023``, ``upenn`` or ``rhuh``
        (file names of :mod:`nehmap.io.writers`, labels in the layout's scheme).
    link : {"hard", "symlink", "copy"}
        How images are placed.
    merge_neh : bool
        Allow writing NEH into a layout whose scheme has no NEH label (it becomes the
        necrotic/non-enhancing core label; edema in ``brats2021``).
    overwrite : bool
        Allow writing into a non-empty folder.
    progress : bool
        Show a progress bar over the cases.
    grid_tolerance_mm : float
        Largest distance (mm) between the grids of a case's files.

    Raises
    ------
    NehmapInputError
        For a consensus training set (its labels are probability levels, not tissue
        labels), an unknown layout, or case IDs the layout cannot hold.
    """
    info = read_dataset_json(dataset)
    if info.is_consensus:
        raise NehmapInputError(
            info.root,
            "is a two-level NEH consensus training set (labels background, NEH-low, NEH-high); "
            "its label maps are probability levels, not tissue labels.",
            "Train or read it as it is; it cannot be converted to a tissue-label layout.",
        )
    key = layout.strip().lower()
    if key not in IMPORT_LAYOUTS:
        raise NehmapInputError(
            None, f"unknown layout {layout!r}.", f"Use one of: {', '.join(IMPORT_LAYOUTS)}."
        )
    collection = discover(info.root, layout="nnunet")
    for case in collection:
        case.label_scheme = info.scheme
    if key == "nnunet":
        return export_nnunet(
            collection,
            out,
            link=link,
            overwrite=overwrite,
            progress=progress,
            grid_tolerance_mm=grid_tolerance_mm,
        )
    writer: ManifestWriter | LayoutWriter
    if key == "manifest":
        writer = ManifestWriter(Path(out), link=link)
    else:
        writer = LayoutWriter(Path(out), link=link, layout=key, merge_neh=merge_neh)
        writer.check_names({c.case_id: LABEL in c.files for c in collection})
    root = prepare_output(out, sources=[info.root], overwrite=overwrite)
    report = TransferReport(root)
    _transfer(
        collection, writer, report, desc="import", progress=progress, tolerance_mm=grid_tolerance_mm
    )
    if isinstance(writer, ManifestWriter):
        report.index = writer.finish()
    return report
