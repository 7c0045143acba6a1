"""The NEH derivation rule on arrays: which voxels of a reference segmentation are NEH.

The method's training labels (the paper, section 1.1) come from two segmentations of
the same BraTS 2018 scans that disagree about one thing: what label 1 means.

- BraTS 2017-2020 (the *reference*, scheme ``brats2018``): label 1 is **NCR/NET**,
  necrosis *and* non-enhancing tumour core; 2 edema; 4 enhancing tumour (ET).
- BraTS 2021 (the *second* segmentation, e.g. a model trained on BraTS 2021, scheme
  ``brats2021``): label 1 is **NCR**, necrosis only. The non-enhancing tumour moved into
  label 2, "edematous/invaded tissue".

A BraTS 2021-trained model run on a BraTS 2018 scan therefore calls the reference's
non-enhancing tumour "edema" and keeps "necrosis" for necrosis. The paper takes "the
necrosis regions located outside the enhancing tumour areas, based on prediction
differences": the reference's NCR/NET that the 2021-style model does not call necrosis.

Rule ``"paper"`` (the default), both maps in nehmap labels, where a BraTS 2018 label 1
reads as NC:

1. candidates ``C = (R == NC) & (S != NC)``: reference NCR/NET (outside the reference ET
   by construction) that the second segmentation does not call necrosis. Voxels both
   call necrosis stay NC.
2. opening of ``C`` with a ball of ``opening_mm`` mm, built from the voxel spacing (an
   ellipsoid in voxels on anisotropic grids: offsets ``(i, j, k)`` with
   ``(i*sx)^2 + (j*sy)^2 + (k*sz)^2 <= r^2``). It removes structures thinner than about
   ``2 * opening_mm`` mm, typically the seams where two segmentations disagree on the
   necrosis boundary. A radius below every voxel size means no opening.
3. connected components (26-connectivity) below ``min_volume_mm3`` mm^3 are dropped.
4. result: ``R`` with the surviving voxels set to NEH (3); everything else unchanged.

Rule ``"mirrored"`` is the same difference with the releases' roles swapped, for a
BraTS 2021-style reference (its label 2 holds the non-enhancing tumour) and a BraTS
2017-2020-style second segmentation (its label 1 is NCR/NET): candidates
``C = (S in {NC, NEH}) & (R == ED)`` (with ``within_wt=False`` also ``R == 0``), then
steps 2-4. It is *not* the paper's configuration and is never chosen silently (see
:func:`choose_rule`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from nehmap.labels import BACKGROUND, ED, NC, NEH, check_label_map
from nehmap.spacing import check_spacing

DEFAULT_OPENING_MM = 1.0
"""Default radius (mm) of the ball of the morphological opening."""

DEFAULT_MIN_VOLUME_MM3 = 50.0
"""Default smallest NEH component kept (mm^3)."""

RULES: tuple[str, ...] = ("paper", "mirrored")
"""The derivation rules (see the module)."""

STAGES: tuple[str, ...] = ("eligible", "outside_wt", "candidates", "after_opening", "final")
"""Stages reported in the volume table, in order (see :class:`NehStats`)."""

REFERENCE_NCR_NET_SCHEMES: frozenset[str] = frozenset({"brats2018"})
"""Reference schemes whose label 1 is NCR/NET (the paper's rule applies)."""

RULE_DESCRIPTIONS = {
    "paper": "NEH = reference NCR/NET (BraTS 2017-2020 label 1, outside the reference ET) "
    "that the second (BraTS 2021-style) segmentation does not call necrosis",
    "mirrored": "NEH = second segmentation's NCR/NET (BraTS 2017-2020 label 1) inside the "
    "reference (BraTS 2021-style) edema",
}


def choose_rule(reference_scheme: str, second_scheme: str, rule: str | None = None) -> str:
    """The rule for a pair of label schemes, or a clear error when it cannot be told.

    Parameters
    ----------
    reference_scheme, second_scheme : str
        Scheme names (:mod:`nehmap.labels`) of the reference and second label files.
    rule : {"paper", "mirrored"}, optional
        Given explicitly, it is used as is (the caller vouches for the meaning of label 1).

    Raises
    ------
    ValueError
        An unknown rule, or a reference whose label 1 cannot be told to be NCR/NET.
    """
    if rule is not None:
        if rule not in RULES:
            raise ValueError(f"Unknown derivation rule {rule!r}; use one of {', '.join(RULES)}.")
        return rule
    if reference_scheme in REFERENCE_NCR_NET_SCHEMES:
        return "paper"
    if reference_scheme == "brats2021":
        if second_scheme in REFERENCE_NCR_NET_SCHEMES:
            return "mirrored"
        raise ValueError(
            "the reference is BraTS 2021-style (label 1 is necrosis only; the non-enhancing "
            "tumour is part of label 2), so the paper's rule, which reads label 1 as NCR/NET, "
            "does not apply. Use a BraTS 2017-2020 reference (--reference-scheme brats2018), "
            "or, with a BraTS 2017-2020-style second segmentation, --second-scheme brats2018 "
            "(rule 'mirrored')."
        )
    raise ValueError(
        f"the reference's label scheme is '{reference_scheme}', so nehmap cannot tell whether "
        "its label 1 is NCR/NET (BraTS 2017-2020, the paper's case) or necrosis only (BraTS "
        "2021), and the rule depends on it. Pass --reference-scheme brats2018 or brats2021 "
        "(or --rule paper|mirrored)."
    )


def ball(radius_mm: float, spacing: Sequence[float]) -> np.ndarray:
    """A ball of ``radius_mm`` mm as a boolean structuring element on a ``spacing`` grid.

    Parameters
    ----------
    radius_mm : float
        Radius in mm (>= 0).
    spacing : sequence of float
        Voxel size in mm per array axis.

    Returns
    -------
    ndarray of bool, shape (2*h0+1, 2*h1+1, ...)
        True at the offsets ``o`` with ``sum((o * spacing)^2) <= radius_mm^2``, where
        ``h_i = floor(radius_mm / spacing_i)``. A radius below every voxel size gives a
        single True voxel.
    """
    if not math.isfinite(radius_mm) or radius_mm < 0:
        raise ValueError(f"radius_mm must be a finite number >= 0, got {radius_mm}.")
    sp = check_spacing(spacing, np.size(spacing))
    half = [int(math.floor(radius_mm / s * (1 + 1e-9))) for s in sp]
    axes = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
    dist2 = sum((np.asarray(a, dtype=float) * s) ** 2 for a, s in zip(axes, sp, strict=True))
    return np.asarray(dist2 <= radius_mm**2 * (1 + 1e-9))


def check_min_volume(min_volume_mm3: float) -> None:
    """Raise ValueError unless ``min_volume_mm3`` is a finite number >= 0 (mm^3)."""
    if not math.isfinite(min_volume_mm3) or min_volume_mm3 < 0:
        raise ValueError(f"min_volume_mm3 must be a finite number >= 0, got {min_volume_mm3}.")


def remove_small_components(
    mask: np.ndarray, spacing: Sequence[float], min_volume_mm3: float
) -> tuple[np.ndarray, int, int]:
    """Drop the connected components (26-connectivity in 3D) smaller than a volume.

    Parameters
    ----------
    mask : ndarray of bool, shape (X, Y, Z)
        The mask.
    spacing : sequence of float
        Voxel size in mm per axis.
    min_volume_mm3 : float
        Smallest volume (mm^3) a component needs to be kept; 0 keeps everything.

    Returns
    -------
    kept : ndarray of bool
        The mask without the small components.
    n_kept, n_removed : int
        Number of components kept and removed.
    """
    check_min_volume(min_volume_mm3)
    sp = check_spacing(spacing, mask.ndim)
    structure = ndimage.generate_binary_structure(mask.ndim, mask.ndim)
    components, n = ndimage.label(np.asarray(mask, dtype=bool), structure=structure)
    if n == 0:
        return np.zeros(mask.shape, dtype=bool), 0, 0
    sizes = np.bincount(components.ravel(), minlength=n + 1)
    keep = sizes * math.prod(sp) >= min_volume_mm3 * (1 - 1e-9)
    keep[0] = False
    n_kept = int(np.count_nonzero(keep[1:]))
    return keep[components], n_kept, n - n_kept


@dataclass(frozen=True)
class NehStats:
    """Voxel counts of the derivation of one case (volumes in mm^3 via the voxel volume).

    Attributes
    ----------
    rule : str
        The rule used (``paper`` or ``mirrored``).
    voxel_volume_mm3 : float
        Volume of one voxel (mm^3).
    eligible : int
        Voxels the rule looks at: the reference NCR/NET (``paper``) or the second
        segmentation's NCR/NET (``mirrored``).
    outside_wt : int
        ``mirrored`` only: of those, voxels outside the reference whole tumour (dropped
        unless ``within_wt=False``); 0 for ``paper``.
    candidates : int
        NEH candidates before cleaning.
    after_opening : int
        Candidates left after the morphological opening.
    final : int
        NEH voxels added (after removing small components).
    components_kept, components_removed : int
        Connected components kept and removed by the volume filter.
    """

    rule: str
    voxel_volume_mm3: float
    eligible: int
    outside_wt: int
    candidates: int
    after_opening: int
    final: int
    components_kept: int
    components_removed: int

    def volume_mm3(self, stage: str) -> float:
        """Volume (mm^3) of a stage (one of :data:`STAGES`)."""
        if stage not in STAGES:
            raise ValueError(f"Unknown stage {stage!r}; use one of {', '.join(STAGES)}.")
        return getattr(self, stage) * self.voxel_volume_mm3

    def rows(self, case_id: str) -> list[dict[str, Any]]:
        """Tidy rows ``case, rule, stage, voxels, volume_mm3``, one per stage."""
        return [
            {
                "case": case_id,
                "rule": self.rule,
                "stage": stage,
                "voxels": getattr(self, stage),
                "volume_mm3": self.volume_mm3(stage),
            }
            for stage in STAGES
        ]


def clean_candidates(
    candidates: np.ndarray, spacing: Sequence[float], opening_mm: float, min_volume_mm3: float
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Opening with a ball of ``opening_mm`` mm, then components below ``min_volume_mm3``.

    Returns
    -------
    opened, final : ndarray of bool
        The mask after the opening and after the volume filter.
    n_kept, n_removed : int
        Components kept and removed by the volume filter.
    """
    sp = check_spacing(spacing, candidates.ndim)
    element = ball(opening_mm, sp)
    check_min_volume(min_volume_mm3)
    if element.size > 1 and candidates.any():
        opened = ndimage.binary_opening(candidates, structure=element)
    else:
        opened = candidates.copy()
    if min_volume_mm3 > 0:
        final, n_kept, n_removed = remove_small_components(opened, sp, min_volume_mm3)
        return opened, final, n_kept, n_removed
    structure = ndimage.generate_binary_structure(candidates.ndim, candidates.ndim)
    return opened, opened, int(ndimage.label(opened, structure)[1]), 0


def derive_neh(
    reference_labels: np.ndarray,
    second_labels: np.ndarray,
    spacing: Sequence[float],
    opening_mm: float = DEFAULT_OPENING_MM,
    min_volume_mm3: float = DEFAULT_MIN_VOLUME_MM3,
    *,
    rule: str = "paper",
    within_wt: bool = True,
) -> tuple[np.ndarray, NehStats]:
    """NEH labels from a reference and a second segmentation of one scan (see the module).

    Parameters
    ----------
    reference_labels : ndarray of int, shape (X, Y, Z)
        Reference segmentation in nehmap labels (0 bg, 1 NC, 2 ED, 3 NEH, 4 ET). For the
        ``paper`` rule a BraTS 2017-2020 map, whose label 1 (NCR/NET) reads as NC.
    second_labels : ndarray of int, shape (X, Y, Z)
        Second segmentation of the same scan, nehmap labels, same grid. For the
        ``paper`` rule a BraTS 2021-style map (its NC is necrosis only).
    spacing : sequence of 3 float
        Voxel size in mm per array axis.
    opening_mm : float
        Radius (mm) of the ball of the opening; 0 skips the opening.
    min_volume_mm3 : float
        Smallest NEH component kept (mm^3); 0 keeps all.
    rule : {"paper", "mirrored"}
        The derivation rule (see the module).
    within_wt : bool
        ``mirrored`` only: keep only candidates inside the reference whole tumour. False
        also converts reference background.

    Returns
    -------
    labels : ndarray of uint8, shape (X, Y, Z)
        The reference labels with the surviving candidates set to NEH (3).
    stats : NehStats
        Voxel counts per stage.

    Raises
    ------
    ValueError
        Arrays of different shapes, values that are not nehmap labels, a bad spacing,
        negative parameters, an unknown rule, or ``within_wt=False`` with ``paper``.

    Examples
    --------
    A reference NCR/NET blob whose centre the second segmentation calls necrosis:

    >>> ref = np.zeros((9, 9, 9), np.uint8); ref[1:8, 1:8, 1:8] = 1
    >>> sec = np.full_like(ref, 2); sec[3:6, 3:6, 3:6] = 1
    >>> labels, stats = derive_neh(ref, sec, (1, 1, 1), opening_mm=0, min_volume_mm3=0)
    >>> int((labels == 3).sum()), int((labels == 1).sum())
    (316, 27)
    """
    ref = check_label_map(reference_labels, "reference_labels").astype(np.uint8, copy=False)
    sec = check_label_map(second_labels, "second_labels").astype(np.uint8, copy=False)
    if ref.shape != sec.shape:
        raise ValueError(
            f"reference_labels {ref.shape} and second_labels {sec.shape} differ in shape: "
            "put both segmentations on one grid first."
        )
    sp = check_spacing(spacing, ref.ndim)
    if rule not in RULES:
        raise ValueError(f"Unknown derivation rule {rule!r}; use one of {', '.join(RULES)}.")
    if rule == "paper":
        if not within_wt:
            raise ValueError(
                "within_wt=False (--keep-outside-wt) applies to the 'mirrored' rule only: "
                "the paper's candidates are reference NCR/NET, inside the whole tumour."
            )
        eligible = ref == NC
        candidates = eligible & (sec != NC)
        outside = np.zeros_like(eligible)
    else:
        eligible = (sec == NC) | (sec == NEH)
        outside = eligible & (ref == BACKGROUND)
        allowed = ref == ED
        if not within_wt:
            allowed = allowed | (ref == BACKGROUND)
        candidates = eligible & allowed
    opened, final, n_kept, n_removed = clean_candidates(candidates, sp, opening_mm, min_volume_mm3)
    out = ref.copy()
    out[final] = NEH
    stats = NehStats(
        rule=rule,
        voxel_volume_mm3=math.prod(sp),
        eligible=int(np.count_nonzero(eligible)),
        outside_wt=int(np.count_nonzero(outside)),
        candidates=int(np.count_nonzero(candidates)),
        after_opening=int(np.count_nonzero(opened)),
        final=int(np.count_nonzero(final)),
        components_kept=n_kept,
        components_removed=n_removed,
    )
    return out, stats
