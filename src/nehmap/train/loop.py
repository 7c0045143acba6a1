"""The training loop: :func:`train` runs a :class:`~nehmap.train.config.TrainConfig`.

Per epoch: ``iterations_per_epoch`` optimiser steps on batches of augmented patches
(:mod:`nehmap.train.dataset`), the poly learning rate
``lr * (1 - epoch / epochs) ** 0.9`` set at the start of the epoch, Dice + CE loss with
deep supervision, mixed precision on CUDA (autocast + gradient scaler), gradient norm
clipped to ``grad_clip``; then, every ``val_every`` epochs and after the last,
validation (:mod:`nehmap.train.validate`); then the training state and the
``latest`` (and, when the validation metric improved, ``best``) checkpoints
(:mod:`nehmap.train.checkpointing`) and a row of ``log.csv``. Training stops after
``epochs`` epochs, or earlier when the validation metric has not improved for
``patience`` epochs.

A run folder after training::

    RUN/config.toml      the effective configuration (config.yaml for YAML configs)
    RUN/split.json       training and validation case ids
    RUN/log.csv          one row per epoch (TensorBoard events in RUN/tensorboard)
    RUN/latest.{safetensors,json}, RUN/best.{safetensors,json}   checkpoints
    RUN/resume/          the training state for --resume
    RUN/cache/           preprocessed cases, when cached on disk

This module holds the loop; setting a run up is in :mod:`nehmap.train.run_setup`, the
validation bookkeeping in :mod:`nehmap.train.progress` and the writing of checkpoints
in :mod:`nehmap.train.run_checkpoints`.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nehmap.train import checkpointing as ckpt
from nehmap.train.config import ConfigError, TrainConfig
from nehmap.train.dataset import EpochBatches, PatchDataset, make_loader
from nehmap.train.distributed import DistContext, setup
from nehmap.train.history import RunLog
from nehmap.train.loss import DeepSupervisionLoss, DiceCELoss
from nehmap.train.progress import RunProgress, epoch_line, epoch_row, validate_epoch
from nehmap.train.run_checkpoints import TARGET_WORDS, RunCheckpoints
from nehmap.train.run_setup import (
    CONFIG_NAMES,
    check_resume,
    initialise_from,
    load_cases,
    prepare_split,
    restore_state,
    run_config_path,
    training_spacing,
)
from nehmap.train.seeding import INIT_STREAM, derived_seed
from nehmap.train.split import Split
from nehmap.train.step import make_optimizer, train_epoch
from nehmap.train.targets import target_for
from nehmap.train.validate import ValidationResult, fixed_patches

__all__ = [
    "CONFIG_NAMES",
    "TARGET_WORDS",
    "TrainResult",
    "initialise_from",
    "run_config_path",
    "train",
]

Echo = Callable[[str], None]


@dataclass
class TrainResult:
    """What :func:`train` did.

    Attributes
    ----------
    out : Path
        The run folder.
    epochs_completed : int
        Epochs completed so far in this run (resumed epochs included).
    best_epoch : int or None
        Epoch (1-based) of the best validation metric.
    best_metric : float or None
        Best validation metric (mean Dice over the regions).
    stopped_early : bool
        Whether early stopping ended the run.
    latest, best : Path or None
        The checkpoints (names without suffix), when written.
    history : list of dict
        The rows of ``log.csv`` (on rank 0; empty on other ranks).
    split : Split
        The training and validation cases.
    """

    out: Path
    epochs_completed: int
    best_epoch: int | None
    best_metric: float | None
    stopped_early: bool
    latest: Path | None
    best: Path | None
    history: list[dict[str, Any]] = field(default_factory=list)
    split: Split | None = None


def _echo_default(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(message)


@contextlib.contextmanager
def _deterministic(enabled: bool, device: torch.device) -> Iterator[None]:
    """Deterministic algorithms (and no cuDNN autotuning) while training, if asked.

    ``warn_only``: an operation without a deterministic implementation (on CUDA, e.g.
    the backward pass of trilinear upsampling in PAUNet's attention gates) warns instead
    of failing, naming the operation that keeps a GPU run from being bitwise repeatable.
    On the CPU every operation the networks use is deterministic.
    """
    before = torch.are_deterministic_algorithms_enabled()
    before_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    bench = torch.backends.cudnn.benchmark
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=before_warn)
        torch.backends.cudnn.benchmark = bench


def train(
    config: TrainConfig, *, echo: Echo | None = _echo_default, config_format: str = "toml"
) -> TrainResult:
    """Train a network as ``config`` says (see the module docstring).

    Parameters
    ----------
    config : TrainConfig
        The run's settings; ``data`` and ``out`` are required.
    echo : callable, optional
        Receives one line per epoch and notes (rank 0 only); None for silence.
    config_format : str
        ``"toml"`` or ``"yaml"``: format of the saved ``config.*`` of a new run.

    Returns
    -------
    TrainResult

    Raises
    ------
    nehmap.errors.NehmapInputError
        Bad settings (:class:`~nehmap.train.config.ConfigError`), bad or too few cases
        (:class:`~nehmap.errors.CaseError`), or a resume of another model or
        configuration (:class:`~nehmap.train.checkpointing.ResumeError`).
    nehmap.train.checkpointing.CheckpointWriteError
        When a checkpoint cannot be written (e.g. a full disk); the message says which
        checkpoint is intact.
    """
    from nehmap.infer import select_device

    config = TrainConfig.from_dict(config.to_dict())
    if not config.data:
        raise ConfigError(None, "no training data given.", "Set --data (or data in the config).")
    if not config.out:
        raise ConfigError(None, "no run folder given.", "Set --out (or out in the config).")
    try:
        device = select_device(config.device)
    except ValueError as exc:
        raise ConfigError(None, str(exc)) from None
    ctx = setup(device)
    try:
        with _deterministic(config.deterministic, ctx.device):
            return _Trainer(config, ctx, echo if ctx.is_main else None, config_format).run()
    finally:
        ctx.close()


class _Trainer:
    """One training run (state shared by the steps of :func:`train`)."""

    def __init__(self, config: TrainConfig, ctx: DistContext, echo: Echo | None, fmt: str):
        self.config = config.resolved()
        self.ctx = ctx
        self.device = ctx.device
        self.echo = echo
        self.fmt = "yaml" if fmt.lower() in ("yaml", "yml") else "toml"
        self.out = Path(config.out).expanduser().resolve()
        self.progress = RunProgress()

    def say(self, message: str) -> None:
        if self.echo is not None:
            self.echo(message)

    def run(self) -> TrainResult:
        c, ctx = self.config, self.ctx
        resume, fmt = check_resume(c, self.out, self.say)
        if fmt is not None:
            self.fmt = fmt
        try:
            target = target_for(c.model, c.target)
        except (ValueError, KeyError) as exc:  # KeyError: UnknownModelError
            raise ConfigError(None, str(exc)) from None
        collection, split = load_cases(c, self.out, target, resume)
        spacing = training_spacing(c, collection, split, resume)
        if ctx.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            saved = TrainConfig.from_dict(
                {**c.to_dict(), "out": str(self.out), "data": str(Path(c.data).resolve())}
            ).resolved()
            saved.resume = False
            saved.to_file(self.out / f"config.{self.fmt}")
            if resume is None:
                split.save(self.out)

        from nehmap.models import create_model

        torch.manual_seed(derived_seed(c.seed, INIT_STREAM))
        try:
            model = create_model(c.model, c.preset, **c.network_kwargs())
        except (TypeError, ValueError) as exc:
            raise ConfigError(None, f"cannot build network {c.model!r}: {exc}") from None
        if int(model.n_classes) != target.n_classes:
            raise ConfigError(
                None,
                f"network {c.model!r} has {model.n_classes} outputs but the {target.mode} "
                f"target has {target.n_classes} classes {list(target.class_names)}.",
            )
        if c.init and resume is None:
            self.say(initialise_from(model, c.model, c.init).words())
        model.to(self.device)
        patch = tuple(int(p) for p in model.patch_size)

        train_cases, val_cases = prepare_split(
            c, ctx, self.out, collection, split, target, spacing, self.say
        )
        self.say(
            f"{c.model} ({c.preset or 'no preset'}, {model.n_parameters():,} parameters): "
            f"{len(train_cases)} training / {len(split.val)} validation cases at "
            f"{'x'.join(f'{s:g}' for s in spacing)} mm, patches {'x'.join(map(str, patch))}, "
            f"device {self.device}" + (f" x {ctx.world_size} processes" if ctx.enabled else "")
        )

        assert c.lr is not None and c.weight_decay is not None
        optimizer = make_optimizer(model, c.optimizer, c.lr, c.weight_decay, c.momentum)
        amp = self.device.type == "cuda" if c.amp is None else bool(c.amp)
        if amp and self.device.type != "cuda":
            self.say("note: mixed precision needs CUDA; training in float32.")
            amp = False
        scaler = torch.amp.GradScaler("cuda", enabled=amp)
        loss_fn = DeepSupervisionLoss(
            DiceCELoss(target.n_classes, c.dice_weight, c.ce_weight, c.batch_dice),
            getattr(model, "deep_supervision_weights", (1.0,)),
        )
        val_loss_fn = DiceCELoss(target.n_classes, c.dice_weight, c.ce_weight, c.batch_dice)

        start_epoch = 0
        stopped_early = False
        if resume is not None:
            start_epoch, self.progress, stopped_early = restore_state(
                self.out, model, optimizer, scaler, ctx.world_size, c.epochs, self.say
            )

        log = RunLog(self.out, list(target.regions), c.tensorboard) if ctx.is_main else None
        if log is not None and resume is not None:
            log.load(start_epoch)
        if start_epoch >= c.epochs or stopped_early:
            self.say("the run is already complete.")
            return self._result(start_epoch, stopped_early, split, log)

        writer = RunCheckpoints(c, self.out, ctx, target.mode, collection, split, spacing)
        net = ctx.wrap(model)
        dataset = PatchDataset(
            train_cases,
            patch,
            c.seed,
            ctx.rank,
            c.foreground_fraction,
            c.neh_fraction,
            c.augmentation if c.augment else None,
            spacing,
            target.mode == "tissue",
        )
        batches = EpochBatches(c.iterations_per_epoch, c.batch_size)
        loader = make_loader(dataset, batches, c.num_workers, self.device.type == "cuda")
        val_plans = (
            fixed_patches(val_cases, patch, c.val_patches, c.seed)
            if ctx.is_main and c.val_mode == "patches"
            else []
        )

        epoch = start_epoch
        try:
            for epoch in range(start_epoch, c.epochs):
                t0 = time.perf_counter()
                lr, loss = train_epoch(
                    net, loader, batches, optimizer, scaler, loss_fn, c, epoch,
                    rank=ctx.rank, device=self.device, amp=amp,
                    show_progress=c.progress and ctx.is_main,
                )  # fmt: skip
                train_loss = ctx.mean(loss)
                stop, failed = False, None
                if ctx.is_main:
                    try:
                        stop = self._end_epoch(
                            epoch + 1,
                            lr,
                            train_loss,
                            time.perf_counter() - t0,
                            model,
                            optimizer,
                            scaler,
                            (val_cases, val_plans, val_loss_fn, target, patch, amp),
                            writer,
                            log,
                        )
                    except ckpt.CheckpointWriteError as exc:
                        failed = exc
                stop, error = ctx.broadcast_flags(stop, failed is not None)
                ctx.barrier()
                if failed is not None:
                    raise failed
                if error:
                    raise RuntimeError("training stopped: rank 0 could not write a checkpoint.")
                if stop:
                    stopped_early = True
                    break
        finally:
            if log is not None:
                log.close()
        done = epoch + 1 if self.progress.saved_epoch is None else self.progress.saved_epoch
        return self._result(done, stopped_early, split, log)

    def _end_epoch(
        self,
        epoch: int,
        lr: float,
        train_loss: float,
        seconds: float,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        validation: tuple,
        writer: RunCheckpoints,
        log: RunLog | None,
    ) -> bool:
        """Validate, save, log (rank 0). Returns whether to stop early."""
        c, progress = self.config, self.progress
        val_cases, val_plans, val_loss_fn, target, patch, amp = validation
        result: ValidationResult | None = None
        improved = False
        if epoch % c.val_every == 0 or epoch == c.epochs:
            t_val = time.perf_counter()
            result = validate_epoch(
                model, c, val_cases, val_plans, val_loss_fn, target, patch, self.device, amp
            )
            seconds += time.perf_counter() - t_val
            improved = progress.record(epoch, result)
        stop = progress.should_stop(epoch, c.patience)
        writer.save(epoch, improved, stop, model, optimizer, scaler, progress)
        row = epoch_row(epoch, lr, train_loss, result, progress.best_metric, seconds)
        if log is not None:
            try:
                log.add(row)
            except OSError as exc:
                raise ckpt.CheckpointWriteError(
                    f"{log.path}: could not write the log ({ckpt.describe_os_error(exc)}). "
                    f"The checkpoint of epoch {epoch} was saved. Free some space and continue "
                    f"with: nehmap train --out {self.out} --resume"
                ) from exc
        self.say(epoch_line(epoch, c.epochs, lr, train_loss, result, progress, seconds, improved))
        if stop and progress.best_epoch is not None:
            self.say(f"early stop: no improvement for {epoch - progress.best_epoch} epochs.")
        return stop

    def _result(
        self, epochs_done: int, stopped_early: bool, split: Split, log: RunLog | None
    ) -> TrainResult:
        latest = self.out / "latest"
        best = self.out / "best"
        return TrainResult(
            out=self.out,
            epochs_completed=epochs_done,
            best_epoch=self.progress.best_epoch,
            best_metric=self.progress.best_metric,
            stopped_early=stopped_early,
            latest=latest if latest.with_suffix(".json").is_file() else None,
            best=best if best.with_suffix(".json").is_file() else None,
            history=list(log.rows) if log is not None else [],
            split=split,
        )
