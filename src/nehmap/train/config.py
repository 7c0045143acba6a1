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
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NoReturn

from nehmap.errors import NehmapInputError

OPTIMIZERS: tuple[str, ...] = ("sgd", "adamw")
TARGETS: tuple[str, ...] = ("auto", "tissue", "consensus")
VAL_MODES: tuple[str, ...] = ("patches", "cases")
CACHE_MODES: tuple[str, ...] = ("auto", "memory", "disk")

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


RANGES: tuple[str, ...] = (
    "scale_range",
    "gamma_range",
    "blur_sigma",
    "rician_snr",
    "thick_slice_mm",
)
"""Augmentation settings that are ``(low, high)`` ranges."""

DOMAIN_RANDOMISATION_PROBS: tuple[str, ...] = (
    "label_contrast_prob",
    "bias_prob",
    "rician_prob",
    "thick_slice_prob",
    "dropout_prob",
)
"""Probabilities of the domain-randomisation transforms (:mod:`nehmap.train.randomise`);
a saved run without them had them off."""


class ConfigError(NehmapInputError):
    """An invalid training setting or configuration file."""


@dataclass
class AugmentConfig:
    """On-the-fly augmentation: each transform is applied to a patch with its probability.

    Attributes
    ----------
    flip_prob : float
        Probability of mirroring, per spatial axis.
    rotation_prob : float
        Probability of a rotation (then about all three axes).
    rotation_deg : float
        Largest rotation angle about each axis, degrees (uniform in +-``rotation_deg``).
    scale_prob : float
        Probability of an isotropic zoom.
    scale_range : (float, float)
        Zoom factor range; > 1 makes structures look larger.
    intensity_scale_prob, intensity_scale : float
        Probability and range of multiplying each channel by ``1 + u``,
        ``u`` uniform in +-``intensity_scale``.
    intensity_shift_prob, intensity_shift : float
        Probability and range of adding ``u`` (z-score units) to each channel.
    gamma_prob : float
        Probability of a gamma transform (intensity statistics kept).
    gamma_range : (float, float)
        Gamma range.
    noise_prob, noise_std : float
        Probability of additive Gaussian noise and the largest noise SD (z-score units).
    blur_prob : float
        Probability of Gaussian smoothing.
    blur_sigma : (float, float)
        Smoothing sigma range, voxels.
    label_contrast_prob : float
        Probability of random per-label contrasts (tissue targets only):
        each label's mean in each channel moves by ``u`` in +-``label_contrast_shift``
        (z-score units) and its spread by a factor ``1 + v``, ``v`` in
        +-``label_contrast_scale``; NEH follows edema with a quarter of the shift.
    label_contrast_shift, label_contrast_scale : float
        See ``label_contrast_prob``.
    bias_prob : float
        Probability of a multiplicative cubic bias field per channel.
    bias_strength : float
        Largest ``|log bias|`` over the patch (each channel draws in [0, this]).
    rician_prob : float
        Probability of Rician noise.
    rician_snr : (float, float)
        Signal-to-noise ratio range (mean signal / noise SD).
    thick_slice_prob : float
        Probability of resolution loss: slabs averaged along one random axis and
        resampled back (thick-slice acquisition).
    thick_slice_mm : (float, float)
        Slab thickness range, mm (1 x 1 x 3 to 1 x 1 x 6 mm acquisitions by default).
    dropout_prob : float
        Probability of replacing one random modality by zeros (its mean).

    Set every ``*_prob`` of the last five to 0 for the pipeline of nehmap 0.x before
    domain randomisation (see docs/synthetic-data.md).
    """

    flip_prob: float = 0.5
    rotation_prob: float = 0.2
    rotation_deg: float = 30.0
    scale_prob: float = 0.2
    scale_range: tuple[float, float] = (0.7, 1.4)
    intensity_scale_prob: float = 0.15
    intensity_scale: float = 0.25
    intensity_shift_prob: float = 0.15
    intensity_shift: float = 0.1
    gamma_prob: float = 0.3
    gamma_range: tuple[float, float] = (0.7, 1.5)
    noise_prob: float = 0.1
    noise_std: float = 0.1
    blur_prob: float = 0.2
    blur_sigma: tuple[float, float] = (0.5, 1.0)
    label_contrast_prob: float = 0.5
    label_contrast_shift: float = 0.3
    label_contrast_scale: float = 0.2
    bias_prob: float = 0.3
    bias_strength: float = 0.3
    rician_prob: float = 0.2
    rician_snr: tuple[float, float] = (8.0, 40.0)
    thick_slice_prob: float = 0.2
    thick_slice_mm: tuple[float, float] = (3.0, 6.0)
    dropout_prob: float = 0.05

    def validate(self, source: str | Path | None = None) -> None:
        """Raise :class:`ConfigError` naming the first invalid setting."""
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_prob") and not 0.0 <= value <= 1.0:
                _fail(
                    f"augmentation.{f.name} must be a probability in [0, 1], got {value}.",
                    path=source,
                )
        for name in RANGES:
            lo, hi = getattr(self, name)
            if not (0 < lo <= hi):
                _fail(f"augmentation.{name} must be (low, high) with 0 < low <= high.", path=source)
        if not 0 <= self.rotation_deg <= 180:
            _fail(
                f"augmentation.rotation_deg must be in [0, 180], got {self.rotation_deg}.",
                path=source,
            )
        for name in ("intensity_scale", "intensity_shift", "noise_std", "label_contrast_shift"):
            if getattr(self, name) < 0:
                _fail(f"augmentation.{name} must be >= 0.", path=source)
        for name in ("label_contrast_scale", "bias_strength"):
            if not 0 <= getattr(self, name) < 1:
                _fail(f"augmentation.{name} must be in [0, 1).", path=source)


