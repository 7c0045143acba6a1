"""What a perfect model scores through nehmap's pipeline: the cost of resolution and fusion.

``nehmap segment`` runs each network at the spacing of its card (2 mm for the shipped
models) and brings the class probabilities back to the case's grid; the fused NEH mask
then smooths the mean NEH probability (the paper: Gaussian, sigma 1.5 mm) and keeps
p >= 0.5. Both steps cost Dice that better training of a *correct* model cannot win
back: a layer one 2 mm voxel thick is blurred by the resampling, and a layer thinner
than about 2 mm falls below 0.5 after the smoothing even where every model is certain.

:func:`perfect_model_dice` measures that cost on a label map whose truth is known. It
replaces the network by a perfect one: on the network's grid its class probabilities
are the truth's class occupancy there (the one-hot truth resampled as the pipeline
resamples the images: trilinear, ``align_corners=False``, which for a factor of exactly
2 is the mean over each 2 x 2 x 2 block). Everything after the network is nehmap's own
code: :func:`nehmap.preprocess.predict_at_spacing` (the resampling there and back that
``nehmap segment`` uses), the argmax for the label map, :func:`nehmap.fusion.fuse_neh`
for the fused mask.

This is the score of a model that is right, not an upper bound over all models. A
model that is wrong in the right way can score higher: one that draws a thin NEH layer
thicker than it is, with full confidence, leaves a mask of about the true width after
the smoothing (a slab of perfect probability 1 must be about 2 mm thick for its middle
to stay >= 0.5 at sigma 1.5 mm; a wider one leaves a narrower mask than itself). So a
goal above these numbers asks the models to learn the fusion's blur, not the tumour.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np

from nehmap.fusion import DEFAULT_SIGMA_MM, DEFAULT_THRESHOLD, fuse_neh
from nehmap.labels import BACKGROUND, NEH, TUMOUR_LABELS, check_label_map, region_mask
from nehmap.metrics.overlap import dice
from nehmap.preprocess import (
    brain_crop,
    labels_from_probabilities,
    predict_at_spacing,
    probabilities_in_brain,
)
from nehmap.spacing import check_spacing

__all__ = ["PERFECT_MODEL_REGIONS", "perfect_probabilities", "perfect_model_dice"]

CLASS_LABELS: tuple[int, ...] = (BACKGROUND, *TUMOUR_LABELS)
"""The classes of a perfect 4-label model, in channel order."""

PERFECT_MODEL_REGIONS: tuple[str, ...] = ("WT", "TC", "ET", "NEH", "fused NEH")
"""Keys of :func:`perfect_model_dice`'s result: the label map's regions and the fused mask."""


def _spacing3(value: float | Sequence[float], name: str) -> tuple[float, ...]:
    """One size in mm for all three axes, or three: checked by :func:`check_spacing`."""
    return check_spacing((value,) * 3 if isinstance(value, numbers.Real) else value, 3, name)


def perfect_probabilities(
    labels: np.ndarray,
    spacing: Sequence[float],
    model_spacing_mm: float | Sequence[float] = 2.0,
    brain: np.ndarray | None = None,
) -> np.ndarray:
    """Class probabilities of a perfect model run at ``model_spacing_mm``, on the case's grid.

    Parameters
    ----------
    labels : np.ndarray
        nehmap label map (X, Y, Z), the truth.
    spacing : Sequence[float]
        The case's voxel size in mm per axis.
    model_spacing_mm : float | Sequence[float]
        The spacing the model runs at (mm; one value or one per axis).
    brain : np.ndarray | None
        The brain mask (bool, (X, Y, Z)) the pipeline crops to; default the whole
        grid. Outside it the probabilities are background, as in ``nehmap segment``.

    Returns
    -------
    np.ndarray
        float32 (5, X, Y, Z): background, NC, ED, NEH, ET, summing to 1 in every voxel.
    """
    labels = check_label_map(np.asarray(labels), "labels")
    if labels.ndim != 3:
        raise ValueError(f"labels must be a 3D label map (X, Y, Z), got shape {labels.shape}.")
    case_spacing = _spacing3(spacing, "spacing")
    target = _spacing3(model_spacing_mm, "model_spacing_mm")
    brain = np.ones(labels.shape, bool) if brain is None else np.asarray(brain, dtype=bool)
    if brain.shape != labels.shape or not brain.any():
        raise ValueError(
            f"The brain mask (shape {brain.shape}) must be a non-empty mask of the labels' "
            f"grid {labels.shape}."
        )
    crop = brain_crop(brain)
    block = labels[crop.slices]
    onehot = np.stack([block == value for value in CLASS_LABELS]).astype(np.float32)
    # the perfect "network" returns its input: the occupancy on the model's grid
    probs = predict_at_spacing(onehot, case_spacing, target, lambda occupancy: occupancy)
    return probabilities_in_brain(probs, crop, brain)


def perfect_model_dice(
    labels: np.ndarray,
    spacing: Sequence[float],
    *,
    model_spacing_mm: float | Sequence[float] = 2.0,
    brain: np.ndarray | None = None,
    sigma_mm: float = DEFAULT_SIGMA_MM,
    threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, float]:
    """Dice of a perfect model on one case through nehmap's pipeline (see the module).

    Parameters
    ----------
    labels, spacing, model_spacing_mm, brain
        The truth (X, Y, Z), its voxel size (mm), the model's spacing (mm) and the brain
        mask: as for :func:`perfect_probabilities`. The case's own spacing as
        ``model_spacing_mm`` gives the cost of the fusion alone.
    sigma_mm, threshold : float
        The fusion's smoothing (mm) and threshold
        (:func:`nehmap.fusion.fuse_neh`; the paper's 1.5 mm and 0.5 by default).

    Returns
    -------
    dict[str, float]
        Dice per key of :data:`PERFECT_MODEL_REGIONS`: ``WT``, ``TC``, ``ET``, ``NEH`` of the
        perfect model's label map, and ``fused NEH`` of the fused mask of two (or any
        number of) perfect models. A region absent from the truth has nothing to find:
        its value is NaN, not the 1.0 of two empty masks.
    """
    probs = perfect_probabilities(labels, spacing, model_spacing_mm, brain)
    spacing = _spacing3(spacing, "spacing")  # checked above, after the labels
    predicted = labels_from_probabilities(probs, CLASS_LABELS)
    fused = fuse_neh(
        [probs[CLASS_LABELS.index(NEH)]] * 2,
        spacing,
        sigma_mm=sigma_mm,
        threshold=threshold,
        low=threshold / 2,  # the levels are not used; any low below the threshold
    ).mask
    pairs = {region: (region_mask(predicted, region), region_mask(labels, region))
             for region in ("WT", "TC", "ET")}  # fmt: skip
    pairs["NEH"] = (predicted == NEH, labels == NEH)
    pairs["fused NEH"] = (fused > 0, labels == NEH)
    return {
        key: dice(pred, truth) if truth.any() else float("nan")
        for key, (pred, truth) in pairs.items()
    }
