"""nehmap's segmentation networks, their registry and their checkpoint format.

Networks (see :func:`available_models`): ``paunet`` (3D residual U-Net with
attention-gated skips and a high-resolution branch), ``unetrpp`` (UNETR++) and
``unetrpp-consensus`` (UNETR++ with the three classes of the two-level NEH consensus
map). Each has the presets ``demo`` (CPU) and ``paper`` (GPU)::

    from nehmap.models import create_model, load_checkpoint, save_checkpoint, ModelCard

    net = create_model("unetrpp", preset="demo")
    card = ModelCard.for_model(net, name="unetrpp-demo", training_data="synthetic cohort")
    save_checkpoint(net, card, "models/unetrpp-demo")   # .safetensors + .json
    net, card = load_checkpoint("models/unetrpp-demo")

Names are imported lazily, so ``import nehmap.models`` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "register": "nehmap.models.registry",
    "create_model": "nehmap.models.registry",
    "available_models": "nehmap.models.registry",
    "model_presets": "nehmap.models.registry",
    "describe_models": "nehmap.models.registry",
    "count_parameters": "nehmap.models.registry",
    "get_spec": "nehmap.models.registry",
    "ModelSpec": "nehmap.models.registry",
    "UnknownModelError": "nehmap.models.registry",
    "SegmentationNetwork": "nehmap.models.base",
    "PAUNet": "nehmap.models.paunet",
    "UNETRPP": "nehmap.models.unetrpp",
    "unetrpp_reference_config": "nehmap.models.unetrpp",
    "ModelCard": "nehmap.models.card",
    "ModelCardError": "nehmap.models.card",
    "InputCheck": "nehmap.models.card",
    "ModelInputError": "nehmap.models.card",
    "CheckpointError": "nehmap.models.checkpoint",
    "save_checkpoint": "nehmap.models.checkpoint",
    "load_checkpoint": "nehmap.models.checkpoint",
    "read_card": "nehmap.models.checkpoint",
    "checkpoint_paths": "nehmap.models.checkpoint",
    "import_unetrpp_weights": "nehmap.models.import_weights",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nehmap.models' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
