"""Shared test helpers: tiny hand-made volumes written with nibabel directly.

These helpers deliberately do not use nehmap's own writers, so that reading tests check
nehmap against the collections' naming, not against itself.
"""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

SHAPE = (12, 14, 10)
AFFINE = np.diag([1.0, 1.0, 1.0, 1.0])


def tiny_volume(seed: int, shape: tuple[int, int, int] = SHAPE) -> np.ndarray:
    """A positive float32 volume with a zero border (like a skull-stripped scan)."""
    rng = np.random.default_rng(seed)
    data = rng.uniform(10, 100, size=shape).astype(np.float32)
    data[0], data[-1] = 0, 0
    return data


def tiny_labels(values: tuple[int, ...], shape: tuple[int, int, int] = SHAPE) -> np.ndarray:
    """A label map holding each of ``values`` in its own slab."""
    labels = np.zeros(shape, dtype=np.uint8)
    for i, v in enumerate(values):
        labels[2 + i, 3:8, 3:7] = v
    return labels


def save(path: Path, data: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    """Tiny untrained checkpoints (2 mm cards) of the three architectures."""
    from tiny_models import write_tiny_models

    root = tmp_path_factory.mktemp("models")
    write_tiny_models(root, patch=16, stem_stride=2, spacing_mm=2.0)
    return root
