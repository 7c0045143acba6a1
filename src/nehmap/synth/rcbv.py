"""Synthetic relative cerebral blood volume (rCBV) maps.

The map mixes per-class means (``rcbv_means``: white matter 1, grey matter about 2,
tumour compartments ET > NEH > ED by default) over the tissue fractions and tumour
compartments, with smooth heterogeneity in the tumour, large vessels (thin tubes of
very high rCBV) and cortical surface vessels outside the tumour, a smooth spatial
variation, the limited resolution of perfusion imaging (Gaussian blur), additive noise
and a random global scale (DSC maps are rarely calibrated), zero outside the brain.

The compartment means are parameters, so tests can plant an effect or none; the case
records the means and the scale it used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from nehmap.synth.contrast import Box, mix, tissue_signal
from nehmap.synth.fields import Axes, box_axes, polynomial_field, smooth_field
from nehmap.synth.params import draw

_VESSEL_LENGTH_MM = (40.0, 90.0)
_VESSEL_RADIUS_MM = (0.8, 1.5)
_VESSEL_WIGGLE_MM = 6.0
_CORTICAL_DEPTH_MM = 2.0
_CORTICAL_FRACTION = 0.25
_FWHM_TO_SD = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def draw_rcbv(rng: np.random.Generator, params: Mapping[str, Any]) -> dict[str, Any]:
    """Per-case rCBV parameters (means, vessel values, noise, resolution, scale)."""
    means = {str(k): float(v) for k, v in params["rcbv_means"].items()}
    return {
        "rcbv_means": means,
        "rcbv_vessel": float(draw(rng, params, "rcbv_vessel")),
        "rcbv_cortical_vessel": float(draw(rng, params, "rcbv_cortical_vessel")),
        "n_vessels": int(draw(rng, params, "n_vessels")),
        "rcbv_noise": float(params["rcbv_noise"]),
        "rcbv_texture": float(params["rcbv_texture"]),
        "rcbv_variation": float(params["rcbv_variation"]),
        "rcbv_fwhm_mm": float(params["rcbv_fwhm_mm"]),
        "rcbv_scale": float(draw(rng, params, "rcbv_scale")),
    }


def synthesise_rcbv(
    rng: np.random.Generator,
    tissues: Mapping[str, np.ndarray],
    brain: np.ndarray,
    depth: np.ndarray,
    axes: Axes,
    weight_box: Box,
    weights: Mapping[str, np.ndarray],
    tumour: np.ndarray,
    spacing: tuple[float, float, float],
    settings: Mapping[str, Any],
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """An rCBV map on the case's grid.

    Parameters
    ----------
    rng : np.random.Generator
        Random generator (consumed).
    tissues : Mapping[str, np.ndarray]
        ``gm``, ``wm``, ``csf`` fractions (float32, full volume).
    brain : np.ndarray
        Brain mask (bool); the map is 0 outside.
    depth : np.ndarray
        Distance (mm) to the brain surface (full volume).
    axes : Axes
        World coordinates (mm) of the voxel centres along each array axis.
    weight_box : Box
        Box of the compartment weights.
    weights : Mapping[str, np.ndarray]
        Class name -> soft weight in ``weight_box``.
    tumour : np.ndarray
        Mask of the tumour and edema, which vessels avoid (bool, full volume).
    spacing : tuple[float, float, float]
        Voxel size in mm per axis.
    settings : Mapping[str, Any]
        Drawn rCBV parameters (:func:`draw_rcbv`).

    Returns
    -------
    tuple[np.ndarray, list[dict[str, Any]]]
        The float32 map and the list of large vessels drawn (start and end in world
        mm, radius in mm).
    """
    means = settings["rcbv_means"]
    rcbv = tissue_signal(tissues, means)
    texture = None
    if weights and settings["rcbv_texture"] > 0:
        texture = smooth_field(rng, box_axes(axes, weight_box), 3.0)
        texture *= np.float32(settings["rcbv_texture"])
    mix(rcbv, weight_box, {k: w for k, w in weights.items() if k in means}, means, texture)
    allowed = brain & ~ndi.binary_dilation(tumour, iterations=1)
    vessels, specs = _vessels(rng, brain, axes, spacing, settings["n_vessels"])
    vessels &= allowed
    rcbv[vessels] = np.maximum(rcbv[vessels], np.float32(settings["rcbv_vessel"]))
    cortical = _cortical_vessels(rng, brain, depth, axes, spacing) & allowed
    rcbv[cortical] = np.maximum(rcbv[cortical], np.float32(settings["rcbv_cortical_vessel"]))
    variation = polynomial_field(rng, axes, settings["rcbv_variation"], mask=brain)
    rcbv *= np.exp(variation)
    rcbv = _blur_in_brain(rcbv, brain, spacing, settings["rcbv_fwhm_mm"])
    inside = np.nonzero(brain)
    values = rcbv[inside]
    values += rng.standard_normal(values.shape, dtype=np.float32) * np.float32(
        settings["rcbv_noise"] * means.get("WM", 1.0)
    )
    out = np.zeros(brain.shape, dtype=np.float32)
    out[inside] = np.maximum(values, 0.0) * np.float32(settings["rcbv_scale"])
    return out, specs


def _blur_in_brain(
    values: np.ndarray, brain: np.ndarray, spacing: tuple[float, float, float], fwhm: float
) -> np.ndarray:
    """Gaussian blur of FWHM ``fwhm`` mm normalised by the blurred brain mask."""
    if fwhm <= 0:
        return values
    sigma = [fwhm * _FWHM_TO_SD / s for s in spacing]
    idx = np.argwhere(brain)
    pad = [int(np.ceil(4 * s)) + 1 for s in sigma]
    lo = np.maximum(idx.min(axis=0) - pad, 0)
    hi = np.minimum(idx.max(axis=0) + 1 + np.array(pad), brain.shape)
    box = (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))
    weight = brain[box].astype(np.float32)
    numerator = ndi.gaussian_filter(values[box] * weight, sigma)
    denominator = np.maximum(ndi.gaussian_filter(weight, sigma), 1e-3)
    out = values.copy()
    out[box] = numerator / denominator
    return out


def _vessels(
    rng: np.random.Generator,
    brain: np.ndarray,
    axes: Axes,
    spacing: tuple[float, float, float],
    count: int,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """``count`` gently curved tubes through the brain (bool mask) and their specs."""
    mask = np.zeros(brain.shape, dtype=bool)
    inside = np.flatnonzero(brain)
    origin = np.array([a[0] for a in axes])
    sp = np.asarray(spacing)
    specs = []
    for _ in range(count):
        start_idx = np.unravel_index(int(inside[rng.integers(inside.size)]), brain.shape)
        start = origin + np.asarray(start_idx) * sp
        direction = rng.standard_normal(3)
        direction /= np.linalg.norm(direction)
        length = float(rng.uniform(*_VESSEL_LENGTH_MM))
        radius = float(rng.uniform(*_VESSEL_RADIUS_MM))
        points = _curve(rng, start, direction, length, min(spacing))
        _stamp(mask, points, origin, sp, radius)
        specs.append(
            {"start_mm": points[0].tolist(), "end_mm": points[-1].tolist(), "radius_mm": radius}
        )
    return mask, specs


def _curve(
    rng: np.random.Generator,
    start: np.ndarray,
    direction: np.ndarray,
    length: float,
    step: float,
) -> np.ndarray:
    """Points (N, 3) in mm along a line with a smooth sideways wiggle."""
    t = np.arange(0.0, length, 0.5 * step)
    helper = np.array([1.0, 0.0, 0.0]) if abs(direction[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(direction, helper)
    u /= np.linalg.norm(u)
    v = np.cross(direction, u)
    phase = rng.uniform(0, 2 * np.pi, size=2)
    wavelength = rng.uniform(30.0, 60.0, size=2)
    a = _VESSEL_WIGGLE_MM * np.sin(2 * np.pi * t / wavelength[0] + phase[0])
    b = _VESSEL_WIGGLE_MM * np.sin(2 * np.pi * t / wavelength[1] + phase[1])
    return start + t[:, None] * direction + a[:, None] * u + b[:, None] * v


def _stamp(
    mask: np.ndarray,
    points: np.ndarray,
    origin: np.ndarray,
    spacing: np.ndarray,
    radius: float,
) -> None:
    """Set every voxel within ``radius`` mm of a point (at least the nearest voxel)."""
    reach = np.ceil(radius / spacing).astype(int)
    grid = np.mgrid[-reach[0] : reach[0] + 1, -reach[1] : reach[1] + 1, -reach[2] : reach[2] + 1]
    offsets = grid.reshape(3, -1).T
    keep = np.linalg.norm(offsets * spacing, axis=1) <= max(radius, 0.5 * spacing.min())
    offsets = offsets[keep]
    centres = np.rint((points - origin) / spacing).astype(int)
    voxels = (centres[:, None, :] + offsets[None, :, :]).reshape(-1, 3)
    shape = np.array(mask.shape)
    ok = np.all((voxels >= 0) & (voxels < shape), axis=1)
    voxels = voxels[ok]
    mask[voxels[:, 0], voxels[:, 1], voxels[:, 2]] = True


def _cortical_vessels(
    rng: np.random.Generator,
    brain: np.ndarray,
    depth: np.ndarray,
    axes: Axes,
    spacing: tuple[float, float, float],
) -> np.ndarray:
    """Patches of the brain's outer surface layer (pial vessels), as a bool mask."""
    layer = brain & (depth <= max(_CORTICAL_DEPTH_MM, max(spacing)))
    idx = np.argwhere(layer)
    if idx.size == 0:
        return layer
    lo, hi = idx.min(axis=0), idx.max(axis=0) + 1
    box = (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))
    field = smooth_field(rng, box_axes(axes, box), 3.0)
    values = field[layer[box]]
    threshold = float(np.quantile(values, 1.0 - _CORTICAL_FRACTION))
    out = np.zeros_like(layer)
    out[box] = layer[box] & (field > threshold)
    return out
