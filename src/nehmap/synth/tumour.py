"""Geometry of a synthetic glioblastoma: necrosis, enhancing rim, NEH layer and edema.

One irregular tumour per case, built in mm with distance transforms (``sampling`` =
voxel size), so every thickness is right at any voxel size, anisotropic included:

* the **bulk** is a lobulated blob: the level set ``r / R - 1 - a * n(x) <= 0`` of the
  distance ``r`` to a centre in the white matter of one hemisphere, perturbed by a smooth
  random field ``n`` (irregularity ``a``);
* the **enhancing rim** (ET) is the outer 2-5 mm of the bulk (the local thickness
  varies smoothly), and always includes the bulk's boundary voxels, so it encloses the
  **necrotic core** (NC) completely;
* the **NEH** layer is 2-6 mm thick, just outside the rim, over contiguous patches that
  cover part (30-70 %) of the rim's outer surface;
* the **edema** (ED) reaches 10-30 mm beyond the rim, farther in white matter than in
  grey matter, never into CSF, and always at least 2 mm beyond the NEH.

A **mass effect** pushes the surrounding anatomy away from the tumour (a smooth radial
displacement, fading towards the brain surface) before the NEH and edema are laid out
on the displaced tissue.

All work happens in a box around the tumour; nothing is computed on the full volume
except the choice of the centre.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from nehmap.labels import ED, ET, NC, NEH
from nehmap.synth.anatomy import Anatomy
from nehmap.synth.fields import Axes, box_axes, smooth_field
from nehmap.synth.params import bounds, draw

Box = tuple[slice, slice, slice]

_MIN_RADIUS_MM = 8.0
_MIN_WM_AT_CENTRE = 0.7
_MIDLINE_MARGIN_MM = 10.0
_TAPER_BOX_MM = 15.0
_TAPER_DEPTH_MM = 10.0
_EDEMA_BEYOND_NEH_MM = 2.0
_EDEMA_MAX_CSF = 0.5
_NEH_MAX_CSF = 0.6


@dataclass
class TumourGeometry:
    """The tumour of one case, in a box of the anatomy's grid.

    Attributes
    ----------
    box : Box
        Voxel slices of the box in the canonical array.
    labels : np.ndarray
        nehmap labels in the box (uint8, shape of the box).
    gm : np.ndarray
        Grey-matter fraction in the box after the mass effect (float32).
    wm : np.ndarray
        White-matter fraction in the box after the mass effect (float32).
    csf : np.ndarray
        CSF fraction in the box after the mass effect (float32).
    ventricles : np.ndarray
        Ventricle mask in the box after the mass effect (bool).
    params : dict[str, Any]
        The geometry parameters drawn for this case (JSON-serialisable).
    facts : dict[str, Any]
        Measured properties (volumes in mm^3, NEH coverage...).
    """

    box: Box
    labels: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    ventricles: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)


def make_tumour(
    anatomy: Anatomy, rng: np.random.Generator, params: Mapping[str, Any]
) -> TumourGeometry:
    """Draw and lay out one tumour on ``anatomy``.

    Parameters
    ----------
    anatomy : Anatomy
        The anatomy (grid, tissue maps, brain mask).
    rng : np.random.Generator
        Random generator for the geometry (consumed).
    params : Mapping[str, Any]
        Merged parameters (:func:`nehmap.synth.params.merge_params`).

    Returns
    -------
    TumourGeometry
        :class:`TumourGeometry` with every label (NC, ED, NEH, ET) present.
    """
    drawn = _draw_geometry(rng, params)
    centre, radius = _choose_centre(anatomy, rng, drawn["tumour_radius_mm"], drawn["hemisphere"])
    drawn["tumour_radius_mm"] = radius
    axes = anatomy.world_axes()
    centre_mm = np.array([axes[a][centre[a]] for a in range(3)])
    bulk_box, bulk_small = _bulk(anatomy, rng, axes, centre, centre_mm, drawn)
    margin = bounds(params, "neh_thickness_mm")[1] + 1.4 * drawn["edema_extent_mm"] + 3.0
    box = _grow_box(bulk_box, bulk_small, margin, anatomy.spacing, anatomy.shape)
    bulk = _paste(bulk_small, bulk_box, box)
    tissues = _mass_effect(anatomy, box, centre_mm, _equivalent_radius(bulk, anatomy), drawn)
    gm, wm, csf, ventricles = tissues
    brain = anatomy.brain[box]
    labels = _lay_out(
        rng, box_axes(axes, box), anatomy.spacing, bulk, brain, wm, csf, ventricles, drawn, params
    )
    drawn["centre_mm"] = [float(v) for v in centre_mm]
    facts = _facts(labels, bulk, anatomy.spacing)
    return TumourGeometry(box, labels, gm, wm, csf, ventricles, drawn, facts)


def _draw_geometry(rng: np.random.Generator, params: Mapping[str, Any]) -> dict[str, Any]:
    names = (
        "tumour_radius_mm",
        "shape_irregularity",
        "shape_scale_mm",
        "neh_coverage",
        "neh_patch_scale_mm",
        "edema_extent_mm",
        "mass_effect",
    )
    drawn = {name: draw(rng, params, name) for name in names}
    for name in ("et_thickness_mm", "neh_thickness_mm"):
        low, high = bounds(params, name)
        drawn[name.replace("_mm", "_mean_mm")] = float(
            rng.uniform(low + 0.25 * (high - low), high - 0.25 * (high - low))
        )
    hemisphere = params["hemisphere"]
    if hemisphere is None:
        hemisphere = "left" if rng.random() < 0.5 else "right"
    if hemisphere not in ("left", "right"):
        raise ValueError(f"hemisphere must be 'left', 'right' or None, got {hemisphere!r}.")
    drawn["hemisphere"] = hemisphere
    return drawn


def _choose_centre(
    anatomy: Anatomy, rng: np.random.Generator, radius: float, hemisphere: str
) -> tuple[tuple[int, int, int], float]:
    """A white-matter voxel deep enough for a bulk of ``radius`` mm (shrunk if needed)."""
    x_axis = anatomy.world_axes()[0]
    side = x_axis >= _MIDLINE_MARGIN_MM if hemisphere == "right" else x_axis <= -_MIDLINE_MARGIN_MM
    base = anatomy.brain & (anatomy.wm > _MIN_WM_AT_CENTRE) & side[:, None, None]
    while True:
        ok = base & (anatomy.depth >= 0.9 * radius + 5.0)
        ok &= anatomy.ventricle_distance >= 0.5 * radius + 3.0
        candidates = np.flatnonzero(ok)
        if candidates.size or radius <= _MIN_RADIUS_MM:
            break
        radius = max(radius * 0.85, _MIN_RADIUS_MM)
    if candidates.size == 0:
        candidates = np.flatnonzero(base)
    flat = int(candidates[rng.integers(candidates.size)])
    centre = np.unravel_index(flat, anatomy.shape)
    return (int(centre[0]), int(centre[1]), int(centre[2])), float(radius)


def _box_from_extent(lo: np.ndarray, hi: np.ndarray, shape: tuple[int, int, int]) -> Box:
    lo = np.clip(np.floor(lo).astype(int), 0, np.array(shape) - 1)
    hi = np.clip(np.ceil(hi).astype(int) + 1, 1, np.array(shape))
    return (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))


def _bulk(
    anatomy: Anatomy,
    rng: np.random.Generator,
    axes: Axes,
    centre: tuple[int, int, int],
    centre_mm: np.ndarray,
    drawn: Mapping[str, Any],
) -> tuple[Box, np.ndarray]:
    """The lobulated bulk (ET + NC) in a box around the centre."""
    radius, irregularity = drawn["tumour_radius_mm"], drawn["shape_irregularity"]
    reach_mm = radius * (1.0 + 3.0 * irregularity) + 2.0
    reach = reach_mm / np.asarray(anatomy.spacing)
    c = np.asarray(centre, dtype=float)
    box = _box_from_extent(c - reach, c + reach, anatomy.shape)
    sub = box_axes(axes, box)
    r = _radius_mm(sub, centre_mm)
    noise = smooth_field(rng, sub, drawn["shape_scale_mm"])
    bulk = (r / radius - 1.0 - irregularity * noise) <= 0.0
    bulk &= anatomy.brain[box]
    local = tuple(int(centre[a] - box[a].start) for a in range(3))
    bulk = _component_at(bulk, local)
    return box, ndi.binary_fill_holes(bulk)


def _radius_mm(axes: Axes, centre_mm: np.ndarray) -> np.ndarray:
    dx = (axes[0] - centre_mm[0]).astype(np.float32) ** 2
    dy = (axes[1] - centre_mm[1]).astype(np.float32) ** 2
    dz = (axes[2] - centre_mm[2]).astype(np.float32) ** 2
    return np.sqrt(dx[:, None, None] + dy[None, :, None] + dz[None, None, :])


def _component_at(mask: np.ndarray, index: tuple[int, int, int]) -> np.ndarray:
    """The connected component of ``mask`` containing ``index`` (else the largest)."""
    labelled, count = ndi.label(mask)
    if count == 0:
        out = np.zeros_like(mask)
        out[index] = True
        return out
    which = labelled[index]
    if which == 0:
        sizes = np.bincount(labelled.ravel())
        sizes[0] = 0
        which = int(np.argmax(sizes))
    return labelled == which


def _grow_box(
    box: Box,
    mask: np.ndarray,
    margin_mm: float,
    spacing: tuple[float, float, float],
    shape: tuple[int, int, int],
) -> Box:
    """The bounding box of ``mask`` (given in ``box``) grown by ``margin_mm``."""
    idx = np.argwhere(mask)
    start = np.array([s.start for s in box])
    lo = idx.min(axis=0) + start - margin_mm / np.asarray(spacing)
    hi = idx.max(axis=0) + start + margin_mm / np.asarray(spacing)
    return _box_from_extent(lo, hi, shape)


def _paste(small: np.ndarray, small_box: Box, box: Box) -> np.ndarray:
    """Place ``small`` (given in ``small_box``) into a zero array of ``box``'s shape."""
    out = np.zeros(tuple(s.stop - s.start for s in box), dtype=small.dtype)
    inner = tuple(
        slice(max(a.start, b.start) - b.start, min(a.stop, b.stop) - b.start)
        for a, b in zip(small_box, box, strict=True)
    )
    src = tuple(
        slice(max(a.start, b.start) - a.start, min(a.stop, b.stop) - a.start)
        for a, b in zip(small_box, box, strict=True)
    )
    out[inner] = small[src]
    return out


