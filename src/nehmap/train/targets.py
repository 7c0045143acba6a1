"""What a network learns to output: the target classes, read from a case's label file.

The target follows the network's classes (its model card's ``label_scheme``):

``tissue`` (``paunet``, ``unetrpp``; label scheme ``nehmap``)
    The target is nehmap's label map: class index = nehmap label (0 background, 1 NC,
    2 ED, 3 NEH, 4 ET). Label files are read with :func:`nehmap.io.load_case`, which
    converts the collection's scheme (BraTS, UPenn, RHUH, nnU-Net ``dataset.json``...)
    and rejects values outside it. Validation Dice: WT, TC, ET and NEH.

``consensus`` (``unetrpp-consensus``; label scheme ``neh-consensus``)
    The target is the two-level NEH consensus map: 0 background, 1 NEH-low,
    2 NEH-high, as fused by :mod:`nehmap.fusion` and written by
    ``nehmap consensus-dataset`` (an nnU-Net dataset whose ``dataset.json`` declares
    ``{"background": 0, "NEH-low": 1, "NEH-high": 2}`` / ``"label_scheme":
    "neh-consensus"``; :func:`nehmap.io.discover` files its label maps under the
    case's ``neh_levels`` key, never as tissue labels). The level map is read from
    ``neh_levels``, or else from the case's ordinary label file (``seg``, for level maps
    in any other layout); its values are taken as they are (no scheme conversion), on
    the images' grid, and anything but 0, 1, 2 is refused. Validation Dice: each of
    the two levels.

Foreground sampling centres a share of the patches on ``foreground`` voxels (any
tumour), and a share of those on ``focus`` voxels: NEH for the tissue target, NEH-high
for the consensus target.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np

from nehmap.errors import CaseError, NehmapInputError
from nehmap.io import Case, CaseFiles, load_case
from nehmap.io.modalities import LABEL, MODALITIES
from nehmap.labels import NEH, REGIONS, TUMOUR_LABELS

CONSENSUS_SCHEME = "neh-consensus"


@dataclass(frozen=True)
class TargetSpec:
    """The classes a network is trained on and how they are evaluated.

    Attributes
    ----------
    mode : str
        ``"tissue"`` or ``"consensus"``.
    class_names : tuple of str
        Class names in output order (class index = target value).
    regions : mapping of str to tuple of int
        Validation regions: name -> target values forming the region.
    foreground : tuple of int
        Target values that count as tumour for patch sampling.
    focus : tuple of int
        Target values sampled in particular (NEH).
    """

    mode: str
    class_names: tuple[str, ...]
    regions: Mapping[str, tuple[int, ...]]
    foreground: tuple[int, ...]
    focus: tuple[int, ...]
    label_keys: tuple[str, ...] = (LABEL,)

    @property
    def n_classes(self) -> int:
        """Number of output classes, background included."""
        return len(self.class_names)

    def label_file(self, files: CaseFiles) -> Path | None:
        """The case's file holding this target (the first of :attr:`label_keys` found)."""
        for key in self.label_keys:
            path = files.files.get(key) or files.extras.get(key)
            if path is not None:
                return Path(path)
        return None

    def check_labelled(self, cases: Sequence[CaseFiles]) -> None:
        """Refuse a training collection in which a case has no file for this target.

        Raises
        ------
        CaseError
            Naming the first such case, its files, and how many cases lack labels; for a
            tissue target on a consensus set, saying to train the consensus model.
        """
        missing = [c for c in cases if self.label_file(c) is None]
        if not missing:
            return
        first = missing[0]
        found = ", ".join(str(p) for p in first.paths) or "no files"
        if self.mode == "tissue" and "neh_levels" in first.extras:
            raise CaseError(
                first.case_id,
                first.extras["neh_levels"],
                "is a two-level NEH consensus map (0/1/2), not a tissue label map: the "
                "collection is a consensus training set.",
                "Train --model unetrpp-consensus on it, or give tissue labels (0-4) for "
                "paunet/unetrpp.",
            )
        listed = ", ".join(c.case_id for c in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise CaseError(
            first.case_id,
            None,
            f"has no label file (found: {found}); {len(missing)} of {len(cases)} cases of the "
            f"training collection have none ({listed}).",
            "Every training case needs its segmentation (e.g. <ID>_seg.nii.gz, or "
            "labelsTr/<ID>.nii.gz in an nnU-Net dataset): add the label files, or move the "
            "unlabelled cases out of the training folder.",
        )

    def load(self, files: CaseFiles) -> tuple[Case, np.ndarray]:
        """Read a case and its target map.

        Returns
        -------
        (Case, numpy.ndarray)
            The case (images loaded) and the target, uint8 (X, Y, Z), canonical RAS+,
            values in ``0 .. n_classes - 1``.

        Raises
        ------
        CaseError
            A case without a label file (naming the case and its files), label values
            outside the scheme, or any problem :func:`nehmap.io.load_case` reports.
        """
        path = self.label_file(files)
        if path is None:
            self.check_labelled([files])
        assert path is not None
        if self.mode == "tissue":
            case = load_case(files, require_labels=True, load_rcbv=False)
            assert case.labels is not None
            return case, case.labels.astype(np.uint8, copy=False)
        from nehmap.derive.consensus import read_levels
        from nehmap.io.nnunet import check_same_grid

        case = load_case(files, load_labels=False, load_rcbv=False)
        try:
            levels, grid = read_levels(path, case_id=files.case_id)
        except NehmapInputError as exc:
            if isinstance(exc, CaseError):
                raise
            raise CaseError(files.case_id, exc.path, exc.problem, exc.hint) from exc
        check_same_grid(
            files.case_id,
            grid,
            case.grid,
            what="NEH level map",
            reference_what=f"{MODALITIES[0]} image",
        )
        return case, levels


TISSUE = TargetSpec(
    mode="tissue",
    class_names=("background", "NC", "ED", "NEH", "ET"),
    regions=MappingProxyType(
        {"WT": REGIONS["WT"], "TC": REGIONS["TC"], "ET": REGIONS["ET"], "NEH": (NEH,)}
    ),
    foreground=TUMOUR_LABELS,
    focus=(NEH,),
)

CONSENSUS = TargetSpec(
    mode="consensus",
    class_names=("background", "NEH-low", "NEH-high"),
    regions=MappingProxyType({"low": (1,), "high": (2,)}),
    foreground=(1, 2),
    focus=(2,),
    label_keys=("neh_levels", LABEL),
)


def target_for(model_name: str, requested: str = "auto") -> TargetSpec:
    """The target of a registered network: from its label scheme, or as requested.

    Parameters
    ----------
    model_name : str
        Registry name of the network.
    requested : str
        ``"auto"``, ``"tissue"`` or ``"consensus"``.

    Raises
    ------
    ValueError
        If the requested target does not fit the network's output classes.
    """
    from nehmap.models.registry import get_spec

    spec = get_spec(model_name)
    natural = CONSENSUS if spec.label_scheme == CONSENSUS_SCHEME else TISSUE
    if requested in ("auto", natural.mode):
        return natural
    raise ValueError(
        f"--target {requested} does not fit {model_name!r}, whose classes are "
        f"{list(spec.class_names)} (target {natural.mode!r})."
    )
