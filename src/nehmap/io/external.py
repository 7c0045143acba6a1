"""Probability maps from models outside nehmap, so they can join the ensemble.

Two formats are read:

- NIfTI with one channel per class, shape (X, Y, Z, K) on the case's grid;
- nnU-Net v2 ``--save_probabilities`` exports: ``<case>.npz`` holding ``probabilities``
  of shape (K, Z, Y, X) — the axis order of nnU-Net's default SimpleITK reader, on the
  original image grid (nnU-Net keeps the file's voxel order and ignores orientation).

The caller declares what each channel is, as nehmap label values in channel order
(e.g. nnU-Net's BraTS conversion: background, edema, necrosis, enhancing ->
``[0, 2, 1, 4]``). Channels that name the same nehmap label are summed; labels the
external model does not predict get probability 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nehmap.errors import NehmapInputError
from nehmap.io.image import Grid, read_grid
from nehmap.labels import LABEL_NAMES

N_LABELS = 5  # nehmap labels 0-4
_SUM_TOLERANCE = 1e-2


def parse_label_order(text: str) -> list[int]:
    """Parse a declared channel order: ``"0,2,1,4"`` or ``"background,ED,NC,ET"``."""
    names = {v.lower(): k for k, v in LABEL_NAMES.items()}
    names.update({"bg": 0, "necrosis": 1, "edema": 2, "enhancing": 4})
    out = []
    for item in text.split(","):
        token = item.strip().lower()
        if token.isdigit() and int(token) in LABEL_NAMES:
            out.append(int(token))
        elif token in names:
            out.append(names[token])
        else:
            raise ValueError(
                f"Unknown label {item!r} in the declared channel order {text!r}: use nehmap "
                "label values 0-4 or the names background, NC, ED, NEH, ET."
            )
    return out


def read_external_probabilities(
    path: str | Path, grid: Grid, channel_labels: Sequence[int]
) -> np.ndarray:
    """Read an external probability map onto nehmap's canonical array layout.

    Parameters
    ----------
    path : str | Path
        ``.nii``/``.nii.gz`` (X, Y, Z, K) or nnU-Net ``.npz`` (K, Z, Y, X).
    grid : Grid
        The case's grid (the map must be on it).
    channel_labels : Sequence[int]
        The nehmap label (0-4) of each channel, in channel order.

    Returns
    -------
    np.ndarray
        float32 array (5, X, Y, Z) of probabilities for nehmap labels 0-4, canonical RAS+.

    Raises
    ------
    NehmapInputError
        The map is on another grid, has the wrong number of channels,
        or does not hold probabilities.
    """
    p = Path(path)
    if p.suffix == ".npz":
        data = _read_npz(p, grid)
    else:
        source_grid = read_grid(p, channels=True)
        if source_grid.shape != grid.shape or source_grid.distance_mm(grid) > 1e-3:
            raise NehmapInputError(
                p,
                f"is on another grid (shape {source_grid.shape}) than the case "
                f"({grid.shape}, {grid.source}).",
                "Export the probabilities on the case's original grid.",
            )
        arr = read_image_channels(p)
        data = arr  # (i, j, k, K) in stored order
    if data.shape[-1] != len(channel_labels):
        raise NehmapInputError(
            p,
            f"has {data.shape[-1]} channels but {len(channel_labels)} labels were declared "
            f"({list(channel_labels)}).",
            "Declare one label per channel, in channel order.",
        )
    if data.min() < -1e-4 or data.max() > 1 + 1e-4:
        raise NehmapInputError(
            p,
            f"holds values in [{data.min():.3g}, {data.max():.3g}], not probabilities.",
            "Export softmax probabilities, not logits.",
        )
    total = data.sum(axis=-1)
    if np.abs(total - 1).max() > _SUM_TOLERANCE:
        raise NehmapInputError(
            p,
            f"channels sum to between {total.min():.3g} and {total.max():.3g}, not 1.",
            "Export per-class softmax probabilities (region-based sigmoid outputs are not "
            "per-label probabilities).",
        )
    canonical = grid.to_canonical(data)  # (X, Y, Z, K)
    out = np.zeros((N_LABELS, *canonical.shape[:3]), dtype=np.float32)
    for channel, label in enumerate(channel_labels):
        out[label] += canonical[..., channel]
    return out


def read_image_channels(path: Path) -> np.ndarray:
    """A 4D NIfTI's voxel data in stored order, (i, j, k, K) float32."""
    import nibabel as nib

    try:
        data = np.asarray(nib.load(str(path)).dataobj, dtype=np.float32)
    except Exception as exc:  # noqa: BLE001 - any failure means unreadable
        raise NehmapInputError(path, f"cannot be read ({exc}).", "Check the file.") from exc
    if data.ndim == 3:
        raise NehmapInputError(
            path,
            "is 3D, but one channel per class is needed.",
            "Export the probabilities of every class (a 4D image).",
        )
    if data.ndim == 5 and data.shape[3] == 1:  # (X, Y, Z, 1, K) as some tools write
        data = data[:, :, :, 0]
    return data


def _read_npz(path: Path, grid: Grid) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as npz:
            probs = npz["probabilities"].astype(np.float32)
    except (OSError, KeyError, ValueError) as exc:
        raise NehmapInputError(
            path,
            f"is not an nnU-Net probability export ({exc}).",
            "Give the .npz written by nnUNetv2_predict --save_probabilities.",
        ) from exc
    if probs.ndim != 4:
        raise NehmapInputError(
            path,
            f"holds probabilities of shape {probs.shape}, not (K, Z, Y, X).",
            "Give a 3D case's probability export.",
        )
    data = probs.transpose(3, 2, 1, 0)  # (K, z, y, x) -> (i, j, k, K)
    if tuple(data.shape[:3]) != tuple(grid.shape):
        raise NehmapInputError(
            path,
            f"holds a grid of {tuple(data.shape[:3])} voxels (i, j, k) but the case's "
            f"image {grid.source} has {tuple(grid.shape)}.",
            "Use the export of this case, predicted on its original image.",
        )
    return data
