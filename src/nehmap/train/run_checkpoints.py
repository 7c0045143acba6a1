"""Writing a run's checkpoints: the model cards that describe the run, and the save order.

After every epoch :meth:`RunCheckpoints.save` writes ``latest``, then ``best`` (when the
validation metric improved), then the training state for ``--resume`` (the commit). A
failure leaves the previous training state in place and raises
:class:`~nehmap.train.checkpointing.CheckpointWriteError` saying what each file holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nehmap.train import checkpointing as ckpt
from nehmap.train.config import TrainConfig
from nehmap.train.distributed import DistContext
from nehmap.train.progress import RunProgress
from nehmap.train.split import Split

__all__ = ["TARGET_WORDS", "RunCheckpoints"]

TARGET_WORDS = {
    "tissue": "nehmap labels (0 background, 1 NC, 2 ED, 3 NEH, 4 ET)",
    "consensus": "two-level NEH consensus map (0 background, 1 NEH-low, 2 NEH-high)",
}


@dataclass
class RunCheckpoints:
    """What a run's checkpoints say about it, and where they go.

    Attributes
    ----------
    config : TrainConfig
        The run's settings, optimizer defaults resolved.
    out : Path
        The run folder.
    ctx : DistContext
        The processes of the run.
    target_mode : str
        ``tissue`` or ``consensus`` (a key of :data:`TARGET_WORDS`).
    collection : Collection
        The training collection.
    split : Split
        The training and validation cases.
    spacing : tuple of 3 float
        The training spacing, mm.
    """

    config: TrainConfig
    out: Path
    ctx: DistContext
    target_mode: str
    collection: Any
    split: Split
    spacing: tuple

    @cached_property
    def _init_note(self) -> str:
        """`` (a unetrpp network; ...)`` when ``--init`` named a checkpoint of another
        architecture, whose output layers therefore started fresh; read once per run.
        Nothing when the card cannot be read (moved since the run began)."""
        from nehmap.errors import NehmapInputError
        from nehmap.models.checkpoint import read_card

        c = self.config
        try:
            source = read_card(c.init).architecture if c.init else c.model
        except (NehmapInputError, OSError, ValueError):
            return ""
        return (
            "" if source == c.model else f" (a {source} network; the output layers started fresh)"
        )

    def card(self, model: nn.Module, epoch: int, which: str, progress: RunProgress) -> Any:
        """The model card of the ``latest`` or ``best`` checkpoint after ``epoch``."""
        from nehmap.models.card import ModelCard

        c, split, spacing = self.config, self.split, self.spacing
        procs = f" x {self.ctx.world_size} processes" if self.ctx.enabled else ""
        desc = (
            f"{len(split.train)} training cases of {self.collection.root} "
            f"(layout {self.collection.layout}), "
            f"{len(split.val)} further cases held out for validation (split.json, seed {c.seed}); "
            f"target: {TARGET_WORDS[self.target_mode]}; "
            f"{epoch} of {c.epochs} epochs x {c.iterations_per_epoch} iterations x batch "
            f"{c.batch_size}{procs}; patches {list(model.patch_size)} voxels at "
            f"{[round(s, 4) for s in spacing]} mm; {c.optimizer} lr {c.lr:g}, poly schedule; "
            f"augmentation {'on' if c.augment else 'off'}; trained with nehmap train"
        )
        if c.init:
            init = Path(c.init)
            desc += f", starting from the weights of {init.parent.name}/{init.name}"
            desc += self._init_note
        shown_epoch, shown = progress.shown(which)
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
                    "best_epoch": progress.best_epoch,
                    "seed": c.seed,
                    "target": c.target,
                    "run": str(self.out),
                }
            },
        )

    def save(
        self,
        epoch: int,
        improved: bool,
        stop: bool,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        progress: RunProgress,
    ) -> None:
        """``latest``, then ``best`` (if improved), then the training state (the commit).

        A failure leaves the previous training state in place, so ``--resume`` repeats
        this epoch (reaching the same weights) and writes the checkpoints again. The
        error says what each file holds. On success ``progress.saved_epoch`` is ``epoch``.
        """
        from safetensors import SafetensorError

        from nehmap.models.checkpoint import save_checkpoint

        previous = progress.saved_epoch
        had = f"epoch {previous}" if previous is not None else "nothing yet"
        latest, best = self.out / "latest", self.out / "best"
        stage = "latest"
        try:
            save_checkpoint(model, self.card(model, epoch, "latest", progress), latest)
            if improved:
                stage = "best"
                save_checkpoint(model, self.card(model, epoch, "best", progress), best)
            stage = "training-state"
            info = {
                "epochs": self.config.epochs,
                "best_metric": progress.best_metric,
                "best_epoch": progress.best_epoch,
                "stopped_early": stop,
                "spacing_mm": [float(s) for s in self.spacing],
                "world_size": self.ctx.world_size,
                "model": self.config.model,
                "best_validation": progress.best_validation(),
                "last_validation": progress.last_validation(),
            }
            ckpt.save_state(self.out, epoch, model, optimizer, scaler, info)
            progress.saved_epoch = epoch
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
