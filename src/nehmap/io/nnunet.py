"""nnU-Net v2 raw datasets: writing nehmap collections for nnU-Net, and reading them back.

A dataset in nnU-Net v2's raw format is one folder (``DatasetXXX_Name``, ``XXX`` a
three-digit id, inside ``$nnUNet_raw``)::

    DatasetXXX_Name/
        dataset.json
        imagesTr/<ID>_0000.nii.gz ... <ID>_0003.nii.gz   one file per channel
        labelsTr/<ID>.nii.gz                              the label map of a training case
        imagesTs/<ID>_0000.nii.gz ...                     cases without labels (optional)

nehmap writes the channels in a declared order (default T1, T1ce, T2, FLAIR) and the
labels in nehmap's own convention (0 background, 1 necrosis, 2 edema, 3 NEH,
4 enhancing tumour). ``dataset.json`` has the four keys nnU-Net requires
(``channel_names``, ``labels``, ``numTraining``, ``file_ending``) and, for nehmap's
readers, ``label_scheme`` (``"nehmap"``, or ``"neh-consensus"`` for the two-level
consensus training set) plus ``evaluation_regions`` (ET, TC, WT as lists of labels);
nnU-Net ignores keys it does not use.

Two forms of ``labels`` are written:

plain (default)
    ``{"background": 0, "necrosis": 1, "edema": 2, "NEH": 3, "enhancing tumour": 4}``:
    nnU-Net trains a softmax over the five classes.
region-based (``regions=True``)
    ``{"background": 0, "whole tumor": [1, 2, 3, 4], "tumor core": [1, 3, 4],
    "NEH": [3], "enhancing tumor": [4]}`` with ``"regions_class_order": [2, 1, 3, 4]``:
    nnU-Net trains one sigmoid output per overlapping region and, at inference, paints
    the regions in this order, each with the label of its entry in
    ``regions_class_order`` (WT -> 2 edema, then TC -> 1 necrosis, then NEH -> 3, then
    ET -> 4), which gives back nehmap's labels exactly. nnU-Net requires
    ``regions_class_order`` to have one entry per region (background excluded), so the
    three BraTS regions alone would need ``[2, 1, 4]`` and could not tell NEH from
    necrosis: the fourth region, NEH, keeps them apart. The label files are the same
    in both forms.

Reading goes through :func:`nehmap.io.discover` (layout ``nnunet``); the meaning of
the label values comes from :func:`dataset_label_scheme`: an explicit ``label_scheme``
wins, then region-based labels are decoded from the region names (which regions hold
each value), then plain labels by name.

Images are placed by hard link when possible (no extra disk space, and the bytes are
exactly the input's), else by symbolic link, else copied; ``link="copy"`` always
copies. An image whose file type differs from the dataset's ``file_ending`` is
rewritten (same voxels, same grid). Every output is written atomically and never over
an input file.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nehmap.errors import CaseError, NehmapInputError, OutputError
from nehmap.io.atomic import atomic_path, write_text_atomic
from nehmap.io.case import check_case_headers
from nehmap.io.collection import CaseFiles, Collection
from nehmap.io.image import DEFAULT_GRID_TOLERANCE_MM, Grid, image_suffix, read_image, write_image
from nehmap.io.layouts import discover
from nehmap.io.modalities import LABEL, MODALITIES, normalise_modality
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
from nehmap.io.nnunet_read import check_same_grid, read_label_map
from nehmap.io.writers import LAYOUTS as WRITER_LAYOUTS
from nehmap.io.writers import case_paths, get_layout
from nehmap.labels import NEH, from_nehmap

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
    "read_label_map",
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

LINK_MODES: tuple[str, ...] = ("hard", "symlink", "copy")
"""How input images are placed in an output dataset (see :func:`place_file`)."""

IMPORT_LAYOUTS: tuple[str, ...] = (*WRITER_LAYOUTS, "manifest")
"""Layouts :func:`import_nnunet` can write."""

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# layouts of nehmap.io.writers -> the layout nehmap.io.discover reads them as
_DISCOVER_LAYOUT = {"brats2018": "brats2021", "brats2020": "brats2021"}


# --------------------------------------------------------------------------- naming


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
    _check_case_id(case_id)
    root = Path(root)
    paths = {
        key: root / f"images{split}" / f"{case_id}_{index:04d}{file_ending}"
        for index, key in enumerate(channels)
    }
    paths[LABEL] = root / f"labels{split}" / f"{case_id}{file_ending}"
    return paths


def _check_case_id(case_id: str) -> None:
    if not case_id or "/" in case_id or "\\" in case_id or case_id in (".", ".."):
        raise ValueError(f"Invalid case ID {case_id!r}: it becomes a file name.")


# --------------------------------------------------------------------------- files


def _entry(path: Path) -> Path:
    """``path`` with its folder resolved but not its last component (links kept)."""
    return path.parent.resolve() / path.name


def _refuse_input(dst: Path, inputs: Iterable[str | Path]) -> None:
    target = _entry(dst)
    for candidate in inputs:
        src = Path(candidate)
        if target in (_entry(src), src.resolve()):
            raise OutputError(
                f"{dst}: refusing to write an output over the input file {candidate}. "
                "Choose an output folder different from the input folder."
            )


def place_file(
    src: str | Path, dst: str | Path, *, link: str = "hard", inputs: Iterable[str | Path] = ()
) -> str:
    """Put the image ``src`` at ``dst`` (atomically), without touching ``src``.

    Parameters
    ----------
    src, dst : path
        Input image and output path.
    link : {"hard", "symlink", "copy"}
        ``"hard"``: hard link, falling back to a symbolic link (absolute), then to a copy;
        ``"symlink"``: symbolic link, falling back to a copy; ``"copy"``: copy.
    inputs : paths
        Files that must never be replaced (``src`` is always one).

    Returns
    -------
    str
        How the file was placed: ``"hard"``, ``"symlink"``, ``"copy"``, ``"kept"`` (``dst``
        already was a hard link to ``src``) or ``"converted"`` (the file types differ, so
        the image was rewritten: same voxels, same grid).
    """
    if link not in LINK_MODES:
        raise ValueError(f"link must be one of {', '.join(LINK_MODES)}, got {link!r}.")
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise NehmapInputError(src, "image file does not exist.", "Check the collection.")
    _refuse_input(dst, [*inputs, src])
    if image_suffix(src) != image_suffix(dst):
        img = read_image(src, dtype=None)
        write_image(img.array, img.grid, dst, inputs=[*inputs, src])
        return "converted"
    if link == "hard" and dst.exists() and not dst.is_symlink() and os.path.samefile(src, dst):
        return "kept"
    order = {"hard": ("hard", "symlink", "copy"), "symlink": ("symlink", "copy")}.get(
        link, ("copy",)
    )
    for mode in order:
        try:
            with atomic_path(dst) as tmp:
                if mode == "hard":
                    os.link(src, tmp)
                elif mode == "symlink":
                    os.symlink(src.resolve(), tmp)
                else:
                    shutil.copy2(src, tmp)
            return mode
        except OSError:
            if mode == "copy":
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def prepare_output(
    root: str | Path, *, sources: Iterable[str | Path] = (), overwrite: bool = False
) -> Path:
    """Check that ``root`` may receive a new dataset; create it.

    Raises
    ------
    OutputError
        When ``root`` is one of the input folders or inside one, or holds files already
        and ``overwrite`` is False.
    """
    out = Path(root)
    resolved = out.resolve()
    for source in sources:
        folder = Path(source).resolve()
        if not folder.is_dir():
            continue
        if resolved == folder or folder in resolved.parents:
            raise OutputError(
                f"{out}: the output folder is inside the input folder {source}. Choose an "
                "output folder outside the input collection."
            )
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder. Choose another output path.")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputError(
            f"{out}: the output folder is not empty. Choose a new folder, or pass --overwrite "
            "to replace the files written there (inputs are never touched)."
        )
    out.mkdir(parents=True, exist_ok=True)
    return out


# --------------------------------------------------------------------------- writers


@dataclass
class DatasetWriter:
    """Base of the writers: where files go, how they were placed, what was written.

    Attributes
    ----------
    root : Path
        The output folder.
    link : str
        How images are placed (:data:`LINK_MODES`).
    labelled, unlabelled : list of str
        Case ids written with and without a label map.
    placed : Counter
        How many images were placed each way (:func:`place_file`'s return values).
    """

    root: Path
    link: str = "hard"
    labelled: list[str] = field(default_factory=list)
    unlabelled: list[str] = field(default_factory=list)
    placed: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        if self.link not in LINK_MODES:
            raise ValueError(f"link must be one of {', '.join(LINK_MODES)}, got {self.link!r}.")

    @property
    def cases(self) -> list[str]:
        """Every case written, sorted."""
        return sorted([*self.labelled, *self.unlabelled])

    def _place_images(
        self, images: Mapping[str, Path], paths: Mapping[str, Path], inputs: Sequence[Path]
    ) -> dict[str, Path]:
        missing = [key for key in MODALITIES if key not in images]
        if missing:
            raise ValueError(f"missing images {missing}; give all of {list(MODALITIES)}.")
        written = {}
        for key in MODALITIES:
            self.placed[place_file(images[key], paths[key], link=self.link, inputs=inputs)] += 1
            written[key] = paths[key]
        return written


@dataclass
class NnunetWriter(DatasetWriter):
    """Writes cases into an nnU-Net v2 raw dataset folder (``root``).

    A case with labels goes to ``imagesTr``/``labelsTr``, one without to ``imagesTs``.
    The label array is written as given (uint8): nehmap labels for a tissue dataset,
    levels 0/1/2 for a consensus dataset.
    """

    channels: tuple[str, ...] = DEFAULT_CHANNELS

    def paths(self, case_id: str, *, labelled: bool = True) -> dict[str, Path]:
        return nnunet_case_paths(
            self.root, case_id, self.channels, split="Tr" if labelled else "Ts"
        )

    def add(
        self,
        case_id: str,
        images: Mapping[str, Path],
        labels: np.ndarray | None,
        grid: Grid,
        *,
        inputs: Sequence[str | Path] = (),
    ) -> dict[str, Path]:
        """Write one case.

        Parameters
        ----------
        case_id : str
            The case identifier (file-name prefix).
        images : mapping
            Modality key -> input image file (t1, t1c, t2, flair).
        labels : ndarray of uint8, shape (X, Y, Z), or None
            Canonical (RAS+) label map, or None for a test case.
        grid : Grid
            The geometry the labels are written on (the case's image grid).
        inputs : paths
            Files that must never be replaced.

        Returns
        -------
        dict
            Key -> written path.
        """
        paths = self.paths(case_id, labelled=labels is not None)
        protected = [Path(p) for p in (*inputs, *images.values())]
        written = self._place_images(images, paths, protected)
        if labels is not None:
            written[LABEL] = write_image(
                np.asarray(labels, dtype=np.uint8),
                grid,
                paths[LABEL],
                dtype=np.uint8,
                inputs=protected,
            )
            self.labelled.append(case_id)
        else:
            self.unlabelled.append(case_id)
        return written

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


MANIFEST_NAME = "manifest.csv"
"""File name of the manifest :class:`ManifestWriter` writes."""

MANIFEST_LABEL_TAG = "nehmap-labels"
"""Tag of the label files a manifest output holds (``<case>_nehmap-labels.nii.gz``)."""


@dataclass
class ManifestWriter(DatasetWriter):
    """Writes cases as ``root/<case>/<case>_<modality>`` plus ``root/manifest.csv``.

    The manifest lists every file (paths relative to it) with ``label_scheme`` nehmap,
    so NEH survives. Read it back with ``nehmap.io.discover(root / "manifest.csv")``.
    """

    rows: list[dict[str, str]] = field(default_factory=list)

    def add(
        self,
        case_id: str,
        images: Mapping[str, Path],
        labels: np.ndarray | None,
        grid: Grid,
        *,
        inputs: Sequence[str | Path] = (),
    ) -> dict[str, Path]:
        """Write one case (see :meth:`NnunetWriter.add`; labels are nehmap labels)."""
        _check_case_id(case_id)
        folder = self.root / case_id
        paths = {
            key: folder / f"{case_id}_{key}{image_suffix(Path(images[key])) or FILE_ENDING}"
            for key in images
        }
        protected = [Path(p) for p in (*inputs, *images.values())]
        written = self._place_images(images, paths, protected)
        if labels is not None:
            written[LABEL] = write_image(
                np.asarray(labels, dtype=np.uint8),
                grid,
                folder / f"{case_id}_{MANIFEST_LABEL_TAG}{FILE_ENDING}",
                dtype=np.uint8,
                inputs=protected,
            )
            self.labelled.append(case_id)
        else:
            self.unlabelled.append(case_id)
        for key, path in written.items():
            self.rows.append(
                {
                    "case": case_id,
                    "timepoint": "",
                    "modality": key,
                    "path": path.relative_to(self.root).as_posix(),
                    "label_scheme": "nehmap",
                }
            )
        return written

    def finish(self) -> Path:
        """Write ``manifest.csv`` (rows sorted by case, then modality); returns its path."""
        order = {key: i for i, key in enumerate((*MODALITIES, LABEL))}
        rows = sorted(self.rows, key=lambda r: (r["case"], order.get(r["modality"], 99)))
        buffer = io.StringIO()
        writer = csv.DictWriter(
            buffer, fieldnames=["case", "timepoint", "modality", "path", "label_scheme"]
        )
        writer.writeheader()
        writer.writerows(rows)
        return write_text_atomic(self.root / MANIFEST_NAME, buffer.getvalue())


_RHUH_ID = re.compile(r"^(?P<subject>.+)_(?P<tp>[0-9])$")


@dataclass
class LayoutWriter(DatasetWriter):
    """Writes cases in a public collection's layout (naming of :mod:`nehmap.io.writers`).

    Labels are converted to the layout's scheme. None of those schemes has an NEH label:
    a case holding NEH is refused unless ``merge_neh`` is True, in which case NEH is
    written where that release puts non-enhancing tumour: the necrotic / non-enhancing
    core label (ET, TC and WT preserved; only the NC/NEH distinction is lost), or edema
    in ``brats2021`` (ET and WT preserved; BraTS 2021's core excludes it).
    """

    layout: str = "brats2021"
    merge_neh: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        spec = get_layout(self.layout)
        if spec.name == "nnunet":
            raise ValueError("Use NnunetWriter for the nnunet layout.")
        self.layout = spec.name

    def paths(self, case_id: str, root: Path | None = None) -> dict[str, Path]:
        """Where a case's files go (``root`` defaults to the writer's)."""
        base = self.root if root is None else root
        if self.layout == "rhuh":
            m = _RHUH_ID.match(case_id)
            if m is None:
                raise ValueError(
                    f"Case {case_id!r} cannot be written in the rhuh layout: its ID must end in "
                    "_<time point> (e.g. RHUH-0001_0). Use --layout manifest."
                )
            return case_paths(base, "rhuh", m.group("subject"), timepoint=int(m.group("tp")))
        return case_paths(base, self.layout, case_id)

    def check_names(self, cases: Mapping[str, bool]) -> None:
        """Check, before writing, that :func:`nehmap.io.discover` reads the planned file
        names back as the same cases (empty placeholder files in a temporary folder).

        Parameters
        ----------
        cases : mapping
            Case id -> whether it has a label map.

        Raises
        ------
        NehmapInputError
            Naming the cases whose IDs the layout cannot hold.
        """
        expected = {}
        with tempfile.TemporaryDirectory(prefix="nehmap-names-") as tmp:
            root = Path(tmp)
            for case_id, labelled in cases.items():
                try:
                    paths = self.paths(case_id, root)
                except ValueError as exc:
                    raise NehmapInputError(None, str(exc)) from None
                keys = [*MODALITIES, LABEL] if labelled else list(MODALITIES)
                expected[case_id] = set(keys)
                for key in keys:
                    paths[key].parent.mkdir(parents=True, exist_ok=True)
                    paths[key].touch()
            try:
                found = discover(root, layout=_DISCOVER_LAYOUT.get(self.layout, self.layout))
                got = {c.case_id: set(c.files) for c in found}
            except NehmapInputError:
                got = {}
        bad = sorted(cid for cid, keys in expected.items() if got.get(cid) != keys)
        if bad:
            shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
            raise NehmapInputError(
                None,
                f"the {self.layout} layout cannot hold the case IDs {shown}: nehmap would not "
                "read the written files back as the same cases.",
                "Use --layout manifest (any IDs) or rename the cases.",
            )

    def add(
        self,
        case_id: str,
        images: Mapping[str, Path],
        labels: np.ndarray | None,
        grid: Grid,
        *,
        inputs: Sequence[str | Path] = (),
    ) -> dict[str, Path]:
        """Write one case (see :meth:`NnunetWriter.add`; labels are nehmap labels)."""
        spec = get_layout(self.layout)
        if labels is not None and not self.merge_neh and np.any(labels == NEH):
            raise CaseError(
                case_id,
                None,
                f"holds NEH voxels, which the {self.layout} label scheme "
                f"({spec.label_scheme}) cannot represent.",
                "Use --layout manifest to keep NEH, or pass --merge-neh to write NEH where "
                "the scheme puts non-enhancing tumour (core label; edema in BraTS 2021).",
            )
        paths = self.paths(case_id)
        protected = [Path(p) for p in (*inputs, *images.values())]
        written = self._place_images(images, paths, protected)
        if labels is not None:
            native = from_nehmap(np.asarray(labels, dtype=np.uint8), spec.label_scheme)
            written[LABEL] = write_image(
                native, grid, paths[LABEL], dtype=np.uint8, inputs=protected
            )
            self.labelled.append(case_id)
        else:
            self.unlabelled.append(case_id)
        return written

    def finish(self) -> None:
        """Nothing to finish (the layouts have no index file)."""


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


def _progress(items: Sequence, desc: str, progress: bool) -> Iterable:
    if not progress:
        return items
    import sys

    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="case", file=sys.stderr)


def _case_labels(files: CaseFiles, grid: Grid, tolerance_mm: float) -> np.ndarray | None:
    if LABEL not in files.files:
        return None
    labels, label_grid = read_label_map(
        files.files[LABEL], files.label_scheme or "nehmap", case_id=files.case_id
    )
    check_same_grid(
        files.case_id,
        label_grid,
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
    for files in _progress(collection.cases, desc, progress):
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