def _fail(problem: str, hint: str = "", path: str | Path | None = None) -> NoReturn:
    raise ConfigError(path, problem, hint)


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
        values = _normalise_keys(values, source)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            _fail(
                f"unknown setting(s) {unknown}.",
                f"Known settings: {', '.join(sorted(known))}.",
                source,
            )
        kwargs = dict(values)
        aug = kwargs.pop("augmentation", None) or {}
        if isinstance(aug, AugmentConfig):
            aug = dataclasses.asdict(aug)
        if not isinstance(aug, Mapping):
            _fail("augmentation must be a table of settings.", path=source)
        aug = _normalise_keys(aug, source)
        aug_known = {f.name for f in fields(AugmentConfig)}
        bad = sorted(set(aug) - aug_known)
        if bad:
            _fail(
                f"unknown augmentation setting(s) {bad}.",
                f"Known: {', '.join(sorted(aug_known))}.",
                source,
            )
        aug = {k: tuple(v) if isinstance(v, list) else v for k, v in aug.items()}
        if kwargs.get("preset") in ("none", ""):
            kwargs["preset"] = None
        try:
            config = cls(**kwargs, augmentation=AugmentConfig(**aug))
        except TypeError as exc:
            _fail(f"invalid settings: {exc}.", path=source)
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
            self._normalise()
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            _fail(f"invalid setting: {exc}", path=source)
        self.validate(source)

    def _normalise(self) -> None:
        if isinstance(self.spacing, str):
            text = self.spacing.strip().lower()
            if text == "data":
                self.spacing = "data"
            else:
                parts = [float(v) for v in text.replace("x", ",").split(",") if v.strip()]
                self.spacing = parts * 3 if len(parts) == 1 else parts
        elif isinstance(self.spacing, int | float):
            self.spacing = [float(self.spacing)] * 3
        else:
            self.spacing = [float(v) for v in self.spacing]
        if self.patch_size is not None:
            if isinstance(self.patch_size, int):
                self.patch_size = [self.patch_size] * 3
            self.patch_size = [int(v) for v in self.patch_size]
        self.model_kwargs = dict(self.model_kwargs or {})
        for name in ("epochs", "iterations_per_epoch", "batch_size", "val_every", "val_patches"):
            setattr(self, name, int(getattr(self, name)))
        self.seed = int(self.seed)
        self.num_workers = int(self.num_workers)
        if self.patience is not None:
            self.patience = int(self.patience)
        for name in ("data", "out"):
            setattr(self, name, str(getattr(self, name) or ""))
        self.optimizer = str(self.optimizer).lower()
        self.target = str(self.target).lower()
        self.val_mode = str(self.val_mode).lower()
        self.cache = str(self.cache).lower()
        a = self.augmentation
        for name in RANGES:
            lo, hi = getattr(a, name)
            setattr(a, name, (float(lo), float(hi)))

    def validate(self, source: str | Path | None = None) -> None:
        """Check every setting; raises :class:`ConfigError` naming the first problem."""

        def need(ok: bool, problem: str, hint: str = "") -> None:
            if not ok:
                _fail(problem, hint, source)

        need(
            self.spacing == "data"
            or (len(self.spacing) == 3 and all(math.isfinite(s) and s > 0 for s in self.spacing)),
            f"spacing must be one or three positive numbers (mm) or 'data', got {self.spacing}.",
        )
        need(
            self.patch_size is None or (len(self.patch_size) == 3 and min(self.patch_size) > 0),
            f"patch_size must be one or three positive integers, got {self.patch_size}.",
        )
        for name in ("epochs", "iterations_per_epoch", "batch_size", "val_every", "val_patches"):
            need(getattr(self, name) >= 1, f"{name} must be at least 1, got {getattr(self, name)}.")
        need(self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}.")
        need(self.target in TARGETS, f"target must be one of {TARGETS}, got {self.target!r}.")
        need(self.val_mode in VAL_MODES, f"val_mode must be one of {VAL_MODES}.")
        need(self.cache in CACHE_MODES, f"cache must be one of {CACHE_MODES}.")
        need(self.lr is None or self.lr > 0, f"lr must be positive, got {self.lr}.")
        need(
            self.weight_decay is None or self.weight_decay >= 0,
            f"weight_decay must be >= 0, got {self.weight_decay}.",
        )
        need(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}.")
        need(self.grad_clip >= 0, f"grad_clip must be >= 0 (0 disables), got {self.grad_clip}.")
        need(self.poly_exponent >= 0, "poly_exponent must be >= 0.")
        need(self.dice_weight >= 0 and self.ce_weight >= 0, "loss weights must be >= 0.")
        need(self.dice_weight + self.ce_weight > 0, "dice_weight + ce_weight must be positive.")
        for name in ("foreground_fraction", "neh_fraction"):
            value = getattr(self, name)
            need(0 <= value <= 1, f"{name} must be in [0, 1], got {value}.")
        need(
            0 < self.val_fraction < 1,
            f"val_fraction must be between 0 and 1 (exclusive), got {self.val_fraction}.",
            "Validation needs held-out cases; 0.2 keeps a fifth of them.",
        )
        need(self.patience is None or self.patience >= 1, "patience must be at least 1 epoch.")
        need(self.num_workers >= 0, "num_workers must be >= 0.")
        self.augmentation.validate(source)

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


