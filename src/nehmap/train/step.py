"""One optimisation step, one epoch of steps, the optimiser and the learning-rate schedule.

Defaults follow nnU-Net: SGD with Nesterov momentum 0.99, initial learning rate 1e-2,
weight decay 3e-5, the poly schedule ``lr * (1 - epoch / epochs) ** 0.9`` and the
gradient norm clipped to 12. AdamW (decoupled weight decay) is the alternative.
Parameters the network names in ``no_weight_decay()`` (UNETR++'s attention
temperatures) are not decayed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from nehmap.train.seeding import iteration_torch_seed

if TYPE_CHECKING:
    from nehmap.train.config import TrainConfig
    from nehmap.train.dataset import EpochBatches


def poly_lr(base: float, epoch: int, epochs: int, exponent: float = 0.9) -> float:
    """Learning rate of 0-based ``epoch``: ``base * (1 - epoch / epochs) ** exponent``."""
    return float(base * (1.0 - epoch / epochs) ** exponent)


def make_optimizer(
    model: nn.Module,
    name: str = "sgd",
    lr: float = 1e-2,
    weight_decay: float = 3e-5,
    momentum: float = 0.99,
) -> torch.optim.Optimizer:
    """SGD (Nesterov when ``momentum > 0``) or AdamW over the model's parameters.

    Parameters
    ----------
    model : nn.Module
        The (unwrapped) network.
    name : str
        ``"sgd"`` or ``"adamw"``.
    lr, weight_decay, momentum : float
        Initial learning rate, weight decay, SGD momentum.
    """
    skip = model.no_weight_decay() if hasattr(model, "no_weight_decay") else set()
    decay = [p for n, p in model.named_parameters() if p.requires_grad and n not in skip]
    other = [p for n, p in model.named_parameters() if p.requires_grad and n in skip]
    groups: list[dict] = [{"params": decay, "weight_decay": weight_decay}]
    if other:
        groups.append({"params": other, "weight_decay": 0.0})
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=momentum > 0)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    raise ValueError(f"Unknown optimizer {name!r}: use sgd or adamw.")


def train_step(
    net: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    loss_fn: nn.Module,
    *,
    grad_clip: float = 12.0,
    amp: bool = False,
) -> float:
    """One step: forward (autocast to float16 when ``amp``), loss, scaled backward,
    unscale and clip the gradient norm, optimiser step (skipped by the scaler when the
    gradients overflowed).

    Parameters
    ----------
    net : nn.Module
        The network (possibly wrapped in DistributedDataParallel), in training mode.
    x, y : torch.Tensor
        Images (B, C, *patch) float32 and targets (B, *patch) int64, on the device.
    optimizer, scaler, loss_fn
        Optimiser, gradient scaler (disabled without AMP), loss of ``(outputs, y)``.
    grad_clip : float
        Largest gradient norm; 0 disables clipping.
    amp : bool
        Mixed precision (CUDA).

    Returns
    -------
    float
        The loss (may be inf/NaN in a step the scaler skips).
    """
    optimizer.zero_grad(set_to_none=True)
    device_type = x.device.type
    with torch.autocast(device_type, dtype=torch.float16, enabled=amp):
        outputs = net(x)
    loss = loss_fn(outputs, y)
    scaler.scale(loss).backward()
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return float(loss.detach())


def train_epoch(
    net: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    batches: EpochBatches,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    loss_fn: nn.Module,
    config: TrainConfig,
    epoch: int,
    *,
    rank: int,
    device: torch.device,
    amp: bool,
    show_progress: bool,
) -> tuple[float, float]:
    """The ``iterations_per_epoch`` steps of 0-based ``epoch`` at its poly learning rate.

    Before each step torch is seeded from (seed, epoch, iteration, rank), so a resumed
    run draws what an uninterrupted one draws (:mod:`nehmap.train.seeding`).

    Returns
    -------
    (float, float)
        The epoch's learning rate and this process's mean of the finite step losses.

    Raises
    ------
    FloatingPointError
        When no step of the epoch had a finite loss.
    """
    from tqdm import tqdm

    assert config.lr is not None
    lr = poly_lr(config.lr, epoch, config.epochs, config.poly_exponent)
    for group in optimizer.param_groups:
        group["lr"] = lr
    batches.epoch = epoch
    net.train()
    losses: list[float] = []
    bar = tqdm(
        loader,
        total=config.iterations_per_epoch,
        desc=f"epoch {epoch + 1}/{config.epochs}",
        unit="it",
        leave=False,
        disable=None if show_progress else True,
    )
    for iteration, (x, y) in enumerate(bar):
        torch.manual_seed(iteration_torch_seed(config.seed, epoch, iteration, rank))
        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        value = train_step(
            net, x, y, optimizer, scaler, loss_fn, grad_clip=config.grad_clip, amp=amp
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
    return lr, float(np.mean(losses))
