"""Where training patches come from: foreground oversampling, padding, extraction.

A patch is placed by its start corner (voxel indices, per axis). Along an axis of
``S`` voxels a patch of ``P`` voxels may start anywhere in ``[0, S - P]``; when the
volume is smaller than the patch (``S < P``) the patch is centred on the volume
(start ``-(P - S) // 2``) and the missing voxels are zero (background) padding.

Each sample is, independently:

* with probability ``foreground_fraction`` centred on a tumour voxel, and then with
  probability ``focus_fraction`` on an NEH voxel in particular (when the case has any;
  otherwise on any tumour voxel, otherwise uniform), the start moved into the allowed
  range so the patch stays inside the (padded) volume;
* otherwise placed uniformly at random in the allowed range.

The case is drawn uniformly from the training cases.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nehmap.train.data import PreparedCase

Triple = tuple[int, int, int]


@dataclass(frozen=True)
class PatchPlan:
    """One patch to extract.

    Attributes
    ----------
    case_index : int
        Index into the list of prepared cases.
    start : tuple of 3 int
        Start corner, voxels (may be negative for volumes smaller than the patch).
    kind : str
        ``"random"``, ``"tumour"`` or ``"focus"``.
    """

    case_index: int
    start: Triple
    kind: str


def start_range(size: int, patch: int) -> tuple[int, int]:
    """Smallest and largest start of a ``patch``-voxel patch along a ``size``-voxel axis."""
    if size >= patch:
        return 0, size - patch
    start = -((patch - size) // 2)
    return start, start


def random_start(rng: np.random.Generator, shape: Sequence[int], patch: Sequence[int]) -> Triple:
    """A start corner drawn uniformly from the allowed range on each axis."""
    out = []
    for s, p in zip(shape, patch, strict=True):
        lo, hi = start_range(int(s), int(p))
        out.append(int(rng.integers(lo, hi + 1)))
    return (out[0], out[1], out[2])


def centred_start(voxel: Sequence[int], shape: Sequence[int], patch: Sequence[int]) -> Triple:
    """The start corner of a patch centred on ``voxel``, moved into the allowed range."""
    out = []
    for v, s, p in zip(voxel, shape, patch, strict=True):
        lo, hi = start_range(int(s), int(p))
        out.append(int(min(max(int(v) - int(p) // 2, lo), hi)))
    return (out[0], out[1], out[2])


def plan_patch(
    rng: np.random.Generator,
    cases: Sequence[PreparedCase],
    patch: Sequence[int],
    foreground_fraction: float,
    focus_fraction: float,
    case_index: int | None = None,
) -> PatchPlan:
    """Draw one patch (see the module docstring).

    Parameters
    ----------
    rng : numpy.random.Generator
        The sample's generator (see :mod:`nehmap.train.seeding`).
    cases : sequence of PreparedCase
        Training cases.
    patch : 3 ints
        Patch size, voxels.
    foreground_fraction, focus_fraction : float
        Probabilities of a tumour-centred patch, and of NEH among those.
    case_index : int, optional
        Use this case instead of drawing one.
    """
    index = int(rng.integers(len(cases))) if case_index is None else int(case_index)
    case = cases[index]
    draw_fg = rng.random() < foreground_fraction
    draw_focus = rng.random() < focus_fraction
    pick = rng.random()
    if draw_fg:
        for kind, where in (("focus", case.focus), ("tumour", case.foreground)):
            if kind == "focus" and not draw_focus:
                continue
            if len(where):
                voxel = where[min(int(pick * len(where)), len(where) - 1)]
                return PatchPlan(index, centred_start(voxel, case.shape, patch), kind)
    return PatchPlan(index, random_start(rng, case.shape, patch), "random")


def extract(volume: np.ndarray, start: Sequence[int], size: Sequence[int]) -> np.ndarray:
    """The block ``[start, start + size)`` of a volume, zero outside the volume.

    Parameters
    ----------
    volume : numpy.ndarray
        (..., X, Y, Z); leading axes (channels) are kept.
    start : 3 ints
        Start corner, voxels; may be negative or reach past the end.
    size : 3 ints
        Block size, voxels.

    Returns
    -------
    numpy.ndarray
        (..., *size), same dtype, a new array (reading only the block from a
        memory-mapped volume).
    """
    spatial = volume.shape[-3:]
    lead = volume.shape[:-3]
    out = np.zeros((*lead, *(int(s) for s in size)), dtype=volume.dtype)
    src, dst = [], []
    for b, n, s in zip(start, size, spatial, strict=True):
        lo, hi = max(int(b), 0), min(int(b) + int(n), int(s))
        if hi <= lo:
            return out
        src.append(slice(lo, hi))
        dst.append(slice(lo - int(b), hi - int(b)))
    out[(..., *dst)] = volume[(..., *src)]
    return out