def _equivalent_radius(mask: np.ndarray, anatomy: Anatomy) -> float:
    volume = float(mask.sum()) * float(np.prod(anatomy.spacing))
    return float((3.0 * volume / (4.0 * np.pi)) ** (1.0 / 3.0))


def _mass_effect(
    anatomy: Anatomy,
    box: Box,
    centre_mm: np.ndarray,
    radius: float,
    drawn: Mapping[str, Any],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Tissue maps in ``box`` with the surrounding anatomy pushed away from the tumour.

    Tissue at distance ``rho`` from the centre moves to ``r = (rho^3 + k R^3)^(1/3)``
    (the volume ``k * 4/3 pi R^3`` is displaced; ``k`` is the mass-effect strength), the
    displacement fading to zero at the brain surface and at the box's faces.
    """
    crops = (anatomy.gm[box].copy(), anatomy.wm[box].copy(), anatomy.csf[box].copy())
    ventricles = anatomy.ventricles[box].copy()
    strength = float(drawn["mass_effect"])
    if strength <= 0:
        return (*crops, ventricles)
    spacing = np.asarray(anatomy.spacing)
    inside = np.nonzero(anatomy.brain[box])
    local = np.stack(inside, axis=1).astype(np.float32)
    start = np.array([s.start for s in box], dtype=np.float32)
    origin = anatomy.grid.canonical_affine[:3, 3]
    points = origin + (local + start) * spacing
    offset = points - centre_mm
    r = np.maximum(np.linalg.norm(offset, axis=1), 1e-3)
    rho = np.cbrt(np.maximum(r**3 - strength * radius**3, 0.0))
    extent = np.array([s.stop - s.start for s in box], dtype=np.float32)
    to_face = np.minimum(local, extent - 1 - local) * spacing
    taper = np.clip(to_face.min(axis=1) / _TAPER_BOX_MM, 0.0, 1.0)
    taper *= np.clip(anatomy.depth[box][inside] / _TAPER_DEPTH_MM, 0.0, 1.0)
    shift = (1.0 - rho / r) * taper  # fraction of the offset to pull back from
    source = points - offset * shift[:, None]
    coords = ((source - origin) / spacing).T
    sampled = [
        ndi.map_coordinates(full, coords, order=1, mode="nearest")
        for full in (anatomy.gm, anatomy.wm, anatomy.csf)
    ]
    total = np.maximum(sampled[0] + sampled[1] + sampled[2], 1e-6)
    for crop, values in zip(crops, sampled, strict=True):
        crop[inside] = values / total
    vent = ndi.map_coordinates(anatomy.ventricles.astype(np.float32), coords, order=1)
    ventricles[inside] = vent > 0.5
    return (*crops, ventricles)


def _lay_out(
    rng: np.random.Generator,
    axes: Axes,
    spacing: tuple[float, float, float],
    bulk: np.ndarray,
    brain: np.ndarray,
    wm: np.ndarray,
    csf: np.ndarray,
    ventricles: np.ndarray,
    drawn: dict[str, Any],
    params: Mapping[str, Any],
) -> np.ndarray:
    """Labels in the box: rim and core inside the bulk, NEH and edema outside."""
    half_voxel = 0.5 * min(spacing)
    inside = ndi.distance_transform_edt(bulk, sampling=spacing).astype(np.float32)
    outside = ndi.distance_transform_edt(~bulk, sampling=spacing).astype(np.float32)
    inside -= half_voxel
    outside -= half_voxel
    et_field = _thickness_field(rng, axes, drawn, params, "et_thickness_mm", 4.0)
    et, nc = _rim(bulk, inside, et_field)
    neh_field = _thickness_field(rng, axes, drawn, params, "neh_thickness_mm", 5.0)
    patches = smooth_field(rng, axes, drawn["neh_patch_scale_mm"])
    neh_allowed = brain & ~ventricles & (csf < _NEH_MAX_CSF) & ~bulk
    neh = _neh(bulk, outside, neh_field, patches, neh_allowed, drawn["neh_coverage"])
    edema_noise = smooth_field(rng, axes, 8.0)
    reach = drawn["edema_extent_mm"] * np.clip(1.0 + 0.3 * edema_noise, 0.6, 1.4)
    reach *= 0.3 + 0.7 * wm
    reach = np.maximum(reach, neh_field + _EDEMA_BEYOND_NEH_MM)
    ed_allowed = brain & ~ventricles & (csf < _EDEMA_MAX_CSF) & ~bulk & ~neh
    ed = ed_allowed & (outside <= reach)
    ed = _touching(ed, bulk | neh)
    labels = np.zeros(bulk.shape, dtype=np.uint8)
    labels[ed] = ED
    labels[neh] = NEH
    labels[et] = ET
    labels[nc] = NC
    return labels


def _thickness_field(
    rng: np.random.Generator,
    axes: Axes,
    drawn: Mapping[str, Any],
    params: Mapping[str, Any],
    name: str,
    scale_mm: float,
) -> np.ndarray:
    """Local thickness (mm): the case's mean plus smooth variation, within the range."""
    low, high = bounds(params, name)
    mean = drawn[name.replace("_mm", "_mean_mm")]
    variation = smooth_field(rng, axes, scale_mm)
    return np.clip(mean + 0.25 * (high - low) * variation, low, high).astype(np.float32)


def _rim(
    bulk: np.ndarray, inside: np.ndarray, thickness: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Enhancing rim (boundary layer always included) and the necrotic core inside it."""
    boundary = bulk & ~ndi.binary_erosion(bulk, border_value=1)
    et = bulk & ((inside <= thickness) | boundary)
    nc = bulk & ~et
    if not nc.any():
        deepest = np.where(bulk, inside, -np.inf)
        nc = bulk & ~boundary & (deepest >= deepest.max())
        et &= ~nc
    return et, nc


def _neh(
    bulk: np.ndarray,
    outside: np.ndarray,
    thickness: np.ndarray,
    patches: np.ndarray,
    allowed: np.ndarray,
    coverage: float,
) -> np.ndarray:
    """NEH layer over patches covering about ``coverage`` of the rim's outer surface."""
    shell = ndi.binary_dilation(bulk) & ~bulk & allowed
    if not shell.any():
        shell = ndi.binary_dilation(bulk) & ~bulk
    values = patches[shell]
    threshold = float(np.quantile(values, 1.0 - coverage)) if values.size else 0.0
    on_patch = patches > threshold
    neh = allowed & on_patch & (outside <= thickness)
    neh |= shell & on_patch
    seeds = neh & shell
    if not seeds.any():
        best = np.where(shell, patches, -np.inf)
        seeds = shell & (best >= best.max())
        neh |= seeds
    return _touching(neh, seeds, dilate=False)


def _touching(mask: np.ndarray, other: np.ndarray, *, dilate: bool = True) -> np.ndarray:
    """Connected components of ``mask`` that touch (or, undilated, overlap) ``other``."""
    labelled, count = ndi.label(mask)
    if count == 0:
        return mask
    reach = ndi.binary_dilation(other) if dilate else other
    keep = np.unique(labelled[reach & mask])
    keep = keep[keep > 0]
    return np.isin(labelled, keep)


def _facts(labels: np.ndarray, bulk: np.ndarray, spacing: tuple[float, float, float]) -> dict:
    voxel = float(np.prod(spacing))
    counts = np.bincount(labels.ravel(), minlength=5)
    shell = ndi.binary_dilation(bulk) & ~bulk
    coverage = float((labels[shell] == NEH).mean()) if shell.any() else 0.0
    return {
        "volume_mm3": {
            "NC": float(counts[NC] * voxel),
            "ED": float(counts[ED] * voxel),
            "NEH": float(counts[NEH] * voxel),
            "ET": float(counts[ET] * voxel),
        },
        "neh_coverage": coverage,
        "bulk_equivalent_radius_mm": float((3.0 * bulk.sum() * voxel / (4 * np.pi)) ** (1 / 3)),
    }
