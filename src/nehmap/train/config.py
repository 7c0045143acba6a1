"""Training configuration: a dataclass, read from and written to TOML or YAML.

A configuration file holds the same keys as :class:`TrainConfig` (dashes or
underscores), with the augmentation settings in an ``[augmentation]`` table and extra
network arguments in a ``[model_kwargs]`` table::

    model = "unetrpp"
    preset = "demo"
    data = "/data/BraTS2021"        # relative paths are relative to this file
    out = "runs/unetrpp-demo"
    epochs = 100
    iterations_per_epoch = 250
    spacing = 1.0                   # mm; a list of 3 values, or "data"

    [augmentation]
    rotation_prob = 0.2

Values left out take the defaults below (nnU-Net's defaults where it has one). The
effective configuration, with the optimizer's defaults filled in, is saved with every
run (``config.toml`` or ``config.yaml``), and ``--resume`` compares against it.

This module holds :class:`TrainConfig`, its defaults and :func:`differences`; the
augmentation settings are in :mod:`nehmap.train.augment_config` and reading and writing
the files in :mod:`nehmap.train.config_file`, the checks of the settings in
:mod:`nehmap.train.config_checks` (all re-exported here).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from nehmap.train.augment_config import DOMAIN_RANDOMISATION_PROBS, RANGES, AugmentConfig
from nehmap.train.config_checks import (
    CACHE_MODES,
    OPTIMIZERS,
    TARGETS,
    VAL_MODES,
    check_settings,
    coerce_settings,
)
from nehmap.train.config_file import (
    ConfigError,
    dumps_toml,
    fail,
    normalise_keys,
    read_config_file,
)

__all__ = [
    "CACHE_MODES",
    "DEFAULT_LR",
    "DEFAULT_WEIGHT_DECAY",
    "DOMAIN_RANDOMISATION_PROBS",
    "MUTABLE_ON_RESUME",
    "OPTIMIZERS",
    "RANGES",
    "TARGETS",
    "VAL_MODES",
    "AugmentConfig",
    "ConfigError",
    "TrainConfig",
    "differences",
    "dumps_toml",
    "read_config_file",
]

DEFAULT_LR: Mapping[str, float] = {"sgd": 1e-2, "adamw": 3e-4}
"""Initial learning rate by optimizer (SGD: nnU-Net's 1e-2)."""

DEFAULT_WEIGHT_DECAY: Mapping[str, float] = {"sgd": 3e-5, "adamw": 1e-2}
"""Weight decay by optimizer (SGD: nnU-Net's 3e-5; AdamW: decoupled 1e-2)."""

MUTABLE_ON_RESUME: frozenset[str] = frozenset(
    {
        "data",
        "out",
        "epochs",
        "patience",
        "val_every",
        "device",
        "num_workers",
        "cache",
        "progress",
        "tensorboard",
        "resume",
        "amp",
        "deterministic",
    }
)
"""Settings a resumed run may change; every other setting must equal the run's."""


@dataclass
class TrainConfig:
    """Everything that defines a training run (see ``nehmap train --help``).

    Attributes
    ----------
    data : str
        Collection folder or manifest (any layout :func:`nehmap.io.discover` reads).
    out : str
        Run folder: checkpoints, logs, split, configuration, cache.
    model : str
        ``paunet``, ``unetrpp`` or ``unetrpp-consensus`` (any registered network).
    preset : str or None
        Network preset (``demo``, ``paper``); None for the constructor defaults.
    model_kwargs : dict
        Extra network arguments, over the preset's.
    patch_size : list of 3 int or None
        Training patch, voxels; default the network's.
    layout, label_scheme : str or None
        Force the collection's layout / label scheme (default: detected).
    target : str
        ``auto`` (from the network's classes), ``tissue`` (nehmap labels 0-4) or
        ``consensus`` (two-level NEH map 0/1/2, see :mod:`nehmap.train.targets`).
    spacing : list of 3 float or "data"
        Voxel spacing the network trains at, mm; ``"data"``: the median spacing of the
        training cases.
    epochs, iterations_per_epoch, batch_size : int
        Run length; ``batch_size`` is per process.
    optimizer : str
        ``sgd`` (Nesterov) or ``adamw``.
    lr, weight_decay : float or None
        Default by optimizer (:data:`DEFAULT_LR`, :data:`DEFAULT_WEIGHT_DECAY`).
    momentum : float
        SGD momentum.
    poly_exponent : float
        ``lr_e = lr * (1 - e / epochs) ** poly_exponent`` at epoch ``e`` (0-based).
    grad_clip : float
        Gradient norm clip; 0 disables it.
    amp : bool or None
        Mixed precision; None: on CUDA only.
    dice_weight, ce_weight : float
        Weights of the soft Dice and cross-entropy terms.
    batch_dice : bool
        Dice over the whole batch (True) or per sample.
    foreground_fraction : float
        Share of patches centred on tumour.
    neh_fraction : float
        Share of those centred on NEH in particular.
    augment : bool
        Augment patches on the fly.
    augmentation : AugmentConfig
        Augmentation settings.
    val_fraction : float
        Share of cases held out for validation.
    val_every : int
        Validate every this many epochs (and after the last).
    val_mode : str
        ``patches`` (fixed patches of each validation case, fast) or ``cases``
        (sliding window over whole validation cases).
    val_patches : int
        Patches per validation case in ``patches`` mode.
    patience : int or None
        Stop after this many epochs without a better validation metric.
    seed : int
        Seed of everything random (split, patches, augmentation, initialisation).
    deterministic : bool
        Use deterministic algorithms only (slower; needed for bitwise-repeatable GPU runs).
    device : str or None
        ``cuda``, ``cpu``... (default: CUDA when available).
    num_workers : int
        Data-loading worker processes (0: in the training process).
    cache : str
        Preprocessed cases kept in ``memory``, on ``disk`` (``RUN/cache``), or ``auto``.
    progress, tensorboard : bool
        Progress bars; TensorBoard logs when TensorBoard is installed.
    resume : bool
        Continue the run in ``out``.
    init : str or None
        Checkpoint (see :mod:`nehmap.models.checkpoint`) whose weights start a new run:
        fine-tuning. The network must have the same architecture and arguments; the
        optimizer, schedule and epochs start afresh. Ignored when resuming (the run's
        own state is used).
    """

    data: str = ""
    out: str = ""
    model: str = "paunet"
    preset: str | None = "demo"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    patch_size: list[int] | None = None
    layout: str | None = None
    label_scheme: str | None = None
    target: str = "auto"
    spacing: list[float] | str = field(default_factory=lambda: [1.0, 1.0, 1.0])
    epochs: int = 1000
    iterations_per_epoch: int = 250
    batch_size: int = 2
    optimizer: str = "sgd"
    lr: float | None = None
    weight_decay: float | None = None
    momentum: float = 0.99
    poly_exponent: float = 0.9
    grad_clip: float = 12.0
    amp: bool | None = None
    dice_weight: float = 1.0
    ce_weight: float = 1.0
    batch_dice: bool = True
    foreground_fraction: float = 0.33
    neh_fraction: float = 0.5
    augment: bool = True
    augmentation: AugmentConfig = field(default_factory=AugmentConfig)
    val_fraction: float = 0.2
    val_every: int = 1
    val_mode: str = "patches"
    val_patches: int = 8
    patience: int | None = None
    seed: int = 0
    deterministic: bool = False
    device: str | None = None
    num_workers: int = 0
    cache: str = "auto"
    progress: bool = True
    tensorboard: bool = True
    resume: bool = False
    init: str | None = None

    # ------------------------------------------------------------------ building

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str | Path | None = None) -> TrainConfig:
        """A configuration from a mapping of settings (unknown keys are refused).

        Raises
        ------
        ConfigError
            For an unknown key (listing the known ones) or an invalid value.
        """
        values = normalise_keys(values, source)
        _refuse_unknown(values, cls, "setting(s)", "Known settings", source)
        kwargs = dict(values)
        aug = kwargs.pop("augmentation", None) or {}
        if isinstance(aug, AugmentConfig):
            aug = dataclasses.asdict(aug)
        if not isinstance(aug, Mapping):
            fail("augmentation must be a table of settings.", path=source)
        aug = normalise_keys(aug, source)
        _refuse_unknown(aug, AugmentConfig, "augmentation setting(s)", "Known", source)
        aug = {k: tuple(v) if isinstance(v, list) else v for k, v in aug.items()}
        if kwargs.get("preset") in ("none", ""):
            kwargs["preset"] = None
        try:
            config = cls(**kwargs, augmentation=AugmentConfig(**aug))
        except TypeError as exc:
            fail(f"invalid settings: {exc}.", path=source)
        config.normalise(source)
        return config

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        """Read a TOML (``.toml``) or YAML (``.yaml``/``.yml``) configuration file.

        Relative ``data`` and ``out`` paths are taken relative to the file's folder.
        """
        return cls.from_dict(read_config_file(path), path)

    @classmethod
    def from_run(cls, run: str | Path) -> TrainConfig:
        """The saved configuration of a run folder, set to resume it.

        Raises
        ------
        ConfigError
            If the folder holds no ``config.toml`` / ``config.yaml``.
        """
        for name in ("config.toml", "config.yaml"):
            path = Path(run) / name
            if path.is_file():
                values = read_config_file(path)
                aug = dict(values.get("augmentation") or {})
                # a run saved before domain randomisation trained without it
                for key in DOMAIN_RANDOMISATION_PROBS:
                    aug.setdefault(key, 0.0)
                values["augmentation"] = aug
                config = cls.from_dict(values, path)
                config.resume = True
                return config
        raise ConfigError(Path(run), "holds no config.toml or config.yaml of a training run.")

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain Python values (lists, not tuples)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def to_file(self, path: str | Path) -> Path:
        """Write the configuration as TOML or YAML (by suffix), atomically."""
        from nehmap.io.atomic import write_text_atomic

        p = Path(path)
        values = self.to_dict()
        if p.suffix.lower() in (".yaml", ".yml"):
            import yaml

            text = yaml.safe_dump(values, sort_keys=False)
        elif p.suffix.lower() == ".toml":
            text = dumps_toml(values)
        else:
            raise ConfigError(p, "unknown configuration file type.", "Use .toml, .yaml or .yml.")
        return write_text_atomic(p, text)

    # ------------------------------------------------------------------ checks

    def normalise(self, source: str | Path | None = None) -> None:
        """Coerce values to their canonical types and check them.

        Raises
        ------
        ConfigError
            Naming the first invalid setting.
        """
        try:
            coerce_settings(self)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            fail(f"invalid setting: {exc}", path=source)
        self.validate(source)

    def validate(self, source: str | Path | None = None) -> None:
        """Check every setting; raises :class:`ConfigError` naming the first problem."""
        check_settings(self, source)

    # ------------------------------------------------------------------ derived

    def resolved(self) -> TrainConfig:
        """A copy with the optimizer-dependent defaults (lr, weight decay) filled in."""
        out = dataclasses.replace(
            self,
            model_kwargs=dict(self.model_kwargs),
            augmentation=dataclasses.replace(self.augmentation),
        )
        if out.lr is None:
            out.lr = DEFAULT_LR[out.optimizer]
        if out.weight_decay is None:
            out.weight_decay = DEFAULT_WEIGHT_DECAY[out.optimizer]
        return out

    def network_kwargs(self) -> dict[str, Any]:
        """Arguments for :func:`nehmap.models.create_model` besides name and preset."""
        kwargs = dict(self.model_kwargs)
        if self.patch_size is not None:
            kwargs["patch_size"] = list(self.patch_size)
        return kwargs


