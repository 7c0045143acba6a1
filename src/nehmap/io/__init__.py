"""Reading cases from the public collections' layouts and writing results back.

Typical use::

    from nehmap.io import discover, load_case

    collection = discover("/data/UPENN-GBM/NIfTI-files")
    for files in collection:
        case = load_case(files)
        print(case.case_id, case.spacing, case.images["t1c"].shape)
"""

from nehmap.io.atomic import atomic_path, write_text_atomic
from nehmap.io.case import Case, CaseFailure, check_case_headers, iter_cases, load_case
from nehmap.io.image import Grid, Image, new_grid, read_grid, read_image, write_image
from nehmap.io.layouts import LAYOUTS, CaseFiles, Collection, detect_layout, discover
from nehmap.io.modalities import LABEL, MODALITIES, normalise_modality

__all__ = [
    "LABEL",
    "LAYOUTS",
    "MODALITIES",
    "Case",
    "CaseFailure",
    "CaseFiles",
    "Collection",
    "Grid",
    "Image",
    "atomic_path",
    "check_case_headers",
    "detect_layout",
    "discover",
    "iter_cases",
    "load_case",
    "new_grid",
    "normalise_modality",
    "read_grid",
    "read_image",
    "write_image",
    "write_text_atomic",
]
