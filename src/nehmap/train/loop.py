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
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
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
from nehmap.train.dataset import EpochBatches, PatchDataset, make_loader
from nehmap.train.distributed import DistContext, setup
from nehmap.train.history import RunLog
from nehmap.train.loss import DeepSupervisionLoss, DiceCELoss
from nehmap.train.seeding import INIT_STREAM, derived_seed, iteration_torch_seed
from nehmap.train.split import Split, split_cases
from nehmap.train.step import make_optimizer, poly_lr, train_step
from nehmap.train.targets import TargetSpec, target_for
from nehmap.train.validate import ValidationResult, fixed_patches, validate_cases, validate_patches

CONFIG_NAMES = ("config.toml", "config.yaml")

TARGET_WORDS = {
    "tissue": "nehmap labels (0 background, 1 NC, 2 ED, 3 NEH, 4 ET)",
    "consensus": "two-level NEH consensus map (0 background, 1 NEH-low, 2 NEH-high)",
}

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


def run_config_path(out: str | Path) -> Path | None:
    """The saved configuration of a run folder, if any."""
    for name in CONFIG_NAMES:
        p = Path(out) / name
        if p.is_file():
            return p
    return None


def _result_json(epoch: int | None, result: ValidationResult | None) -> dict[str, Any] | None:
    if result is None:
        return None
    return {"epoch": epoch, "loss": result.loss, "dice": dict(result.dice)}


def _result_from_json(record: dict[str, Any] | None) -> ValidationResult | None:
    if not record:
        return None
    return ValidationResult(float(record["loss"]), {k: float(v) for k, v in record["dice"].items()})


