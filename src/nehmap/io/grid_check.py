"""Whether two files of a case lie on one voxel grid, and an error that says how they differ.

Used when a case is loaded (every modality, the label map and rCBV against the first
modality), when datasets are read or written (label maps against their images) and when
training targets are read. Scoring (:mod:`nehmap.evaluate.pair`) and the recurrence
step compare a prediction with its scan by their own checks, whose messages say what
to segment again.
"""

from __future__ import annotations

from nehmap.errors import CaseError
from nehmap.io.image import DEFAULT_GRID_TOLERANCE_MM, Grid


def check_same_grid(
    case_id: str,
    grid: Grid,
    reference: Grid,
    *,
    what: str,
    reference_what: str,
    tolerance_mm: float = DEFAULT_GRID_TOLERANCE_MM,
) -> None:
    """Raise a :class:`CaseError` naming both files when two grids differ.

    Grids agree when their canonical (RAS) shapes are equal and their volume corners lie
    at most ``tolerance_mm`` (mm) apart. ``what`` and ``reference_what`` name the two
    files in the message (e.g. ``"t1c"`` and ``"t1"``, or ``"label map"`` and ``"image"``).
    """
    if grid.canonical_shape != reference.canonical_shape:
        raise CaseError(
            case_id,
            grid.source,
            f"{what} has shape {grid.canonical_shape} but the {reference_what} "
            f"({reference.source}) has {reference.canonical_shape} (canonical RAS order).",
            f"Resample the {what} onto the grid of the {reference_what} (e.g. with 3D "
            "Slicer's 'Resample Scalar/Vector/DWI Volume' or SimpleITK) or re-export the case.",
        )
    distance = grid.canonical_distance_mm(reference)
    if distance > tolerance_mm:
        raise CaseError(
            case_id,
            grid.source,
            f"{what} is not on the grid of the {reference_what} ({reference.source}): their "
            f"affines place the volume corners up to {distance:.3g} mm apart (tolerance "
            f"{tolerance_mm:g} mm).",
            f"Co-register the {what} with the {reference_what} and resample it onto that "
            "grid first.",
        )
