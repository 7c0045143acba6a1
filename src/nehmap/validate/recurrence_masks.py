"""The per-case masks of H3: one time point as arrays, and pNEH, core and ETRL on its grid.

* :class:`Scan`: one time point (images, nehmap labels, affine, brain; the NEH mask when
  it comes from another map than the labels, as the fused consensus mask).
* :func:`registration_masks`: where the registration's similarity metric looks, each
  brain without its lesion (the recurrence lesion dilated by 2 mm), so that neither
  the resection cavity nor the changing edema pulls the deformation.
* :func:`warp_preop_masks`: the pre-operative NEH (**pNEH**, label 3 or the fused mask)
  and the pre-operative resection target (**core**, ET + NC) pulled onto the recurrence
  grid with ``genericLabel`` interpolation; pNEH is kept inside the recurrence brain.
* :func:`etrl_mask`: the enhancing tumour at recurrence (**ETRL**, label 4).
* :func:`chance_domain`: the tissue where the matched chance model may place pNEH (the
  recurrence brain without the warped core, the recurrence necrosis and T1-dark CSF).
* :func:`control_map`: the matched controls of a case as one label map.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage as ndi

from nehmap.labels import ED, ET, NC, NEH
from nehmap.validate.chance import dark_csf, peritumoral_domain
from nehmap.validate.recurrence_metrics import CaseExcluded
from nehmap.validate.registration import Registration, warp_labels
from nehmap.validate.registration_ants import voxel_sizes

__all__ = [
    "MaskExclude",
    "Scan",
    "chance_domain",
    "control_map",
    "etrl_mask",
    "registration_masks",
    "warp_preop_masks",
]

MaskExclude = Literal["tumour", "core"]


@dataclass
class Scan:
    """One time point as canonical arrays.

    Attributes
    ----------
    images : mapping of str to numpy.ndarray, shape (X, Y, Z)
        ``t1``, ``t1c``, ``t2``, ``flair`` (those needed for registration at least).
    labels : numpy.ndarray of uint8, shape (X, Y, Z)
        nehmap labels (1 NC, 2 ED, 3 NEH, 4 ET).
    affine : numpy.ndarray, shape (4, 4)
        Voxel-to-world affine (RAS mm) of the canonical arrays.
    brain : numpy.ndarray of bool, optional
        Brain mask; default: voxels where any image is non-zero.
    case_id : str
    neh : numpy.ndarray of bool, optional
        The NEH mask when it comes from another map than ``labels`` (the fused consensus
        mask of ``nehmap segment``); default: ``labels == 3``.
    """

    images: Mapping[str, np.ndarray]
    labels: np.ndarray
    affine: np.ndarray
    brain: np.ndarray | None = None
    case_id: str = ""
    neh: np.ndarray | None = None

    def __post_init__(self) -> None:
        shape = self.labels.shape
        for key, img in self.images.items():
            if img.shape != shape:
                raise ValueError(
                    f"{self.case_id or 'scan'}: image {key} has shape {img.shape} but the "
                    f"labels have {shape}; resample the segmentation onto the scan"
                )
        if self.brain is None:
            brain = np.zeros(shape, dtype=bool)
            for img in self.images.values():
                brain |= img != 0
            self.brain = brain

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm per array axis."""
        z = voxel_sizes(self.affine)
        return (float(z[0]), float(z[1]), float(z[2]))

    @property
    def neh_mask(self) -> np.ndarray:
        """The NEH mask: :attr:`neh` when given, else ``labels == 3``."""
        if self.neh is not None:
            return np.asarray(self.neh, dtype=bool)
        return self.labels == NEH

    @property
    def mask(self) -> np.ndarray:
        """The brain mask (never None after construction)."""
        assert self.brain is not None
        return self.brain


