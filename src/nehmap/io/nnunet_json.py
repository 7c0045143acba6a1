"""nnU-Net v2 ``dataset.json``: what nehmap writes there, and what the label values mean.

``dataset.json`` has the four keys nnU-Net requires (``channel_names``, ``labels``,
``numTraining``, ``file_ending``) and, for nehmap's readers, ``label_scheme``
(``"nehmap"``, or ``"neh-consensus"`` for the two-level consensus training set) plus
``evaluation_regions`` (ET, TC, WT as lists of labels); nnU-Net ignores keys it does
not use.

Two forms of ``labels`` are written (:func:`tissue_dataset_json`):

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

Reading, the meaning of the label values comes from :func:`dataset_label_scheme`: an
explicit ``label_scheme`` wins, then region-based labels are decoded from the region
names (:func:`region_label_scheme`: which regions hold each value), then plain labels
by name (:func:`nnunet_label_scheme`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from nehmap.errors import NehmapInputError
from nehmap.io.atomic import write_text_atomic
from nehmap.io.modalities import MODALITIES
from nehmap.io.writers import NNUNET_LABELS
from nehmap.labels import BACKGROUND, ED, ET, NC, NEH, REGIONS, LabelScheme, get_scheme

FILE_ENDING = ".nii.gz"
"""File ending of the images and labels nehmap writes in nnU-Net datasets."""

DEFAULT_CHANNELS: tuple[str, ...] = MODALITIES
"""Default channel order: T1 (``_0000``), T1ce (``_0001``), T2 (``_0002``), FLAIR (``_0003``)."""

CHANNEL_NAMES: Mapping[str, str] = MappingProxyType(
    {"t1": "T1", "t1c": "T1ce", "t2": "T2", "flair": "FLAIR"}
)
"""Name written in ``channel_names`` for each modality (nnU-Net z-scores all of them)."""

TISSUE_LABELS: Mapping[str, int] = MappingProxyType(dict(NNUNET_LABELS))
"""Plain ``labels`` of a dataset in nehmap's convention (name -> label value)."""

TISSUE_REGIONS: Mapping[str, int | tuple[int, ...]] = MappingProxyType(
    {
        "background": BACKGROUND,
        "whole tumor": (NC, ED, NEH, ET),
        "tumor core": (NC, NEH, ET),
        "NEH": (NEH,),
        "enhancing tumor": (ET,),
    }
)
"""Region-based ``labels`` (nnU-Net trains one sigmoid output per region)."""

TISSUE_REGIONS_CLASS_ORDER: tuple[int, ...] = (ED, NC, NEH, ET)
"""``regions_class_order`` matching :data:`TISSUE_REGIONS`: the label each region paints."""

CONSENSUS_SCHEME = "neh-consensus"
"""``label_scheme`` of the two-level NEH consensus training set (not nehmap labels)."""

CONSENSUS_LABELS: Mapping[str, int] = MappingProxyType(
    {"background": 0, "NEH-low": 1, "NEH-high": 2}
)
"""``labels`` of the consensus training set: 0 background, 1 low-, 2 high-probability NEH."""


def tissue_dataset_json(
    channels: Sequence[str] = DEFAULT_CHANNELS,
    num_training: int = 0,
    *,
    regions: bool = False,
    name: str = "",
    description: str = "",
) -> dict[str, Any]:
    """``dataset.json`` content of a dataset in nehmap's labels (see the module docstring).

    Parameters
    ----------
    channels : sequence of str
        Modality keys in channel order.
    num_training : int
        Number of cases in ``imagesTr`` (each has a label file in ``labelsTr``).
    regions : bool
        Write the region-based form (WT, TC, NEH, ET) with ``regions_class_order``.
    name, description : str
        Free text.
    """
    if regions:
        labels: dict[str, Any] = {
            k: list(v) if isinstance(v, tuple) else v for k, v in TISSUE_REGIONS.items()
        }
    else:
        labels = dict(TISSUE_LABELS)
    meta: dict[str, Any] = {
        "name": name,
        "description": description
        or (
            "Brain-tumour MRI with nehmap labels: 0 background, 1 necrosis, 2 edema, "
            "3 non-enhancing hypercellular tumour (NEH), 4 enhancing tumour. Evaluation "
            "regions: ET = {4}, TC = {1, 3, 4}, WT = {1, 2, 3, 4}."
        ),
        "channel_names": {str(i): CHANNEL_NAMES[key] for i, key in enumerate(channels)},
        "labels": labels,
    }
    if regions:
        meta["regions_class_order"] = list(TISSUE_REGIONS_CLASS_ORDER)
    meta.update(
        {
            "numTraining": int(num_training),
            "file_ending": FILE_ENDING,
            "label_scheme": "nehmap",
            "evaluation_regions": {k: list(v) for k, v in REGIONS.items()},
        }
    )
    return meta


