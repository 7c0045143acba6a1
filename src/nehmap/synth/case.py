"""One synthetic case: real anatomy, a glioblastoma-like tumour, four MR contrasts.

:func:`generate_case` is deterministic by seed: the same seed, spacing and parameters
give the same arrays. Independent random streams (geometry, contrast, rCBV,
recurrence) are spawned from the seed, so switching the rCBV map or the recurrence on
or off does not change the structural images.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nehmap.io.image import Grid
from nehmap.labels import ED, ET, NC, NEH
from nehmap.synth.anatomy import Anatomy, SpacingLike, load_anatomy
from nehmap.synth.contrast import compartment_weights, draw_contrast, synthesise_images
from nehmap.synth.families import (
    check_family,
    choose_family,
    family_overrides,
    make_family_tumour,
)
from nehmap.synth.params import MODALITIES, jsonable, merge_params
from nehmap.synth.rcbv import draw_rcbv, synthesise_rcbv
from nehmap.synth.recurrence import PreoperativeCase, Recurrence, make_recurrence
from nehmap.synth.tumour import TumourGeometry

TUMOUR_CLASSES: Mapping[str, int] = {"NC": NC, "ED": ED, "NEH": NEH, "ET": ET}

SeedLike = int | np.random.SeedSequence


@dataclass
class SyntheticCase:
    """A synthetic pre-operative case with full ground truth.

    Arrays are canonical RAS+ (axis 0 Right, 1 Anterior, 2 Superior) of shape
    ``grid.canonical_shape``.

    Attributes
    ----------
    seed : int
        The seed the case was generated from (an int, or the SeedSequence's
        entropy when one was given; ``params["seed_sequence"]`` then also holds its
        spawn key).
    grid : Grid
        The grid (MNI world mm); write arrays with
        :func:`nehmap.io.image.write_image` on it.
    spacing : tuple[float, float, float]
        Voxel size in mm per array axis.
    images : dict[str, np.ndarray]
        ``t1``, ``t1c``, ``t2``, ``flair`` -> float32 image (0 outside the brain).
    labels : np.ndarray
        nehmap labels (uint8): 1 NC, 2 ED, 3 NEH, 4 ET.
    brain_mask : np.ndarray
        Brain mask (bool).
    tissues : dict[str, np.ndarray]
        ``gm``, ``wm``, ``csf`` fractions after the mass effect (float32).
    params : dict[str, Any]
        Every parameter used, draws included (JSON-serialisable).
    facts : dict[str, Any]
        Measured properties: tumour volume per label (mm^3), NEH coverage, ...
    rcbv : np.ndarray | None
        rCBV map (float32), when asked for.
    recurrence : Recurrence | None
        The recurrence time point, when asked for.
    """

    seed: int
    grid: Grid
    spacing: tuple[float, float, float]
    images: dict[str, np.ndarray]
    labels: np.ndarray
    brain_mask: np.ndarray
    tissues: dict[str, np.ndarray]
    params: dict[str, Any]
    facts: dict[str, Any] = field(default_factory=dict)
    rcbv: np.ndarray | None = None
    recurrence: Recurrence | None = None


def _seed_sequence(seed: SeedLike) -> tuple[np.random.SeedSequence, int, dict[str, Any]]:
    """The seed sequence, the seed to record, and how to rebuild the sequence (JSON)."""
    if isinstance(seed, np.random.SeedSequence):
        entropy = seed.entropy if isinstance(seed.entropy, int) else 0
        recipe = {"entropy": int(entropy), "spawn_key": [int(k) for k in seed.spawn_key]}
        return seed, int(entropy), recipe
    value = int(seed)
    if value < 0:
        raise ValueError(f"Seed must be a non-negative integer, got {seed}.")
    return np.random.SeedSequence(value), value, {"entropy": value, "spawn_key": []}


def generate_case(
    seed: SeedLike,
    spacing: SpacingLike = 1.0,
    *,
    rcbv: bool = False,
    recurrence: bool = False,
    params: Mapping[str, Any] | None = None,
    family: str = "ellipsoidal",
) -> SyntheticCase:
    """Generate one synthetic case.

    Parameters
    ----------
    seed : SeedLike
        Non-negative integer (or a numpy SeedSequence); the same seed gives the
        same case.
    spacing : SpacingLike
        Voxel size in mm (one value or one per axis); the field of view is
        BraTS's 240 x 240 x 155 mm at every spacing.
    rcbv : bool
        Also synthesise an rCBV map.
    recurrence : bool
        Also synthesise a follow-up scan at recurrence.
    params : Mapping[str, Any] | None
        Overrides of :data:`nehmap.synth.params.DEFAULT_PARAMS` (a value or a
        ``(low, high)`` range per name; dictionaries merged key by key); they take
        precedence over the family's ranges.
    family : str
        Tumour family (:mod:`nehmap.synth.families`), or ``mixed`` to draw one
        from a random stream of its own. The default, ``ellipsoidal``, is the
        original generator: its cases are unchanged.

    Returns
    -------
    SyntheticCase
        :class:`SyntheticCase`.
    """
    sequence, seed_value, recipe = _seed_sequence(seed)
    children = sequence.spawn(5)  # the first four are the original streams
    geometry_rng, contrast_rng, rcbv_rng, recurrence_rng, family_rng = (
        np.random.default_rng(s) for s in children
    )
    anatomy = load_anatomy(spacing)
    check_family(family, anatomy.spacing, params)
    chosen = choose_family(family, family_rng)
    merged = merge_params(family_overrides(chosen, params))
    tumour = make_family_tumour(anatomy, geometry_rng, merged, chosen)
    tissues, labels = _assemble(anatomy, tumour)
    axes = anatomy.world_axes()
    weight_box, weights = compartment_weights(
        labels, TUMOUR_CLASSES, anatomy.spacing, float(merged["partial_volume_mm"])
    )
    contrast = draw_contrast(contrast_rng, merged)
    images = synthesise_images(
        contrast_rng, tissues, anatomy.brain, axes, weight_box, weights, contrast
    )
    record: dict[str, Any] = {
        "seed": seed_value,
        "seed_sequence": recipe,
        "family": chosen,
        "family_requested": family,
        "spacing_mm": list(anatomy.spacing),
        "shape": list(anatomy.shape),
        "modalities": list(MODALITIES),
        "overrides": jsonable(dict(params or {})),
        "geometry": tumour.params,
        "contrast": contrast,
    }
    rcbv_map = None
    if rcbv:
        settings = draw_rcbv(rcbv_rng, merged)
        rcbv_map, vessels = synthesise_rcbv(
            rcbv_rng,
            tissues,
            anatomy.brain,
            anatomy.depth,
            axes,
            weight_box,
            weights,
            labels > 0,
            anatomy.spacing,
            settings,
        )
        record["rcbv"] = {**settings, "vessels": vessels}
    follow_up = None
    if recurrence:
        preop = PreoperativeCase(anatomy, tissues, labels, merged, tumour.params["edema_extent_mm"])
        follow_up = make_recurrence(recurrence_rng, preop)
        record["recurrence"] = follow_up.params
    return SyntheticCase(
        seed=seed_value,
        grid=anatomy.grid,
        spacing=anatomy.spacing,
        images=images,
        labels=labels,
        brain_mask=anatomy.brain.copy(),
        tissues=tissues,
        params=jsonable(record),
        facts=jsonable(tumour.facts),
        rcbv=rcbv_map,
        recurrence=follow_up,
    )


def _assemble(anatomy: Anatomy, tumour: TumourGeometry) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Full-volume tissue maps (with the mass effect) and labels."""
    tissues = {}
    for name in ("gm", "wm", "csf"):
        full = getattr(anatomy, name).copy()
        full[tumour.box] = getattr(tumour, name)
        tissues[name] = full
    labels = np.zeros(anatomy.shape, dtype=np.uint8)
    labels[tumour.box] = tumour.labels
    return tissues, labels
