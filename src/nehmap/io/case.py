"""Loading a case's images, checking them, and holding them as canonical arrays.

A loaded :class:`Case` holds the four structural modalities (float32, canonical RAS+),
its label map converted to nehmap labels (uint8), and its rCBV map, all on one grid.
:func:`load_case` rejects, with a message naming the file, the problem and what to do:

- a case id too long for its output file names (:data:`MAX_CASE_ID_BYTES`);
- a missing modality, or a file that does not exist or cannot be read (truncated);
- a non-3D image (e.g. a 4D DSC series given as rCBV);
- NaN or infinite voxels, an all-zero or constant image, a brain (voxels non-zero in
  any modality) of fewer than :data:`MIN_BRAIN_VOXELS` voxels, i.e. nothing left after
  cropping to the brain;
- everything :mod:`nehmap.io.checks` refuses from the file and its header;
- modalities on different grids (shape, or affine beyond ``grid_tolerance_mm``; the
  message says how far apart, in mm);
- label values outside the declared scheme, non-integer labels, a label map on
  another grid.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nehmap.errors import CaseError, NehmapInputError
from nehmap.io.collection import CaseFiles, Collection
from nehmap.io.grid_check import check_same_grid
from nehmap.io.image import DEFAULT_GRID_TOLERANCE_MM, Grid, Image, read_grid, read_image
from nehmap.io.modalities import LABEL, MODALITIES
from nehmap.labels import get_scheme, to_nehmap, unexpected_values

MAX_CASE_ID_BYTES = 180
"""Longest case id (bytes): outputs add up to ~60 bytes and must stay under 255."""

MIN_BRAIN_VOXELS = 64
"""Fewest voxels the brain (non-zero in any modality) may hold: less is no brain."""


@dataclass
class Case:
    """A loaded, checked case.

    Attributes
    ----------
    files : CaseFiles
        Where the case came from.
    images : dict[str, np.ndarray]
        Modality -> float32 array (X, Y, Z), canonical RAS+.
    grid : Grid
        Geometry of the source files (results are written back on it).
    labels : np.ndarray | None
        nehmap label map, uint8 (X, Y, Z), or None.
    rcbv : np.ndarray | None
        rCBV map, float32 (X, Y, Z), or None.
    """

    files: CaseFiles
    images: dict[str, np.ndarray]
    grid: Grid
    labels: np.ndarray | None = None
    rcbv: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def case_id(self) -> str:
        """Identifier of the case (from its files)."""
        return self.files.case_id

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm per array axis."""
        return self.grid.spacing

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape ``(X, Y, Z)`` of the canonical (RAS) arrays."""
        return self.grid.canonical_shape

    @property
    def affine(self) -> np.ndarray:
        """Voxel-to-world (RAS, mm) affine of the canonical arrays."""
        return self.grid.canonical_affine

    @property
    def inputs(self) -> list[Path]:
        """The case's input files (outputs must never overwrite them)."""
        return self.files.paths

    def stack(self, modalities: Iterable[str] = MODALITIES) -> np.ndarray:
        """The modalities as one float32 array of shape (C, X, Y, Z), in the given order."""
        return np.stack([self.images[m] for m in modalities]).astype(np.float32, copy=False)

    def brain_mask(self) -> np.ndarray:
        """Voxels where any modality is non-zero (skull-stripped inputs), bool (X, Y, Z)."""
        mask = np.zeros(self.shape, dtype=bool)
        for arr in self.images.values():
            mask |= arr != 0
        return mask


def _as_case_error(case_id: str, exc: NehmapInputError) -> CaseError:
    return CaseError(case_id, exc.path, exc.problem, exc.hint)


def check_case_headers(
    files: CaseFiles, grid_tolerance_mm: float = DEFAULT_GRID_TOLERANCE_MM
) -> Grid:
    """Check a case from its file headers only (fast): presence, readability, grids.

    Returns
    -------
    Grid
        The grid of the first modality.

    Raises
    ------
    CaseError
        On the first problem found.
    """
    case_id = files.case_id
    id_bytes = len(os.fsencode(case_id))
    if id_bytes > MAX_CASE_ID_BYTES:
        raise CaseError(
            case_id,
            next(iter(files.files.values()), None),
            f"the case id is {id_bytes} bytes long: output names such as "
            f"<id>_neh-uncertainty.nii.gz would pass the file system's limit of 255 bytes "
            f"(case ids up to {MAX_CASE_ID_BYTES} bytes are accepted).",
            "Rename the case's files with a shorter id.",
        )
    if files.problems:
        raise CaseError(case_id, None, "; ".join(files.problems) + ".", "Fix the listing.")
    missing = files.missing()
    if missing:
        present = ", ".join(f"{k}={p.name}" for k, p in files.files.items()) or "nothing"
        folder = next(iter(files.files.values())).parent if files.files else None
        raise CaseError(
            case_id,
            folder,
            f"missing modality {', '.join(missing)} (found: {present}).",
            "Add the missing file(s) with the collection's naming, or list them in a manifest.",
        )
    ref_name = MODALITIES[0]
    try:
        ref = read_grid(files.files[ref_name])
        for key in (*MODALITIES[1:], LABEL, "rcbv"):
            if key in files.files:
                grid = read_grid(files.files[key])
                check_same_grid(
                    case_id,
                    grid,
                    ref,
                    what="label map" if key == LABEL else key,
                    reference_what=ref_name,
                    tolerance_mm=grid_tolerance_mm,
                )
    except NehmapInputError as exc:
        if isinstance(exc, CaseError):
            raise
        raise _as_case_error(case_id, exc) from exc
    return ref


