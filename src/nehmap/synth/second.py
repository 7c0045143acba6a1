"""A synthetic "second segmentation": what a BraTS 2021-trained model might call a case.

The method's NEH training labels come from two segmentations of the same scan
(:mod:`nehmap.derive.rule`): the BraTS 2017-2020 reference, whose label 1 (NCR/NET) holds
necrosis and non-enhancing tumour, and the prediction of a model trained on BraTS 2021,
which calls the non-enhancing tumour "edema" and keeps label 1 for necrosis. nehmap's
synthetic cohorts write the first as the collection's label file (``--layout brats2018``
or ``brats2020``); this module makes the second from a case's true labels:

1. **relabel** as BraTS 2021 annotates: NEH becomes edema (ED); NC, ED and ET stay;
2. **move the boundaries** as another model would: every label is resampled (nearest
   neighbour) through a smooth random displacement field whose components are Gaussian
   random fields with standard deviation ``displacement_mm`` mm and correlation length
   ``correlation_mm`` mm, so the label boundaries shift by about a voxel, more in some
   places than in others;
3. **speckle**: each voxel on a label boundary takes the label of a random face neighbour
   with probability ``speckle`` (isolated disagreements, as a network's output has).

Nothing is shifted outside a box around the tumour, and the result is in nehmap labels
(no NEH): write it with the ``brats2021`` scheme.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

from nehmap.labels import ED, NEH
from nehmap.synth.fields import smooth_field

DEFAULT_DISPLACEMENT_MM = 1.0
"""Default standard deviation (mm) of each displacement component."""

DEFAULT_CORRELATION_MM = 8.0
"""Default correlation length (mm) of the displacement field."""

DEFAULT_SPECKLE = 0.15
"""Default probability that a boundary voxel takes a neighbour's label."""

_MARGIN_MM = 10.0


def second_segmentation(
    labels: np.ndarray,
    spacing: Sequence[float],
    rng: np.random.Generator,
    *,
    displacement_mm: float = DEFAULT_DISPLACEMENT_MM,
    correlation_mm: float = DEFAULT_CORRELATION_MM,
    speckle: float = DEFAULT_SPECKLE,
) -> np.ndarray:
    """A BraTS 2021-style segmentation of a case whose true labels are ``labels``.

    Parameters
    ----------
    labels : ndarray of uint8, shape (X, Y, Z)
        True nehmap labels (1 NC, 2 ED, 3 NEH, 4 ET).
    spacing : sequence of 3 float
        Voxel size in mm per array axis.
    rng : numpy Generator
        Random generator (consumed).
    displacement_mm : float
        Standard deviation (mm) of each component of the boundary displacement (>= 0).
    correlation_mm : float
        Correlation length (mm) of the displacement field (> 0).
    speckle : float
        Probability in [0, 1] that a boundary voxel takes a random face neighbour's label.

    Returns
    -------
    ndarray of uint8, shape (X, Y, Z)
        nehmap labels without NEH: 0, 1 NC, 2 ED (NEH included), 4 ET.
    """
    if displacement_mm < 0 or correlation_mm <= 0 or not 0 <= speckle <= 1:
        raise ValueError(
            "displacement_mm must be >= 0, correlation_mm > 0 and speckle in [0, 1], got "
            f"{displacement_mm}, {correlation_mm}, {speckle}."
        )
    out = np.asarray(labels, dtype=np.uint8).copy()
    out[out == NEH] = ED
    tumour = np.argwhere(out > 0)
    if tumour.size == 0:
        return out
    sp = np.asarray([float(s) for s in spacing])
    margin = np.ceil(_MARGIN_MM / sp).astype(int)
    lo = np.maximum(tumour.min(axis=0) - margin, 0)
    hi = np.minimum(tumour.max(axis=0) + margin + 1, out.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    sub = out[box]
    if displacement_mm > 0:
        sub = _displace(sub, sp, rng, displacement_mm, correlation_mm)
    if speckle > 0:
        sub = _speckle(sub, rng, speckle)
    out[box] = sub
    return out


def _displace(
    labels: np.ndarray,
    spacing: np.ndarray,
    rng: np.random.Generator,
    displacement_mm: float,
    correlation_mm: float,
) -> np.ndarray:
    axes = tuple(np.arange(n) * s for n, s in zip(labels.shape, spacing, strict=True))
    grid = np.indices(labels.shape, dtype=np.float32)
    coords = [
        grid[a] + smooth_field(rng, axes, correlation_mm) * (displacement_mm / spacing[a])
        for a in range(3)
    ]
    return ndi.map_coordinates(labels, coords, order=0, mode="nearest").astype(np.uint8)


def _speckle(labels: np.ndarray, rng: np.random.Generator, probability: float) -> np.ndarray:
    padded = np.pad(labels, 1, mode="edge")
    centre = tuple(slice(1, n + 1) for n in labels.shape)
    neighbours = []
    for axis in range(3):
        for step in (-1, 1):
            view = list(centre)
            view[axis] = slice(1 + step, labels.shape[axis] + 1 + step)
            neighbours.append(padded[tuple(view)])
    stack = np.stack(neighbours)
    boundary = (stack != labels).any(axis=0)
    choice = rng.integers(0, len(neighbours), size=labels.shape)
    flip = boundary & (rng.random(labels.shape) < probability)
    picked = np.take_along_axis(stack, choice[None], axis=0)[0]
    out = labels.copy()
    out[flip] = picked[flip]
    return out
