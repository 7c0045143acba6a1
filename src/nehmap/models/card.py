"""Model cards: the JSON description that travels with every checkpoint's weights.

A card says how to build the network (architecture name and constructor arguments),
what its outputs mean (class names in output order and their nehmap labels), what it
expects as input (modalities in channel order, voxel spacing, intensity normalisation,
patch size), how it was trained and validated, and which weights file belongs to it
(file name and sha256). Example::

    {
      "format": "nehmap-model-card", "format_version": 1,
      "name": "paunet-neh", "architecture": "paunet", "config": {...},
      "label_scheme": "nehmap",
      "class_names": ["background", "NC", "ED", "NEH", "ET"],
      "class_labels": [0, 1, 2, 3, 4],
      "modalities": ["t1", "t1c", "t2", "flair"],
      "spacing_mm": [1.0, 1.0, 1.0], "normalisation": "zscore-brain",
      "patch_size": [128, 128, 128],
      "training_data": "...", "validation_metrics": {"dice_NEH": 0.61},
      "nehmap_version": "0.1.0", "created": "2025-01-01T00:00:00Z",
      "n_parameters": 27487987,
      "weights_file": "paunet-neh.safetensors", "weights_sha256": "..."
    }

Resampling an input to the card's spacing is the inference code's job:
:meth:`ModelCard.check_input` refuses wrong modalities or channel orders, and reports
(without failing) whether the input's spacing differs from the training spacing.

This module holds the card and its JSON form; the checks of its fields are in
:mod:`nehmap.models.card_validation`, the check of an input in
:mod:`nehmap.models.card_input`.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from nehmap._version import __version__
from nehmap.models.card_input import InputCheck, ModelInputError, check_input
from nehmap.models.card_validation import (
    CARD_FORMAT,
    CARD_FORMAT_VERSION,
    NORMALISATIONS,
    ModelCardError,
    validate_card,
)

__all__ = [
    "CARD_FORMAT",
    "CARD_FORMAT_VERSION",
    "DEFAULT_MODALITIES",
    "NORMALISATIONS",
    "REQUIRED_FIELDS",
    "InputCheck",
    "ModelCard",
    "ModelCardError",
    "ModelInputError",
]

DEFAULT_MODALITIES: tuple[str, ...] = ("t1", "t1c", "t2", "flair")
"""nehmap's channel order of the four structural modalities."""

REQUIRED_FIELDS: tuple[str, ...] = (
    "architecture",
    "config",
    "class_names",
    "modalities",
    "spacing_mm",
    "normalisation",
    "patch_size",
)
"""Fields a card file must contain; the others have defaults."""

_FIELD_ORDER: tuple[str, ...] = (
    "format",
    "format_version",
    "name",
    "description",
    "architecture",
    "label_scheme",
    "class_names",
    "class_labels",
    "modalities",
    "spacing_mm",
    "normalisation",
    "patch_size",
    "config",
    "training_data",
    "validation_metrics",
    "n_parameters",
    "nehmap_version",
    "created",
    "weights_file",
    "weights_sha256",
    "extra",
)