def initialise_from(model: nn.Module, architecture: str, checkpoint: str | Path) -> Path:
    """Copy the weights of ``checkpoint`` into ``model`` (fine-tuning); returns its card path.

    Raises
    ------
    ConfigError
        Naming the checkpoint when it cannot be read, is of another architecture, or its
        tensors' names or shapes differ from ``model``'s (other network arguments, patch
        size or number of classes). ``model`` is left untouched then.
    """
    from nehmap.models.checkpoint import checkpoint_paths, load_checkpoint, state_differences

    card_path = checkpoint_paths(checkpoint)[1]
    try:
        source, card = load_checkpoint(checkpoint)
    except NehmapInputError as exc:
        raise ConfigError(
            exc.path or card_path, f"cannot start from this checkpoint: {exc.problem}", exc.hint
        ) from None
    if card.architecture != architecture:
        raise ConfigError(
            card_path,
            f"the checkpoint is a {card.architecture!r} network, the run trains {architecture!r}.",
            f"Pass --model {card.architecture}, or a {architecture} checkpoint to --init.",
        )
    tensors = source.state_dict()
    problems = state_differences(model.state_dict(), tensors)
    if problems:
        raise ConfigError(
            card_path,
            f"its weights do not fit the network of this run: {'; '.join(problems)}.",
            "Fine-tuning needs the same preset, network arguments, patch size and classes "
            f"as the checkpoint (its card lists them: {card.config}).",
        )
    model.load_state_dict(tensors, strict=True)
    return card_path


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
        self.best_metric: float | None = None
        self.best_epoch: int | None = None
        self.saved_epoch: int | None = None  # epoch of the last complete checkpoint
        self.best_result: ValidationResult | None = None
        self.last_result: tuple[int, ValidationResult] | None = None
        self.target: TargetSpec | None = None

    def say(self, message: str) -> None:
        if self.echo is not None:
            self.echo(message)

    # ------------------------------------------------------------------ setup

    def _resume_info(self) -> dict[str, Any] | None:
        """The run's state record when resuming; checks the configuration first."""
        c = self.config
        if not ckpt.has_state(self.out):
            if c.resume:
                self.say(f"note: {self.out} holds no training state yet; starting a new run.")
            return None
        info = ckpt.read_state_info(self.out)
        if not c.resume:
            raise ckpt.ResumeError(
                self.out,
                f"already holds a training run ({info.get('epoch')} of "
                f"{info.get('epochs', '?')} epochs done).",
                "Continue it with --resume, or train into another --out folder.",
            )
        saved_path = run_config_path(self.out)
        if saved_path is None:
            raise ckpt.ResumeError(self.out, "has a training state but no config.toml/yaml.")
        saved = TrainConfig.from_file(saved_path)
        diffs = differences(saved, c)
        if diffs:
            raise ckpt.ResumeError(
                self.out,
                "cannot resume: this run was trained with other settings: "
                + "; ".join(diffs)
                + ".",
                "Resume with the run's own settings (give only --out and --resume; the run's "
                f"{saved_path.name} supplies the rest), or train into another --out folder.",
            )
        if saved.epochs != c.epochs:
            self.say(
                f"note: epochs changed from {saved.epochs} to {c.epochs}; the learning-rate "
                "schedule follows the new total from here on."
            )
        self.fmt = "yaml" if saved_path.suffix == ".yaml" else "toml"
        return info

    def _cases(self, resume: dict[str, Any] | None) -> tuple[Any, Split]:
        from nehmap.io import discover

        c = self.config
        collection = discover(c.data, layout=c.layout, label_scheme=c.label_scheme)
        assert self.target is not None
        self.target.check_labelled(collection.cases)
        if resume is not None:
            split = Split.load(self.out)
            missing = sorted(set(split.train + split.val) - set(collection.ids))
            if missing:
                raise ckpt.ResumeError(
                    Path(c.data),
                    f"lacks {len(missing)} case(s) of the run's split (e.g. {missing[0]}).",
                    "Resume with the collection the run was trained on (--data).",
                )
        else:
            split = split_cases(collection.ids, c.val_fraction, c.seed)
        return collection, split

    def _spacing(self, collection: Any, split: Split, resume: dict[str, Any] | None) -> tuple:
        spacing = self.config.spacing
        if spacing == "data":
            if resume is not None and "spacing_mm" in resume:
                return tuple(float(s) for s in resume["spacing_mm"])
            return median_spacing([collection[i] for i in split.train])
        return tuple(float(s) for s in spacing)

    def _prepare(
        self, collection: Any, split: Split, target: TargetSpec, spacing: tuple
    ) -> tuple[list[PreparedCase], list[PreparedCase]]:
        c, ctx = self.config, self.ctx
        train_files = [collection[i] for i in split.train]
        val_files = [collection[i] for i in split.val]
        mode = c.cache
        if mode == "auto":
            big = estimated_bytes(train_files + val_files, spacing) > MEMORY_CACHE_LIMIT
            mode = "disk" if ctx.enabled or big else "memory"
        progress = c.progress and ctx.is_main
        if mode == "memory":
            train_cases = prepare_cases(train_files, target, spacing, progress=progress)
            val_cases = (
                prepare_cases(val_files, target, spacing, progress=progress) if ctx.is_main else []
            )
            assert train_cases is not None and val_cases is not None
            return train_cases, val_cases
        cache = DiskCache(self.out / "cache")
        self.say(f"caching preprocessed cases in {cache.folder}")
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

    # ------------------------------------------------------------------ run

    def run(self) -> TrainResult:
        c, ctx = self.config, self.ctx
        resume = self._resume_info()
        try:
            target = target_for(c.model, c.target)
        except (ValueError, KeyError) as exc:  # KeyError: UnknownModelError
            raise ConfigError(None, str(exc)) from None
        self.target = target
        collection, split = self._cases(resume)
        spacing = self._spacing(collection, split, resume)
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
            self.init_source = initialise_from(model, c.model, c.init)
            self.say(f"weights from {self.init_source}")
        model.to(self.device)
        patch = tuple(int(p) for p in model.patch_size)

        train_cases, val_cases = self._prepare(collection, split, target, spacing)
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
            info, tensors = ckpt.load_state(self.out)
            model.load_state_dict(tensors["model"])
            optimizer.load_state_dict(tensors["optimizer"])
            if tensors.get("scaler") and scaler.is_enabled():
                scaler.load_state_dict(tensors["scaler"])
            ckpt.restore_rng(info, tensors)
            start_epoch = int(info["epoch"])
            self.saved_epoch = start_epoch
            self.best_metric = info.get("best_metric")
            self.best_epoch = info.get("best_epoch")
            self.best_result = _result_from_json(info.get("best_validation"))
            last = _result_from_json(info.get("last_validation"))
            if last is not None:
                self.last_result = (int(info["last_validation"]["epoch"]), last)
            stopped_early = bool(info.get("stopped_early", False))
            if int(info.get("world_size", 1)) != ctx.world_size:
                self.say(
                    f"note: the run used {info.get('world_size')} process(es), now "
                    f"{ctx.world_size}: the patches drawn from here on differ from an "
                    "uninterrupted run."
                )
            self.say(f"resuming after epoch {start_epoch} of {c.epochs}")

        log = RunLog(self.out, list(target.regions), c.tensorboard) if ctx.is_main else None
        if log is not None and resume is not None:
            log.load(start_epoch)
        if start_epoch >= c.epochs or stopped_early:
            self.say("the run is already complete.")
            return self._result(start_epoch, stopped_early, split, log)

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

        from tqdm import tqdm

        epoch = start_epoch
        try:
            for epoch in range(start_epoch, c.epochs):
                t0 = time.perf_counter()
                assert c.lr is not None
                lr = poly_lr(c.lr, epoch, c.epochs, c.poly_exponent)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                batches.epoch = epoch
                net.train()
                losses: list[float] = []
                bar = tqdm(
                    loader,
                    total=c.iterations_per_epoch,
                    desc=f"epoch {epoch + 1}/{c.epochs}",
                    unit="it",
                    leave=False,
                    disable=None if (c.progress and ctx.is_main) else True,
                )
                for iteration, (x, y) in enumerate(bar):
                    torch.manual_seed(iteration_torch_seed(c.seed, epoch, iteration, ctx.rank))
                    x = x.to(self.device, non_blocking=True)
                    y = y.to(self.device, non_blocking=True)
                    value = train_step(
                        net, x, y, optimizer, scaler, loss_fn, grad_clip=c.grad_clip, amp=amp
                    )
                    if math.isfinite(value):
                        losses.append(value)
                    bar.set_postfix(loss=f"{value:.4f}", refresh=False)
                bar.close()
                if not losses:
                    raise FloatingPointError(
                        f"training diverged: the loss was not finite in any iteration of epoch "
                        f"{epoch + 1}. Lower the learning rate (--lr) or check the data."
                    )
                train_loss = ctx.mean(float(np.mean(losses)))
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
                            collection,
                            split,
                            spacing,
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
        done = epoch + 1 if self.saved_epoch is None else self.saved_epoch
        return self._result(done, stopped_early, split, log)

    # ------------------------------------------------------------------ epoch end

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
        collection: Any,
        split: Split,
        spacing: tuple,
        log: RunLog | None,
    ) -> bool:
        """Validate, save, log (rank 0). Returns whether to stop early."""
        c = self.config
        val_cases, val_plans, val_loss_fn, target, patch, amp = validation
        result: ValidationResult | None = None
        improved = False
        if epoch % c.val_every == 0 or epoch == c.epochs:
            t_val = time.perf_counter()
            if c.val_mode == "patches":
                result = validate_patches(
                    model, val_cases, val_plans, val_loss_fn, target.regions, patch,
                    device=self.device, batch_size=c.batch_size, amp=amp,
                )  # fmt: skip
            else:
                result = validate_cases(
                    model, val_cases, val_loss_fn, target.regions, patch,
                    device=self.device, batch_size=c.batch_size, amp=amp,
                )  # fmt: skip
            seconds += time.perf_counter() - t_val
            self.last_result = (epoch, result)
            metric = result.metric if math.isfinite(result.metric) else -math.inf
            if self.best_metric is None or metric > self.best_metric:
                improved = True
                self.best_metric, self.best_epoch, self.best_result = metric, epoch, result
        stop = bool(
            c.patience is not None
            and self.best_epoch is not None
            and epoch - self.best_epoch >= c.patience
        )
        self._save(epoch, improved, stop, model, optimizer, scaler, collection, split, spacing)
        row: dict[str, Any] = {
            "epoch": epoch,
            "lr": lr,
            "train_loss": train_loss,
            "val_loss": result.loss if result else None,
            "val_metric": result.metric if result else None,
            "best_metric": self.best_metric,
            "seconds": round(seconds, 3),
        }
        if result is not None:
            row.update({f"dice_{k}": v for k, v in result.dice.items()})
        if log is not None:
            try:
                log.add(row)
            except OSError as exc:
                raise ckpt.CheckpointWriteError(
                    f"{log.path}: could not write the log ({ckpt.describe_os_error(exc)}). "
                    f"The checkpoint of epoch {epoch} was saved. Free some space and continue "
                    f"with: nehmap train --out {self.out} --resume"
                ) from exc
        dice = "  ".join(f"{k} {v:.3f}" for k, v in result.dice.items()) if result else ""
        self.say(
            f"epoch {epoch}/{c.epochs}  lr {lr:.2e}  train {train_loss:.4f}"
            + (
                f"  val {result.loss:.4f}  Dice {dice}  (mean {result.metric:.3f})"
                if result
                else ""
            )
            + (f"  best {self.best_metric:.3f} @ {self.best_epoch}" if self.best_epoch else "")
            + f"  {seconds:.1f} s"
            + ("  *" if improved else "")
        )
        if stop and self.best_epoch is not None:
            self.say(f"early stop: no improvement for {epoch - self.best_epoch} epochs.")
        return stop

    def _card(
        self,
        model: nn.Module,
        epoch: int,
        which: str,
        collection: Any,
        split: Split,
        spacing: tuple,
    ) -> Any:
        from nehmap.models.card import ModelCard

        c = self.config
        procs = f" x {self.ctx.world_size} processes" if self.ctx.enabled else ""
        desc = (
            f"{len(split.train)} training cases of {collection.root} (layout {collection.layout}), "
            f"{len(split.val)} further cases held out for validation (split.json, seed {c.seed}); "
            f"target: {TARGET_WORDS[self.target.mode]}; "
            f"{epoch} of {c.epochs} epochs x {c.iterations_per_epoch} iterations x batch "
            f"{c.batch_size}{procs}; patches {list(model.patch_size)} voxels at "
            f"{[round(s, 4) for s in spacing]} mm; {c.optimizer} lr {c.lr:g}, poly schedule; "
            f"augmentation {'on' if c.augment else 'off'}; trained with nehmap train"
        )
        if c.init:
            init = Path(c.init)
            desc += f", starting from the weights of {init.parent.name}/{init.name}"
        shown = self.best_result if which == "best" else None
        shown_epoch = self.best_epoch if which == "best" else None
        if which == "latest" and self.last_result is not None:
            shown_epoch, shown = self.last_result
        metrics: dict[str, Any] = {}
        if shown is not None:
            metrics = {f"dice_{k}": round(v, 6) for k, v in shown.dice.items()}
            metrics.update(
                {
                    "mean_dice": round(shown.metric, 6),
                    "val_loss": round(shown.loss, 6),
                    "epoch": shown_epoch,
                    "validation": (
                        f"pseudo-Dice over {c.val_patches} fixed patches of each of "
                        f"{len(split.val)} validation cases"
                        if c.val_mode == "patches"
                        else f"mean Dice over {len(split.val)} whole validation cases "
                        "(sliding window)"
                    ),
                }
            )
        return ModelCard.for_model(
            model,
            name=f"{self.out.name}-{which}",
            description=f"{which} checkpoint of the training run {self.out.name} (epoch {epoch})",
            spacing_mm=[float(s) for s in spacing],
            training_data=desc,
            validation_metrics=metrics,
            extra={
                "training": {
                    "epoch": epoch,
                    "epochs": c.epochs,
                    "best_epoch": self.best_epoch,
                    "seed": c.seed,
                    "target": c.target,
                    "run": str(self.out),
                }
            },
        )

    def _save(
        self,
        epoch: int,
        improved: bool,
        stop: bool,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        collection: Any,
        split: Split,
        spacing: tuple,
    ) -> None:
        """``latest``, then ``best`` (if improved), then the training state (the commit).

        A failure leaves the previous training state in place, so ``--resume`` repeats
        this epoch (reaching the same weights) and writes the checkpoints again. The
        error says what each file holds.
        """
        from safetensors import SafetensorError

        from nehmap.models.checkpoint import save_checkpoint

        previous = self.saved_epoch
        had = f"epoch {previous}" if previous is not None else "nothing yet"
        latest, best = self.out / "latest", self.out / "best"
        stage = "latest"
        try:
            save_checkpoint(
                model, self._card(model, epoch, "latest", collection, split, spacing), latest
            )
            if improved:
                stage = "best"
                save_checkpoint(
                    model, self._card(model, epoch, "best", collection, split, spacing), best
                )
            stage = "training-state"
            info = {
                "epochs": self.config.epochs,
                "best_metric": self.best_metric,
                "best_epoch": self.best_epoch,
                "stopped_early": stop,
                "spacing_mm": [float(s) for s in spacing],
                "world_size": self.ctx.world_size,
                "model": self.config.model,
                "best_validation": _result_json(self.best_epoch, self.best_result),
                "last_validation": _result_json(*self.last_result) if self.last_result else None,
            }
            ckpt.save_state(self.out, epoch, model, optimizer, scaler, info)
            self.saved_epoch = epoch
        except (OSError, SafetensorError) as exc:
            why = ckpt.describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
            if stage == "latest":
                files = f"{latest} is intact and holds {had}"
            elif stage == "best":
                files = (
                    f"{latest} holds epoch {epoch}; {best} is intact and holds the previous best"
                )
            else:
                files = f"{latest} holds epoch {epoch}" + (f", {best} too" if improved else "")
            repeat = f"the resume state holds {had}, so resuming repeats epoch {epoch}"
            todo = "Free some space" if "disk is full" in why else "Fix the problem"
            raise ckpt.CheckpointWriteError(
                f"{self.out}: could not write the {stage} checkpoint of epoch {epoch}: {why}. "
                f"{files}; {repeat}. {todo} and continue with: nehmap train --out {self.out} "
                "--resume"
            ) from exc

    def _result(
        self, epochs_done: int, stopped_early: bool, split: Split, log: RunLog | None
    ) -> TrainResult:
        latest = self.out / "latest"
        best = self.out / "best"
        return TrainResult(
            out=self.out,
            epochs_completed=epochs_done,
            best_epoch=self.best_epoch,
            best_metric=self.best_metric,
            stopped_early=stopped_early,
            latest=latest if latest.with_suffix(".json").is_file() else None,
            best=best if best.with_suffix(".json").is_file() else None,
            history=list(log.rows) if log is not None else [],
            split=split,
        )
