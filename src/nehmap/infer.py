"""Sliding-window inference with Gaussian importance weighting and test-time mirroring.

The volume is covered by windows of the model's patch size. Along each axis, windows
start every ``int(patch * (1 - overlap))`` voxels and the last window is shifted back
to end at the volume's edge (the positions MONAI's ``sliding_window_inference`` uses).
Each window's logits are weighted by a Gaussian importance map (sigma = patch / 8 per
axis, centred, clamped below at max(min, 1e-3)) so that window borders count less;
overlapping windows are averaged with these weights, then a softmax over classes gives
the probabilities. With ``mirror=True`` the logits of each window are averaged over
all flips along the mirror axes (8 passes in 3D). Volumes smaller than the patch are
zero-padded symmetrically and cropped back.

Memory stays bounded on large volumes: only a batch of windows lives on the device;
the accumulators are on the CPU, float32, (K, X, Y, Z).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn


def select_device(name: str | None = None) -> torch.device:
    """The device to run on: ``name`` if given, else CUDA, then Apple MPS, then CPU.

    Raises
    ------
    ValueError
        If the requested device is not available.
    """
    if name:
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"--device {name}: CUDA is not available on this machine.")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError(f"--device {name}: Apple MPS is not available on this machine.")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def gaussian_importance_map(patch_size: Sequence[int], sigma_scale: float = 0.125) -> np.ndarray:
    """Gaussian weights over a window (float32, ``patch_size``), centre ~1, edges >= 1e-3."""
    weights = np.ones((), dtype=np.float64)
    for n in patch_size:
        x = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
        g = np.exp(-(x**2) / (2.0 * (n * sigma_scale) ** 2))
        weights = np.multiply.outer(weights, g)
    weights = weights.astype(np.float32)
    return np.maximum(weights, max(float(weights.min()), 1e-3))


def window_starts(size: int, patch: int, overlap: float = 0.5) -> list[int]:
    """Start indices of the windows along one axis of ``size`` voxels (patch <= size)."""
    if patch >= size:
        return [0]
    interval = max(int(patch * (1.0 - overlap)), 1)
    n = next(d for d in range(math.ceil(size / interval)) if d * interval + patch >= size) + 1
    return [min(i * interval, size - patch) for i in range(n)]


def _mirror_sets(axes: Sequence[int]) -> list[tuple[int, ...]]:
    return [c for r in range(len(axes) + 1) for c in itertools.combinations(axes, r)]


def sliding_window_logits(
    model: nn.Module,
    image: np.ndarray,
    patch_size: Sequence[int],
    *,
    overlap: float = 0.5,
    batch_size: int = 2,
    device: torch.device | str = "cpu",
    amp: bool | None = None,
    mirror_axes: Sequence[int] = (),
    progress: bool = False,
    desc: str = "windows",
) -> np.ndarray:
    """Gaussian-weighted average of the model's window logits over the volume.

    Parameters
    ----------
    model : nn.Module
        Network mapping (B, C, *patch_size) to logits (B, K, *patch_size).
    image : np.ndarray
        (C, X, Y, Z) float32 input.
    patch_size : Sequence[int]
        Window size in voxels (3 values).
    overlap : float
        Fraction of a window shared with the next (0.5 = 50 %).
    batch_size : int
        Windows per forward pass.
    device : torch.device | str
        Where the model runs.
    amp : bool | None
        Mixed precision (float16 autocast); default on for CUDA only.
    mirror_axes : Sequence[int]
        Spatial axes (0, 1, 2) to mirror for test-time augmentation.
    progress : bool
        Show a progress bar over windows.
    desc : str
        The progress bar's label.

    Returns
    -------
    np.ndarray
        float32 array (K, X, Y, Z) of averaged logits.
    """
    from tqdm import tqdm

    device = torch.device(device)
    amp = device.type == "cuda" if amp is None else amp
    patch = tuple(int(p) for p in patch_size)
    spatial = image.shape[1:]
    pad = [max(p - s, 0) for p, s in zip(patch, spatial, strict=True)]
    if any(pad):
        widths = [(0, 0)] + [(p // 2, p - p // 2) for p in pad]
        image = np.pad(image, widths)
    size = image.shape[1:]
    starts = list(
        itertools.product(*(window_starts(s, p, overlap) for s, p in zip(size, patch, strict=True)))
    )
    weights = torch.from_numpy(gaussian_importance_map(patch))
    weights_dev = weights.to(device)
    logits_sum: np.ndarray | None = None
    weight_sum = np.zeros(size, dtype=np.float32)
    mirrors = _mirror_sets([a + 2 for a in mirror_axes])
    source = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    model.eval()
    bar = tqdm(total=len(starts), desc=desc, unit="win", disable=not progress, leave=False)
    with torch.inference_mode():
        for b in range(0, len(starts), batch_size):
            chunk = starts[b : b + batch_size]
            boxes = [tuple(slice(s, s + p) for s, p in zip(st, patch, strict=True)) for st in chunk]
            batch = torch.stack([source[(slice(None), *box)] for box in boxes]).to(device)
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                out = None
                for flip in mirrors:
                    x = torch.flip(batch, flip) if flip else batch
                    y = model(x)
                    y = torch.flip(y, flip) if flip else y
                    out = y.float() if out is None else out + y.float()
            out = (out / len(mirrors)) * weights_dev
            out_np = out.cpu().numpy()
            if logits_sum is None:
                logits_sum = np.zeros((out_np.shape[1], *size), dtype=np.float32)
            for k, box in enumerate(boxes):
                logits_sum[(slice(None), *box)] += out_np[k]
                weight_sum[box] += weights.numpy()
            bar.update(len(chunk))
    bar.close()
    assert logits_sum is not None
    logits_sum /= weight_sum[None]
    if any(pad):
        crop = tuple(slice(p // 2, p // 2 + s) for p, s in zip(pad, spatial, strict=True))
        logits_sum = logits_sum[(slice(None), *crop)]
    return np.ascontiguousarray(logits_sum)


def softmax(logits: np.ndarray, axis: int = 0) -> np.ndarray:
    """Numerically stable softmax over ``axis`` (float32)."""
    shifted = logits - logits.max(axis=axis, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=axis, keepdims=True)
    return shifted.astype(np.float32, copy=False)


def sliding_window_probabilities(
    model: nn.Module, image: np.ndarray, patch_size: Sequence[int], **kwargs: object
) -> np.ndarray:
    """Class probabilities (K, X, Y, Z), float32, summing to 1 over K."""
    return softmax(sliding_window_logits(model, image, patch_size, **kwargs))  # type: ignore[arg-type]
