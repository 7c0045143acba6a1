"""Canonical modality names and the names the collections use for them."""

from __future__ import annotations

MODALITIES: tuple[str, ...] = ("t1", "t1c", "t2", "flair")
"""The four structural modalities every case needs, in nehmap's channel order."""

OPTIONAL_MAPS: tuple[str, ...] = ("rcbv",)
"""Optional scalar maps a case may carry."""

LABEL = "seg"
"""The key under which a case's label map is stored."""

_ALIASES: dict[str, str] = {
    "t1": "t1",
    "t1n": "t1",
    "t1w": "t1",
    "t1pre": "t1",
    "t1native": "t1",
    "t1c": "t1c",
    "t1ce": "t1c",
    "t1gd": "t1c",
    "t1post": "t1c",
    "t1contrast": "t1c",
    "t2": "t2",
    "t2w": "t2",
    "flair": "flair",
    "t2f": "flair",
    "t2flair": "flair",
    "rcbv": "rcbv",
    "aprcbv": "rcbv",
    "dscaprcbv": "rcbv",
    "cbv": "rcbv",
    "seg": LABEL,
    "segm": LABEL,
    "label": LABEL,
    "labels": LABEL,
    "segmentation": LABEL,
    "segmentations": LABEL,
    "mask": LABEL,
}


def normalise_modality(name: str) -> str | None:
    """Canonical name (``t1``, ``t1c``, ``t2``, ``flair``, ``rcbv``, ``seg``) or None.

    Case, spaces, dashes and underscores are ignored: ``T1-Gd``, ``t1ce``, ``T1GD`` and
    ``t1_post`` are all ``t1c``; ``T2-FLAIR`` and ``t2f`` are ``flair``.
    """
    key = "".join(ch for ch in name.lower() if ch.isalnum())
    return _ALIASES.get(key)
