"""Randomness as a pure function of (seed, purpose, epoch, iteration, rank, sample).

Nothing in training draws from a generator that carries state from one iteration to
the next. Every random choice is made by a generator built on the spot from a
:class:`numpy.random.SeedSequence` whose entropy is the run's seed and whose spawn key
names the purpose and the position::

    patch and augmentation of sample b of iteration i of epoch e on rank r:
        SeedSequence(seed, spawn_key=(SAMPLE_STREAM, e, i, r, b))
    dropout and other torch randomness in the forward pass of that iteration:
        torch.manual_seed(derived from (seed, TORCH_STREAM, e, i, r))

so a run resumed at the start of epoch e draws exactly what an uninterrupted run
draws there, whatever happened before (validation, data-loader workers, restarts).
"""

from __future__ import annotations

import numpy as np

SPLIT_STREAM = 1
INIT_STREAM = 2
SAMPLE_STREAM = 3
TORCH_STREAM = 4
VALIDATION_STREAM = 5


def seed_sequence(seed: int, *key: int) -> np.random.SeedSequence:
    """The seed sequence of ``seed`` for the purpose and position ``key``."""
    return np.random.SeedSequence(int(seed), spawn_key=tuple(int(k) for k in key))


def generator(seed: int, *key: int) -> np.random.Generator:
    """A numpy generator for ``(seed, *key)``."""
    return np.random.default_rng(seed_sequence(seed, *key))


def derived_seed(seed: int, *key: int) -> int:
    """A 63-bit integer seed for ``(seed, *key)`` (for ``torch.manual_seed``)."""
    words = seed_sequence(seed, *key).generate_state(2, dtype=np.uint32)
    return int(words[0]) << 31 ^ int(words[1])


def sample_generator(
    seed: int, epoch: int, iteration: int, rank: int, index: int
) -> np.random.Generator:
    """The generator of one training sample (patch choice and augmentation)."""
    return generator(seed, SAMPLE_STREAM, epoch, iteration, rank, index)


def iteration_torch_seed(seed: int, epoch: int, iteration: int, rank: int) -> int:
    """The torch seed set before the forward pass of one training iteration."""
    return derived_seed(seed, TORCH_STREAM, epoch, iteration, rank)