def load_case(
    files: CaseFiles,
    *,
    require_labels: bool = False,
    load_labels: bool = True,
    load_rcbv: bool = True,
    grid_tolerance_mm: float = DEFAULT_GRID_TOLERANCE_MM,
) -> Case:
    """Read and check a case (see the module docstring for what is rejected).

    Parameters
    ----------
    files : CaseFiles
        The case's files, from :func:`nehmap.io.discover`.
    require_labels : bool
        Raise if the case has no label map.
    load_labels : bool
        Read the label map when there is one.
    load_rcbv : bool
        Read the rCBV map when there is one.
    grid_tolerance_mm : float
        Largest allowed distance between the modalities' grids.

    Raises
    ------
    CaseError
        The message names the file and the problem.
    """
    case_id = files.case_id
    check_case_headers(files, grid_tolerance_mm)
    if require_labels and LABEL not in files.files:
        raise CaseError(
            case_id,
            None,
            "has no label map, but labels are needed here.",
            "Add the segmentation file or remove the case from the set.",
        )
    images: dict[str, np.ndarray] = {}
    grid: Grid | None = None
    try:
        for key in MODALITIES:
            img = read_image(files.files[key], kind=f"{key} image")
            if not np.any(img.array):
                raise CaseError(
                    case_id, img.path, f"{key} image is all zero.", "Replace it with the real scan."
                )
            _check_not_constant(case_id, key, img)
            images[key] = img.array
            grid = grid or img.grid
        assert grid is not None
        _check_brain(case_id, files, images)
        labels = None
        if load_labels and LABEL in files.files:
            labels = _read_labels(case_id, files, grid)
        rcbv = None
        if load_rcbv and "rcbv" in files.files:
            rcbv_img = read_image(files.files["rcbv"], kind="rCBV map")
            if not np.any(rcbv_img.array):
                raise CaseError(
                    case_id,
                    rcbv_img.path,
                    "rCBV map is all zero.",
                    "Check the perfusion processing for this case.",
                )
            rcbv = rcbv_img.array
    except CaseError:
        raise
    except NehmapInputError as exc:
        raise _as_case_error(case_id, exc) from exc
    return Case(files, images, grid, labels, rcbv, notes=list(files.notes))


def _check_not_constant(case_id: str, key: str, img: Image) -> None:
    values = img.array[img.array != 0]
    if values.size and values.min() == values.max():
        raise CaseError(
            case_id,
            img.path,
            f"{key} image is constant: every non-zero voxel is {values.flat[0]:g}.",
            "Replace it with the real scan (this looks like a placeholder or a failed export).",
        )


def _check_brain(case_id: str, files: CaseFiles, images: dict[str, np.ndarray]) -> None:
    mask = np.zeros(next(iter(images.values())).shape, dtype=bool)
    for arr in images.values():
        mask |= arr != 0
    n = int(mask.sum())
    if n < MIN_BRAIN_VOXELS:
        folder = files.files[MODALITIES[0]].parent
        raise CaseError(
            case_id,
            folder,
            f"the brain is empty: only {n} voxel(s) are non-zero in any modality (at least "
            f"{MIN_BRAIN_VOXELS} needed), so nothing is left after cropping to the brain.",
            "Check the skull stripping and the export of this case.",
        )


def _read_labels(case_id: str, files: CaseFiles, grid: Grid) -> np.ndarray:
    path = files.files[LABEL]
    img: Image = read_image(path, dtype=None, kind="label map")
    data = img.array
    if data.dtype.kind == "f":
        if not np.array_equal(data, np.round(data)):
            raise CaseError(
                case_id,
                path,
                "label map holds non-integer values.",
                "Give a label map (integer classes), not a probability map.",
            )
    scheme = get_scheme(files.label_scheme or "nehmap")
    bad = unexpected_values(data, scheme)
    if bad:
        raise CaseError(
            case_id,
            path,
            f"label map holds values {bad} outside the '{scheme.name}' scheme "
            f"(allowed: {list(scheme.allowed_values)}).",
            "Declare the right label scheme (--label-scheme) or fix the file.",
        )
    return to_nehmap(data.astype(np.int64), scheme)


@dataclass
class CaseFailure:
    """A case that could not be loaded, and why."""

    case_id: str
    message: str


def iter_cases(
    collection: Collection | Iterable[CaseFiles],
    *,
    on_error: Callable[[CaseFailure], None] | None = None,
    **load_options: object,
) -> Iterator[Case]:
    """Load the cases of a collection one at a time, skipping (and reporting) bad ones.

    Parameters
    ----------
    collection : Collection | Iterable[CaseFiles]
        The cases to load.
    on_error : Callable[[CaseFailure], None] | None
        Called with a :class:`CaseFailure` for each case that fails; when None,
        the failure is raised.
    **load_options
        Passed to :func:`load_case`.
    """
    for files in collection:
        try:
            case = load_case(files, **load_options)  # type: ignore[arg-type]
        except NehmapInputError as exc:
            if on_error is None:
                raise
            on_error(CaseFailure(files.case_id, str(exc)))
            continue
        yield case
