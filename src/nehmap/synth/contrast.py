"""Structural MR contrasts (T1, T1c, T2, FLAIR) from tissue fractions and tumour labels.

Each voxel's noise-free signal is the mixture of its tissue fractions (GM, WM, CSF) and,
in the tumour, of the compartments' signals (blurred slightly for partial volume, with
smooth heterogeneity). Then, per modality: a smooth multiplicative bias field, Rician
noise (magnitude of a complex Gaussian), a random global scale, and zero outside the
brain (skull-stripped).

NEH differs from edema by a few percent (the method paper's Table 3 directions: FLAIR
and T1 about 7 % lower, T1c about 10 % higher, T2 about equal); the noise is set so the
NEH-vs-edema contrast-to-noise ratio is ``neh_cnr`` (0.5-1 by default).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from nehmap.synth.fields import Axes, box_axes, polynomial_field, smooth_field
from nehmap.synth.params import MODALITIES, draw

Box = tuple[slice, slice, slice]

_REFERENCE_CONTRAST = 0.07  # NEH-vs-ED relative difference that sets T2's noise


def draw_contrast(rng: np.random.Generator, params: Mapping[str, Any]) -> dict[str, Any]:
    """Per-case contrast parameters: class means, noise, bias strength and scales.

    Returns
    -------
    dict[str, Any]
        JSON-serialisable dict with ``means`` (modality -> class -> relative signal, NEH
        included), ``noise_sigma`` (modality -> Rician sigma, same units as the means),
        ``neh_cnr``, ``bias_strength`` (modality -> max |log bias|) and
        ``intensity_scale`` (modality -> global factor).
    """
    jitter = float(params["intensity_jitter"])
    cnr = float(draw(rng, params, "neh_cnr"))
    means: dict[str, dict[str, float]] = {}
    sigma: dict[str, float] = {}
    for modality in MODALITIES:
        table = {
            name: float(value) * float(1.0 + jitter * rng.standard_normal())
            for name, value in params["intensities"][modality].items()
        }
        delta = float(params["neh_contrast"][modality])
        table["NEH"] = table["ED"] * (1.0 + delta)
        means[modality] = table
        reference = max(abs(delta), _REFERENCE_CONTRAST)
        sigma[modality] = reference * table["ED"] / cnr
    return {
        "means": means,
        "noise_sigma": sigma,
        "neh_cnr": cnr,
        "bias_strength": {m: float(draw(rng, params, "bias_strength")) for m in MODALITIES},
        "intensity_scale": {m: float(draw(rng, params, "intensity_scale")) for m in MODALITIES},
        "texture": float(params["texture"]),
    }


def compartment_weights(
    labels: np.ndarray,
    classes: Mapping[str, int],
    spacing: tuple[float, float, float],
    blur_mm: float,
    extra: Mapping[str, np.ndarray] | None = None,
) -> tuple[Box, dict[str, np.ndarray]]:
    """Soft (partial-volume) weights of the tumour compartments in their bounding box.

    Parameters
    ----------
    labels : np.ndarray
        Full label volume (uint8).
    classes : Mapping[str, int]
        Class name -> label value, for the compartments to weigh.
    spacing : tuple[float, float, float]
        Voxel size (mm) per axis.
    blur_mm : float
        Standard deviation (mm) of the Gaussian partial-volume blur.
    extra : Mapping[str, np.ndarray] | None
        Further class name -> full boolean mask (e.g. a resection cavity).

    Returns
    -------
    tuple[Box, dict[str, np.ndarray]]
        The box (voxel slices) and class name -> float32 weight in the box; weights
        sum to at most 1 per voxel. An empty box when there is no compartment.
    """
    masks = {name: labels == value for name, value in classes.items()}
    masks.update(extra or {})
    union = np.zeros(labels.shape, dtype=bool)
    for mask in masks.values():
        union |= mask
    if not union.any():
        return (slice(0, 0), slice(0, 0), slice(0, 0)), {}
    sigma = [blur_mm / s for s in spacing]
    pad = [int(np.ceil(4 * s)) + 1 for s in sigma]
    idx = np.argwhere(union)
    lo = np.maximum(idx.min(axis=0) - pad, 0)
    hi = np.minimum(idx.max(axis=0) + 1 + np.array(pad), labels.shape)
    box = (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))
    weights = {}
    for name, mask in masks.items():
        crop = mask[box].astype(np.float32)
        weights[name] = ndi.gaussian_filter(crop, sigma) if blur_mm > 0 else crop
    return box, weights


def mix(
    base: np.ndarray,
    box: Box,
    weights: Mapping[str, np.ndarray],
    means: Mapping[str, float],
    texture: np.ndarray | None = None,
) -> None:
    """Blend compartment signals into ``base`` (in place) inside ``box``.

    ``base[box] = (1 - sum w) * base[box] + sum w_c * mean_c * (1 + texture)``.
    """
    if not weights:
        return
    region = base[box]
    total = np.zeros(region.shape, dtype=np.float32)
    signal = np.zeros(region.shape, dtype=np.float32)
    for name, weight in weights.items():
        total += weight
        signal += weight * np.float32(means[name])
    if texture is not None:
        signal *= 1.0 + texture
    base[box] = (1.0 - np.minimum(total, 1.0)) * region + signal


def tissue_signal(tissues: Mapping[str, np.ndarray], means: Mapping[str, float]) -> np.ndarray:
    """Partial-volume mixture ``gm * mean_GM + wm * mean_WM + csf * mean_CSF`` (float32)."""
    out = tissues["gm"] * np.float32(means["GM"])
    out += tissues["wm"] * np.float32(means["WM"])
    out += tissues["csf"] * np.float32(means["CSF"])
    return out


def synthesise_images(
    rng: np.random.Generator,
    tissues: Mapping[str, np.ndarray],
    brain: np.ndarray,
    axes: Axes,
    weight_box: Box,
    weights: Mapping[str, np.ndarray],
    contrast: Mapping[str, Any],
) -> dict[str, np.ndarray]:
    """The four structural images of one scan.

    Parameters
    ----------
    rng : np.random.Generator
        Random generator for texture, bias and noise (consumed).
    tissues : Mapping[str, np.ndarray]
        ``gm``, ``wm``, ``csf`` fractions (full volume, float32).
    brain : np.ndarray
        Brain mask (bool, full volume); the images are 0 outside.
    axes : Axes
        World coordinates (mm) of the voxel centres along each array axis.
    weight_box : Box
        Box of the compartment weights.
    weights : Mapping[str, np.ndarray]
        Class name -> soft weight in ``weight_box`` (see
        :func:`compartment_weights`).
    contrast : Mapping[str, Any]
        The case's contrast parameters (:func:`draw_contrast`).

    Returns
    -------
    dict[str, np.ndarray]
        Modality (``t1``, ``t1c``, ``t2``, ``flair``) -> float32 image, full volume.
    """
    texture = None
    if weights and contrast["texture"] > 0:
        texture = smooth_field(rng, box_axes(axes, weight_box), 3.0)
    inside = np.nonzero(brain)
    images = {}
    for modality in MODALITIES:
        means = contrast["means"][modality]
        signal = tissue_signal(tissues, means)
        tex = None
        if texture is not None:
            tex = texture * np.float32(contrast["texture"] * rng.choice((-1.0, 1.0)))
        mix(signal, weight_box, weights, means, tex)
        bias = polynomial_field(rng, axes, contrast["bias_strength"][modality], mask=brain)
        values = signal[inside] * np.exp(bias[inside])
        values = rician(rng, values, contrast["noise_sigma"][modality])
        image = np.zeros(brain.shape, dtype=np.float32)
        image[inside] = values * np.float32(contrast["intensity_scale"][modality])
        images[modality] = image
    return images


def rician(rng: np.random.Generator, signal: np.ndarray, sigma: float) -> np.ndarray:
    """Magnitude of ``signal`` plus complex Gaussian noise of standard deviation ``sigma``."""
    real = signal + rng.standard_normal(signal.shape, dtype=np.float32) * np.float32(sigma)
    imag = rng.standard_normal(signal.shape, dtype=np.float32) * np.float32(sigma)
    return np.sqrt(real * real + imag * imag).astype(np.float32, copy=False)