def _dumps(value: Any, indent: int = 0) -> str:
    """JSON with indented objects and one-line lists of scalars."""
    pad = "  " * (indent + 1)
    if isinstance(value, dict) and value:
        items = [f"{pad}{json.dumps(str(k))}: {_dumps(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * indent + "}"
    if isinstance(value, list | tuple) and any(isinstance(v, dict | list | tuple) for v in value):
        items = [pad + _dumps(v, indent + 1) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + "  " * indent + "]"
    return json.dumps(value)


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass
class ModelCard:
    """Description of a trained network; stored as ``<name>.json`` beside its weights.

    Attributes
    ----------
    architecture : str
        Registry name of the network (``"paunet"``, ``"unetrpp"``, ...).
    config : dict
        Constructor arguments; ``create_model(architecture, **config)`` rebuilds it.
    class_names : list of str
        Output classes in output (channel) order.
    class_labels : list of int or None
        nehmap label (0-4) of each output class; for the consensus model the two NEH
        levels both map to NEH (3). Defaults to ``0, 1, 2, ...``.
    label_scheme : str
        ``"nehmap"`` (labels 0-4) or ``"neh-consensus"`` (0 background, 1 low-, 2
        high-probability NEH).
    modalities : list of str
        Input modalities in channel order (``["t1", "t1c", "t2", "flair"]``).
    spacing_mm : list of 3 floats
        Voxel spacing of the training data, mm per array axis.
    normalisation : str
        Intensity normalisation of the inputs, a key of :data:`NORMALISATIONS`.
    patch_size : list of 3 ints
        Training patch and inference window, voxels.
    name : str
        Checkpoint name.
    description : str
        Free text.
    training_data : str
        The training data, in words (collections, case counts, splits, epochs).
    validation_metrics : dict
        Metric name -> value (or nested dicts), JSON-serialisable.
    nehmap_version : str
        nehmap version that wrote the checkpoint.
    created : str
        Creation time, ISO 8601 UTC.
    n_parameters : int or None
        Parameter count of the network.
    weights_file : str
        File name (no folder) of the safetensors weights, beside the card.
    weights_sha256 : str
        sha256 of the weights file (hex), filled in when saving.
    extra : dict
        Anything else worth keeping (JSON-serialisable).
    format, format_version : str, int
        Card format identification.
    """

    architecture: str
    config: dict[str, Any]
    class_names: list[str]
    modalities: list[str] = field(default_factory=lambda: list(DEFAULT_MODALITIES))
    spacing_mm: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    normalisation: str = "zscore-brain"
    patch_size: list[int] = field(default_factory=list)
    class_labels: list[int | None] = field(default_factory=list)
    label_scheme: str = "nehmap"
    name: str = ""
    description: str = ""
    training_data: str = ""
    validation_metrics: dict[str, Any] = field(default_factory=dict)
    nehmap_version: str = __version__
    created: str = field(default_factory=_now)
    n_parameters: int | None = None
    weights_file: str = ""
    weights_sha256: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    format: str = CARD_FORMAT
    format_version: int = CARD_FORMAT_VERSION

    def __post_init__(self) -> None:
        self.config = dict(self.config)
        self.class_names = list(self.class_names)
        self.modalities = list(self.modalities)
        self.spacing_mm = [float(s) for s in self.spacing_mm]
        if not self.patch_size and "patch_size" in self.config:
            self.patch_size = list(self.config["patch_size"])
        self.patch_size = list(self.patch_size)
        if not self.class_labels:
            self.class_labels = list(range(len(self.class_names)))
        self.class_labels = list(self.class_labels)

    # ------------------------------------------------------------------ building

    @classmethod
    def for_model(
        cls,
        model: Any,
        *,
        name: str = "",
        architecture: str | None = None,
        class_names: Sequence[str] | None = None,
        class_labels: Sequence[int | None] | None = None,
        **kwargs: Any,
    ) -> ModelCard:
        """A card for a network built by :func:`nehmap.models.create_model`.

        Architecture, configuration, patch size, parameter count and the default class
        names of the architecture are taken from the model; ``kwargs`` set the other
        fields (``spacing_mm``, ``training_data``, ``validation_metrics``, ...).

        Raises
        ------
        ModelCardError
            If the model's architecture is unknown, or its class count differs from
            the architecture's default class names and no ``class_names`` are given.
        """
        from nehmap.models.base import jsonable
        from nehmap.models.registry import get_spec

        arch = architecture or getattr(model, "architecture", None)
        if not arch:
            raise ModelCardError(
                None,
                f"cannot tell the architecture of {type(model).__name__}.",
                "Build networks with nehmap.models.create_model, or pass architecture=.",
            )
        spec = get_spec(arch)
        n_classes = int(model.n_classes)
        if class_names is None:
            if len(spec.class_names) != n_classes:
                raise ModelCardError(
                    None,
                    f"{arch} has {n_classes} outputs but its default classes are "
                    f"{list(spec.class_names)}.",
                    "Pass class_names= (and class_labels=) for the outputs in order.",
                )
            class_names = spec.class_names
            class_labels = spec.class_labels if class_labels is None else class_labels
            kwargs.setdefault("label_scheme", spec.label_scheme)
        card = cls(
            architecture=arch,
            config=jsonable(model.config),
            class_names=list(class_names),
            class_labels=list(class_labels or []),
            patch_size=list(model.patch_size),
            name=name,
            n_parameters=sum(p.numel() for p in model.parameters()),
            **kwargs,
        )
        card.validate()
        return card

    # ---------------------------------------------------------------- validation

    def validate(self, path: str | Path | None = None) -> None:
        """Check every field; raises :class:`ModelCardError` naming the first problem.

        Parameters
        ----------
        path : path, optional
            The card file, for the error message.
        """
        validate_card(self, path)

    # -------------------------------------------------------------------- JSON

    def to_dict(self) -> dict[str, Any]:
        """The card as a JSON-ready dict, fields in reading order."""
        data = asdict(self)
        return {k: data[k] for k in _FIELD_ORDER if k in data} | data

    def to_json(self) -> str:
        """The card as JSON text: objects indented, lists of numbers or names on one line."""
        return _dumps(self.to_dict()) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str | Path | None = None) -> ModelCard:
        """Build and validate a card from a dict read from JSON.

        Raises
        ------
        ModelCardError
            Listing missing required fields, unknown fields, or the first invalid value.
        """
        if not isinstance(data, Mapping):
            raise ModelCardError(path, "model card: the JSON must be an object.")
        missing = [k for k in REQUIRED_FIELDS if k not in data]
        if missing:
            raise ModelCardError(
                path,
                f"model card misses required field(s): {', '.join(missing)}.",
                f"A card needs {', '.join(REQUIRED_FIELDS)}.",
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelCardError(
                path,
                f"model card has unknown field(s): {', '.join(unknown)}.",
                "Put additional information under 'extra'.",
            )
        try:
            card = cls(**dict(data))
        except (TypeError, ValueError) as exc:
            raise ModelCardError(path, f"model card has an invalid value: {exc}.") from None
        card.validate(path)
        return card

    @classmethod
    def from_json(cls, text: str, path: str | Path | None = None) -> ModelCard:
        """Parse and validate a card from JSON text (``path`` names it in errors)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelCardError(path, f"model card is not valid JSON: {exc}.") from None
        return cls.from_dict(data, path)

    # -------------------------------------------------------------------- use

    @property
    def n_classes(self) -> int:
        """Number of output classes."""
        return len(self.class_names)

    def class_index(self, name: str) -> int:
        """Output channel of class ``name`` (e.g. ``"NEH"``), case-insensitive.

        Raises
        ------
        KeyError
            Listing the card's classes.
        """
        lowered = [c.lower() for c in self.class_names]
        try:
            return lowered.index(name.lower())
        except ValueError:
            raise KeyError(
                f"No class {name!r}; the model's classes are {self.class_names}."
            ) from None

    check_input = check_input  # card_input.check_input, the card as self
