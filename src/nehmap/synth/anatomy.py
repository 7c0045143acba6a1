"""Real brain anatomy for the synthetic cohort: the MNI152 template on the BraTS grid.

The ICBM 2009 MNI152 (symmetric, non-linear) 1 mm template and its grey- and
white-matter probability maps ship inside nilearn, so no download is needed. They are
placed on the grid the BraTS collections use (240 x 240 x 155 voxels of 1 mm, the
skull-stripped brain centred in the field of view), or on a grid with the same field of
view at any other voxel size (2 mm gives 120 x 120 x 78 voxels).

World coordinates of the grids are MNI coordinates (RAS, mm), so a point keeps its
anatomical meaning at every spacing. Arrays are canonical RAS+: axis 0 towards Right,
axis 1 towards Anterior, axis 2 towards Superior.

The resampled anatomy is cached in memory per spacing (:func:`load_anatomy`), so a
cohort pays the resampling once.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from nehmap.io.image import Grid, new_grid

BRATS_SHAPE: tuple[int, int, int] = (240, 240, 155)
"""Shape (voxels) of the 1 mm BraTS grid."""

BRATS_ORIGIN_MM: tuple[float, float, float] = (-120.0, -137.0, -70.0)
"""MNI world position (mm) of voxel (0, 0, 0) of the 1 mm grid.