def _normalise_keys(values: Mapping[str, Any], source: str | Path | None) -> dict[str, Any]:
    if not isinstance(values, Mapping):
        _fail("a configuration must be a table of settings.", path=source)
    return {str(k).replace("-", "_"): v for k, v in values.items()}


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The settings of a TOML or YAML file as a dict (keys normalised to underscores).

    Relative ``data`` and ``out`` paths are made relative to the file's folder.

    Raises
    ------
    ConfigError
        If the file is missing, unreadable, of an unknown type or not a table.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(p, "configuration file not found.", "Check the path.")
    suffix = p.suffix.lower()
    try:
        text = p.read_text(encoding="utf-8")
        if suffix == ".toml":
            values: Any = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            values = yaml.safe_load(text) or {}
        else:
            raise ConfigError(p, "unknown configuration file type.", "Use .toml, .yaml or .yml.")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(p, f"cannot be read ({exc}).") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(p, f"is not valid TOML ({exc}).", "Fix the file.") from None
    except Exception as exc:  # yaml.YAMLError without importing yaml at module level
        if type(exc).__module__.startswith("yaml"):
            raise ConfigError(p, f"is not valid YAML ({exc}).", "Fix the file.") from None
        raise
    values = _normalise_keys(values, p)
    for key in ("data", "out"):
        if isinstance(values.get(key), str) and values[key]:
            q = Path(values[key]).expanduser()
            values[key] = str(q if q.is_absolute() else (p.parent / q))
    return values


# ---------------------------------------------------------------------------- TOML writer


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write {value} in TOML.")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value if v is not None) + "]"
    if isinstance(value, Mapping):
        items = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    raise TypeError(f"cannot write a {type(value).__name__} in TOML.")


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def dumps_toml(values: Mapping[str, Any]) -> str:
    """A flat mapping with one level of sub-tables as TOML text (None values left out;
    ``preset = None`` is written as ``"none"``)."""
    lines: list[str] = []
    tables: list[tuple[str, Mapping[str, Any]]] = []
    for key, value in values.items():
        if key == "preset" and value is None:
            value = "none"
        if value is None:
            continue
        if isinstance(value, Mapping):
            tables.append((key, value))
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, table in tables:
        lines.append("")
        lines.append(f"[{_toml_key(key)}]")
        lines.extend(
            f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items() if v is not None
        )
    return "\n".join(lines) + "\n"
