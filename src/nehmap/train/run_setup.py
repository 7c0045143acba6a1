"""Setting up a training run before its first epoch.

Resuming is checked against the run's saved configuration (:func:`check_resume`); the
cases are discovered and split, or the run's split is reloaded (:func:`load_cases`); the
training spacing is fixed in mm (:func:`training_spacing`); the cases are preprocessed
into memory or the run's disk cache (:func:`prepare_split`); and a fine-tuning run
copies a checkpoint's weights into the new network (:func:`initialise_from`; the output
layers start fresh when the checkpoint has other classes). A resumed
run restores its network, optimiser, scaler, random state and progress
(:func:`restore_state`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nehmap.errors import NehmapInputError
from nehmap.train import checkpointing as ckpt
from nehmap.train.config import ConfigError, TrainConfig, differences
from nehmap.train.data import (
    MEMORY_CACHE_LIMIT,
    DiskCache,
    PreparedCase,
    estimated_bytes,
    median_spacing,
    prepare_cases,
)
from nehmap.train.distributed import DistContext
from nehmap.train.progress import RunProgress
from nehmap.train.split import Split, split_cases
from nehmap.train.targets import TargetSpec

__all__ = [
    "CONFIG_NAMES",
    "check_resume",
    "Initialisation",
    "initialise_from",
    "load_cases",
    "prepare_split",
    "restore_state",
    "run_config_path",
    "training_spacing",
]

CONFIG_NAMES = ("config.toml", "config.yaml")

Say = Callable[[str], None]


def run_config_path(out: str | Path) -> Path | None:
    """The saved configuration of a run folder, if any."""
    for name in CONFIG_NAMES:
        p = Path(out) / name
        if p.is_file():
            return p
    return None


def check_resume(
    config: TrainConfig, out: Path, say: Say
) -> tuple[dict[str, Any] | None, str | None]:
    """The run's state record when resuming, and the format of its saved configuration.

    Returns ``(None, None)`` for a new run. Resuming is refused (with
    :class:`~nehmap.train.checkpointing.ResumeError`) when ``out`` holds a run and
    ``config.resume`` is off, or when the run was trained with other settings.
    """
    if not ckpt.has_state(out):
        if config.resume:
            say(f"note: {out} holds no training state yet; starting a new run.")
        return None, None
    info = ckpt.read_state_info(out)
    if not config.resume:
        raise ckpt.ResumeError(
            out,
            f"already holds a training run ({info.get('epoch')} of "
            f"{info.get('epochs', '?')} epochs done).",
            "Continue it with --resume, or train into another --out folder.",
        )
    saved_path = run_config_path(out)
    if saved_path is None:
        raise ckpt.ResumeError(out, "has a training state but no config.toml/yaml.")
    saved = TrainConfig.from_file(saved_path)
    diffs = differences(saved, config)
    if diffs:
        raise ckpt.ResumeError(
            out,
            "cannot resume: this run was trained with other settings: " + "; ".join(diffs) + ".",
            "Resume with the run's own settings (give only --out and --resume; the run's "
            f"{saved_path.name} supplies the rest), or train into another --out folder.",
        )
    if saved.epochs != config.epochs:
        say(
            f"note: epochs changed from {saved.epochs} to {config.epochs}; the learning-rate "
            "schedule follows the new total from here on."
        )
    return info, "yaml" if saved_path.suffix == ".yaml" else "toml"


def load_cases(
    config: TrainConfig, out: Path, target: TargetSpec, resume: dict[str, Any] | None
) -> tuple[Any, Split]:
    """The collection and its training/validation split (the run's own when resuming)."""
    from nehmap.io import discover

    collection = discover(config.data, layout=config.layout, label_scheme=config.label_scheme)
    target.check_labelled(collection.cases)
    if resume is not None:
        split = Split.load(out)
        missing = sorted(set(split.train + split.val) - set(collection.ids))
        if missing:
            raise ckpt.ResumeError(
                Path(config.data),
                f"lacks {len(missing)} case(s) of the run's split (e.g. {missing[0]}).",
                "Resume with the collection the run was trained on (--data).",
            )
    else:
        split = split_cases(collection.ids, config.val_fraction, config.seed)
    return collection, split


def training_spacing(
    config: TrainConfig, collection: Any, split: Split, resume: dict[str, Any] | None
) -> tuple:
    """The voxel spacing the network trains at, mm (``"data"``: the training median)."""
    spacing = config.spacing
    if spacing == "data":
        if resume is not None and "spacing_mm" in resume:
            return tuple(float(s) for s in resume["spacing_mm"])
        return median_spacing([collection[i] for i in split.train])
    return tuple(float(s) for s in spacing)


def prepare_split(
    config: TrainConfig,
    ctx: DistContext,
    out: Path,
    collection: Any,
    split: Split,
    target: TargetSpec,
    spacing: tuple,
    say: Say,
) -> tuple[list[PreparedCase], list[PreparedCase]]:
    """Training and validation cases, preprocessed (validation cases on rank 0 only).

    ``cache = "auto"`` keeps them in memory unless they are large or the run is
    distributed; on disk, the ranks share the preprocessing and wait for each other.
    """
    train_files = [collection[i] for i in split.train]
    val_files = [collection[i] for i in split.val]
    mode = config.cache
    if mode == "auto":
        big = estimated_bytes(train_files + val_files, spacing) > MEMORY_CACHE_LIMIT
        mode = "disk" if ctx.enabled or big else "memory"
    progress = config.progress and ctx.is_main
    if mode == "memory":
        train_cases = prepare_cases(train_files, target, spacing, progress=progress)
        val_cases = (
            prepare_cases(val_files, target, spacing, progress=progress) if ctx.is_main else []
        )
        assert train_cases is not None and val_cases is not None
        return train_cases, val_cases
    cache = DiskCache(out / "cache")
    say(f"caching preprocessed cases in {cache.folder}")
    prepare_cases(
        train_files + val_files,
        target,
        spacing,
        cache=cache,
        share=(ctx.rank, ctx.world_size),
        progress=progress,
    )
    ctx.barrier()
    train_cases = prepare_cases(train_files, target, spacing, cache=cache)
    val_cases = prepare_cases(val_files, target, spacing, cache=cache) if ctx.is_main else []
    assert train_cases is not None and val_cases is not None
    return train_cases, val_cases


def initialise_from(model: nn.Module, architecture: str, checkpoint: str | Path) -> Initialisation:
    """Copy the weights of ``checkpoint`` into ``model`` (fine-tuning, transfer).

    The checkpoint must hold the same network: the same architecture, or one that builds
    the same network class with another number of output classes (``unetrpp`` weights
    for ``unetrpp-consensus``). In the second case every tensor but the output layers'
    is copied, and the output layers (the tensors whose first dimension is the number of
    classes, and only that dimension differs) keep their fresh initialisation, as
    nnU-Net does with pretrained weights.

    Returns
    -------
    Initialisation
        The checkpoint's card path and the names of the tensors that start fresh.

    Raises
    ------
    ConfigError
        Naming the checkpoint when it cannot be read, is another kind of network, or any
        tensor other than an output layer differs in name or shape from ``model``'s
        (other network arguments or patch size). ``model`` is left untouched then.
    """
    from nehmap.models.checkpoint import checkpoint_paths, load_checkpoint, state_differences

    card_path = checkpoint_paths(checkpoint)[1]
    try:
        source, card = load_checkpoint(checkpoint)
    except NehmapInputError as exc:
        raise ConfigError(
            exc.path or card_path, f"cannot start from this checkpoint: {exc.problem}", exc.hint
        ) from None
    if card.architecture != architecture and type(source) is not type(model):
        raise ConfigError(
            card_path,
            f"the checkpoint is a {card.architecture!r} network, the run trains {architecture!r}.",
            f"Pass --model {card.architecture}, or a {architecture} checkpoint to --init.",
        )
    tensors, own = source.state_dict(), model.state_dict()
    fresh = ()
    if card.architecture != architecture:
        fresh = _output_layers(own, tensors, int(model.n_classes), int(source.n_classes))
    problems = state_differences(
        {k: v for k, v in own.items() if k not in fresh},
        {k: v for k, v in tensors.items() if k not in fresh},
    )
    if problems:
        raise ConfigError(
            card_path,
            f"its weights do not fit the network of this run: {'; '.join(problems)}.",
            "Fine-tuning needs the same preset, network arguments and patch size as the "
            f"checkpoint, and the same classes unless only the architecture's output "
            f"layers differ (its card lists them: {card.config}).",
        )
    own.update({k: v for k, v in tensors.items() if k not in fresh})
    model.load_state_dict(own, strict=True)
    return Initialisation(card_path, fresh, card.architecture)


@dataclass(frozen=True)
class Initialisation:
    """Where a run's first weights came from (:func:`initialise_from`).

    Attributes
    ----------
    card : Path
        The checkpoint's model card.
    fresh : tuple of str
        Tensors left at their fresh initialisation (output layers of another class
        count); empty when every tensor was copied.
    architecture : str
        The checkpoint's architecture.
    """

    card: Path
    fresh: tuple[str, ...]
    architecture: str

    def words(self) -> str:
        """One line for the run's log: the source and what starts fresh."""
        if not self.fresh:
            return f"weights from {self.card}"
        return (
            f"weights from {self.card} ({self.architecture}); output layers start fresh: "
            f"{', '.join(self.fresh)}"
        )


def _output_layers(
    ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor], n_ours: int, n_theirs: int
) -> tuple[str, ...]:
    """Names of the tensors that differ only in their first dimension, which is the
    number of classes in each state dict (the output layers of two class counts)."""
    if n_ours == n_theirs:
        return ()
    return tuple(
        k
        for k, a in ours.items()
        if k in theirs
        and a.ndim == theirs[k].ndim >= 1
        and a.shape[1:] == theirs[k].shape[1:]
        and (a.shape[0], theirs[k].shape[0]) == (n_ours, n_theirs)
    )


def restore_state(
    out: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    world_size: int,
    epochs: int,
    say: Say,
) -> tuple[int, RunProgress, bool]:
    """Load a run's training state into ``model``, ``optimizer``, ``scaler`` and the RNGs.

    Returns
    -------
    (int, RunProgress, bool)
        The epochs done, the validation progress and whether the run stopped early.
    """
    info, tensors = ckpt.load_state(out)
    model.load_state_dict(tensors["model"])
    optimizer.load_state_dict(tensors["optimizer"])
    if tensors.get("scaler") and scaler.is_enabled():
        scaler.load_state_dict(tensors["scaler"])
    ckpt.restore_rng(info, tensors)
    start_epoch = int(info["epoch"])
    progress = RunProgress.from_state(info)
    stopped_early = bool(info.get("stopped_early", False))
    if int(info.get("world_size", 1)) != world_size:
        say(
            f"note: the run used {info.get('world_size')} process(es), now "
            f"{world_size}: the patches drawn from here on differ from an "
            "uninterrupted run."
        )
    say(f"resuming after epoch {start_epoch} of {epochs}")
    return start_epoch, progress, stopped_early
