"""Preprocessing for the networks: crop to the brain, normalise, resample — and back.

All functions take numpy arrays (``(C, X, Y, Z)`` for multi-channel stacks, ``(X, Y, Z)``
for masks) plus spacing in mm per spatial axis.

Resampling convention: the resampled volume covers the same physical extent as the
input (the outer faces of the first and last voxels coincide), the new shape is
``round(shape * spacing_in / spacing_out)``, and values are interpolated trilinearly
(``align_corners=False``). Going back uses the same convention, so a round trip maps
every voxel onto itself. Probabilities are resampled linearly and renormalised; labels
are obtained by argmax *after* resampling the probabilities, never by resampling labels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - torch convention

Spacing = tuple[float, float, float]


@dataclass(frozen=True)
class Crop:
    """Where a cropped block sits in the full volume.

    Attributes
    ----------
    full_shape : tuple[int, int, int]
        Spatial shape of the full volume.
    slices : tuple[slice, slice, slice]
        One slice per spatial axis, selecting the block.
    """

    full_shape: tuple[int, int, int]
    slices: tuple[slice, slice, slice]

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape ``(X, Y, Z)`` in voxels of the cropped block."""
        return tuple(s.stop - s.start for s in self.slices)  # type: ignore[return-value]

    def paste(self, block: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """Put a cropped block (``(..., *self.shape)``) back into a full-size array."""
        lead = block.shape[: block.ndim - 3]
        out = np.full((*lead, *self.full_shape), fill, dtype=block.dtype)
        out[(..., *self.slices)] = block
        return out


def brain_crop(mask: np.ndarray, margin: int = 0) -> Crop:
    """The bounding box of ``mask`` (bool, (X, Y, Z)) grown by ``margin`` voxels.

    Raises
    ------
    ValueError
        If the mask is empty.
    """
    if not mask.any():
        raise ValueError("The brain mask is empty: every voxel of every modality is zero.")
    slices = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        idx = np.flatnonzero(mask.any(axis=other))
        lo = max(int(idx[0]) - margin, 0)
        hi = min(int(idx[-1]) + 1 + margin, mask.shape[axis])
        slices.append(slice(lo, hi))
    return Crop(tuple(mask.shape), tuple(slices))  # type: ignore[arg-type]


def zscore_in_mask(
    stack: np.ndarray, mask: np.ndarray, names: Sequence[str] | None = None
) -> np.ndarray:
    """Z-score each channel using the mean and SD of the voxels inside ``mask``.

    Parameters
    ----------
    stack : np.ndarray
        float array (C, X, Y, Z).
    mask : np.ndarray
        bool array (X, Y, Z), the brain.
    names : Sequence[str] | None
        Channel names for error messages.

    Returns
    -------
    np.ndarray
        float32 array (C, X, Y, Z); voxels outside the mask are 0.

    Raises
    ------
    ValueError
        If a channel is constant inside the mask (names the channel).
    """
    out = np.zeros(stack.shape, dtype=np.float32)
    for c in range(stack.shape[0]):
        values = stack[c][mask].astype(np.float64)
        sd = values.std()
        if not np.isfinite(sd) or sd <= 0:
            name = names[c] if names is not None else f"channel {c}"
            raise ValueError(
                f"{name} is constant inside the brain (SD 0): it cannot be normalised. "
                "Check that the right file was given for this modality."
            )
        out[c][mask] = ((values - values.mean()) / sd).astype(np.float32)
    return out


def resampled_shape(shape: Sequence[int], spacing_in: Spacing, spacing_out: Spacing) -> tuple:
    """Shape covering the same extent at ``spacing_out`` mm (at least 1 voxel per axis)."""
    return tuple(
        max(1, int(round(n * si / so)))
        for n, si, so in zip(shape, spacing_in, spacing_out, strict=True)
    )


def resample_channels(
    stack: np.ndarray, shape: Sequence[int], mode: str = "trilinear"
) -> np.ndarray:
    """Resample a (C, X, Y, Z) float array to spatial ``shape`` (same physical extent).

    ``mode`` is ``"trilinear"`` (images, probabilities) or ``"nearest"``.
    """
    if tuple(stack.shape[1:]) == tuple(shape):
        return stack.astype(np.float32, copy=False)
    tensor = torch.from_numpy(np.ascontiguousarray(stack, dtype=np.float32))[None]
    kwargs = {"align_corners": False} if mode == "trilinear" else {}
    with torch.no_grad():
        out = F.interpolate(tensor, size=tuple(int(s) for s in shape), mode=mode, **kwargs)
    return out[0].numpy()


def resample_probabilities(probs: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Resample class probabilities (K, X, Y, Z) linearly and renormalise to sum 1."""
    out = resample_channels(probs, shape)
    np.clip(out, 0.0, 1.0, out=out)
    total = out.sum(axis=0, keepdims=True)
    np.divide(out, total, out=out, where=total > 0)
    return out


def labels_from_probabilities(probs: np.ndarray, class_values: Sequence[int]) -> np.ndarray:
    """Argmax over classes, mapped to label values (uint8, (X, Y, Z))."""
    lut = np.asarray(class_values, dtype=np.uint8)
    return lut[np.argmax(probs, axis=0)]


def predict_at_spacing(
    block: np.ndarray,
    spacing: Sequence[float],
    target: Sequence[float],
    predict: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """Run ``predict`` on a (C, X, Y, Z) block resampled to ``target`` mm, and come back.

    ``spacing`` is the block's voxel size (mm per axis). The block is resampled
    trilinearly to the grid of ``target`` (skipped when the two agree to 0.001 mm),
    ``predict`` turns it into class probabilities (K, ...) on that grid, and they are
    resampled back to the block's grid with :func:`resample_probabilities`.

    Returns
    -------
    np.ndarray
        float32 (K, X, Y, Z) on the block's grid.
    """
    if np.allclose(spacing, target, rtol=0, atol=1e-3):
        return predict(block)
    work_shape = resampled_shape(block.shape[1:], spacing, target)
    return resample_probabilities(predict(resample_channels(block, work_shape)), block.shape[1:])


def probabilities_in_brain(probs: np.ndarray, crop: Crop, brain: np.ndarray) -> np.ndarray:
    """Class probabilities of a cropped block (K, ...) on the full grid; background
    (class 0) with probability 1 outside the brain mask (bool, (X, Y, Z))."""
    full = crop.paste(probs, fill=0.0)
    outside = ~brain
    full[:, outside] = 0.0
    full[0, outside] = 1.0
    return full
