"""Fusing several models' NEH probabilities into one consensus map.

The method (the paper's section 2.1):

1. consensus probability = voxel-wise (optionally weighted) mean of the models' NEH
   probabilities;
2. 3D Gaussian smoothing with sigma = 1.5 mm, converted per axis to voxels from the
   spacing (``sigma_vox = sigma_mm / spacing``), border mode "nearest";
3. threshold p >= 0.5 gives the binary NEH mask;
4. a two-level map: 2 = high probability (p >= ``high``, default 0.5, i.e. the mask),
   1 = low probability (``low`` <= p < ``high``, default low = 0.2), 0 elsewhere.

The paper says the thresholded map "yielded two segments ... one with very high
probability and one with low probability" without giving the lower bound. nehmap
takes the low segment as 0.2 <= p < 0.5: a voxel that at least one of two models
calls NEH with some confidence survives smoothing above 0.2, while the smoothing tails
of isolated voxels (which reach everywhere at tiny values) do not. Both thresholds are
parameters.

Also here: the per-voxel disagreement between models (population standard deviation of
their NEH probabilities) as an uncertainty map, and STAPLE as an alternative to step 1
(``fusion="staple"``): the consensus probability is then STAPLE's posterior probability
that a voxel is NEH given the models' binary NEH masks (Warfield et al. 2004: each
model's sensitivity and specificity are estimated by expectation-maximisation, and the
models are weighted by them); steps 2-4 are the same. The paper averages
probabilities; it calls its whole procedure "STAPLE-like", so STAPLE proper is offered
as the documented alternative, not the default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

DEFAULT_SIGMA_MM = 1.5
DEFAULT_THRESHOLD = 0.5
DEFAULT_LOW = 0.2
FUSIONS: tuple[str, ...] = ("mean", "staple")
"""Step 1 of the consensus: ``mean`` of the probabilities (the paper) or ``staple``."""


def _check_maps(maps: Sequence[np.ndarray]) -> np.ndarray:
    if len(maps) == 0:
        raise ValueError("No probability maps to fuse: give at least one model's map.")
    shapes = {m.shape for m in maps}
    if len(shapes) != 1:
        raise ValueError(
            f"Probability maps have different shapes {sorted(shapes)}: put them on one grid "
            "before fusing."
        )
    return np.stack([np.asarray(m, dtype=np.float32) for m in maps])


def mean_probability(
    maps: Sequence[np.ndarray], weights: Sequence[float] | None = None
) -> np.ndarray:
    """Voxel-wise (weighted) mean of probability maps, float32, same shape as each map."""
    stack = _check_maps(maps)
    if weights is None:
        return stack.mean(axis=0, dtype=np.float64).astype(np.float32)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (len(maps),) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(
            f"weights must be {len(maps)} non-negative numbers with a positive sum, got {weights}."
        )
    return np.tensordot(w / w.sum(), stack, axes=1).astype(np.float32)


def disagreement(maps: Sequence[np.ndarray]) -> np.ndarray:
    """Population SD across models of their probabilities (float32): 0 = full agreement."""
    return _check_maps(maps).std(axis=0).astype(np.float32)


def smooth(
    probability: np.ndarray, spacing: Sequence[float], sigma_mm: float = DEFAULT_SIGMA_MM
) -> np.ndarray:
    """3D Gaussian smoothing with ``sigma_mm`` (mm) on a grid of ``spacing`` (mm per axis)."""
    if len(spacing) != probability.ndim or any(s <= 0 for s in spacing):
        raise ValueError(
            f"spacing {tuple(spacing)} must give one positive voxel size (mm) per axis of the "
            f"{probability.ndim}D map."
        )
    if sigma_mm < 0:
        raise ValueError(f"sigma_mm must be >= 0, got {sigma_mm}.")
    if sigma_mm == 0:
        return probability.astype(np.float32, copy=True)
    sigma_vox = [sigma_mm / s for s in spacing]
    out = ndimage.gaussian_filter(probability.astype(np.float32), sigma_vox, mode="nearest")
    return np.clip(out, 0.0, 1.0)


def probability_levels(
    probability: np.ndarray, low: float = DEFAULT_LOW, high: float = DEFAULT_THRESHOLD
) -> np.ndarray:
    """Two-level map (uint8): 2 where p >= high, 1 where low <= p < high, else 0."""
    if not 0.0 < low < high <= 1.0:
        raise ValueError(f"Need 0 < low < high <= 1, got low={low}, high={high}.")
    levels = np.zeros(probability.shape, dtype=np.uint8)
    levels[probability >= low] = 1
    levels[probability >= high] = 2
    return levels


@dataclass
class Consensus:
    """The fused NEH maps (all float32/uint8 arrays on one grid).

    Attributes
    ----------
    probability : np.ndarray
        Smoothed consensus NEH probability in [0, 1].
    mask : np.ndarray
        Binary NEH mask (probability >= threshold), uint8.
    levels : np.ndarray
        1 low / 2 high probability, uint8.
    uncertainty : np.ndarray
        SD of the models' (unsmoothed) NEH probabilities.
    raw : np.ndarray
        Unsmoothed mean probability.
    """

    probability: np.ndarray
    mask: np.ndarray
    levels: np.ndarray
    uncertainty: np.ndarray
    raw: np.ndarray


def fuse_neh(
    maps: Sequence[np.ndarray],
    spacing: Sequence[float],
    *,
    weights: Sequence[float] | None = None,
    sigma_mm: float = DEFAULT_SIGMA_MM,
    threshold: float = DEFAULT_THRESHOLD,
    low: float = DEFAULT_LOW,
    fusion: str = "mean",
    masks: Sequence[np.ndarray] | None = None,
) -> Consensus:
    """The paper's consensus: mean, Gaussian smoothing (mm), threshold, two levels.

    Parameters
    ----------
    maps : Sequence[np.ndarray]
        Each model's NEH probability, float arrays of one shape (X, Y, Z).
    spacing : Sequence[float]
        Voxel size in mm per axis.
    weights : Sequence[float] | None
        Optional per-model weights of the mean (``fusion="mean"`` only).
    sigma_mm : float
        Gaussian sigma in mm.
    threshold : float
        Probability at or above which a voxel is NEH (and "high").
    low : float
        Lower bound of the low-probability level.
    fusion : str
        Step 1, ``"mean"`` (the paper) or ``"staple"``: STAPLE of ``masks``.
    masks : Sequence[np.ndarray] | None
        Each model's binary NEH mask (its label map == NEH), same order and
        shape as ``maps``; needed by ``fusion="staple"``.
    """
    if fusion not in FUSIONS:
        raise ValueError(f"Unknown fusion {fusion!r}: use one of {', '.join(FUSIONS)}.")
    if fusion == "staple":
        if weights is not None:
            raise ValueError("weights apply to the mean fusion only; STAPLE estimates its own.")
        if masks is None or len(masks) != len(maps):
            raise ValueError("fusion='staple' needs one binary NEH mask per model (masks=).")
        raw = staple(masks)
    else:
        raw = mean_probability(maps, weights)
    probability = smooth(raw, spacing, sigma_mm)
    return Consensus(
        probability=probability,
        mask=(probability >= threshold).astype(np.uint8),
        levels=probability_levels(probability, low, threshold),
        uncertainty=disagreement(maps),
        raw=raw,
    )


def staple(masks: Sequence[np.ndarray], foreground: int = 1) -> np.ndarray:
    """STAPLE (Warfield et al. 2004) fusion of binary masks with SimpleITK.

    The prior probability of foreground is the mean foreground fraction of the masks;
    sensitivities and specificities start at 0.99999 and are estimated by EM until
    convergence (ITK's STAPLEImageFilter).

    Parameters
    ----------
    masks : Sequence[np.ndarray]
        One array per rater (model), all of one shape; voxels equal to
        ``foreground`` are foreground.
    foreground : int
        The foreground value.

    Returns
    -------
    np.ndarray
        float32 per-voxel probability that the true label is foreground, same shape.
        Where every mask agrees at every voxel (STAPLE is then undefined), the common
        mask itself.
    """
    import SimpleITK as sitk

    stack = _check_maps([np.asarray(m) for m in masks]) == foreground
    if (stack == stack[0]).all():
        return stack[0].astype(np.float32)
    images = [sitk.GetImageFromArray(m.astype(np.uint8)) for m in stack]
    result = sitk.STAPLE(images, 1.0)
    return np.clip(sitk.GetArrayFromImage(result), 0.0, 1.0).astype(np.float32)