def _norm(name: object) -> str:
    return "".join(ch for ch in str(name).lower() if ch.isalnum())


def has_regions(labels: Mapping[str, Any]) -> bool:
    """True when ``labels`` asks nnU-Net for region-based training (a list of 2+ values)."""
    return any(isinstance(v, list | tuple) and len(v) > 1 for v in labels.values())


def is_consensus_labels(labels: Mapping[str, Any]) -> bool:
    """True for the consensus training set's labels (background, NEH-low, NEH-high)."""
    return {_norm(k): v for k, v in labels.items()} == {
        _norm(k): v for k, v in CONSENSUS_LABELS.items()
    }


def is_consensus_dataset(meta: Mapping[str, Any]) -> bool:
    """True when a ``dataset.json`` describes a two-level NEH consensus training set.

    Recognised by ``"label_scheme": "neh-consensus"`` or by its label names (background
    0, NEH-low 1, NEH-high 2). Its label files hold probability levels, not tissue labels.
    """
    declared = meta.get("label_scheme")
    return declared == CONSENSUS_SCHEME or is_consensus_labels(meta.get("labels") or {})


_REGION_TAGS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("WT", ("wholetumor", "wholetumour", "wt", "wholetumorregion")),
    ("TC", ("tumorcore", "tumourcore", "tc")),
    ("ET", ("enhancingtumor", "enhancingtumour", "et", "enhancing")),
    ("NEH", ("neh",)),
    ("NC", ("necrosis", "necrotic", "nc", "ncr", "necroticcore")),
    ("ED", ("edema", "oedema", "ed", "snfh")),
)


def _region_tag(name: str) -> str | None:
    key = _norm(name)
    if "neh" in key or "hypercell" in key:
        return "NEH"
    for tag, names in _REGION_TAGS:
        if key in names:
            return tag
    return None


def _scheme(to_ours: dict[int, int], *, core: int, name: str, description: str) -> LabelScheme:
    """A :class:`LabelScheme` from its native -> nehmap values.

    Writing back, each nehmap label goes to the smallest native value that reads as it;
    a label the dataset lacks goes to 0, except NEH, which goes to ``core`` (the native
    value of the non-enhancing core, where datasets without NEH put it).
    """
    from_ours = {ours: native for native, ours in sorted(to_ours.items(), reverse=True)}
    for ours in (BACKGROUND, NC, ED, NEH, ET):
        from_ours.setdefault(ours, core if ours == NEH else 0)
    return LabelScheme(
        name=name,
        description=description,
        to_nehmap=MappingProxyType(to_ours),
        from_nehmap=MappingProxyType(from_ours),
    )


def nnunet_label_scheme(labels: dict, source: Path) -> LabelScheme:
    """A :class:`LabelScheme` from a ``dataset.json`` ``labels`` entry.

    Plain labels are mapped by name (necrosis / non-enhancing core -> NC, edema -> ED,
    NEH / hypercellular -> NEH, enhancing -> ET). Region-based BraTS datasets
    (``"whole tumor": [1, 2, 3]`` ...) use nnU-Net's BraTS conversion: 1 ED, 2 NC, 3 ET.
    """
    if any(isinstance(v, list | tuple) for v in labels.values()):
        return get_scheme("nnunet-brats")
    to_ours: dict[int, int] = {}
    for name, value in labels.items():
        key = "".join(ch for ch in str(name).lower() if ch.isalnum())
        if key in ("background", "bg"):
            ours = 0
        elif "neh" in key or "hypercell" in key:
            ours = NEH
        elif "nonenhanc" in key or "necro" in key or key in ("ncr", "netc", "nc", "core"):
            ours = NC
        elif "edema" in key or "oedema" in key or key in ("ed", "snfh"):
            ours = ED
        elif "enhanc" in key or key == "et":
            ours = ET
        else:
            raise NehmapInputError(
                source,
                f"label {name!r} in dataset.json has no nehmap equivalent.",
                "Name the labels background, necrosis, edema, NEH and enhancing tumour, or "
                "convert the dataset first.",
            )
        to_ours[int(value)] = ours
    return _scheme(
        to_ours,
        core=next((n for n, o in to_ours.items() if o == NC), 0),
        name=f"nnunet:{source.parent.name}",
        description=f"labels declared in {source}",
    )