def _dilate_mm(mask: np.ndarray, spacing: Sequence[float], radius_mm: float) -> np.ndarray:
    """``mask`` grown by ``radius_mm`` (Euclidean, in mm), computed on its bounding box."""
    if radius_mm <= 0 or not mask.any():
        return mask.copy()
    sp = np.asarray(spacing, dtype=float)
    pad = np.ceil(radius_mm / sp).astype(int) + 1
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(axis=0) - pad, 0)
    hi = np.minimum(idx.max(axis=0) + 1 + pad, mask.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    out = np.zeros_like(mask, dtype=bool)
    out[box] = ndi.distance_transform_edt(~mask[box], sampling=sp) <= radius_mm
    return out


def registration_masks(
    preop: Scan,
    recurrence: Scan,
    exclude: MaskExclude = "tumour",
    dilate_mm: float = 2.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Metric masks of the registration: each brain without its lesion.

    Parameters
    ----------
    preop, recurrence : Scan
        The pre-operative (moving) and recurrence (fixed) scans with their labels.
    exclude : {"tumour", "core"}, default "tumour"
        ``"tumour"`` leaves out every tumour label (NC, ED, NEH, ET) of both scans;
        ``"core"`` only ET and NC (the resection target before surgery; new enhancement,
        its necrosis and the cavity, labelled NC, at recurrence).
    dilate_mm : float, default 2.0
        Margin (mm) added around the recurrence lesion.

    Returns
    -------
    (fixed_mask, moving_mask) : tuple of numpy.ndarray of bool
        On the recurrence and pre-operative grids.
    """
    labels = (NC, ED, NEH, ET) if exclude == "tumour" else (NC, ET)
    if exclude not in ("tumour", "core"):
        raise ValueError(f"exclude must be 'tumour' or 'core', got {exclude!r}")
    rec_lesion = _dilate_mm(np.isin(recurrence.labels, labels), recurrence.spacing, dilate_mm)
    fixed_mask = recurrence.mask & ~rec_lesion
    moving_mask = preop.mask & ~np.isin(preop.labels, labels)
    return fixed_mask, moving_mask


def warp_preop_masks(
    registration: Registration, preop: Scan, recurrence: Scan
) -> tuple[np.ndarray, np.ndarray]:
    """pNEH and the pre-operative core (ET + NC) pulled onto the recurrence grid.

    Both are warped together as one label map (1 pNEH, 2 core; pNEH wins where the two
    overlap) with ``genericLabel`` interpolation.

    Parameters
    ----------
    registration : Registration
        Fixed: the recurrence scan, moving: the pre-operative scan.
    preop, recurrence : Scan
        The pre-operative scan (its NEH and labels) and the recurrence scan (its brain).

    Returns
    -------
    (pneh, core) : tuple of numpy.ndarray of bool, shape of the recurrence grid
        pNEH is cut to the recurrence brain.

    Raises
    ------
    CaseExcluded
        When the warped pNEH lies outside the recurrence brain.
    """
    source = np.where(preop.neh_mask, 1, np.where(np.isin(preop.labels, (NC, ET)), 2, 0))
    warped = warp_labels(registration, source.astype(np.uint8))
    pneh = (warped == 1) & recurrence.mask
    core = warped == 2
    if not pneh.any():
        raise CaseExcluded("the warped pre-operative NEH lies outside the recurrence brain")
    return pneh, core


def etrl_mask(recurrence: Scan) -> np.ndarray:
    """ETRL: the enhancing tumour (label 4) of the recurrence segmentation (bool)."""
    return recurrence.labels == ET


def chance_domain(recurrence: Scan, core: np.ndarray, pneh: np.ndarray) -> np.ndarray:
    """Tissue where the matched chance model may place pNEH, on the recurrence grid.

    The recurrence brain without the warped core (the resection cavity), the recurrence
    necrosis (NC) and the T1-dark CSF (:func:`nehmap.validate.chance.dark_csf`, when the
    scan has a T1), plus pNEH itself. All masks share the recurrence grid (X, Y, Z).
    """
    csf = dark_csf(recurrence.images["t1"], recurrence.mask) if "t1" in recurrence.images else None
    exclude = recurrence.labels == NC
    if csf is not None:
        exclude |= csf
    return peritumoral_domain(recurrence.mask, core, exclude) | pneh


def control_map(controls: Sequence[np.ndarray], shape: tuple[int, ...], k: int = 8) -> np.ndarray:
    """A label map of the first ``k`` matched placements (label i = placement i; later win).

    Parameters
    ----------
    controls : sequence of numpy.ndarray of int
        Flat indices of each control on a grid of ``shape``.
    shape : tuple of int
        Shape (X, Y, Z) of the grid.
    k : int, default 8
        How many of the placements (the first ``k``) the map holds.

    Returns
    -------
    numpy.ndarray of uint8, shape ``shape``
    """
    out = np.zeros(int(np.prod(shape)), dtype=np.uint8)
    for i, flat in enumerate(controls[:k]):
        out[flat] = i + 1
    return out.reshape(shape)
