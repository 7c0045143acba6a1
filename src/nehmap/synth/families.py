"""Tumour families: the kinds of glioblastoma-like tumour ``nehmap synth`` can draw.

A family is a set of parameter ranges (overrides of
:data:`nehmap.synth.params.DEFAULT_PARAMS`) plus a few structural choices: where the
tumour sits (deep white matter, the cortex, beside the ventricles), how many foci it
has, whether it enhances and whether its NEH may be absent. All lengths are in mm.

=================  ==========================================================================
family             what changes from ``ellipsoidal``
=================  ==========================================================================
ellipsoidal        none: the original generator (bulk radius 12-24 mm, lobulation 0.15-0.30)
irregular          strongly lobulated boundary (irregularity 0.5-0.9, correlation 3-6 mm),
                   small NEH patches (3-6 mm)
multifocal         2-4 foci (radius 6-14 mm each), 2-20 mm apart, sharing one edema when
                   they are close enough
small              bulk radius 4-8 mm, rim 1-3 mm, NEH 1.5-4 mm, edema 2-6 mm; whole
                   tumour < 10 ml (edema trimmed if needed); voxels <= 2 mm
cortical           centre 0.3 R + 2 to 0.7 R + 6 mm below the brain surface (touches cortex)
periventricular    centre 0.5 R to R + 3 mm from the lateral ventricles (kept out of them)
thin-neh           NEH 0.5-2 mm thick over 10-40 % of the rim; absent in 30 % of cases
necrotic           necrosis-dominated: bulk radius 16-26 mm, rim 1-2.5 mm, NEH 1.5-4 mm
non-enhancing      no ET: the bulk is NEH (a necrotic core kept in 30 % of cases)
=================  ==========================================================================

Every family but ``ellipsoidal`` scales the mass effect to the tumour's size: the
drawn strength (fraction of the bulk volume pushed aside, 0-0.5) is multiplied by
``clip(R_eq / 20 mm, 0.15, 1)``, ``R_eq`` the bulk's equivalent radius, so small
tumours barely displace the anatomy. Unless a family overrides it, the NEH thickness
is the default's: each case draws a mean thickness uniformly in 3-5 mm (around the
method paper's ~4 mm) and the local thickness varies smoothly within 2-6 mm.

``mixed`` draws one family per case, uniformly, from a random stream of its own (so
the geometry of a case given its family does not depend on how the family was chosen).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from nehmap.labels import ED, ET, NC, NEH
from nehmap.synth.anatomy import Anatomy
from nehmap.synth.fields import box_axes, smooth_field
from nehmap.synth.params import bounds
from nehmap.synth.tumour import (
    _MIDLINE_MARGIN_MM,
    _MIN_WM_AT_CENTRE,
    Box,
    TumourGeometry,
    _box_from_extent,
    _choose_centre,
    _component_at,
    _draw_geometry,
    _equivalent_radius,
    _facts,
    _grow_box,
    _lay_out,
    _mass_effect,
    _paste,
    _radius_mm,
    make_tumour,
)

MIXED = "mixed"
_MASS_EFFECT_RADIUS_MM = 20.0
_MASS_EFFECT_MIN_SCALE = 0.15


@dataclass(frozen=True)
class Family:
    """One tumour family.

    Attributes
    ----------
    name : str
        The family's name (``--family NAME``).
    description : str
        One line for help texts and the docs.
    params : Mapping[str, Any]
        Overrides of the default parameters (ranges in mm).
    placement : str
        ``deep`` (white matter, the default generator's), ``cortical`` or
        ``periventricular``.
    foci : tuple[int, int]
        (fewest, most) foci.
    focus_gap_mm : tuple[float, float]
        (low, high) gap between the boundaries of neighbouring foci.
    neh_absent_prob : float
        Probability that the case has no NEH at all.
    enhancing : bool
        False: no ET (the bulk becomes NEH).
    keep_core_prob : float
        For non-enhancing tumours, probability of keeping a necrotic core.
    max_whole_tumour_ml : float | None
        The whole tumour (NC + ED + NEH + ET) is kept under this.
    max_spacing_mm : float
        Coarsest voxel size (mm, any axis) the family can be drawn on.
    limit_reason : str
        Why ``max_spacing_mm`` (for the error message).
    """

    name: str
    description: str
    params: Mapping[str, Any] = field(default_factory=dict)
    placement: str = "deep"
    foci: tuple[int, int] = (1, 1)
    focus_gap_mm: tuple[float, float] = (2.0, 20.0)
    neh_absent_prob: float = 0.0
    enhancing: bool = True
    keep_core_prob: float = 1.0
    max_whole_tumour_ml: float | None = None
    max_spacing_mm: float = 4.0
    limit_reason: str = "its thinnest layers are 2 mm"


_FAMILY_LIST: tuple[Family, ...] = (
    Family("ellipsoidal", "roughly ellipsoidal, lobulated bulk in deep white matter"),
    Family(
        "irregular",
        "strongly lobulated, irregular boundary",
        {
            "shape_irregularity": (0.5, 0.9),
            "shape_scale_mm": (3.0, 6.0),
            "neh_patch_scale_mm": (3.0, 6.0),
        },
    ),
    Family(
        "multifocal",
        "2-4 foci, joined by edema when close",
        {"tumour_radius_mm": (6.0, 14.0), "edema_extent_mm": (8.0, 25.0)},
        foci=(2, 4),
    ),
    Family(
        "small",
        "whole tumour under 10 ml",
        {
            "tumour_radius_mm": (4.0, 8.0),
            "shape_irregularity": (0.10, 0.25),
            "shape_scale_mm": (2.5, 4.0),
            "et_thickness_mm": (1.0, 3.0),
            "neh_thickness_mm": (1.5, 4.0),
            "neh_patch_scale_mm": (3.0, 5.0),
            "edema_extent_mm": (2.0, 6.0),
        },
        max_whole_tumour_ml=10.0,
        max_spacing_mm=2.0,
        limit_reason="its bulk radius goes down to 4 mm, 2 voxels on a 2 mm grid",
    ),
    Family(
        "cortical",
        "at the brain surface, in and under the cortex",
        {"tumour_radius_mm": (8.0, 18.0)},
        placement="cortical",
    ),
    Family(
        "periventricular",
        "beside the lateral ventricles",
        {"tumour_radius_mm": (8.0, 18.0)},
        placement="periventricular",
    ),
    Family(
        "thin-neh",
        "NEH 0.5-2 mm thick over little of the rim, or absent",
        {"neh_thickness_mm": (0.5, 2.0), "neh_coverage": (0.1, 0.4)},
        neh_absent_prob=0.3,
    ),
    Family(
        "necrotic",
        "necrosis-dominated: large core, thin rim",
        {
            "tumour_radius_mm": (16.0, 26.0),
            "et_thickness_mm": (1.0, 2.5),
            "neh_thickness_mm": (1.5, 4.0),
            "neh_coverage": (0.2, 0.5),
        },
    ),
    Family(
        "non-enhancing",
        "no enhancing tumour: an NEH mass, sometimes with a necrotic core",
        {"tumour_radius_mm": (10.0, 20.0)},
        enhancing=False,
        keep_core_prob=0.3,
    ),
)

FAMILIES: Mapping[str, Family] = MappingProxyType({f.name: f for f in _FAMILY_LIST})
"""The tumour families by name."""

FAMILY_NAMES: tuple[str, ...] = tuple(FAMILIES)
"""Names of the families, in order (``mixed`` draws uniformly among them)."""

CHOICES: tuple[str, ...] = (*FAMILY_NAMES, MIXED)
"""Every valid ``--family`` value."""


def check_family(
    name: str,
    spacing: Sequence[float],
    overrides: Mapping[str, Any] | None = None,
) -> tuple[str, ...]:
    """The families ``name`` may draw; raises ValueError when it cannot be drawn here.

    Parameters
    ----------
    name : str
        A family name or ``mixed``.
    spacing : Sequence[float]
        Voxel size (mm) per axis.
    overrides : Mapping[str, Any] | None
        The user's parameter overrides (checked against the family's limits).

    Raises
    ------
    ValueError
        Unknown family (the message lists them), a grid too coarse for the
        family, or overrides that break its defining limit.
    """
    if name not in CHOICES:
        raise ValueError(f"Unknown tumour family {name!r}. Choose one of: {', '.join(CHOICES)}.")
    names = FAMILY_NAMES if name == MIXED else (name,)
    coarsest = float(max(spacing))
    for member in names:
        family = FAMILIES[member]
        if coarsest > family.max_spacing_mm:
            within = f" (drawn by {MIXED})" if name == MIXED else ""
            raise ValueError(
                f"Tumour family {member!r}{within} needs voxels of at most "
                f"{family.max_spacing_mm:g} mm: {family.limit_reason}; the grid's voxels "
                f"are {coarsest:g} mm. Use --spacing {family.max_spacing_mm:g} or finer, or "
                "another family."
            )
        if family.max_whole_tumour_ml is not None and overrides:
            radius = overrides.get("tumour_radius_mm")
            if radius is not None:
                high = max(radius) if isinstance(radius, (list, tuple)) else float(radius)
                limit = float(family.params["tumour_radius_mm"][1])
                if high > limit:
                    raise ValueError(
                        f"Tumour family {member!r} keeps the whole tumour under "
                        f"{family.max_whole_tumour_ml:g} ml, so tumour_radius_mm must be at "
                        f"most {limit:g} mm; got {radius!r}. Lower it or use another family."
                    )
    return names


def choose_family(name: str, rng: np.random.Generator) -> str:
    """``name`` itself, or for ``mixed`` one family drawn uniformly with ``rng``."""
    if name != MIXED:
        return name
    return FAMILY_NAMES[int(rng.integers(len(FAMILY_NAMES)))]


def family_overrides(name: str, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """The family's parameter ranges updated with the user's overrides (user wins)."""
    return {**FAMILIES[name].params, **dict(overrides or {})}


def make_family_tumour(
    anatomy: Anatomy, rng: np.random.Generator, params: Mapping[str, Any], name: str
) -> TumourGeometry:
    """Draw and lay out one tumour of family ``name`` on ``anatomy``.

    ``params`` are the merged parameters with the family's ranges already applied
    (:func:`family_overrides`). ``ellipsoidal`` is exactly
    :func:`nehmap.synth.tumour.make_tumour`.

    Returns
    -------
    TumourGeometry
        :class:`~nehmap.synth.tumour.TumourGeometry`; ``params["family"]`` names the family.
    """
    family = FAMILIES[name]
    if name == "ellipsoidal":
        tumour = make_tumour(anatomy, rng, params)
        tumour.params["family"] = name
        return tumour
    drawn = _draw_geometry(rng, params)
    n_foci = int(rng.integers(family.foci[0], family.foci[1] + 1))
    radii = [drawn["tumour_radius_mm"]]
    radii += [float(rng.uniform(*bounds(params, "tumour_radius_mm"))) for _ in range(n_foci - 1)]
    centres, radii = _place(anatomy, rng, family, radii, drawn["hemisphere"])
    drawn["tumour_radius_mm"] = radii[0]
    axes = anatomy.world_axes()
    centres_mm = [np.array([axes[a][c[a]] for a in range(3)]) for c in centres]
    bulk_box, bulk_small = _bulk(anatomy, rng, centres, centres_mm, radii, drawn, family)
    margin = bounds(params, "neh_thickness_mm")[1] + 1.4 * drawn["edema_extent_mm"] + 3.0
    box = _grow_box(bulk_box, bulk_small, margin, anatomy.spacing, anatomy.shape)
    bulk = _paste(bulk_small, bulk_box, box)
    radius = _equivalent_radius(bulk, anatomy)
    scale = float(np.clip(radius / _MASS_EFFECT_RADIUS_MM, _MASS_EFFECT_MIN_SCALE, 1.0))
    drawn["mass_effect_drawn"] = drawn["mass_effect"]
    drawn["mass_effect"] = drawn["mass_effect"] * scale
    weights = np.array(radii) ** 3
    centroid = np.sum([w * c for w, c in zip(weights, centres_mm, strict=True)], axis=0)
    centroid = centroid / weights.sum()
    gm, wm, csf, ventricles = _mass_effect(anatomy, box, centroid, radius, drawn)
    labels = _lay_out(
        rng,
        box_axes(axes, box),
        anatomy.spacing,
        bulk,
        anatomy.brain[box],
        wm,
        csf,
        ventricles,
        drawn,
        params,
    )
    labels = _finish(rng, labels, bulk, family, anatomy.spacing, drawn)
    drawn["centre_mm"] = [float(v) for v in centres_mm[0]]
    drawn["family"] = name
    drawn["placement"] = family.placement
    drawn["n_foci"] = n_foci
    drawn["foci_centres_mm"] = [[float(v) for v in c] for c in centres_mm]
    drawn["foci_radii_mm"] = [float(r) for r in radii]
    facts = _facts(labels, bulk, anatomy.spacing)
    return TumourGeometry(box, labels, gm, wm, csf, ventricles, drawn, facts)


def _side(anatomy: Anatomy, hemisphere: str) -> np.ndarray:
    x_axis = anatomy.world_axes()[0]
    side = x_axis >= _MIDLINE_MARGIN_MM if hemisphere == "right" else x_axis <= -_MIDLINE_MARGIN_MM
    return anatomy.brain & side[:, None, None]


def _placement_mask(
    anatomy: Anatomy, placement: str, radius: float, side: np.ndarray
) -> np.ndarray:
    """Voxels where a focus of ``radius`` mm may be centred for ``placement``."""
    tissue = anatomy.gm + anatomy.wm
    if placement == "cortical":
        depth = anatomy.depth
        return side & (tissue > 0.8) & (depth >= 0.3 * radius + 2.0) & (depth <= 0.7 * radius + 6.0)
    # periventricular
    vd = anatomy.ventricle_distance
    ok = side & (anatomy.wm > 0.5) & (vd >= 0.5 * radius) & (vd <= radius + 3.0)
    return ok & (anatomy.depth >= 0.8 * radius + 3.0)


def _place(
    anatomy: Anatomy,
    rng: np.random.Generator,
    family: Family,
    radii: list[float],
    hemisphere: str,
) -> tuple[list[tuple[int, int, int]], list[float]]:
    """Voxel centres of the foci (and their radii, shrunk where the brain is tight)."""
    if family.placement == "deep":
        first, radius = _choose_centre(anatomy, rng, radii[0], hemisphere)
    else:
        side = _side(anatomy, hemisphere)
        radius = radii[0]
        while True:
            candidates = np.flatnonzero(_placement_mask(anatomy, family.placement, radius, side))
            if candidates.size or radius <= 4.0:
                break
            radius = max(0.85 * radius, 4.0)
        if candidates.size == 0:
            first, radius = _choose_centre(anatomy, rng, radius, hemisphere)
        else:
            index = np.unravel_index(int(candidates[rng.integers(candidates.size)]), anatomy.shape)
            first = (int(index[0]), int(index[1]), int(index[2]))
    centres, out_radii = [first], [radius]
    if len(radii) == 1:
        return centres, out_radii
    spacing = np.asarray(anatomy.spacing)
    deep = anatomy.brain & (anatomy.wm > _MIN_WM_AT_CENTRE) & ~anatomy.ventricles
    coords = np.argwhere(deep)
    for other in radii[1:]:
        gap = float(rng.uniform(*family.focus_gap_mm))
        ok = anatomy.depth[deep] >= 0.9 * other + 3.0
        near = np.full(len(coords), np.inf)
        for centre, r in zip(centres, out_radii, strict=True):
            dist = np.linalg.norm((coords - np.asarray(centre)) * spacing, axis=1) - r - other
            near = np.minimum(near, dist)
        # touching its nearest neighbour at about the drawn gap, clear of the others
        ok &= (near >= gap - 3.0) & (near <= gap + 3.0)
        if not ok.any():
            continue
        pick = coords[np.flatnonzero(ok)[rng.integers(int(ok.sum()))]]
        centres.append((int(pick[0]), int(pick[1]), int(pick[2])))
        out_radii.append(float(other))
    return centres, out_radii


def _bulk(
    anatomy: Anatomy,
    rng: np.random.Generator,
    centres: list[tuple[int, int, int]],
    centres_mm: list[np.ndarray],
    radii: list[float],
    drawn: Mapping[str, Any],
    family: Family,
) -> tuple[Box, np.ndarray]:
    """The union of lobulated foci (ET + NC) in one box."""
    irregularity = drawn["shape_irregularity"]
    spacing = np.asarray(anatomy.spacing)
    lo = np.min(
        [
            np.asarray(c) - (r * (1 + 3 * irregularity) + 2) / spacing
            for c, r in zip(centres, radii, strict=True)
        ],
        axis=0,
    )
    hi = np.max(
        [
            np.asarray(c) + (r * (1 + 3 * irregularity) + 2) / spacing
            for c, r in zip(centres, radii, strict=True)
        ],
        axis=0,
    )
    box = _box_from_extent(lo, hi, anatomy.shape)
    sub = box_axes(anatomy.world_axes(), box)
    noise = smooth_field(rng, sub, drawn["shape_scale_mm"])
    allowed = anatomy.brain[box]
    if family.placement == "periventricular":
        allowed = allowed & ~anatomy.ventricles[box]
    bulk = np.zeros(allowed.shape, dtype=bool)
    for centre, centre_mm, radius in zip(centres, centres_mm, radii, strict=True):
        blob = (_radius_mm(sub, centre_mm) / radius - 1.0 - irregularity * noise) <= 0.0
        blob &= allowed
        local = tuple(int(centre[a] - box[a].start) for a in range(3))
        bulk |= _component_at(blob, local)
    return box, ndi.binary_fill_holes(bulk) & allowed


def _finish(
    rng: np.random.Generator,
    labels: np.ndarray,
    bulk: np.ndarray,
    family: Family,
    spacing: tuple[float, float, float],
    drawn: dict[str, Any],
) -> np.ndarray:
    """Apply the family's label rules: no NEH, no ET, whole-tumour limit."""
    absent = bool(rng.random() < family.neh_absent_prob)
    keep_core = bool(rng.random() < family.keep_core_prob)
    drawn["neh_absent"] = absent
    if absent:
        labels[labels == NEH] = ED
    if not family.enhancing:
        labels[labels == ET] = NEH
        if not keep_core:
            labels[labels == NC] = NEH
        drawn["necrotic_core"] = keep_core
    if family.max_whole_tumour_ml is not None:
        labels = _trim_edema(labels, spacing, family.max_whole_tumour_ml * 1000.0)
    return labels


def _trim_edema(
    labels: np.ndarray, spacing: tuple[float, float, float], limit_mm3: float
) -> np.ndarray:
    """Remove the edema farthest from the tumour core until the whole tumour < limit."""
    voxel = float(np.prod(spacing))
    allowed = int(np.floor(limit_mm3 / voxel)) - 1
    tumour = labels > 0
    excess = int(tumour.sum()) - allowed
    if excess <= 0:
        return labels
    core = (labels == NC) | (labels == NEH) | (labels == ET)
    distance = ndi.distance_transform_edt(~core, sampling=spacing)
    edema = np.flatnonzero(labels == ED)
    order = np.argsort(distance.ravel()[edema], kind="stable")[::-1]
    out = labels.copy()
    out.ravel()[edema[order[:excess]]] = 0
    return out