def region_label_scheme(labels: Mapping[str, Any], source: str | Path) -> LabelScheme:
    """The meaning of the label values of a region-based ``dataset.json``.

    Each label value is decoded from the regions that contain it: in ET -> enhancing
    tumour; else in an NEH region -> NEH; else in a necrosis region -> necrosis; else in
    an edema region -> edema; else in TC -> necrosis (non-enhancing core); else in WT ->
    edema. This reads nnU-Net's BraTS conversion (WT [1, 2, 3], TC [2, 3], ET [3]: 1
    edema, 2 necrosis, 3 enhancing) and nehmap's region form alike.

    Raises
    ------
    NehmapInputError
        When a region's name is not one of whole tumor, tumor core, enhancing tumor,
        NEH, necrosis, edema (or their abbreviations).
    """
    path = Path(source)
    members: dict[int, set[str]] = {}
    for name, value in labels.items():
        if _norm(name) in ("background", "ignore"):
            continue
        tag = _region_tag(name)
        if tag is None:
            raise NehmapInputError(
                path,
                f"region {name!r} in dataset.json has no nehmap meaning.",
                "Name the regions whole tumor, tumor core, enhancing tumor (and NEH), or add "
                '"label_scheme": "<scheme>" to dataset.json to say what the values mean.',
            )
        values = value if isinstance(value, list | tuple) else [value]
        for v in values:
            members.setdefault(int(v), set()).add(tag)
    to_ours: dict[int, int] = {0: BACKGROUND}
    for value, tags in sorted(members.items()):
        if value == 0:
            continue
        for tag, ours in (("ET", ET), ("NEH", NEH), ("NC", NC), ("ED", ED), ("TC", NC), ("WT", ED)):
            if tag in tags:
                to_ours[value] = ours
                break
    return _scheme(
        to_ours,
        core=min((n for n, o in to_ours.items() if o == NC), default=0),
        name=f"nnunet-regions:{path.parent.name}",
        description=f"region-based labels declared in {path}",
    )


def dataset_label_scheme(meta: Mapping[str, Any], source: str | Path) -> LabelScheme | None:
    """What the label values of an nnU-Net dataset mean, as a nehmap label scheme.

    In order: a consensus training set (:func:`is_consensus_dataset`) -> None (its label
    files are probability levels, not tissue labels); an explicit ``label_scheme`` naming
    one of nehmap's schemes; region-based labels (:func:`region_label_scheme`); plain
    labels by name (:func:`nnunet_label_scheme`).

    Parameters
    ----------
    meta : mapping
        The parsed ``dataset.json``.
    source : path
        The ``dataset.json`` file (for messages).
    """
    if is_consensus_dataset(meta):
        return None
    labels = meta.get("labels") or {}
    declared = meta.get("label_scheme")
    if isinstance(declared, str) and declared.strip():
        try:
            return get_scheme(declared)
        except ValueError as exc:
            raise NehmapInputError(
                source,
                f"declares label_scheme {declared!r}, which nehmap does not know.",
                str(exc),
            ) from None
    if has_regions(labels):
        return region_label_scheme(labels, source)
    return nnunet_label_scheme(dict(labels), Path(source))


@dataclass(frozen=True)
class NnunetDataset:
    """A parsed ``dataset.json``.

    Attributes
    ----------
    root : Path
        The dataset folder.
    meta : dict
        The file's content.
    scheme : LabelScheme or None
        Meaning of the label values (None for a consensus training set).
    """

    root: Path
    meta: dict
    scheme: LabelScheme | None

    @property
    def is_consensus(self) -> bool:
        """True for a two-level NEH consensus training set."""
        return self.scheme is None

    @property
    def has_regions(self) -> bool:
        """Whether dataset.json asks for region-based training (a label given as 2+ values)."""
        return has_regions(self.meta.get("labels") or {})

    @property
    def file_ending(self) -> str:
        """Image file ending of the dataset (``.nii.gz`` unless dataset.json says otherwise)."""
        return str(self.meta.get("file_ending", FILE_ENDING))


def read_dataset_json(root: str | Path) -> NnunetDataset:
    """Read and interpret ``<root>/dataset.json``.

    Raises
    ------
    NehmapInputError
        When the file is missing, not JSON, lacks ``labels``, or its labels have no
        nehmap meaning.
    """
    root = Path(root)
    path = root / "dataset.json"
    if not path.is_file():
        raise NehmapInputError(
            root,
            "has no dataset.json, so it is not an nnU-Net v2 raw dataset.",
            "Give the dataset folder (DatasetXXX_Name, holding dataset.json and imagesTr).",
        )
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise NehmapInputError(path, f"is not valid JSON ({exc}).", "Fix the file.") from exc
    if not isinstance(meta, dict) or not isinstance(meta.get("labels"), dict):
        raise NehmapInputError(
            path,
            "has no labels entry.",
            'Add e.g. "labels": {"background": 0, "necrosis": 1, "edema": 2, "NEH": 3, '
            '"enhancing tumour": 4}.',
        )
    return NnunetDataset(root, meta, dataset_label_scheme(meta, path))


def write_dataset_json(root: str | Path, meta: Mapping[str, Any]) -> Path:
    """Write ``<root>/dataset.json`` atomically; returns its path."""
    return write_text_atomic(Path(root) / "dataset.json", json.dumps(meta, indent=2) + "\n")
