"""Checking a model card's fields: :func:`validate_card` and :class:`ModelCardError`.

Every field of a :class:`~nehmap.models.card.ModelCard` is checked against the card
format (:data:`CARD_FORMAT`, :data:`CARD_FORMAT_VERSION`): class names and nehmap labels,
modalities, spacing (mm), normalisation (a key of :data:`NORMALISATIONS`), patch size
(voxels), the weights file and its sha256, and that the free-form parts are JSON.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from nehmap.errors import NehmapInputError

if TYPE_CHECKING:
    from nehmap.models.card import ModelCard

__all__ = [
    "CARD_FORMAT",
    "CARD_FORMAT_VERSION",
    "NORMALISATIONS",
    "ModelCardError",
    "validate_card",
]

CARD_FORMAT = "nehmap-model-card"
"""Value of the card's ``format`` field."""

CARD_FORMAT_VERSION = 1
"""Newest card format this nehmap reads and writes."""

NORMALISATIONS: Mapping[str, str] = {
    "zscore-brain": "per-modality z-score of the intensities inside the brain mask "
    "(non-zero voxels), zero outside the brain",
}
"""Intensity normalisations a card may name, with their meaning."""

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ModelCardError(NehmapInputError):
    """A model card is missing fields, has invalid values, or does not fit its model."""


def _check_names(
    values: Sequence[str],
    name: str,
    config: Mapping[str, Any],
    size_key: str,
    fail: Callable[[str], NoReturn],
) -> None:
    """Refuse duplicates in ``values``, and a count that differs from ``config[size_key]``."""
    if len(set(values)) != len(values):
        fail(f"{name} has duplicates: {values}.")
    size = config.get(size_key)
    if size is not None and size != len(values):
        fail(f"{len(values)} {name} {values} for a network with {size_key}={size}.")


def validate_card(card: ModelCard, path: str | Path | None = None) -> None:
    """Check every field of ``card``; raises :class:`ModelCardError` naming the first problem.

    Parameters
    ----------
    card : ModelCard
        The card.
    path : path, optional
        The card file, for the error message.
    """

    from nehmap.io.modalities import MODALITIES, OPTIONAL_MAPS  # lazy: nehmap.io is heavy

    def fail(problem: str, hint: str = "") -> NoReturn:
        raise ModelCardError(path, f"model card: {problem}", hint)

    if card.format != CARD_FORMAT:
        fail(f"format is {card.format!r}, expected {CARD_FORMAT!r}.")
    if not isinstance(card.format_version, int) or card.format_version < 1:
        fail(f"format_version must be a positive integer, got {card.format_version!r}.")
    if card.format_version > CARD_FORMAT_VERSION:
        fail(
            f"format_version {card.format_version} is newer than this nehmap reads "
            f"({CARD_FORMAT_VERSION}).",
            "Update nehmap to load this checkpoint.",
        )
    if not isinstance(card.architecture, str) or not card.architecture:
        fail("architecture must be a non-empty string.")
    if not isinstance(card.config, dict):
        fail("config must be an object of constructor arguments.")
    names = card.class_names
    if not names or not all(isinstance(n, str) and n for n in names):
        fail(f"class_names must be a non-empty list of names, got {names!r}.")
    _check_names(names, "class_names", card.config, "n_classes", fail)
    if len(card.class_labels) != len(names):
        fail(f"{len(card.class_labels)} class_labels for {len(names)} class_names.")
    for value in card.class_labels:
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 4
        ):
            fail(f"class_labels must be nehmap labels 0-4 or null, got {value!r}.")
    known = (*MODALITIES, *OPTIONAL_MAPS)
    mods = card.modalities
    if not mods or any(m not in known for m in mods):
        fail(f"modalities must be canonical names from {list(known)}, got {mods}.")
    _check_names(mods, "modalities", card.config, "in_channels", fail)
    if len(card.spacing_mm) != 3 or not all(math.isfinite(s) and s > 0 for s in card.spacing_mm):
        fail(f"spacing_mm must be 3 positive numbers (mm), got {card.spacing_mm}.")
    if card.normalisation not in NORMALISATIONS:
        fail(
            f"unknown normalisation {card.normalisation!r}.",
            f"Known: {', '.join(NORMALISATIONS)}.",
        )
    patch = card.patch_size
    if len(patch) != 3 or not all(
        isinstance(p, int) and not isinstance(p, bool) and p > 0 for p in patch
    ):
        fail(f"patch_size must be 3 positive integers, got {patch}.")
    if "patch_size" in card.config and list(card.config["patch_size"]) != patch:
        fail(f"patch_size {patch} differs from config's {card.config['patch_size']}.")
    if card.weights_sha256 and not _SHA256.match(card.weights_sha256):
        fail("weights_sha256 must be 64 lower-case hexadecimal digits.")
    if card.weights_file and (
        Path(card.weights_file).name != card.weights_file
        or not card.weights_file.endswith(".safetensors")
    ):
        fail(
            f"weights_file must be a plain .safetensors file name beside the card, "
            f"got {card.weights_file!r}."
        )
    for key in ("validation_metrics", "extra"):
        value = getattr(card, key)
        if not isinstance(value, dict):
            fail(f"{key} must be an object.")
        try:
            json.dumps(value, allow_nan=True)
        except (TypeError, ValueError) as exc:
            fail(f"{key} is not JSON-serialisable: {exc}.")