The MNI brain spans x -72..72, y -107..73, z -72..82 mm: this origin centres it
left-right and front-back and leaves two empty slices above the vertex (the lowest
2 mm of the brainstem fall outside, as in many BraTS volumes).
"""

_TEMPLATE_BRAIN_THRESHOLD = 0.2
_VENTRICLE_MAX_INTENSITY = 0.45
_VENTRICLE_MIN_DEPTH_MM = 10.0
_VENTRICLE_MIN_VOLUME_MM3 = 500.0

SpacingLike = float | Sequence[float]


@dataclass(frozen=True)
class Anatomy:
    """Tissue maps of the MNI152 brain on a BraTS-like grid.

    All arrays have shape ``grid.canonical_shape`` (canonical RAS+) and are read-only:
    copy before modifying.

    Attributes
    ----------
    grid : Grid
        The grid (affine in MNI world mm).
    spacing : tuple[float, float, float]
        Voxel size in mm per array axis.
    gm : np.ndarray
        Grey-matter fraction, float32 in [0, 1].
    wm : np.ndarray
        White-matter fraction, float32 in [0, 1].
    csf : np.ndarray
        Cerebrospinal-fluid fraction, float32 in [0, 1]; ``gm + wm + csf`` is 1
        inside the brain and 0 outside.
    brain : np.ndarray
        Brain mask (bool).
    depth : np.ndarray
        Distance (mm) from each brain voxel to the nearest voxel outside the
        brain; 0 outside the brain.
    ventricles : np.ndarray
        Lateral and third ventricles (bool).
    ventricle_distance : np.ndarray
        Distance (mm) to the nearest ventricle voxel.
    template : np.ndarray
        The MNI152 T1 template intensity (float32, 0-1), for reference.
    """

    grid: Grid
    spacing: tuple[float, float, float]
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    brain: np.ndarray
    depth: np.ndarray
    ventricles: np.ndarray
    ventricle_distance: np.ndarray
    template: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape (voxels)."""
        return self.grid.canonical_shape

    def world_axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World coordinate (mm) of the voxel centres along each array axis."""
        affine = self.grid.canonical_affine
        return tuple(  # type: ignore[return-value]
            affine[a, 3] + affine[a, a] * np.arange(n) for a, n in enumerate(self.shape)
        )


def as_spacing(spacing: SpacingLike) -> tuple[float, float, float]:
    """Normalise a voxel size (one number or three, mm) to a tuple of three floats.

    Raises
    ------
    ValueError
        For non-positive or non-finite values or a wrong count.
    """
    values = (
        [float(spacing)] * 3 if np.isscalar(spacing) else [float(v) for v in spacing]  # type: ignore[arg-type]
    )
    if len(values) != 3 or not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(
            f"Spacing must be one positive number or three (mm per axis), got {spacing!r}."
        )
    return (values[0], values[1], values[2])


def brats_grid(spacing: SpacingLike = 1.0) -> Grid:
    """The BraTS field of view (240 x 240 x 155 mm, MNI-centred) at ``spacing`` mm.

    The number of voxels per axis is the field of view divided by the spacing, rounded
    up (2 mm: 120 x 120 x 78); the grid stays centred on the 1 mm grid's centre.

    Parameters
    ----------
    spacing : SpacingLike
        Voxel size in mm (one value, or one per axis).

    Returns
    -------
    Grid
        A canonical RAS+ :class:`~nehmap.io.image.Grid` in MNI world mm.
    """
    sp = as_spacing(spacing)
    centre = [o + (n - 1) / 2.0 for o, n in zip(BRATS_ORIGIN_MM, BRATS_SHAPE, strict=True)]
    shape = tuple(int(math.ceil(n / s - 1e-6)) for n, s in zip(BRATS_SHAPE, sp, strict=True))
    origin = tuple(c - (n - 1) / 2.0 * s for c, n, s in zip(centre, shape, sp, strict=True))
    return new_grid(shape, sp, origin)  # type: ignore[arg-type]


@dataclass(frozen=True)
class _Source:
    """The 1 mm MNI maps on their own grid (origin in world mm, spacing 1 mm)."""

    origin: np.ndarray
    template: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    brain: np.ndarray
    ventricles: np.ndarray


@functools.lru_cache(maxsize=1)
def _source() -> _Source:
    """Load the MNI152 maps shipped with nilearn and derive the brain and ventricles."""
    from nilearn import datasets

    t1_img = datasets.load_mni152_template(resolution=1)
    affine = t1_img.affine
    if not np.allclose(np.abs(np.diag(affine)[:3]), 1.0) or not np.allclose(
        affine[:3, :3], np.diag(np.diag(affine)[:3])
    ):
        raise RuntimeError("Unexpected MNI152 template geometry (expected 1 mm, axis-aligned).")
    template = _as_ras(np.asarray(t1_img.get_fdata(dtype=np.float32)), affine)
    gm = _as_ras(
        np.asarray(datasets.load_mni152_gm_template(resolution=1).get_fdata(dtype=np.float32)),
        affine,
    )
    wm = _as_ras(
        np.asarray(datasets.load_mni152_wm_template(resolution=1).get_fdata(dtype=np.float32)),
        affine,
    )
    origin = _ras_origin(affine, template.shape)
    brain = ndi.binary_fill_holes((template > _TEMPLATE_BRAIN_THRESHOLD) | (gm + wm > 0.5))
    brain = _largest_component(brain)
    csf = np.clip(brain - gm - wm, 0.0, 1.0)
    ventricles = _find_ventricles(template, csf, brain)
    return _Source(origin, template, gm * brain, wm * brain, brain, ventricles)


def _as_ras(array: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Flip the axes of an axis-aligned array whose affine has negative steps."""
    for axis in range(3):
        if affine[axis, axis] < 0:
            array = np.flip(array, axis=axis)
    return np.ascontiguousarray(array)


