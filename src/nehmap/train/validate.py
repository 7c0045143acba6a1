"""Validation during training: loss and Dice on held-out cases.

Two modes:

``patches`` (default; fast)
    A fixed set of ``val_patches`` patches per validation case, drawn once from the
    seed: the first half centred on tumour voxels (NEH first, when present), the rest
    placed at random. No augmentation. The loss is the mean over patches; Dice per
    region is computed from the true/false positives and false negatives summed over
    all patches (a "pseudo-Dice", as nnU-Net reports during training). Cost:
    ``n_val_cases * val_patches`` forward passes.

``cases`` (slower; exact)
    Sliding-window inference (:func:`nehmap.infer.sliding_window_logits`, overlap 0.5,
    no mirroring) over each whole preprocessed validation case; the loss of the whole
    volume's logits and Dice per case, averaged over cases.

Dice of a region is ``2|A n B| / (|A| + |B|)``, 1.0 when both are empty. Regions are
the target's (:mod:`nehmap.train.targets`): WT, TC, ET, NEH for tissue targets, the
two levels for the consensus target. The validation metric (for the best checkpoint
and early stopping) is the mean Dice over the regions.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from nehmap.train.data import PreparedCase
from nehmap.train.sampling import PatchPlan, centred_start, extract, random_start
from nehmap.train.seeding import VALIDATION_STREAM, generator


@dataclass
class ValidationResult:
    """Loss, Dice per region and the validation metric (mean Dice)."""

    loss: float
    dice: dict[str, float]

    @property
    def metric(self) -> float:
        """Mean Dice over the validated classes (NaN when none were scored)."""
        return float(np.mean(list(self.dice.values()))) if self.dice else float("nan")


def dice_from_counts(tp: float, fp: float, fn: float) -> float:
    """``2 tp / (2 tp + fp + fn)``, 1.0 when there is nothing in either mask."""
    denom = 2.0 * tp + fp + fn
    return 1.0 if denom == 0 else float(2.0 * tp / denom)


def region_counts(
    pred: torch.Tensor, target: torch.Tensor, regions: Mapping[str, Sequence[int]]
) -> dict[str, np.ndarray]:
    """True positives, false positives, false negatives (3,) per region.

    Parameters
    ----------
    pred, target : torch.Tensor
        Class indices, same shape.
    regions : mapping
        Region name -> classes forming it.
    """
    out = {}
    for name, classes in regions.items():
        values = torch.as_tensor(list(classes), device=pred.device)
        p = torch.isin(pred, values)
        t = torch.isin(target, values)
        tp = int((p & t).sum())
        out[name] = np.array([tp, int(p.sum()) - tp, int(t.sum()) - tp], dtype=np.float64)
    return out


def fixed_patches(
    cases: Sequence[PreparedCase], patch: Sequence[int], per_case: int, seed: int
) -> list[PatchPlan]:
    """The validation patches: ``per_case`` per case, half on tumour, drawn from ``seed``."""
    plans = []
    for index, case in enumerate(cases):
        rng = generator(seed, VALIDATION_STREAM, index)
        n_fg = (per_case + 1) // 2
        for k in range(per_case):
            where = case.focus if (k % 2 == 0 and len(case.focus)) else case.foreground
            if k < n_fg and len(where):
                voxel = where[int(rng.integers(len(where)))]
                plans.append(PatchPlan(index, centred_start(voxel, case.shape, patch), "tumour"))
            else:
                plans.append(PatchPlan(index, random_start(rng, case.shape, patch), "random"))
    return plans


def _autocast(device: torch.device, amp: bool) -> torch.autocast:
    return torch.autocast(device.type, dtype=torch.float16, enabled=amp and device.type == "cuda")


@torch.no_grad()
def validate(
    model: nn.Module,
    cases: Sequence[PreparedCase],
    loss_fn: nn.Module,
    regions: Mapping[str, Sequence[int]],
    patch: Sequence[int],
    *,
    device: torch.device,
    plans: Sequence[PatchPlan] | None = None,
    batch_size: int = 2,
    amp: bool = False,
) -> ValidationResult:
    """Loss and Dice on the validation cases (see the module docstring).

    With ``plans`` (from :func:`fixed_patches`) the ``patches`` mode: loss and pseudo-Dice
    over those patches; without, the ``cases`` mode: sliding-window inference over each
    whole case. ``patch`` is the network's patch size in voxels.
    """
    model.eval()
    if plans is None:
        batches = _whole_cases(model, cases, patch, device, batch_size, amp)
    else:
        batches = _fixed_patches(model, cases, plans, patch, device, batch_size, amp)
    loss_sum, n, counts = 0.0, 0, []  # loss summed over patches (or cases), their number
    for logits, y in batches:
        loss_sum += float(loss_fn(logits.float(), y)) * len(y)
        n += len(y)
        counts.append(region_counts(logits.argmax(1), y, regions))
    loss = loss_sum / max(n, 1)
    if plans is None:  # Dice per case, averaged over cases
        dice = {
            name: float(np.mean([dice_from_counts(*c[name]) for c in counts])) for name in regions
        }
    else:  # one pseudo-Dice from the counts summed over every patch
        dice = {
            name: dice_from_counts(*sum((c[name] for c in counts), np.zeros(3))) for name in regions
        }
    return ValidationResult(loss, dice)


def _fixed_patches(
    model: nn.Module,
    cases: Sequence[PreparedCase],
    plans: Sequence[PatchPlan],
    patch: Sequence[int],
    device: torch.device,
    batch_size: int,
    amp: bool,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The ``patches`` mode: (logits, labels) of each batch of planned patches."""
    for b in range(0, len(plans), batch_size):
        chunk = plans[b : b + batch_size]
        images = np.stack([extract(cases[p.case_index].image, p.start, patch) for p in chunk])
        labels = np.stack([extract(cases[p.case_index].target, p.start, patch) for p in chunk])
        x = torch.from_numpy(images).to(device)
        with _autocast(device, amp):
            logits = model(x)
        yield logits, torch.from_numpy(labels.astype(np.int64)).to(device)


def _whole_cases(
    model: nn.Module,
    cases: Sequence[PreparedCase],
    patch: Sequence[int],
    device: torch.device,
    batch_size: int,
    amp: bool,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The ``cases`` mode: (logits, labels) of each whole case, a batch of one."""
    from nehmap.infer import sliding_window_logits

    for case in cases:
        logits = sliding_window_logits(
            model,
            np.asarray(case.image),
            patch,
            overlap=0.5,
            batch_size=batch_size,
            device=device,
            amp=amp and device.type == "cuda",
        )
        yield (
            torch.from_numpy(logits)[None],
            torch.from_numpy(np.asarray(case.target).astype(np.int64))[None],
        )
