"""The public collections' folder layouts and file names, and writing cases in them.

:func:`case_paths` gives a case's file names in a layout (used by every writer);
:func:`write_case` and :func:`write_truth_labels` write the synthetic cohort
(``nehmap synth``); datasets are written by :mod:`nehmap.io.layout_writers` and
:mod:`nehmap.io.nnunet_write`.

Every layout stores the four structural images (T1, T1c, T2, FLAIR) and, optionally, a
segmentation converted to the collection's own label values, exactly as the public
collections name them (``<root>`` is the collection folder, ``<ID>`` the case ID):

==========  ============================================================================
layout      files
==========  ============================================================================
brats2021   ``<root>/<ID>/<ID>_{t1,t1ce,t2,flair,seg}.nii.gz``; IDs ``BraTS2021_00001``;
            labels 1 NCR, 2 ED (NEH written here, as BraTS 2021 does), 4 ET
brats2020   as brats2021, uncompressed ``.nii``; IDs ``BraTS20_Training_001``; labels
            1 NCR/NET (NEH written here, as BraTS 2017-2020 do), 2 ED, 4 ET
brats2018   ``<root>/HGG/<ID>/<ID>_{t1,t1ce,t2,flair,seg}.nii.gz``;
            IDs ``Brats18_NEHMAP_1_1``; labels as brats2020
brats2023   ``<root>/<ID>/<ID>-{t1n,t1c,t2w,t2f,seg}.nii.gz``; IDs
            ``BraTS-GLI-00001-000`` (the last three digits are the time point);
            labels 1 NETC, 2 SNFH, 3 ET
upenn       ``<root>/images_structural/<ID>/<ID>_{T1,T1GD,T2,FLAIR}.nii.gz``,
            ``<root>/images_DSC/<ID>/<ID>_DSC_ap-rCBV.nii.gz``,
            ``<root>/images_segm/<ID>_segm.nii.gz``; IDs ``UPENN-GBM-00001_11``
            (``_21`` for a second time point); labels 1 NC, 2 ED, 4 ET
rhuh        ``<root>/<ID>/<T>/<ID>_<T>_{t1,t1ce,t2,flair,segmentations}.nii.gz``; IDs
            ``RHUH-0001``; ``<T>`` the time point (0 pre-operative, 1 post-operative,
            2 recurrence); labels 1 necrosis, 2 peritumoral signal, 3 enhancing
nnunet      ``<root>/imagesTr/<ID>_{0000,0001,0002,0003}.nii.gz`` (T1, T1ce, T2,
            FLAIR), ``<root>/labelsTr/<ID>.nii.gz``, ``<root>/dataset.json``; IDs
            ``NEHMAP_00001``; nehmap's labels (1 necrosis, 2 edema, 3 NEH, 4 enhancing)
==========  ============================================================================

The public label schemes have no NEH label: NEH is written where that release puts
non-enhancing tumour (the core label 1, or edema in BraTS 2021; see
:mod:`nehmap.labels`). Keep nehmap's full labels beside
the collection with :func:`write_truth_labels`.

Maps the public collections do not ship (an rCBV map outside UPenn-GBM, extra arrays)
are written next to the case's images with the layout's separator, e.g.
``<ID>_rcbv.nii.gz`` (BraTS 2021, RHUH), ``<ID>-rcbv.nii.gz`` (BraTS 2023),
``<root>/rcbvTr/<ID>.nii.gz`` (nnU-Net).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nehmap.io.atomic import write_text_atomic
from nehmap.io.image import Grid, write_image
from nehmap.labels import from_nehmap

STRUCTURAL: tuple[str, ...] = ("t1", "t1c", "t2", "flair")
"""Keys of the structural images, in nnU-Net channel order."""


@dataclass(frozen=True)
class Layout:
    """File-naming rules of one public collection.

    Attributes
    ----------
    name : str
        Layout name.
    suffix : str
        Image file suffix (``.nii.gz`` or ``.nii``).
    separator : str
        Between the case ID and the file's tag.
    tags : Mapping[str, str]
        Structural key (and ``seg``) -> tag in the file name.
    label_scheme : str
        Label scheme of the segmentation (:mod:`nehmap.labels`).
    subfolder : str
        Folder between the root and the case folders (BraTS 2018's ``HGG``).
    """

    name: str
    suffix: str
    separator: str
    tags: Mapping[str, str]
    label_scheme: str
    subfolder: str = ""


_BRATS_TAGS = {"t1": "t1", "t1c": "t1ce", "t2": "t2", "flair": "flair", "seg": "seg"}

LAYOUTS: Mapping[str, Layout] = {
    "brats2021": Layout("brats2021", ".nii.gz", "_", _BRATS_TAGS, "brats2021"),
    "brats2020": Layout("brats2020", ".nii", "_", _BRATS_TAGS, "brats2018"),
    "brats2018": Layout("brats2018", ".nii.gz", "_", _BRATS_TAGS, "brats2018", "HGG"),
    "brats2023": Layout(
        "brats2023",
        ".nii.gz",
        "-",
        {"t1": "t1n", "t1c": "t1c", "t2": "t2w", "flair": "t2f", "seg": "seg"},
        "brats2023",
    ),
    "upenn": Layout(
        "upenn",
        ".nii.gz",
        "_",
        {"t1": "T1", "t1c": "T1GD", "t2": "T2", "flair": "FLAIR", "seg": "segm"},
        "upenn",
    ),
    "rhuh": Layout(
        "rhuh",
        ".nii.gz",
        "_",
        {"t1": "t1", "t1c": "t1ce", "t2": "t2", "flair": "flair", "seg": "segmentations"},
        "rhuh",
    ),
    "nnunet": Layout(
        "nnunet",
        ".nii.gz",
        "_",
        {"t1": "0000", "t1c": "0001", "t2": "0002", "flair": "0003", "seg": ""},
        "nehmap",
    ),
}
"""Every layout :func:`write_case` knows, by name."""

NNUNET_CHANNELS: Mapping[str, str] = {"0": "T1", "1": "T1ce", "2": "T2", "3": "FLAIR"}
NNUNET_LABELS: Mapping[str, int] = {
    "background": 0,
    "necrosis": 1,
    "edema": 2,
    "NEH": 3,
    "enhancing tumour": 4,
}
TIMEPOINT_LAYOUTS: frozenset[str] = frozenset({"brats2023", "upenn", "rhuh"})
"""Layouts that can hold more than one scan per patient."""
_SCAN_ID_PATTERNS: dict[str, str] = {
    "brats2021": "BraTS2021_{index:05d}",
    "brats2020": "BraTS20_Training_{index:03d}",
    "brats2018": "Brats18_NEHMAP_{index}_1",
    "brats2023": "BraTS-GLI-{index:05d}-{timepoint:03d}",
    "upenn": "UPENN-GBM-{index:05d}_{visit}1",
    "rhuh": "RHUH-{index:04d}",
}
"""Case-ID patterns per layout (``visit`` = ``timepoint + 1``); others: ``NEHMAP_00001``."""


def get_layout(layout: str | Layout) -> Layout:
    """The :class:`Layout` called ``layout``.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the known ones).
    """
    if isinstance(layout, Layout):
        return layout
    key = layout.strip().lower()
    if key not in LAYOUTS:
        raise ValueError(f"Unknown layout {layout!r}. Use one of: {', '.join(LAYOUTS)}.")
    return LAYOUTS[key]


def scan_id(layout: str | Layout, index: int, timepoint: int = 0) -> str:
    """The case ID of patient ``index`` (1-based) at ``timepoint`` in ``layout``'s style.

    BraTS 2023 and UPenn-GBM encode the time point in the ID (``-000``/``-001``,
    ``_11``/``_21``); RHUH-GBM keeps one ID per patient and puts the time point in a
    folder (pass ``timepoint`` to :func:`write_case`); the other layouts have a single
    time point.

    Raises
    ------
    ValueError
        For a negative index or a time point the layout cannot hold.
    """
    spec = get_layout(layout)
    if index < 0 or timepoint < 0:
        raise ValueError(f"index and timepoint must be non-negative, got {index}, {timepoint}.")
    if timepoint and spec.name not in TIMEPOINT_LAYOUTS:
        raise ValueError(f"The {spec.name} layout has a single time point per case.")
    pattern = _SCAN_ID_PATTERNS.get(spec.name, "NEHMAP_{index:05d}")
    return pattern.format(index=index, timepoint=timepoint, visit=timepoint + 1)


def case_paths(
    root: str | Path,
    layout: str | Layout,
    case_id: str,
    *,
    timepoint: int | None = None,
    extra: tuple[str, ...] = (),
) -> dict[str, Path]:
    """Where :func:`write_case` puts each file of a case.

    Parameters
    ----------
    root : str | Path
        The collection folder.
    layout : str | Layout
        Layout name.
    case_id : str
        The case ID (for RHUH the patient ID, e.g. ``RHUH-0001``).
    timepoint : int | None
        RHUH time-point folder (default 0); other layouts refuse it (their
        IDs carry the time point, see :func:`scan_id`).
    extra : tuple[str, ...]
        Names of extra arrays.

    Returns
    -------
    dict[str, Path]
        Key -> path for ``t1``, ``t1c``, ``t2``, ``flair``, ``seg``, ``rcbv`` and every
        extra name.
    """
    spec = get_layout(layout)
    root = Path(root)
    check_case_id(case_id)
    if spec.name != "rhuh" and timepoint not in (None, 0):
        raise ValueError(
            f"The {spec.name} layout has no time-point folders; encode the time point in "
            "the case ID (see scan_id)."
        )
    if spec.name == "upenn":
        return _upenn_paths(root, spec, case_id, extra)
    if spec.name == "nnunet":
        return _nnunet_paths(root, spec, case_id, extra)
    if spec.name == "rhuh":
        point = 0 if timepoint is None else int(timepoint)
        folder = root / case_id / str(point)
        stem = f"{case_id}_{point}"
    else:
        folder = root / spec.subfolder / case_id if spec.subfolder else root / case_id
        stem = case_id
    paths = {
        key: folder / f"{stem}{spec.separator}{spec.tags[key]}{spec.suffix}"
        for key in (*STRUCTURAL, "seg")
    }
    for name in ("rcbv", *extra):
        paths[name] = folder / f"{stem}{spec.separator}{name}{spec.suffix}"
    return paths


def check_case_id(case_id: str) -> None:
    """Raise ValueError unless ``case_id`` can be a file name (no separators, not ``.``/``..``)."""
    if not case_id or "/" in case_id or "\\" in case_id or case_id in (".", ".."):
        raise ValueError(f"Invalid case ID {case_id!r}: it becomes a file name.")


def _upenn_paths(root: Path, spec: Layout, case_id: str, extra: tuple[str, ...]) -> dict[str, Path]:
    structural = root / "images_structural" / case_id
    paths = {key: structural / f"{case_id}_{spec.tags[key]}{spec.suffix}" for key in STRUCTURAL}
    paths["seg"] = root / "images_segm" / f"{case_id}_segm{spec.suffix}"
    paths["rcbv"] = root / "images_DSC" / case_id / f"{case_id}_DSC_ap-rCBV{spec.suffix}"
    for name in extra:
        paths[name] = structural / f"{case_id}_{name}{spec.suffix}"
    return paths


def _nnunet_paths(
    root: Path, spec: Layout, case_id: str, extra: tuple[str, ...]
) -> dict[str, Path]:
    paths = {
        key: root / "imagesTr" / f"{case_id}_{spec.tags[key]}{spec.suffix}" for key in STRUCTURAL
    }
    paths["seg"] = root / "labelsTr" / f"{case_id}{spec.suffix}"
    for name in ("rcbv", *extra):
        paths[name] = root / f"{name}Tr" / f"{case_id}{spec.suffix}"
    return paths


def write_case(
    root: str | Path,
    layout: str | Layout,
    case_id: str,
    images: Mapping[str, np.ndarray],
    grid: Grid,
    labels: np.ndarray | None = None,
    rcbv: np.ndarray | None = None,
    timepoint: int | None = None,
    *,
    extra: Mapping[str, np.ndarray] | None = None,
) -> dict[str, Path]:
    """Write one case in a public collection's layout.

    Parameters
    ----------
    root : str | Path
        The collection folder (created when missing).
    layout : str | Layout
        ``brats2021``, ``brats2020``, ``brats2018``, ``brats2023``, ``upenn``,
        ``rhuh`` or ``nnunet``.
    case_id : str
        The case ID (see :func:`scan_id`; for RHUH the patient ID).
    images : Mapping[str, np.ndarray]
        ``t1``, ``t1c``, ``t2``, ``flair`` -> canonical (RAS+) array of shape
        ``grid.canonical_shape``; written as float32.
    grid : Grid
        The geometry to write on.
    labels : np.ndarray | None
        nehmap labels (0-4), converted to the layout's label scheme; uint8.
    rcbv : np.ndarray | None
        rCBV map (float32).
    timepoint : int | None
        RHUH time-point folder (0 pre-operative, 1 post-operative,
        2 recurrence); other layouts refuse it.
    extra : Mapping[str, np.ndarray] | None
        Further name -> array, written next to the images.

    Returns
    -------
    dict[str, Path]
        Key -> written path (``t1``, ``t1c``, ``t2``, ``flair``, then ``seg``, ``rcbv``
        and the extra names when given).

    Raises
    ------
    ValueError
        Unknown layout, missing modality or a time point the layout
        cannot hold.
    """
    spec = get_layout(layout)
    missing = [key for key in STRUCTURAL if key not in images]
    if missing:
        raise ValueError(
            f"Case {case_id}: missing images {missing}; give all of {list(STRUCTURAL)}."
        )
    extra = dict(extra or {})
    paths = case_paths(root, spec, case_id, timepoint=timepoint, extra=tuple(extra))
    written: dict[str, Path] = {}
    for key in STRUCTURAL:
        written[key] = write_image(images[key], grid, paths[key], dtype=np.float32)
    if labels is not None:
        native = from_nehmap(labels, spec.label_scheme)
        written["seg"] = write_image(native, grid, paths["seg"], dtype=np.uint8)
    if rcbv is not None:
        written["rcbv"] = write_image(rcbv, grid, paths["rcbv"], dtype=np.float32)
    for name, array in extra.items():
        written[name] = write_image(array, grid, paths[name])
    return written


def write_nnunet_dataset_json(
    root: str | Path, num_training: int | None = None, *, name: str = "nehmap synthetic"
) -> Path:
    """Write ``<root>/dataset.json`` for an nnU-Net (v2) dataset in nehmap's labels.

    Parameters
    ----------
    root : str | Path
        The dataset folder (holding ``imagesTr`` and ``labelsTr``).
    num_training : int | None
        Number of training cases; counted from ``labelsTr`` when None.
    name : str
        The dataset's name.

    Returns
    -------
    Path
        The written path.
    """
    root = Path(root)
    if num_training is None:
        num_training = len(list((root / "labelsTr").glob("*.nii.gz")))
    content = {
        "name": name,
        "description": (
            "Labels follow nehmap's scheme: 0 background, 1 necrosis, 2 edema, "
            "3 non-enhancing hypercellular tumour (NEH), 4 enhancing tumour."
        ),
        "channel_names": dict(NNUNET_CHANNELS),
        "labels": dict(NNUNET_LABELS),
        "numTraining": int(num_training),
        "file_ending": ".nii.gz",
        "label_scheme": "nehmap",
    }
    return write_text_atomic(root / "dataset.json", json.dumps(content, indent=2) + "\n")


TRUTH_LABELS_TAG = "truth-labels"
"""File tag of a synthetic case's full truth labels: ``<ID>_truth-labels.nii.gz``."""


def write_truth_labels(
    truth_dir: str | Path,
    case_id: str,
    labels: np.ndarray,
    grid: Grid,
    *,
    tag: str = TRUTH_LABELS_TAG,
) -> Path:
    """Write nehmap's full labels (NEH included) as ``<truth_dir>/<ID>_<tag>.nii.gz``.

    Keep ``truth_dir`` outside the collection folder, so readers of the collection see
    only the public files.
    """
    check_case_id(case_id)
    path = Path(truth_dir) / f"{case_id}_{tag}.nii.gz"
    return write_image(np.asarray(labels), grid, path, dtype=np.uint8)
