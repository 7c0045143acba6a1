"""Training nehmap's networks: ``nehmap train`` and its Python API.

Typical use::

    from nehmap.train import TrainConfig, train

    config = TrainConfig(model="unetrpp", preset="demo", data="/data/BraTS2021",
                         out="runs/unetrpp", epochs=100)
    result = train(config)
    result.best            # runs/unetrpp/best: a checkpoint for nehmap segment

    config = TrainConfig.from_file("train.toml")      # or .yaml

Modules, one job each: :mod:`~nehmap.train.config` (settings),
:mod:`~nehmap.train.augment_config` (augmentation settings),
:mod:`~nehmap.train.config_file` (TOML/YAML files),
:mod:`~nehmap.train.config_checks` (checks of the settings), :mod:`~nehmap.train.split`
(seeded case split), :mod:`~nehmap.train.targets` (label maps the networks learn),
:mod:`~nehmap.train.data` (preprocessing and cache), :mod:`~nehmap.train.sampling`
(patch placement), :mod:`~nehmap.train.augment` (MONAI augmentation),
:mod:`~nehmap.train.randomise` (domain randomisation: contrasts, bias, noise, slices),
:mod:`~nehmap.train.dataset` (batches), :mod:`~nehmap.train.loss` (Dice + CE, deep
supervision), :mod:`~nehmap.train.step` (optimiser, schedule, one step),
:mod:`~nehmap.train.validate`, :mod:`~nehmap.train.checkpointing`,
:mod:`~nehmap.train.history` (log.csv, TensorBoard), :mod:`~nehmap.train.distributed`
(torchrun), :mod:`~nehmap.train.seeding` (reproducible randomness),
:mod:`~nehmap.train.run_setup` (resume checks, cases, spacing, fine-tuning weights),
:mod:`~nehmap.train.progress` (best and latest validation, early stopping),
:mod:`~nehmap.train.run_checkpoints` (cards and save order) and
:mod:`~nehmap.train.loop` (the epoch loop). Importing this package imports torch and MONAI
only when :func:`train` or :class:`TrainResult` is first used.
"""

from __future__ import annotations

import importlib
from typing import Any

from nehmap.train.config import AugmentConfig, ConfigError, TrainConfig

_LAZY: dict[str, str] = {
    "train": "nehmap.train.loop",
    "TrainResult": "nehmap.train.loop",
    "CheckpointWriteError": "nehmap.train.checkpointing",
    "ResumeError": "nehmap.train.checkpointing",
}

__all__ = ["AugmentConfig", "ConfigError", "TrainConfig", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nehmap.train' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
