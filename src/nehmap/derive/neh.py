"""Pseudo-ground-truth NEH labels from two segmentations of the same scan.

The method's training data (the paper's section 1.1) were built by applying a model
trained on BraTS 2021 to BraTS 2018 scans and taking the necrosis it predicted outside
the enhancing tumour of the BraTS 2018 reference as non-enhancing hypercellular tumour
(NEH), after morphological filtering. nehmap implements that step as follows.

Inputs, both converted to nehmap labels (0 background, 1 NC, 2 ED, 3 NEH, 4 ET) and
on one grid:

- the *reference* segmentation ``R`` (BraTS 2018 style: 1 NCR/NET, 2 ED, 4 ET);
- the *second* segmentation ``S`` of the same scan (e.g. the prediction of a model
  trained on BraTS 2021). Its non-enhancing core is ``S in {NC, NEH}``, i.e. its
  native label 1 (NCR/NET) in every BraTS-style scheme.

Rule:

1. candidates ``C = S_core & (R == ED)``: the second segmentation's non-enhancing core
   outside the reference enhancing tumour (``R != ET``), outside the reference necrosis
   (``R != NC``) and inside the reference whole tumour, which leaves the reference
   edema. A second-segmentation core voxel inside the reference ET stays ET, inside the
   reference necrosis stays NC. With ``within_wt=False`` the candidates also include
   ``S_core & (R == background)`` (outside the reference whole tumour).
2. opening: ``C`` is opened (erosion then dilation) with a ball of radius
   ``opening_mm`` mm, built from the voxel spacing (an ellipsoid in voxels on
   anisotropic grids: offsets ``(i, j, k)`` with ``(i*sx)^2 + (j*sy)^2 + (k*sz)^2 <=
   r^2``). This removes structures thinner than about ``2 * opening_mm`` mm, typically
   the rims where two segmentations disagree on a boundary. A radius smaller than every
   voxel size gives a one-voxel element: no opening.
3. small components: connected components (26-connectivity) of the opened mask with a
   volume below ``min_volume_mm3`` mm^3 (voxel count times voxel volume) are dropped.
4. result: ``R`` with the surviving voxels set to NEH (3). Everything else is ``R``
   unchanged; NEH already present in ``R`` (a nehmap-labelled reference) is kept.

Why only inside the reference whole tumour (the default): NEH is tumour that does not
enhance and, by definition, lies within the abnormal T2/FLAIR signal; the reference WT
is the expert-reviewed extent of that signal. Where the second model calls necrosis
outside the reference WT, the two segmentations disagree on whether there is tumour
at all (a false positive of the second model or an annotation difference), not on what
kind of tumour it is. Keeping only edema -> NEH conversions leaves the reference's WT,
ET and necrosis exactly as annotated and changes nothing but the edema/NEH split (TC
grows by the NEH voxels, as NEH is tumour core). The voxels left out are counted
(``outside_wt``), and ``within_wt=False`` keeps them for experiments.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from nehmap.errors import CaseError, NehmapInputError, OutputError
from nehmap.io.atomic import write_text_atomic
from nehmap.io.case import DEFAULT_GRID_TOLERANCE_MM, check_case_headers
from nehmap.io.image import image_suffix, strip_image_suffix
from nehmap.io.layouts import Collection, discover
from nehmap.io.modalities import LABEL, MODALITIES
from nehmap.io.nnunet import (
    DEFAULT_CHANNELS,
    ManifestWriter,
    NnunetWriter,
    check_same_grid,
    dataset_root,
    parse_channels,
    prepare_output,
    read_label_map,
    tissue_dataset_json,
)
from nehmap.labels import BACKGROUND, ED, LABEL_NAMES, NC, NEH, LabelScheme, get_scheme

DEFAULT_OPENING_MM = 1.0
"""Default radius (mm) of the ball of the morphological opening."""

DEFAULT_MIN_VOLUME_MM3 = 50.0
"""Default smallest NEH component kept (mm^3)."""

STAGES: tuple[str, ...] = ("second_core", "outside_wt", "candidates", "after_opening", "final")
"""Stages reported in the volume table, in order (see :class:`NehStats`)."""


# --------------------------------------------------------------------------- arrays


def _check_spacing(spacing: Sequence[float], ndim: int) -> tuple[float, ...]:
    values = tuple(float(s) for s in spacing)
    if len(values) != ndim or not all(math.isfinite(s) and s > 0 for s in values):
        raise ValueError(
            f"spacing {tuple(spacing)} must give one positive voxel size (mm) per axis of "
            f"the {ndim}D label map."
        )
    return values


def ball(radius_mm: float, spacing: Sequence[float]) -> np.ndarray:
    """A ball of ``radius_mm`` mm as a boolean structuring element on a ``spacing`` grid.

    Parameters
    ----------
    radius_mm : float
        Radius in mm (>= 0).
    spacing : sequence of float
        Voxel size in mm per array axis.

    Returns
    -------
    ndarray of bool, shape (2*h0+1, 2*h1+1, ...)
        True at the offsets ``o`` with ``sum((o * spacing)^2) <= radius_mm^2``, where
        ``h_i = floor(radius_mm / spacing_i)``. A radius below every voxel size gives a
        single True voxel.
    """
    if not math.isfinite(radius_mm) or radius_mm < 0:
        raise ValueError(f"radius_mm must be a finite number >= 0, got {radius_mm}.")
    sp = _check_spacing(spacing, len(tuple(spacing)))
    half = [int(math.floor(radius_mm / s * (1 + 1e-9))) for s in sp]
    axes = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
    dist2 = sum((np.asarray(a, dtype=float) * s) ** 2 for a, s in zip(axes, sp, strict=True))
    return np.asarray(dist2 <= radius_mm**2 * (1 + 1e-9))


def remove_small_components(
    mask: np.ndarray, spacing: Sequence[float], min_volume_mm3: float
) -> tuple[np.ndarray, int, int]:
    """Drop the connected components (26-connectivity in 3D) smaller than a volume.

    Parameters
    ----------
    mask : ndarray of bool, shape (X, Y, Z)
        The mask.
    spacing : sequence of float
        Voxel size in mm per axis.
    min_volume_mm3 : float
        Smallest volume (mm^3) a component needs to be kept; 0 keeps everything.

    Returns
    -------
    kept : ndarray of bool
        The mask without the small components.
    n_kept, n_removed : int
        Number of components kept and removed.
    """
    if not math.isfinite(min_volume_mm3) or min_volume_mm3 < 0:
        raise ValueError(f"min_volume_mm3 must be a finite number >= 0, got {min_volume_mm3}.")
    sp = _check_spacing(spacing, mask.ndim)
    structure = ndimage.generate_binary_structure(mask.ndim, mask.ndim)
    components, n = ndimage.label(np.asarray(mask, dtype=bool), structure=structure)
    if n == 0:
        return np.zeros(mask.shape, dtype=bool), 0, 0
    sizes = np.bincount(components.ravel(), minlength=n + 1)
    keep = sizes * math.prod(sp) >= min_volume_mm3 * (1 - 1e-9)
    keep[0] = False
    n_kept = int(np.count_nonzero(keep[1:]))
    return keep[components], n_kept, n - n_kept


@dataclass(frozen=True)
class NehStats:
    """Voxel counts of the derivation of one case (volumes in mm^3 via the voxel volume).

    Attributes
    ----------
    voxel_volume_mm3 : float
        Volume of one voxel (mm^3).
    second_core : int
        Voxels of the second segmentation's non-enhancing core (NC or NEH).
    outside_wt : int
        Of those, voxels outside the reference whole tumour (dropped unless
        ``within_wt=False``).
    candidates : int
        NEH candidates before cleaning.
    after_opening : int
        Candidates left after the morphological opening.
    final : int
        NEH voxels added (after removing small components).
    components_kept, components_removed : int
        Connected components kept and removed by the volume filter.
    """

    voxel_volume_mm3: float
    second_core: int
    outside_wt: int
    candidates: int
    after_opening: int
    final: int
    components_kept: int
    components_removed: int

    def volume_mm3(self, stage: str) -> float:
        """Volume (mm^3) of a stage (one of :data:`STAGES`)."""
        if stage not in STAGES:
            raise ValueError(f"Unknown stage {stage!r}; use one of {', '.join(STAGES)}.")
        return getattr(self, stage) * self.voxel_volume_mm3

    def rows(self, case_id: str) -> list[dict[str, Any]]:
        """Tidy rows ``case, stage, voxels, volume_mm3``, one per stage."""
        return [
            {
                "case": case_id,
                "stage": stage,
                "voxels": getattr(self, stage),
                "volume_mm3": self.volume_mm3(stage),
            }
            for stage in STAGES
        ]


def _check_labels(labels: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind != "f" or not np.array_equal(arr, np.round(arr)):
            raise ValueError(f"{what} must hold integer nehmap labels, got dtype {arr.dtype}.")
    bad = [v.item() for v in np.unique(arr) if v.item() not in LABEL_NAMES]
    if bad:
        raise ValueError(
            f"{what} holds values {bad} that are not nehmap labels "
            f"({', '.join(f'{k} {v}' for k, v in LABEL_NAMES.items())}); convert it with "
            "nehmap.labels.to_nehmap first."
        )
    return arr.astype(np.uint8, copy=False)


def derive_neh(
    reference_labels: np.ndarray,
    second_labels: np.ndarray,
    spacing: Sequence[float],
    opening_mm: float = DEFAULT_OPENING_MM,
    min_volume_mm3: float = DEFAULT_MIN_VOLUME_MM3,
    *,
    within_wt: bool = True,
) -> tuple[np.ndarray, NehStats]:
    """Add NEH to a reference segmentation from a second segmentation (see the module).

    Parameters
    ----------
    reference_labels : ndarray of int, shape (X, Y, Z)
        Reference segmentation in nehmap labels (0 bg, 1 NC, 2 ED, 3 NEH, 4 ET).
    second_labels : ndarray of int, shape (X, Y, Z)
        Second segmentation of the same scan, nehmap labels, same grid. Its
        non-enhancing core is NC or NEH.
    spacing : sequence of 3 float
        Voxel size in mm per array axis.
    opening_mm : float
        Radius (mm) of the ball of the opening; 0 skips the opening.
    min_volume_mm3 : float
        Smallest NEH component kept (mm^3); 0 keeps all.
    within_wt : bool
        Keep only candidates inside the reference whole tumour (reference edema). False
        also converts reference background.

    Returns
    -------
    labels : ndarray of uint8, shape (X, Y, Z)
        The reference labels with the surviving candidates set to NEH (3).
    stats : NehStats
        Voxel counts per stage.

    Raises
    ------
    ValueError
        Arrays of different shapes, values that are not nehmap labels, a bad spacing
        or negative parameters.

    Examples
    --------
    >>> ref = np.zeros((9, 9, 9), np.uint8); ref[1:8, 1:8, 1:8] = 2
    >>> sec = np.zeros_like(ref); sec[2:7, 2:7, 2:7] = 1
    >>> labels, stats = derive_neh(ref, sec, (1, 1, 1), opening_mm=0, min_volume_mm3=0)
    >>> int((labels == 3).sum()), stats.final
    (125, 125)
    """
    ref = _check_labels(reference_labels, "reference_labels")
    sec = _check_labels(second_labels, "second_labels")
    if ref.shape != sec.shape:
        raise ValueError(
            f"reference_labels {ref.shape} and second_labels {sec.shape} differ in shape: "
            "put both segmentations on one grid first."
        )
    sp = _check_spacing(spacing, ref.ndim)
    element = ball(opening_mm, sp)
    if not math.isfinite(min_volume_mm3) or min_volume_mm3 < 0:
        raise ValueError(f"min_volume_mm3 must be a finite number >= 0, got {min_volume_mm3}.")

    second_core = (sec == NC) | (sec == NEH)
    outside = second_core & (ref == BACKGROUND)
    allowed = ref == ED
    if not within_wt:
        allowed = allowed | (ref == BACKGROUND)
    candidates = second_core & allowed

    if element.size > 1 and candidates.any():
        opened = ndimage.binary_opening(candidates, structure=element)
    else:
        opened = candidates.copy()
    if min_volume_mm3 > 0:
        final, n_kept, n_removed = remove_small_components(opened, sp, min_volume_mm3)
    else:
        final = opened
        n_kept = int(
            ndimage.label(opened, ndimage.generate_binary_structure(ref.ndim, ref.ndim))[1]
        )
        n_removed = 0

    out = ref.copy()
    out[final] = NEH
    stats = NehStats(
        voxel_volume_mm3=math.prod(sp),
        second_core=int(np.count_nonzero(second_core)),
        outside_wt=int(np.count_nonzero(outside)),
        candidates=int(np.count_nonzero(candidates)),
        after_opening=int(np.count_nonzero(opened)),
        final=int(np.count_nonzero(final)),
        components_kept=n_kept,
        components_removed=n_removed,
    )
    return out, stats


# --------------------------------------------------------------------------- second segmentations


class SecondSegmentations:
    """Finds each case's second segmentation.

    ``root`` may be:

    - a folder of label maps named ``<case>.nii.gz`` or ``<case>_seg*.nii.gz`` /
      ``<case>-seg*`` (any image suffix), directly inside it or in subfolders up to
      three levels deep (e.g. ``nehmap segment`` outputs ``<case>/<case>_seg-<model>``
      or a BraTS-style collection); or
    - a collection :func:`nehmap.io.discover` reads (a manifest CSV, an nnU-Net dataset,
      or a folder in a public layout whose cases have label files); each case's scheme
      then comes from the collection.

    Parameters
    ----------
    root : path
        Folder, collection or manifest.
    scheme : str, optional
        Label scheme of the second segmentations. Overrides the collection's; for a
        folder of label maps the default is ``brats2021``.
    pattern : str, optional
        File name relative to ``root`` with ``{case}`` for the case id (e.g.
        ``"{case}/{case}_seg-unetrpp.nii.gz"``), when the automatic search is ambiguous.
    """

    DEFAULT_SCHEME = "brats2021"
    _MAX_DEPTH = 3

    def __init__(
        self, root: str | Path, *, scheme: str | None = None, pattern: str | None = None
    ) -> None:
        self.root = Path(root)
        if not self.root.exists():
            raise NehmapInputError(self.root, "does not exist.", "Check the --second path.")
        self.scheme = get_scheme(scheme) if scheme else None
        self.pattern = pattern
        if pattern is not None and "{case}" not in pattern:
            raise ValueError(f"--second-pattern {pattern!r} must contain {{case}}.")
        self.collection: Collection | None = None
        self._files: list[Path] = []
        if pattern is None:
            self.collection = self._as_collection()
            if self.collection is None:
                self._files = self._label_files()

    def _as_collection(self) -> Collection | None:
        if self.root.is_file() or (self.root / "dataset.json").is_file():
            return discover(self.root)
        try:
            collection = discover(self.root)
        except NehmapInputError:
            return None
        if any(LABEL in c.files for c in collection):
            return collection
        return None

    def _label_files(self) -> list[Path]:
        found: list[Path] = []
        stack = [(self.root, 0)]
        while stack:
            folder, depth = stack.pop()
            for entry in sorted(folder.iterdir()):
                if entry.name.startswith("."):
                    continue
                if entry.is_dir():
                    if depth < self._MAX_DEPTH:
                        stack.append((entry, depth + 1))
                elif image_suffix(entry.name) is not None:
                    found.append(entry)
        return sorted(found)

    def describe(self) -> str:
        """One line saying where second segmentations are looked for."""
        if self.pattern is not None:
            return f"{self.root / self.pattern}"
        if self.collection is not None:
            return f"{self.root} ({self.collection.layout} collection)"
        return f"{self.root} (label maps named <case>.nii.gz or <case>_seg*)"

    def find(self, case_id: str) -> tuple[Path, LabelScheme]:
        """The second segmentation of ``case_id`` and its label scheme.

        Raises
        ------
        CaseError
            When there is none, or (folder search) several candidates.
        """
        default = self.scheme or get_scheme(self.DEFAULT_SCHEME)
        if self.pattern is not None:
            path = self.root / self.pattern.replace("{case}", case_id)
            if not path.is_file():
                raise CaseError(
                    case_id,
                    path,
                    "has no second segmentation at this path (from --second-pattern).",
                    "Add the file, fix the pattern, or leave the case out of the reference.",
                )
            return path, default
        if self.collection is not None:
            files = next((c for c in self.collection if c.case_id == case_id), None)
            if files is None or LABEL not in files.files:
                raise CaseError(
                    case_id,
                    self.root,
                    f"has no second segmentation in {self.describe()}.",
                    "Add the case's label map to SECOND, or remove the case from the reference.",
                )
            scheme = self.scheme or get_scheme(files.label_scheme or self.DEFAULT_SCHEME)
            return files.files[LABEL], scheme
        pattern = re.compile(rf"^{re.escape(case_id)}([_-]seg.*)?$", re.IGNORECASE)
        matches = [p for p in self._files if pattern.match(strip_image_suffix(p.name))]
        if not matches:
            raise CaseError(
                case_id,
                self.root,
                f"has no second segmentation in {self.describe()}.",
                f"Add {case_id}.nii.gz (or {case_id}_seg.nii.gz) to SECOND, or remove the case "
                "from the reference.",
            )
        if len(matches) > 1:
            names = ", ".join(str(p.relative_to(self.root)) for p in matches[:4])
            raise CaseError(
                case_id,
                self.root,
                f"has several possible second segmentations ({names}).",
                "Choose one with --second-pattern, e.g. '{case}/{case}_seg-unetrpp.nii.gz'.",
            )
        return matches[0], default


# --------------------------------------------------------------------------- datasets


OUTPUT_FORMATS: tuple[str, ...] = ("nnunet", "manifest")
"""Formats :func:`derive_dataset` writes (see :func:`default_format`)."""

VOLUMES_CSV = "neh_volumes.csv"
"""File name of the tidy per-case volume table."""

RECORD_JSON = "derive-neh.json"
"""File name of the record of the parameters and per-case results."""


def default_format(layout: str) -> str:
    """Output format for an input layout.

    The labels are written in nehmap's convention (with NEH). The public layouts'
    schemes have no NEH label, so their derived datasets are written as nnU-Net
    datasets (``dataset.json`` names the labels, so nehmap and nnU-Net both read them);
    a manifest input gives a manifest (``label_scheme`` nehmap).
    """
    return "manifest" if layout == "manifest" else "nnunet"


@dataclass
class DeriveReport:
    """What :func:`derive_dataset` did.

    Attributes
    ----------
    root : Path
        Output folder.
    output_format : str
        ``nnunet`` or ``manifest``.
    cases : list of str
        Cases written.
    failures : list of (str, str)
        Case id and message of each case not written.
    stats : dict
        Case id -> :class:`NehStats`.
    placed : dict
        How many images were placed each way (hard, symlink, copy, kept, converted).
    index, volumes, record : Path or None
        ``dataset.json`` / ``manifest.csv``, the volume CSV, the JSON record.
    notes : list of str
        Remarks (e.g. files left over from an earlier run).
    """

    root: Path
    output_format: str
    cases: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    stats: dict[str, NehStats] = field(default_factory=dict)
    placed: dict[str, int] = field(default_factory=dict)
    index: Path | None = None
    volumes: Path | None = None
    record: Path | None = None
    notes: list[str] = field(default_factory=list)


def volume_table(stats: Mapping[str, NehStats]):
    """Tidy table (pandas DataFrame) ``case, stage, voxels, volume_mm3``."""
    import pandas as pd

    rows = [row for case_id in sorted(stats) for row in stats[case_id].rows(case_id)]
    return pd.DataFrame(rows, columns=["case", "stage", "voxels", "volume_mm3"])


def derive_dataset(
    reference: Collection | str | Path,
    second: SecondSegmentations | str | Path,
    out: str | Path,
    *,
    opening_mm: float = DEFAULT_OPENING_MM,
    min_volume_mm3: float = DEFAULT_MIN_VOLUME_MM3,
    within_wt: bool = True,
    output_format: str | None = None,
    dataset_id: int | None = None,
    name: str | None = None,
    channels: Sequence[str] = DEFAULT_CHANNELS,
    link: str = "hard",
    overwrite: bool = False,
    progress: bool = False,
    grid_tolerance_mm: float = DEFAULT_GRID_TOLERANCE_MM,
) -> DeriveReport:
    """Derive the 4-label (NEH) dataset of a collection; see the module for the rule.

    Parameters
    ----------
    reference : Collection or path
        Cases with their reference segmentations (read in the collection's scheme).
    second : SecondSegmentations or path
        The second segmentations (a path is read with the default scheme, brats2021).
    out : path
        Output folder (with ``dataset_id`` and ``name`` in nnU-Net format:
        ``out/DatasetXXX_Name``).
    opening_mm, min_volume_mm3, within_wt
        See :func:`derive_neh` (mm, mm^3).
    output_format : {"nnunet", "manifest"}, optional
        Default: :func:`default_format` of the reference layout.
    dataset_id, name : optional
        nnU-Net dataset id and name (nnunet format only).
    channels : sequence of str
        nnU-Net channel order.
    link : {"hard", "symlink", "copy"}
        How the images are placed (:func:`nehmap.io.nnunet.place_file`).
    overwrite : bool
        Allow writing into a non-empty output folder.
    progress : bool
        Progress bar over the cases.
    grid_tolerance_mm : float
        Largest distance (mm) between the grids of a case's files.

    Returns
    -------
    DeriveReport
        Written cases, failures (a case missing in SECOND, label values outside the
        declared scheme, grids that differ, ...), per-case statistics and file paths.
    """
    col = reference if isinstance(reference, Collection) else discover(reference)
    sec = second if isinstance(second, SecondSegmentations) else SecondSegmentations(second)
    fmt = output_format or default_format(col.layout)
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"output format must be one of {', '.join(OUTPUT_FORMATS)}, got {fmt!r}.")
    if fmt == "manifest" and dataset_id is not None:
        raise ValueError("--dataset-id and --name apply to the nnunet format only.")
    order = parse_channels(channels)
    ball(opening_mm, (1.0, 1.0, 1.0))  # check the parameters before touching the disk
    if not math.isfinite(min_volume_mm3) or min_volume_mm3 < 0:
        raise ValueError(f"min_volume_mm3 must be a finite number >= 0, got {min_volume_mm3}.")
    root = dataset_root(out, dataset_id, name)
    prepare_output(root, sources=[col.root, sec.root], overwrite=overwrite)
    writer: NnunetWriter | ManifestWriter
    if fmt == "nnunet":
        writer = NnunetWriter(root, link=link, channels=order)
    else:
        writer = ManifestWriter(root, link=link)
    report = DeriveReport(root, fmt)
    cases = col.cases
    if progress:
        import sys

        from tqdm import tqdm

        cases = tqdm(cases, desc="derive-neh", unit="case", file=sys.stderr)
    for files in cases:
        case_id = files.case_id
        try:
            grid = check_case_headers(files, grid_tolerance_mm)
            if LABEL not in files.files:
                raise CaseError(
                    case_id,
                    None,
                    "has no reference segmentation.",
                    "Add the case's label file or remove the case from the reference.",
                )
            ref, ref_grid = read_label_map(
                files.files[LABEL], files.label_scheme or "nehmap", case_id=case_id
            )
            check_same_grid(
                case_id,
                ref_grid,
                grid,
                what="reference segmentation",
                reference_what=f"{MODALITIES[0]} image",
                tolerance_mm=grid_tolerance_mm,
            )
            second_path, second_scheme = sec.find(case_id)
            if any(second_path.resolve() == p.resolve() for p in files.paths):
                raise CaseError(
                    case_id,
                    second_path,
                    "the second segmentation is one of the reference case's own files.",
                    "Point --second at the other model's predictions.",
                )
            second_labels, second_grid = read_label_map(second_path, second_scheme, case_id=case_id)
            check_same_grid(
                case_id,
                second_grid,
                ref_grid,
                what="second segmentation",
                reference_what="reference segmentation",
                tolerance_mm=grid_tolerance_mm,
            )
            labels, stats = derive_neh(
                ref,
                second_labels,
                grid.spacing,
                opening_mm,
                min_volume_mm3,
                within_wt=within_wt,
            )
            writer.add(
                case_id,
                {key: files.files[key] for key in MODALITIES},
                labels,
                grid,
                inputs=[*files.paths, second_path],
            )
        except (NehmapInputError, OutputError, OSError, ValueError) as exc:
            report.failures.append((case_id, str(exc)))
            continue
        report.cases.append(case_id)
        report.stats[case_id] = stats
    report.placed = dict(writer.placed)
    if isinstance(writer, NnunetWriter):
        meta = tissue_dataset_json(order, len(writer.labelled), name=name or root.name)
        meta["description"] = (
            "NEH pseudo-ground truth derived by nehmap derive-neh from "
            f"{col.root} and {sec.root}. " + meta["description"]
        )
        report.index = writer.finish(meta)
        report.notes.extend(writer.stale_notes())
    else:
        report.index = writer.finish()
    buffer = io.StringIO()
    volume_table(report.stats).to_csv(buffer, index=False)
    report.volumes = write_text_atomic(root / VOLUMES_CSV, buffer.getvalue())
    record = {
        "reference": str(col.root),
        "reference_layout": col.layout,
        "second": sec.describe(),
        "parameters": {
            "opening_mm": opening_mm,
            "min_volume_mm3": min_volume_mm3,
            "within_wt": within_wt,
            "connectivity": "26 (faces, edges and corners)",
            "output_format": fmt,
            "channels": list(order),
            "link": link,
        },
        "rule": (
            "NEH = second non-enhancing core (NC/NEH) within the reference edema"
            + ("" if within_wt else " or reference background")
            + ", opened with a ball of opening_mm mm, components below min_volume_mm3 removed"
        ),
        "cases": {cid: asdict(s) for cid, s in sorted(report.stats.items())},
        "failures": dict(report.failures),
    }
    report.record = write_text_atomic(root / RECORD_JSON, json.dumps(record, indent=2) + "\n")
    return report
