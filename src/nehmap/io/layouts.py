"""Finding the cases of a folder in the layouts of the public collections.

Supported layouts (detected automatically, or named explicitly):

``brats2021``  BraTS 2018-2021: ``<ID>/<ID>_{t1,t1ce,t2,flair,seg}.nii[.gz]``; 2018/2019
               nest the cases under ``HGG/`` and ``LGG/``; 2020 ships ``.nii``.
``brats2023``  BraTS 2023+ GLI: ``<ID>/<ID>-{t1n,t1c,t2w,t2f,seg}.nii.gz``.
``upenn``      UPenn-GBM as TCIA ships it: ``images_structural/<ID>/<ID>_{T1,T1GD,T2,FLAIR}``,
               ``images_DSC/<ID>/<ID>_DSC_ap-rCBV``, ``images_segm/<ID>_segm`` (expert) and
               ``automated_segm/<ID>_automated_approx_segm``; or the same files gathered in
               one folder per case. ``_11`` is the pre-operative scan, ``_21`` the follow-up.
``rhuh``       RHUH-GBM as TCIA ships it:
               ``RHUH-00NN/<tp>/RHUH-00NN_<tp>_{t1,t1ce,t2,flair,adc,segmentations}``,
               time points 0 pre-operative, 1 early post-operative, 2 recurrence.
``nnunet``     nnU-Net v2 raw dataset: ``imagesTr/<ID>_0000..`` (+ ``imagesTs``),
               ``labelsTr/<ID>``, ``dataset.json`` (channel names and labels).
``manifest``   a CSV with columns ``case, timepoint, modality, path`` (optional
               ``label_scheme``), for anything else.

Discovery only looks at file names; :func:`nehmap.io.case.load_case` reads and checks
the voxels. A file that a layout cannot place is reported, never silently used. This
module holds the public collections' layouts and :func:`discover`; the ``nnunet`` layout
is read by :mod:`nehmap.io.nnunet_read`, the ``manifest`` by :mod:`nehmap.io.manifest`,
into the records of :mod:`nehmap.io.collection` (re-exported here).
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from nehmap.errors import NehmapInputError
from nehmap.io.collection import TIMEPOINTS, CaseFiles, Collection
from nehmap.io.image import image_suffix, strip_image_suffix
from nehmap.io.manifest import read_manifest
from nehmap.io.modalities import LABEL, MODALITIES
from nehmap.io.nnunet_json import nnunet_label_scheme
from nehmap.io.nnunet_read import nnunet_root, parse_nnunet
from nehmap.labels import brats_scheme_for_id

__all__ = [
    "LAYOUTS",
    "TIMEPOINTS",
    "CaseFiles",
    "Collection",
    "detect_layout",
    "discover",
    "nnunet_label_scheme",
    "read_manifest",
]

_MAX_DEPTH = 5


# --------------------------------------------------------------------------- token layouts


@dataclass(frozen=True)
class _TokenLayout:
    """A layout where each file is named ``<ID><sep><token>`` with a fixed token set."""

    name: str
    label_scheme: str
    tokens: dict[str, str]  # lower-case token -> key
    id_pattern: str | None = None  # must match the id; groups `subject` and `tp`
    timepoints: dict[str, str] = field(default_factory=dict)  # raw tp -> canonical
    separator: str = "_"  # between the id and the token

    def regex(self) -> re.Pattern[str]:
        alternatives = "|".join(re.escape(t) for t in sorted(self.tokens, key=len, reverse=True))
        sep = re.escape(self.separator)
        return re.compile(rf"^(?P<id>.+?){sep}(?P<token>{alternatives})$", re.IGNORECASE)

    def split_id(self, case_id: str) -> tuple[str, str | None] | None:
        """(subject, canonical time point) of an id, or None if the id does not fit."""
        if self.id_pattern is None:
            return case_id, None
        m = re.match(self.id_pattern, case_id)
        if m is None:
            return None
        tp = m.group("tp")
        return m.group("subject"), self.timepoints.get(tp, tp)


_TOKEN_LAYOUTS: dict[str, _TokenLayout] = {
    lay.name: lay
    for lay in (
        _TokenLayout(
            "rhuh",
            "rhuh",
            {
                "t1": "t1",
                "t1ce": "t1c",
                "t2": "t2",
                "flair": "flair",
                "segmentations": LABEL,
                "segmentation": LABEL,
                "adc": "adc",
            },
            id_pattern=r"^(?P<subject>.+)_(?P<tp>[0-9])$",
            timepoints={"0": "preop", "1": "postop", "2": "recurrence"},
        ),
        _TokenLayout(
            "upenn",
            "upenn",
            {
                "t1": "t1",
                "t1gd": "t1c",
                "t2": "t2",
                "flair": "flair",
                "segm": LABEL,
                "automated_approx_segm": "seg_automated",
                "dsc_ap-rcbv": "rcbv",
            },
            id_pattern=r"^(?P<subject>.+)_(?P<tp>[0-9]{2})$",
            timepoints={"11": "preop", "21": "followup"},
        ),
        _TokenLayout(
            "brats2023",
            "brats2023",
            {"t1n": "t1", "t1c": "t1c", "t2w": "t2", "t2f": "flair", "seg": LABEL},
            separator="-",
        ),
        _TokenLayout(
            "brats2021",
            "brats2021",
            {"t1": "t1", "t1ce": "t1c", "t2": "t2", "flair": "flair", "seg": LABEL, "segm": LABEL},
        ),
    )
}

LAYOUTS: tuple[str, ...] = (*_TOKEN_LAYOUTS, "nnunet", "manifest")
"""Names of all layouts nehmap reads."""


def _image_files(root: Path) -> list[Path]:
    """Image files under ``root`` (depth-limited, hidden folders skipped), sorted."""
    found: list[Path] = []
    root_depth = len(root.parts)
    for dirpath, dirnames, filenames in os.walk(root):
        depth = len(Path(dirpath).parts) - root_depth
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if depth >= _MAX_DEPTH:
            dirnames[:] = []
        for name in filenames:
            if not name.startswith(".") and image_suffix(name) is not None:
                found.append(Path(dirpath) / name)
    return sorted(found)


def _preferred(existing: Path, new: Path) -> Path:
    """Between two files for the same slot, prefer the compressed one."""
    return new if str(new).endswith(".gz") and not str(existing).endswith(".gz") else existing


def _case_scheme(layout: _TokenLayout, case_id: str) -> str:
    """The label scheme of one case: BraTS 2017-2021 files tell their release by ID."""
    if layout.name == "brats2021":
        return brats_scheme_for_id(case_id)
    return layout.label_scheme


def _parse_token_layout(
    root: Path, layout: _TokenLayout, files: list[Path]
) -> tuple[list[CaseFiles], list[Path]]:
    pattern = layout.regex()
    slots: dict[str, dict[str, Path]] = defaultdict(dict)
    notes: dict[str, list[str]] = defaultdict(list)
    problems: dict[str, list[str]] = defaultdict(list)
    per_dir_ids: dict[Path, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    orphans: list[tuple[Path, str]] = []  # (file, key) with no usable id
    unmatched: list[Path] = []
    for path in files:
        base = strip_image_suffix(path.name)
        bare = layout.tokens.get(base.lower())
        m = pattern.match(base)
        if m is None or layout.split_id(m.group("id")) is None:
            if bare is not None:
                orphans.append((path, bare))
            else:
                unmatched.append(path)
            continue
        case_id, key = m.group("id"), layout.tokens[m.group("token").lower()]
        per_dir_ids[path.parent][case_id] += 1
        if key in slots[case_id] and slots[case_id][key].parent != path.parent:
            problems[case_id].append(
                f"the case id is not unique: {key} files for {case_id} are in two folders, "
                f"{slots[case_id][key].parent} and {path.parent}"
            )
        elif key in slots[case_id]:
            kept = _preferred(slots[case_id][key], path)
            other = path if kept != path else slots[case_id][key]
            notes[case_id].append(f"two files for {key}; using {kept.name}, ignoring {other.name}")
            slots[case_id][key] = kept
        else:
            slots[case_id][key] = path
    # a file named only by its token (e.g. RHUH-0035/2/segmentation.nii.gz), or a label
    # file named after another id (BraTS 2020 case 355): give it to the folder's case.
    for path, key in orphans:
        ids = per_dir_ids.get(path.parent, {})
        if len(ids) == 1:
            (case_id,) = ids
            if key not in slots[case_id]:
                slots[case_id][key] = path
                notes[case_id].append(f"{key} taken from the unusually named file {path.name}")
                continue
        unmatched.append(path)
    for case_id in list(slots):
        ids = per_dir_ids.get(next(iter(slots[case_id].values())).parent, {})
        owners = [i for i, n in ids.items() if i != case_id and n >= 3]
        if len(slots[case_id]) == 1 and LABEL in slots[case_id] and len(owners) == 1:
            owner = owners[0]
            path = slots.pop(case_id)[LABEL]
            if LABEL not in slots[owner]:
                slots[owner][LABEL] = path
                notes[owner].append(f"label taken from the unusually named file {path.name}")
            else:
                unmatched.append(path)
    cases = []
    for case_id in sorted(slots):
        subject, tp = layout.split_id(case_id) or (case_id, None)
        found = slots[case_id]
        case = CaseFiles(
            case_id,
            subject,
            tp,
            layout.name,
            label_scheme=_case_scheme(layout, case_id),
            notes=notes[case_id],
            problems=problems[case_id],
        )
        for key, path in found.items():
            if key in (*MODALITIES, LABEL, "rcbv"):
                case.files[key] = path
            else:
                case.extras[key] = path
        if LABEL not in case.files and "seg_automated" in case.extras:
            case.files[LABEL] = case.extras.pop("seg_automated")
            case.notes.append("no expert segmentation; using the automated one")
        cases.append(case)
    return cases, unmatched


# --------------------------------------------------------------------------- discovery


def detect_layout(root: str | Path) -> str:
    """Name of the layout of ``root`` (see :data:`LAYOUTS`).

    Raises
    ------
    NehmapInputError
        When nothing under ``root`` looks like a known layout.
    """
    return discover(root).layout


def discover(
    root: str | Path, layout: str | None = None, label_scheme: str | None = None
) -> Collection:
    """Find the cases under ``root`` (a folder, one case folder, or a manifest CSV).

    Parameters
    ----------
    root : str | Path
        Collection folder, single-case folder, or manifest ``.csv``.
    layout : str | None
        Force a layout instead of detecting it.
    label_scheme : str | None
        Override the label scheme of every case's label file.

    Returns
    -------
    Collection
        The :class:`Collection`, cases sorted by id. Incomplete cases are included
        (see :meth:`CaseFiles.missing`); files nobody could place are in ``unmatched``.

    Raises
    ------
    NehmapInputError
        If ``root`` does not exist or holds no recognisable case.
    """
    path = Path(root)
    if not path.exists():
        raise NehmapInputError(path, "does not exist.", "Check the path.")
    if path.is_file():
        if path.suffix.lower() not in (".csv", ".tsv"):
            raise NehmapInputError(
                path,
                "is a file but not a manifest CSV.",
                "Give a case folder, a collection folder or a manifest.",
            )
        collection = read_manifest(path)
    elif layout == "nnunet" or (layout is None and nnunet_root(path) is not None):
        cases, unmatched = parse_nnunet(path)
        collection = Collection(path, "nnunet", cases, unmatched)
    elif layout == "manifest":
        candidates = sorted(path.glob("*.csv"))
        if len(candidates) != 1:
            raise NehmapInputError(
                path, "holds no single manifest .csv file.", "Give the manifest file itself."
            )
        collection = read_manifest(candidates[0])
    else:
        if layout is not None and layout not in _TOKEN_LAYOUTS:
            raise NehmapInputError(
                path, f"unknown layout {layout!r}.", f"Use one of: {', '.join(LAYOUTS)}."
            )
        files = _image_files(path)
        names = [layout] if layout else list(_TOKEN_LAYOUTS)
        best: tuple[int, str, list[CaseFiles], list[Path]] | None = None
        for name in names:
            cases, unmatched = _parse_token_layout(path, _TOKEN_LAYOUTS[name], files)
            score = sum(len(c.files) for c in cases)
            if best is None or score > best[0]:
                best = (score, name, cases, unmatched)
        assert best is not None
        score, name, cases, unmatched = best
        if score == 0:
            raise NehmapInputError(
                path,
                f"contains no case in a known layout ({len(files)} image files found).",
                "Arrange the files as one of the public collections (BraTS, UPenn-GBM, "
                "RHUH-GBM, nnU-Net) or describe them in a manifest CSV (columns case, "
                "timepoint, modality, path).",
            )
        collection = Collection(path, name, cases, unmatched)
    if label_scheme is not None:
        for case in collection.cases:
            case.label_scheme = label_scheme
    if not collection.cases:
        raise NehmapInputError(
            path, f"holds no case (layout {collection.layout}).", "Check the folder."
        )
    return collection
