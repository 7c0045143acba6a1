"""Registry of nehmap's networks: build a network by name, with named presets.

Every network is registered under a name with its presets (named sets of constructor
arguments, at least ``demo`` for CPU training and ``paper`` for the published
configuration), a description, and the names of its output classes::

    from nehmap.models import create_model

    net = create_model("paunet", preset="demo")            # small, trains on a CPU
    net = create_model("unetrpp", preset="paper")          # UNETR++ tumour configuration
    net = create_model("unetrpp", patch_size=64, feature_sizes=(16, 32, 64, 128))

Explicit keyword arguments override the preset's values. Without a preset the
constructor's defaults apply (and required arguments must be given).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

import torch
from torch import nn

_BUILTIN_MODULES: tuple[str, ...] = ("nehmap.models.paunet", "nehmap.models.unetrpp")

TISSUE_CLASSES: tuple[str, ...] = ("background", "NC", "ED", "NEH", "ET")
"""Output classes of the four-segment networks, in output order (= nehmap labels 0-4)."""

CONSENSUS_CLASSES: tuple[str, ...] = ("background", "NEH-low", "NEH-high")
"""Output classes of the consensus-map networks (two-level NEH consensus), in order."""


class UnknownModelError(KeyError):
    """A network name that is not registered; the message lists the known names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class ModelSpec:
    """A registered network.

    Attributes
    ----------
    name : str
        Registry name (``"paunet"``, ``"unetrpp"``, ...).
    factory : callable
        ``factory(**kwargs) -> nn.Module``.
    description : str
        One line for listings.
    presets : mapping of str to mapping
        Named constructor arguments.
    class_names : tuple of str
        Default output classes, in output order.
    class_labels : tuple of int or None
        nehmap label (0-4) of each output class (None when a class has no label).
    label_scheme : str
        Name of the output label scheme (``"nehmap"`` or ``"neh-consensus"``).
    """

    name: str
    factory: Callable[..., nn.Module]
    description: str = ""
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    class_names: tuple[str, ...] = TISSUE_CLASSES
    class_labels: tuple[int | None, ...] = (0, 1, 2, 3, 4)
    label_scheme: str = "nehmap"


_REGISTRY: dict[str, ModelSpec] = {}
_builtins_loaded = False

F = TypeVar("F", bound=Callable[..., nn.Module])


def register(
    name: str,
    *,
    description: str = "",
    presets: Mapping[str, Mapping[str, Any]] | None = None,
    class_names: Sequence[str] = TISSUE_CLASSES,
    class_labels: Sequence[int | None] | None = None,
    label_scheme: str = "nehmap",
    overwrite: bool = False,
) -> Callable[[F], F]:
    """Decorator registering a network class or factory function under ``name``.

    Parameters
    ----------
    name : str
        Registry name, lower case.
    description : str
        One line for listings.
    presets : mapping, optional
        Preset name -> constructor keyword arguments.
    class_names : sequence of str
        Output classes in output order.
    class_labels : sequence of int or None, optional
        nehmap label of each class; defaults to ``0, 1, 2, ...``.
    label_scheme : str
        Name of the output label scheme.
    overwrite : bool
        Allow replacing an existing registration (otherwise a ValueError).

    Returns
    -------
    callable
        The decorator; it returns the factory unchanged.
    """
    labels = tuple(class_labels) if class_labels is not None else tuple(range(len(class_names)))
    if len(labels) != len(class_names):
        raise ValueError(f"{name}: {len(class_names)} class names but {len(labels)} labels.")

    def decorator(factory: F) -> F:
        if name in _REGISTRY and not overwrite:
            raise ValueError(f"A network called {name!r} is already registered.")
        _REGISTRY[name] = ModelSpec(
            name=name,
            factory=factory,
            description=description,
            presets=MappingProxyType(
                {k: MappingProxyType(dict(v)) for k, v in (presets or {}).items()}
            ),
            class_names=tuple(class_names),
            class_labels=labels,
            label_scheme=label_scheme,
        )
        return factory

    return decorator


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)


def available_models() -> list[str]:
    """Names of the registered networks, sorted."""
    _load_builtins()
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` registered as ``name``.

    Raises
    ------
    UnknownModelError
        If ``name`` is not registered; the message lists the known names.
    """
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise UnknownModelError(
            f"Unknown network architecture {name!r}. Known architectures: {known}."
        ) from None


def model_presets(name: str) -> dict[str, dict[str, Any]]:
    """Presets of network ``name``: preset name -> constructor arguments (copies)."""
    return {k: dict(v) for k, v in get_spec(name).presets.items()}


def create_model(name: str, preset: str | None = None, **kwargs: Any) -> nn.Module:
    """Build the network registered as ``name``.

    Parameters
    ----------
    name : str
        Registry name, see :func:`available_models`.
    preset : str, optional
        A preset of that network (``"demo"``, ``"paper"``, ...); its arguments are
        used unless overridden by ``kwargs``.
    **kwargs
        Constructor arguments.

    Returns
    -------
    torch.nn.Module
        The network, in training mode, with ``architecture`` set to ``name``.

    Raises
    ------
    UnknownModelError
        For an unknown network name.
    ValueError
        For an unknown preset (the message lists the presets) or invalid arguments.
    """
    spec = get_spec(name)
    args: dict[str, Any] = {}
    if preset is not None:
        if preset not in spec.presets:
            raise ValueError(
                f"Network {name!r} has no preset {preset!r}; presets: "
                f"{', '.join(spec.presets) or 'none'}."
            )
        args.update(spec.presets[preset])
    args.update(kwargs)
    model = spec.factory(**args)
    model.architecture = name
    return model


def count_parameters(name: str, preset: str | None = None, **kwargs: Any) -> int:
    """Parameter count of a network, built on the ``meta`` device (no memory, fast)."""
    with torch.device("meta"):
        model = create_model(name, preset, **kwargs)
    return sum(p.numel() for p in model.parameters())


def describe_models() -> list[dict[str, Any]]:
    """One row per registered network and preset, for listings.

    Returns
    -------
    list of dict
        Keys ``name``, ``preset``, ``n_parameters``, ``patch_size`` (list of 3 ints),
        ``n_classes``, ``class_names`` and ``description``.
    """
    rows = []
    for name in available_models():
        spec = get_spec(name)
        for preset in spec.presets:
            with torch.device("meta"):
                model = create_model(name, preset)
            rows.append(
                {
                    "name": name,
                    "preset": preset,
                    "n_parameters": sum(p.numel() for p in model.parameters()),
                    "patch_size": list(getattr(model, "patch_size", ())),
                    "n_classes": int(getattr(model, "n_classes", len(spec.class_names))),
                    "class_names": list(spec.class_names),
                    "description": spec.description,
                }
            )
    return rows
