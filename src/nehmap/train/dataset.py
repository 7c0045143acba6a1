"""Training batches: a dataset indexed by (epoch, iteration, sample) and its loader.

``PatchDataset[(epoch, iteration, b)]`` is sample ``b`` of that iteration: its case,
patch position and augmentation are drawn from the generator of
``(seed, epoch, iteration, rank, b)`` only (:mod:`nehmap.train.seeding`), so any
sample can be recomputed, in any process, in any order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from nehmap.train.augment import as_plain_tensor, build_pipeline
from nehmap.train.augment_config import AugmentConfig
from nehmap.train.data import PreparedCase
from nehmap.train.sampling import plan_patch
from nehmap.train.seeding import sample_generator

Key = tuple[int, int, int]

_MONAI_SEED_LIMIT = 2**32 - 1


class PatchDataset(Dataset):
    """Augmented training patches, indexed by ``(epoch, iteration, sample)``.

    Parameters
    ----------
    cases : sequence of PreparedCase
        Training cases.
    patch_size : 3 ints
        Patch size, voxels.
    seed : int
        The run's seed.
    rank : int
        This process's rank (each rank draws its own patches).
    foreground_fraction, focus_fraction : float
        See :func:`nehmap.train.sampling.plan_patch`.
    augmentation : AugmentConfig or None
        None for plain patches.
    spacing : 3 floats
        Voxel size of the prepared cases, mm.
    tissue_labels : bool
        Whether the targets are tissue labels (see :func:`build_pipeline`).

    Items
    -----
    ``(image, label)``: float32 (C, *patch) and int64 (*patch) tensors.
    """

    def __init__(
        self,
        cases: Sequence[PreparedCase],
        patch_size: Sequence[int],
        seed: int,
        rank: int = 0,
        foreground_fraction: float = 0.33,
        focus_fraction: float = 0.5,
        augmentation: AugmentConfig | None = None,
        spacing: Sequence[float] = (1.0, 1.0, 1.0),
        tissue_labels: bool = True,
    ) -> None:
        self.cases = list(cases)
        self.patch = tuple(int(p) for p in patch_size)
        self.seed = int(seed)
        self.rank = int(rank)
        self.foreground_fraction = float(foreground_fraction)
        self.focus_fraction = float(focus_fraction)
        self.pipeline = build_pipeline(self.patch, augmentation, spacing, tissue_labels)

    def __getitem__(self, key: Key) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        epoch, iteration, index = key
        rng = sample_generator(self.seed, epoch, iteration, self.rank, index)
        plan = plan_patch(
            rng, self.cases, self.patch, self.foreground_fraction, self.focus_fraction
        )
        case = self.cases[plan.case_index]
        self.pipeline.set_random_state(seed=int(rng.integers(_MONAI_SEED_LIMIT)))
        out = self.pipeline({"image": case.image, "label": case.target, "start": plan.start})
        image = as_plain_tensor(out["image"]).to(torch.float32)
        label = torch.round(as_plain_tensor(out["label"])[0]).to(torch.int64)
        return image, label


class EpochBatches(Sampler[list[Key]]):
    """Batches of keys of one epoch, from ``start_iteration`` on (set :attr:`epoch`)."""

    def __init__(self, iterations: int, batch_size: int) -> None:
        self.iterations = int(iterations)
        self.batch_size = int(batch_size)
        self.epoch = 0
        self.start_iteration = 0

    def __iter__(self) -> Iterator[list[Key]]:
        for it in range(self.start_iteration, self.iterations):
            yield [(self.epoch, it, b) for b in range(self.batch_size)]

    def __len__(self) -> int:
        return self.iterations - self.start_iteration


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def make_loader(
    dataset: PatchDataset, batches: EpochBatches, num_workers: int = 0, pin_memory: bool = False
) -> DataLoader:
    """A loader over ``batches`` (update ``batches.epoch`` before iterating each epoch)."""
    return DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=num_workers,
        pin_memory=pin_memory,
        worker_init_fn=_worker_init if num_workers else None,
        persistent_workers=num_workers > 0,
        prefetch_factor=2 if num_workers else None,
    )