def _ras_origin(affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """World position (mm) of the first voxel of the RAS-flipped array."""
    origin = np.array(affine[:3, 3], dtype=float)
    for axis in range(3):
        if affine[axis, axis] < 0:
            origin[axis] += affine[axis, axis] * (shape[axis] - 1)
    return origin


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labelled, count = ndi.label(mask)
    if count <= 1:
        return mask.astype(bool)
    sizes = np.bincount(labelled.ravel())
    sizes[0] = 0
    return labelled == int(np.argmax(sizes))


def _find_ventricles(template: np.ndarray, csf: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """Deep, dark CSF of the 1 mm template: the ventricles (bool)."""
    depth = _coarse_depth(brain)
    candidate = (csf > 0.5) & (template < _VENTRICLE_MAX_INTENSITY)
    candidate &= depth > _VENTRICLE_MIN_DEPTH_MM
    labelled, count = ndi.label(candidate)
    if count == 0:
        return candidate
    sizes = np.bincount(labelled.ravel())
    sizes[0] = 0
    keep = np.flatnonzero(sizes >= _VENTRICLE_MIN_VOLUME_MM3)
    return np.isin(labelled, keep)


def _coarse_depth(mask: np.ndarray, step: int = 2) -> np.ndarray:
    """Approximate distance (mm, 1 mm voxels) to the outside of ``mask``, computed on
    every ``step``-th voxel and repeated back (fast; accurate to about ``step`` mm)."""
    coarse = ndi.distance_transform_edt(mask[::step, ::step, ::step], sampling=float(step))
    for axis in range(3):
        coarse = np.repeat(coarse, step, axis=axis)
    return coarse[: mask.shape[0], : mask.shape[1], : mask.shape[2]]


def _resample(source: np.ndarray, origin: np.ndarray, grid: Grid) -> np.ndarray:
    """Resample a 1 mm source map onto ``grid`` (linear, with anti-aliasing), float32."""
    spacing = np.asarray(grid.spacing)
    data = source.astype(np.float32, copy=False)
    sigma = np.sqrt(np.maximum(spacing**2 - 1.0, 0.0) / 12.0)
    if np.any(sigma > 0.05):
        data = ndi.gaussian_filter(data, sigma)
    offset = grid.canonical_affine[:3, 3] - origin
    out = ndi.affine_transform(
        data,
        np.diag(spacing),
        offset=offset,
        output_shape=grid.canonical_shape,
        order=1,
        mode="constant",
        cval=0.0,
    )
    return out.astype(np.float32, copy=False)


def _readonly(*arrays: np.ndarray) -> None:
    for array in arrays:
        array.setflags(write=False)


@functools.lru_cache(maxsize=4)
def _anatomy_cached(spacing: tuple[float, float, float]) -> Anatomy:
    src = _source()
    grid = brats_grid(spacing)
    brain_frac = _resample(src.brain, src.origin, grid)
    brain = brain_frac > 0.5
    gm = _resample(src.gm, src.origin, grid)
    wm = _resample(src.wm, src.origin, grid)
    gm, wm, csf = _normalise_tissues(gm, wm, brain)
    template = _resample(src.template, src.origin, grid) * brain
    ventricles = (_resample(src.ventricles, src.origin, grid) > 0.5) & brain
    depth = ndi.distance_transform_edt(brain, sampling=spacing).astype(np.float32)
    if ventricles.any():
        vdist = ndi.distance_transform_edt(~ventricles, sampling=spacing).astype(np.float32)
    else:
        vdist = np.full(grid.canonical_shape, np.inf, dtype=np.float32)
    anatomy = Anatomy(
        grid=grid,
        spacing=spacing,
        gm=gm,
        wm=wm,
        csf=csf,
        brain=brain,
        depth=depth,
        ventricles=ventricles,
        ventricle_distance=vdist,
        template=template.astype(np.float32),
    )
    _readonly(gm, wm, csf, brain, depth, ventricles, vdist, anatomy.template)
    return anatomy


def _normalise_tissues(
    gm: np.ndarray, wm: np.ndarray, brain: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GM, WM and CSF fractions summing to 1 inside ``brain``, 0 outside."""
    gm = np.clip(gm, 0.0, 1.0) * brain
    wm = np.clip(wm, 0.0, 1.0) * brain
    total = gm + wm
    over = total > 1.0
    gm[over] /= total[over]
    wm[over] /= total[over]
    csf = np.clip(1.0 - gm - wm, 0.0, 1.0) * brain
    return gm.astype(np.float32), wm.astype(np.float32), csf.astype(np.float32)


def load_anatomy(spacing: SpacingLike = 1.0) -> Anatomy:
    """The MNI152 anatomy on the BraTS field of view at ``spacing`` mm (cached).

    Parameters
    ----------
    spacing : SpacingLike
        Voxel size in mm, one value or one per axis (anisotropic allowed).

    Returns
    -------
    Anatomy
        :class:`Anatomy` with read-only arrays; the same object is returned for the
        same spacing for the life of the process.
    """
    return _anatomy_cached(as_spacing(spacing))


def clear_cache() -> None:
    """Drop the cached anatomy (frees a few hundred MB at 1 mm)."""
    _anatomy_cached.cache_clear()
    _source.cache_clear()
