"""Smooth random fields in world units (mm), evaluated on boxes of a voxel grid.

A field is generated on a coarse lattice whose step depends only on its correlation
length, smoothed with a Gaussian there and interpolated linearly onto the voxels, so
its look in mm is the same at every voxel size and the cost stays small.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

Axes = tuple[np.ndarray, np.ndarray, np.ndarray]
"""World coordinates (mm) of the voxel centres along each of the three array axes."""


def box_axes(axes: Axes, box: tuple[slice, slice, slice]) -> Axes:
    """The world axes (mm) restricted to a box of voxel slices."""
    return (axes[0][box[0]], axes[1][box[1]], axes[2][box[2]])


def smooth_field(
    rng: np.random.Generator, axes: Axes, sigma_mm: float, *, clip: float = 3.0
) -> np.ndarray:
    """A Gaussian random field with unit standard deviation and zero mean.

    Parameters
    ----------
    rng : np.random.Generator
        Random generator (consumed).
    axes : Axes
        World coordinates (mm) of the voxel centres along each array axis; the
        spacing along each axis must be uniform.
    sigma_mm : float
        Correlation length: standard deviation (mm) of the Gaussian kernel
        that smooths white noise.
    clip : float
        The field is clipped to [-clip, clip].

    Returns
    -------
    np.ndarray
        float32 array of shape ``(len(axes[0]), len(axes[1]), len(axes[2]))``.
    """
    step = max(sigma_mm / 2.0, 0.5)
    pad = 3.0 * sigma_mm + step
    lows = [float(a[0]) - pad for a in axes]
    counts = [int(np.ceil((float(a[-1]) - float(a[0]) + 2 * pad) / step)) + 2 for a in axes]
    noise = rng.standard_normal(counts, dtype=np.float32)
    smooth = ndi.gaussian_filter(noise, sigma_mm / step, mode="wrap")
    smooth -= smooth.mean()
    smooth /= max(float(smooth.std()), 1e-12)
    shape = tuple(len(a) for a in axes)
    scale = [_axis_step(a) / step for a in axes]
    offset = [(float(a[0]) - low) / step for a, low in zip(axes, lows, strict=True)]
    out = ndi.affine_transform(smooth, np.diag(scale), offset=offset, output_shape=shape, order=1)
    np.clip(out, -clip, clip, out=out)
    return out.astype(np.float32, copy=False)


def _axis_step(axis: np.ndarray) -> float:
    return float(axis[1] - axis[0]) if len(axis) > 1 else 1.0


def polynomial_field(
    rng: np.random.Generator,
    axes: Axes,
    amplitude: float,
    *,
    centre_mm: Sequence[float] = (0.0, -17.0, 5.0),
    half_size_mm: Sequence[float] = (75.0, 95.0, 80.0),
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """A smooth quadratic field ``f`` with ``max |f| == amplitude`` (over ``mask``).

    The field is a random polynomial of degree 2 in the normalised world coordinates
    ``(w - centre) / half_size``; exponentiate it for a multiplicative bias field.

    Parameters
    ----------
    rng : np.random.Generator
        Random generator (consumed).
    axes : Axes
        World coordinates (mm) along each array axis.
    amplitude : float
        Largest absolute value of the field (over ``mask`` if given).
    centre_mm : Sequence[float]
        Centre of the normalisation (the MNI brain centre by default).
    half_size_mm : Sequence[float]
        Half extent of the normalisation (mm).
    mask : np.ndarray | None
        Voxels over which the amplitude is measured (shape of the field).

    Returns
    -------
    np.ndarray
        float32 array of shape ``(len(axes[0]), len(axes[1]), len(axes[2]))``.
    """
    x, y, z = (
        ((a - c) / h).astype(np.float32)
        for a, c, h in zip(axes, centre_mm, half_size_mm, strict=True)
    )
    c = rng.uniform(-1.0, 1.0, size=9).astype(np.float32)
    field = (c[0] * x + c[3] * x * x)[:, None, None] + (c[1] * y + c[4] * y * y)[None, :, None]
    field = field + (c[2] * z + c[5] * z * z)[None, None, :]
    field += (c[6] * np.outer(x, y))[:, :, None]
    field += (c[7] * np.outer(x, z))[:, None, :]
    field += (c[8] * np.outer(y, z))[None, :, :]
    values = field[mask] if mask is not None and mask.any() else field
    field -= float(values.mean())
    peak = float(np.max(np.abs(values - float(values.mean())))) if values.size else 0.0
    if peak > 0:
        field *= amplitude / peak
    return field.astype(np.float32, copy=False)