def _refuse_unknown(
    values: Mapping[str, Any], kind: type, what: str, known_label: str, source: str | Path | None
) -> None:
    """Refuse keys of ``values`` that are not fields of the dataclass ``kind``, listing those."""
    known = {f.name for f in fields(kind)}
    unknown = sorted(set(values) - known)
    if unknown:
        fail(f"unknown {what} {unknown}.", f"{known_label}: {', '.join(sorted(known))}.", source)


def differences(saved: TrainConfig, now: TrainConfig) -> list[str]:
    """Settings that differ between a run's saved configuration and a new one.

    Only the settings a resumed run may not change are compared (all but
    :data:`MUTABLE_ON_RESUME`); optimizer defaults are resolved first.

    Returns
    -------
    list of str
        One ``"name: <run's value> in the run, <new value> now"`` line per difference.
    """
    a, b = saved.resolved().to_dict(), now.resolved().to_dict()
    out = []
    for key in a:
        if key in MUTABLE_ON_RESUME:
            continue
        if key == "augmentation":
            for sub in a[key]:
                if a[key][sub] != b[key][sub]:
                    out.append(
                        f"augmentation.{sub}: {a[key][sub]!r} in the run, {b[key][sub]!r} now"
                    )
        elif a[key] != b[key]:
            out.append(f"{key}: {a[key]!r} in the run, {b[key]!r} now")
    return out
