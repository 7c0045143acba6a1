"""A run's validation progress: validating at an epoch's end, the best and latest results.

:func:`validate_epoch` runs the validation of :mod:`nehmap.train.validate` in the run's
mode (fixed patches or whole cases). :class:`RunProgress` keeps the best validation
metric (mean Dice) and its epoch, the latest result, and the epoch of the last complete
checkpoint; it decides early stopping, goes into the training state, and comes back
from it on resume. :func:`epoch_row` and :func:`epoch_line` are the epoch's row of
``log.csv`` and its line on the terminal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nehmap.train.config import TrainConfig
from nehmap.train.data import PreparedCase
from nehmap.train.sampling import PatchPlan
from nehmap.train.targets import TargetSpec
from nehmap.train.validate import ValidationResult, validate

__all__ = ["RunProgress", "epoch_line", "epoch_row", "validate_epoch"]


def _result_json(epoch: int | None, result: ValidationResult | None) -> dict[str, Any] | None:
    if result is None:
        return None
    return {"epoch": epoch, "loss": result.loss, "dice": dict(result.dice)}


def _result_from_json(record: dict[str, Any] | None) -> ValidationResult | None:
    if not record:
        return None
    return ValidationResult(float(record["loss"]), {k: float(v) for k, v in record["dice"].items()})


@dataclass
class RunProgress:
    """The best and the latest validation of a run, and its last saved epoch.

    Attributes
    ----------
    best_metric : float or None
        Best validation metric so far (``-inf`` stands for a non-finite one).
    best_epoch : int or None
        Its epoch (1-based).
    best_result : ValidationResult or None
        The validation of that epoch.
    last_result : (int, ValidationResult) or None
        The latest validation and its epoch.
    saved_epoch : int or None
        Epoch of the last complete checkpoint (training state written).
    """

    best_metric: float | None = None
    best_epoch: int | None = None
    best_result: ValidationResult | None = None
    last_result: tuple[int, ValidationResult] | None = None
    saved_epoch: int | None = None

    @classmethod
    def from_state(cls, info: dict[str, Any]) -> RunProgress:
        """The progress recorded in a training state's ``info`` (see :meth:`state_info`)."""
        last = _result_from_json(info.get("last_validation"))
        return cls(
            best_metric=info.get("best_metric"),
            best_epoch=info.get("best_epoch"),
            best_result=_result_from_json(info.get("best_validation")),
            last_result=(int(info["last_validation"]["epoch"]), last) if last is not None else None,
            saved_epoch=int(info["epoch"]),
        )

    def record(self, epoch: int, result: ValidationResult) -> bool:
        """Note the validation of ``epoch``; returns whether it is the best so far."""
        self.last_result = (epoch, result)
        metric = result.metric if math.isfinite(result.metric) else -math.inf
        if self.best_metric is None or metric > self.best_metric:
            self.best_metric, self.best_epoch, self.best_result = metric, epoch, result
            return True
        return False

    def should_stop(self, epoch: int, patience: int | None) -> bool:
        """Whether ``patience`` epochs have passed since the best one."""
        return bool(
            patience is not None
            and self.best_epoch is not None
            and epoch - self.best_epoch >= patience
        )

    def shown(self, which: str) -> tuple[int | None, ValidationResult | None]:
        """The epoch and validation a ``best`` or ``latest`` checkpoint's card reports."""
        if which == "latest":
            return self.last_result if self.last_result is not None else (None, None)
        return self.best_epoch, self.best_result

    def best_validation(self) -> dict[str, Any] | None:
        """The best validation as stored in the training state."""
        return _result_json(self.best_epoch, self.best_result)

    def last_validation(self) -> dict[str, Any] | None:
        """The latest validation as stored in the training state."""
        return _result_json(*self.last_result) if self.last_result else None


def validate_epoch(
    model: nn.Module,
    config: TrainConfig,
    val_cases: list[PreparedCase],
    val_plans: list[PatchPlan],
    loss_fn: Any,
    target: TargetSpec,
    patch: tuple[int, ...],
    device: torch.device,
    amp: bool,
) -> ValidationResult:
    """Validate on fixed patches or on whole cases, as ``config.val_mode`` says."""
    plans = val_plans if config.val_mode == "patches" else None
    return validate(
        model, val_cases, loss_fn, target.regions, patch,
        device=device, plans=plans, batch_size=config.batch_size, amp=amp,
    )  # fmt: skip


def epoch_row(
    epoch: int,
    lr: float,
    train_loss: float,
    result: ValidationResult | None,
    best_metric: float | None,
    seconds: float,
) -> dict[str, Any]:
    """The epoch's row of ``log.csv``."""
    row: dict[str, Any] = {
        "epoch": epoch,
        "lr": lr,
        "train_loss": train_loss,
        "val_loss": result.loss if result else None,
        "val_metric": result.metric if result else None,
        "best_metric": best_metric,
        "seconds": round(seconds, 3),
    }
    if result is not None:
        row.update({f"dice_{k}": v for k, v in result.dice.items()})
    return row


def epoch_line(
    epoch: int,
    epochs: int,
    lr: float,
    train_loss: float,
    result: ValidationResult | None,
    progress: RunProgress,
    seconds: float,
    improved: bool,
) -> str:
    """The epoch's line on the terminal (``*`` marks a new best)."""
    dice = "  ".join(f"{k} {v:.3f}" for k, v in result.dice.items()) if result else ""
    return (
        f"epoch {epoch}/{epochs}  lr {lr:.2e}  train {train_loss:.4f}"
        + (f"  val {result.loss:.4f}  Dice {dice}  (mean {result.metric:.3f})" if result else "")
        + (
            f"  best {progress.best_metric:.3f} @ {progress.best_epoch}"
            if progress.best_epoch
            else ""
        )
        + f"  {seconds:.1f} s"
        + ("  *" if improved else "")
    )
