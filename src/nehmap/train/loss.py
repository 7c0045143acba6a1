"""Soft Dice plus cross-entropy, with deep supervision.

For logits ``z`` (B, K, *S) and target classes ``y`` (B, *S)::

    p = softmax(z) over K,  t = one-hot(y)
    Dice_k = (2 sum p_k t_k + eps) / (sum p_k + sum t_k + eps)     eps = 1e-5
    loss = ce_weight * CE(z, y) + dice_weight * (1 - mean_k Dice_k)

with the Dice mean over the foreground classes ``k = 1 .. K-1`` and the sums over the
whole batch (``batch_dice=True``) or per sample (then averaged). The terms are computed
in float32 even under mixed precision.

Deep supervision: for a list of outputs ``[full, coarser...]`` each output's loss is
computed against the target brought to its size by nearest-neighbour sampling at the
centres of the coarse voxels (``nearest-exact``), and the losses are summed with the
network's ``deep_supervision_weights``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812 - torch convention
from torch import nn


def soft_dice(
    probs: torch.Tensor, onehot: torch.Tensor, batch_dice: bool = True, eps: float = 1e-5
) -> torch.Tensor:
    """Soft Dice per class.

    Parameters
    ----------
    probs, onehot : torch.Tensor
        (B, K, *S) probabilities and one-hot target.
    batch_dice : bool
        Sum over the batch too (returns (K,)), or per sample (returns (B, K)).
    eps : float
        Added to numerator and denominator, so a class absent from both scores 1.
    """
    dims = tuple(range(2, probs.ndim))
    if batch_dice:
        dims = (0, *dims)
    inter = (probs * onehot).sum(dims)
    total = probs.sum(dims) + onehot.sum(dims)
    return (2.0 * inter + eps) / (total + eps)


def resize_target(target: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Target classes (B, *S) brought to spatial ``shape`` by nearest-exact sampling."""
    if tuple(target.shape[1:]) == tuple(shape):
        return target
    out = F.interpolate(target[:, None].float(), size=tuple(shape), mode="nearest-exact")
    return out[:, 0].long()


class DiceCELoss(nn.Module):
    """Soft Dice + cross-entropy (see the module docstring).

    Parameters
    ----------
    n_classes : int
        Classes K (class 0 is background).
    dice_weight, ce_weight : float
        Weights of the two terms.
    batch_dice : bool
        Dice over the whole batch rather than per sample.
    """

    def __init__(
        self,
        n_classes: int,
        dice_weight: float = 1.0,
        ce_weight: float = 1.0,
        batch_dice: bool = True,
    ) -> None:
        super().__init__()
        self.n_classes = int(n_classes)
        self.dice_weight = float(dice_weight)
        self.ce_weight = float(ce_weight)
        self.batch_dice = bool(batch_dice)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss of logits (B, K, *S) against target classes (B, *S), a scalar."""
        logits = logits.float()
        loss = logits.new_zeros(())
        if self.ce_weight:
            loss = loss + self.ce_weight * F.cross_entropy(logits, target)
        if self.dice_weight:
            probs = torch.softmax(logits, dim=1)
            onehot = F.one_hot(target, self.n_classes).movedim(-1, 1).to(probs.dtype)
            dice = soft_dice(probs, onehot, self.batch_dice)[..., 1:]
            loss = loss + self.dice_weight * (1.0 - dice.mean())
        return loss


class DeepSupervisionLoss(nn.Module):
    """Weighted sum of a loss over a network's multi-resolution outputs.

    Parameters
    ----------
    loss : nn.Module
        The per-output loss, ``loss(logits, target)``.
    weights : sequence of float
        Weight of each output, full resolution first (the network's
        ``deep_supervision_weights``).
    """

    def __init__(self, loss: nn.Module, weights: Sequence[float]) -> None:
        super().__init__()
        self.loss = loss
        self.weights = tuple(float(w) for w in weights)

    def forward(
        self, outputs: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor
    ) -> torch.Tensor:
        """Loss of one output (B, K, *S) or a list of them against target (B, *S)."""
        if isinstance(outputs, torch.Tensor):
            return self.loss(outputs, target)
        if len(outputs) > len(self.weights):
            raise ValueError(
                f"{len(outputs)} deep-supervision outputs but {len(self.weights)} weights."
            )
        total = outputs[0].new_zeros((), dtype=torch.float32)
        for out, weight in zip(outputs, self.weights, strict=False):
            total = total + weight * self.loss(out, resize_target(target, out.shape[2:]))
        return total
