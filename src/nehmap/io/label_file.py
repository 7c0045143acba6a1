"""Reading one label-map file, in a declared label scheme, into nehmap's labels.

The reader of the label maps that come from outside a case: nnU-Net datasets,
``derive-neh``'s references and second segmentations. A case's own label map is read
by :func:`nehmap.io.load_case`, which adds the case's checks.

:func:`read_label_map` reads a segmentation file (any format :func:`nehmap.io.read_image`
reads), checks that its values are whole numbers the declared scheme defines, and
returns nehmap labels on the canonical RAS+ grid. Two schemes are not tissue labels and
are returned as they are: ``neh-consensus`` (levels 0/1/2 of the two-level NEH maps)
and ``binary-neh`` (0/1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nehmap.errors import CaseError, NehmapInputError
from nehmap.io.image import Image, read_image
from nehmap.io.nnunet_json import CONSENSUS_SCHEME
from nehmap.labels import LabelScheme, get_scheme, scheme_name, to_nehmap, unexpected_values

__all__ = ["LEVEL_SCHEMES", "read_label_map"]

LEVEL_SCHEMES: dict[str, tuple[int, ...]] = {CONSENSUS_SCHEME: (0, 1, 2), "binary-neh": (0, 1)}
"""Schemes whose values are levels of one NEH map, not tissue labels: their values."""


def read_label_map(
    path: str | Path, scheme: str | LabelScheme, *, case_id: str | None = None
) -> tuple[np.ndarray, Image]:
    """Read a label map and convert it to nehmap labels.

    Parameters
    ----------
    path : path
        The label file.
    scheme : str or LabelScheme
        Its label scheme (:data:`nehmap.labels.SCHEMES`), or one of
        :data:`LEVEL_SCHEMES`, whose values are kept.
    case_id : str, optional
        The case the file belongs to: errors are then :class:`~nehmap.errors.CaseError`
        naming it.

    Returns
    -------
    labels : ndarray of uint8, shape (X, Y, Z)
        nehmap labels (or levels), canonical RAS+.
    image : Image
        The file as read (its grid, header and path).

    Raises
    ------
    NehmapInputError
        (:class:`~nehmap.errors.CaseError` with ``case_id``) when the file cannot be
        read, holds non-integer values or values the scheme does not define.
    """
    p = Path(path)

    def fail(problem: str, hint: str) -> NehmapInputError:
        return (
            CaseError(case_id, p, problem, hint) if case_id else NehmapInputError(p, problem, hint)
        )

    try:
        img = read_image(p, dtype=None, kind="label map")
    except NehmapInputError as exc:
        if case_id is None:
            raise
        raise CaseError(case_id, exc.path, exc.problem, exc.hint) from exc
    data = img.array
    if data.dtype.kind == "f" and not np.array_equal(data, np.round(data)):
        raise fail(
            "label map holds non-integer values.",
            "Give a label map (integer classes), not a probability map.",
        )
    name = scheme_name(scheme)
    if name in LEVEL_SCHEMES:
        bad = sorted(set(np.unique(data).tolist()) - set(LEVEL_SCHEMES[name]))
        if bad:
            raise fail(
                f"label map holds values {bad}; a {name} map holds only "
                f"{list(LEVEL_SCHEMES[name])}.",
                "Check that the file is the map the scheme says.",
            )
        return data.astype(np.uint8), img
    try:
        s = get_scheme(scheme)
    except ValueError as exc:
        raise fail(str(exc), "Name a known label scheme for the file.") from None
    bad = unexpected_values(data, s)
    if bad:
        raise fail(
            f"label map holds values {bad} outside the '{s.name}' label scheme "
            f"(allowed: {list(s.allowed_values)}).",
            "Declare the file's label scheme (e.g. --second-scheme brats2021) or fix the file.",
        )
    return to_nehmap(data.astype(np.int64), s), img
