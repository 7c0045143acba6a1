"""Checking a training configuration: coercing values to their types, then every setting.

:func:`coerce_settings` turns what a TOML/YAML file or the command line gives (a spacing
as ``"1"``, ``"1x1x3"`` or a number, mm; a patch size as one number) into the canonical
types, and :func:`check_settings` refuses the first invalid setting with a
:class:`~nehmap.train.config_file.ConfigError` that names it. The allowed values of the
choice settings are :data:`OPTIMIZERS`, :data:`TARGETS`, :data:`VAL_MODES` and
:data:`CACHE_MODES`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from nehmap.train.augment_config import RANGES
from nehmap.train.config_file import fail

if TYPE_CHECKING:
    from nehmap.train.config import TrainConfig

__all__ = ["CACHE_MODES", "OPTIMIZERS", "TARGETS", "VAL_MODES", "check_settings", "coerce_settings"]

OPTIMIZERS: tuple[str, ...] = ("sgd", "adamw")
TARGETS: tuple[str, ...] = ("auto", "tissue", "consensus")
VAL_MODES: tuple[str, ...] = ("patches", "cases")
CACHE_MODES: tuple[str, ...] = ("auto", "memory", "disk")


def coerce_settings(config: TrainConfig) -> None:
    """Coerce ``config``'s values to their canonical types, in place (spacing in mm)."""
    if isinstance(config.spacing, str):
        text = config.spacing.strip().lower()
        if text == "data":
            config.spacing = "data"
        else:
            parts = [float(v) for v in text.replace("x", ",").split(",") if v.strip()]
            config.spacing = parts * 3 if len(parts) == 1 else parts
    elif isinstance(config.spacing, int | float):
        config.spacing = [float(config.spacing)] * 3
    else:
        config.spacing = [float(v) for v in config.spacing]
    if config.patch_size is not None:
        if isinstance(config.patch_size, int):
            config.patch_size = [config.patch_size] * 3
        config.patch_size = [int(v) for v in config.patch_size]
    config.model_kwargs = dict(config.model_kwargs or {})
    for name in ("epochs", "iterations_per_epoch", "batch_size", "val_every", "val_patches"):
        setattr(config, name, int(getattr(config, name)))
    config.seed = int(config.seed)
    config.num_workers = int(config.num_workers)
    if config.patience is not None:
        config.patience = int(config.patience)
    for name in ("data", "out"):
        setattr(config, name, str(getattr(config, name) or ""))
    config.optimizer = str(config.optimizer).lower()
    config.target = str(config.target).lower()
    config.val_mode = str(config.val_mode).lower()
    config.cache = str(config.cache).lower()
    a = config.augmentation
    for name in RANGES:
        lo, hi = getattr(a, name)
        setattr(a, name, (float(lo), float(hi)))


def check_settings(config: TrainConfig, source: str | Path | None = None) -> None:
    """Check every setting of ``config``; raises :class:`ConfigError` naming the first problem."""

    def need(ok: bool, problem: str, hint: str = "") -> None:
        if not ok:
            fail(problem, hint, source)

    need(
        config.spacing == "data"
        or (len(config.spacing) == 3 and all(math.isfinite(s) and s > 0 for s in config.spacing)),
        f"spacing must be one or three positive numbers (mm) or 'data', got {config.spacing}.",
    )
    need(
        config.patch_size is None or (len(config.patch_size) == 3 and min(config.patch_size) > 0),
        f"patch_size must be one or three positive integers, got {config.patch_size}.",
    )
    for name in ("epochs", "iterations_per_epoch", "batch_size", "val_every", "val_patches"):
        need(getattr(config, name) >= 1, f"{name} must be at least 1, got {getattr(config, name)}.")
    need(config.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}.")
    need(config.target in TARGETS, f"target must be one of {TARGETS}, got {config.target!r}.")
    need(config.val_mode in VAL_MODES, f"val_mode must be one of {VAL_MODES}.")
    need(config.cache in CACHE_MODES, f"cache must be one of {CACHE_MODES}.")
    need(config.lr is None or config.lr > 0, f"lr must be positive, got {config.lr}.")
    need(
        config.weight_decay is None or config.weight_decay >= 0,
        f"weight_decay must be >= 0, got {config.weight_decay}.",
    )
    need(0 <= config.momentum < 1, f"momentum must be in [0, 1), got {config.momentum}.")
    need(config.grad_clip >= 0, f"grad_clip must be >= 0 (0 disables), got {config.grad_clip}.")
    need(config.poly_exponent >= 0, "poly_exponent must be >= 0.")
    need(config.dice_weight >= 0 and config.ce_weight >= 0, "loss weights must be >= 0.")
    need(config.dice_weight + config.ce_weight > 0, "dice_weight + ce_weight must be positive.")
    for name in ("foreground_fraction", "neh_fraction"):
        value = getattr(config, name)
        need(0 <= value <= 1, f"{name} must be in [0, 1], got {value}.")
    need(
        0 < config.val_fraction < 1,
        f"val_fraction must be between 0 and 1 (exclusive), got {config.val_fraction}.",
        "Validation needs held-out cases; 0.2 keeps a fifth of them.",
    )
    need(config.patience is None or config.patience >= 1, "patience must be at least 1 epoch.")
    need(config.num_workers >= 0, "num_workers must be >= 0.")
    config.augmentation.validate(source)
