"""nehmap: probability maps of the non-enhancing hypercellular tumour (NEH) from brain MRI.

The most used functions, importable from the package itself::

    import nehmap

    collection = nehmap.discover("/data/UPENN-GBM/NIfTI-files")
    case = nehmap.load_case(collection["UPENN-GBM-00001_11"])
    result = nehmap.segment(case)            # the shipped paunet + unetrpp, fused
    result.consensus.probability             # NEH probability on the case's grid

Heavy modules (torch, statsmodels) load only when first used.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from nehmap._version import __version__

_LAZY = {
    "discover": ("nehmap.io", "discover"),
    "load_case": ("nehmap.io", "load_case"),
    "read_image": ("nehmap.io", "read_image"),
    "write_image": ("nehmap.io", "write_image"),
    "segment": ("nehmap.segmentation", "segment"),
    "load_models": ("nehmap.segmentation", "load_models"),
    "write_segmentation": ("nehmap.segmentation", "write_segmentation"),
    "evaluate_labels": ("nehmap.metrics", "evaluate_labels"),
    "evaluate_collections": ("nehmap.evaluate", "evaluate_collections"),
    "fuse_neh": ("nehmap.fusion", "fuse_neh"),
    "generate_case": ("nehmap.synth", "generate_case"),
    "write_cohort": ("nehmap.synth", "write_cohort"),
    "run_study": ("nehmap.study", "run_study"),
    "StudyConfig": ("nehmap.study", "StudyConfig"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attribute = _LAZY[name]
        value = getattr(import_module(module), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nehmap' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
