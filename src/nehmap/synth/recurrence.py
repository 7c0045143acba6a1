"""A follow-up scan at recurrence, with the known transform between the time points.

The follow-up is first laid out in pre-operative space:

* the **resection cavity** is where the enhancing rim and the necrosis were; it has
  CSF-like signal (FLAIR dark);
* a **new enhancing tumour** (ET, with a necrotic centre when large enough) grows from
  the pre-operative NEH with probability ``p_recurrence_from_neh`` (it then also spreads
  along the NEH), otherwise from a random part of the cavity wall at least 10 mm away
  from the NEH (origin ``"random"``). ``recurrence_origin="wall"`` seeds it anywhere on
  the cavity wall, uniformly and independently of the NEH (it may then start in NEH by
  chance): the null hypothesis of H3 in its exact form;
* **edema** surrounds the new tumour, and part of the pre-operative edema remains
  around the cavity.

The whole follow-up anatomy is then resampled into recurrence space through a known
transform and the images are synthesised there (with their own bias, noise and scale).

Transform convention (world RAS coordinates, mm): the recurrence voxel at world
position ``y`` shows the pre-operative position ``x = A @ (y + u(y))``, where ``u`` is
a smooth displacement field (a sum of a few sine waves, at most ``deformation_mm`` long,
defined everywhere) and ``A`` a rigid 4x4 matrix (rotation of a few degrees about the
brain centre, translation of a few mm). Both scans share the same grid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from nehmap.io.image import Grid
from nehmap.labels import ED, ET, NC, NEH
from nehmap.synth.anatomy import Anatomy
from nehmap.synth.contrast import compartment_weights, draw_contrast, synthesise_images
from nehmap.synth.fields import Axes, box_axes, smooth_field
from nehmap.synth.params import draw
from nehmap.synth.tumour import _component_at, _radius_mm

Box = tuple[slice, slice, slice]

BRAIN_CENTRE_MM: tuple[float, float, float] = (0.0, -17.0, 5.0)
"""Centre (MNI mm) of the rotation between the time points."""

_N_WAVES = 4
_MIN_DISTANCE_FROM_NEH_MM = 10.0
_RECURRENCE_CORE_MM = 4.0
_ORIGINS = ("neh", "random", "wall")

_CODE_LABEL_MASK = 0b0111
_CODE_CAVITY = 0b1000
_CODE_NEH = 0b10000


@dataclass(frozen=True)
class PreoperativeCase:
    """What a recurrence grows from: the pre-operative case after mass effect.

    Attributes
    ----------
    anatomy : Anatomy
        The case's anatomy (grid, spacing in mm, brain mask, ventricles).
    tissues : Mapping[str, np.ndarray]
        Pre-operative ``gm``, ``wm``, ``csf`` fractions (float arrays of the
        grid's shape, after mass effect).
    labels : np.ndarray
        Pre-operative nehmap labels (uint8, the grid's shape).
    params : Mapping[str, Any]
        The case's merged generator parameters (``recurrence_origin``,
        ``p_recurrence_from_neh``, ``residual_edema``...).
    edema_extent_mm : float
        The pre-operative edema's reach (mm); a fraction
        (``residual_edema``) of it remains around the cavity.
    """

    anatomy: Anatomy
    tissues: Mapping[str, np.ndarray]
    labels: np.ndarray
    params: Mapping[str, Any]
    edema_extent_mm: float


@dataclass
class Recurrence:
    """The recurrence time point of a synthetic case and its ground truth.

    All arrays are canonical RAS+ on the case's grid (recurrence space).

    Attributes
    ----------
    images : dict[str, np.ndarray]
        ``t1``, ``t1c``, ``t2``, ``flair`` -> float32 follow-up image.
    labels : np.ndarray
        nehmap labels at follow-up (uint8): new ET (4), its necrosis (1) and
        edema (2).
    cavity : np.ndarray
        Resection cavity (bool).
    preop_neh : np.ndarray
        The pre-operative NEH mapped into recurrence space (bool).
    brain_mask : np.ndarray
        Brain mask at follow-up (bool).
    rigid : np.ndarray
        4x4 world-to-world matrix ``A`` of the transform (see the module).
    origin : str
        ``"neh"`` if the recurrence grew from the NEH, ``"random"`` if from the
        cavity wall away from it, ``"wall"`` if from anywhere on the cavity wall.
    params : dict[str, Any]
        Drawn parameters, the displacement's sine waves included
        (JSON-serialisable).
    facts : dict[str, Any]
        Measured properties (volumes in mm^3, NEH overlap).
    """

    images: dict[str, np.ndarray]
    labels: np.ndarray
    cavity: np.ndarray
    preop_neh: np.ndarray
    brain_mask: np.ndarray
    rigid: np.ndarray
    origin: str
    params: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)

    def displacement(self, grid: Grid, *, resolution_mm: float | None = None) -> np.ndarray:
        """The displacement field ``u`` (mm, world RAS components) on ``grid``.

        Parameters
        ----------
        grid : Grid
            Where to evaluate the field (the case's grid).
        resolution_mm : float | None
            Round the values to multiples of this (e.g. 1/128 mm, which
            makes the compressed file about half as large); None keeps them exact.

        Returns
        -------
        np.ndarray
            float32 array of shape ``grid.canonical_shape + (3,)``.
        """
        axes = _grid_axes(grid)
        out = np.empty((*grid.canonical_shape, 3), dtype=np.float32)
        for component in range(3):
            out[..., component] = _wave_sum(self.params["waves"], axes, component)
        if resolution_mm:
            out /= np.float32(resolution_mm)
            np.round(out, out=out)
            out *= np.float32(resolution_mm)
        return out


def make_recurrence(rng: np.random.Generator, preop: PreoperativeCase) -> Recurrence:
    """Lay out the follow-up scan, move it into recurrence space and synthesise it.

    Parameters
    ----------
    rng : np.random.Generator
        Random generator for the recurrence (consumed).
    preop : PreoperativeCase
        The pre-operative case it grows from.

    Returns
    -------
    Recurrence
        :class:`Recurrence`.
    """
    anatomy, tissues, labels, params = preop.anatomy, preop.tissues, preop.labels, preop.params
    drawn, box, (follow_labels, cavity_box, seed_mm) = _draw_and_lay_out(rng, preop)
    code = np.zeros(labels.shape, dtype=np.uint8)
    code[box] = follow_labels | (cavity_box.astype(np.uint8) * _CODE_CAVITY)
    code[labels == NEH] |= _CODE_NEH
    drawn["seed_mm"] = [float(v) for v in seed_mm]
    rigid = _rigid(rng, drawn)
    drawn["waves"] = _waves(rng, drawn)
    warped_tissues, warped_code = _warp(anatomy, tissues, code, rigid, drawn["waves"])
    brain = (warped_tissues["gm"] + warped_tissues["wm"] + warped_tissues["csf"]) > 0.5
    follow = (warped_code & _CODE_LABEL_MASK) * brain
    cavity = ((warped_code & _CODE_CAVITY) > 0) & brain
    preop_neh = ((warped_code & _CODE_NEH) > 0) & brain
    contrast = draw_contrast(rng, params)
    classes = {"NC": NC, "ED": ED, "ET": ET}
    wbox, weights = compartment_weights(
        follow.astype(np.uint8),
        classes,
        anatomy.spacing,
        float(params["partial_volume_mm"]),
        extra={"CAVITY": cavity},
    )
    images = synthesise_images(
        rng, warped_tissues, brain, anatomy.world_axes(), wbox, weights, contrast
    )
    drawn["contrast"] = contrast
    drawn["rigid"] = rigid.tolist()
    facts = _facts(follow.astype(np.uint8), cavity, preop_neh, anatomy.spacing, drawn["origin"])
    return Recurrence(
        images=images,
        labels=follow.astype(np.uint8),
        cavity=cavity,
        preop_neh=preop_neh,
        brain_mask=brain,
        rigid=rigid,
        origin=drawn["origin"],
        params=drawn,
        facts=facts,
    )


def follow_up_labels(
    rng: np.random.Generator, preop: PreoperativeCase
) -> tuple[np.ndarray, np.ndarray, str]:
    """The follow-up labels and cavity in pre-operative space, without images or motion.

    The label-map half of :func:`make_recurrence` (same seeding rule and shapes), for
    simulations that need many recurrences fast (``benchmarks/bench_h3_calibration.py``).

    Parameters
    ----------
    rng : np.random.Generator
        Random generator (consumed).
    preop : PreoperativeCase
        The pre-operative case it grows from.

    Returns
    -------
    tuple[np.ndarray, np.ndarray, str]
        (labels, cavity, origin): full-volume follow-up labels (uint8: ET 4, NC 1, ED 2),
        the cavity (bool) and the origin drawn.
    """
    drawn, box, (follow_box, cavity_box, _) = _draw_and_lay_out(rng, preop)
    labels = preop.labels
    follow = np.zeros(labels.shape, dtype=np.uint8)
    cavity = np.zeros(labels.shape, dtype=bool)
    follow[box] = follow_box
    cavity[box] = cavity_box
    return follow, cavity, str(drawn["origin"])


def _draw_and_lay_out(
    rng: np.random.Generator, preop: PreoperativeCase
) -> tuple[dict[str, Any], Box, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The first steps of both recurrence functions: draw the parameters, then lay out
    the follow-up labels and cavity in the box 20 mm around the tumour.

    Returns ``(drawn, box, (labels_in_box, cavity_in_box, seed_mm))``.
    """
    drawn = _draw(rng, preop.params)
    drawn["preop_edema_extent_mm"] = float(preop.edema_extent_mm)
    labels = preop.labels
    box = _box_around(labels > 0, 20.0, preop.anatomy.spacing, labels.shape)
    return drawn, box, _follow_up_layout(rng, preop.anatomy, preop.tissues, labels, box, drawn)


def _draw(rng: np.random.Generator, params: Mapping[str, Any]) -> dict[str, Any]:
    origin = params["recurrence_origin"]
    p = float(params["p_recurrence_from_neh"])
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p_recurrence_from_neh must be within [0, 1], got {p}.")
    draw_neh = rng.random() < p
    if origin is None:
        origin = "neh" if draw_neh else "random"
    if origin not in _ORIGINS:
        raise ValueError(
            f"recurrence_origin must be 'neh', 'random', 'wall' or None, got {origin!r}."
        )
    names = (
        "recurrence_radius_mm",
        "recurrence_edema_mm",
        "residual_edema",
        "deformation_scale_mm",
    )
    drawn: dict[str, Any] = {name: draw(rng, params, name) for name in names}
    drawn.update(
        origin=origin,
        p_recurrence_from_neh=p,
        rotation_deg=float(params["rotation_deg"]),
        translation_mm=float(params["translation_mm"]),
        deformation_mm=float(params["deformation_mm"]),
    )
    return drawn


def _box_around(
    mask: np.ndarray,
    margin_mm: float,
    spacing: tuple[float, float, float],
    shape: tuple[int, ...],
) -> Box:
    idx = np.argwhere(mask)
    margin = np.ceil(margin_mm / np.asarray(spacing)).astype(int)
    lo = np.maximum(idx.min(axis=0) - margin, 0)
    hi = np.minimum(idx.max(axis=0) + 1 + margin, shape)
    return (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))


def _follow_up_layout(
    rng: np.random.Generator,
    anatomy: Anatomy,
    tissues: Mapping[str, np.ndarray],
    labels: np.ndarray,
    box: Box,
    drawn: dict[str, Any],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Follow-up labels and cavity in ``box`` (pre-operative space), and the seed (mm)."""
    spacing = anatomy.spacing
    pre = labels[box]
    cavity = (pre == ET) | (pre == NC)
    neh = pre == NEH
    brain = anatomy.brain[box]
    allowed = brain & ~anatomy.ventricles[box] & (tissues["csf"][box] < 0.6) & ~cavity
    from_cavity = ndi.distance_transform_edt(~cavity, sampling=spacing).astype(np.float32)
    axes = box_axes(anatomy.world_axes(), box)
    seed = _seed(rng, cavity, neh, allowed, spacing, drawn["origin"])
    seed_mm = np.array([axes[a][seed[a]] for a in range(3)])
    radius = drawn["recurrence_radius_mm"]
    r = _radius_mm(axes, seed_mm)
    blob = (r / radius - 1.0 - 0.25 * smooth_field(rng, axes, 4.0)) <= 0.0
    if drawn["origin"] == "neh":
        blob |= neh & (r <= 2.0 * radius)
    blob &= allowed
    blob[seed] = True
    blob = _component_at(blob, seed)
    core = ndi.distance_transform_edt(blob, sampling=spacing) > _RECURRENCE_CORE_MM
    outside = ndi.distance_transform_edt(~blob, sampling=spacing).astype(np.float32)
    reach = drawn["recurrence_edema_mm"] * np.clip(1 + 0.3 * smooth_field(rng, axes, 6.0), 0.6, 1.4)
    reach *= 0.3 + 0.7 * tissues["wm"][box]
    new_edema = allowed & ~blob & (outside <= reach)
    residual_reach = max(drawn["residual_edema"] * drawn["preop_edema_extent_mm"], 3.0)
    residual = ((pre == ED) | neh) & (from_cavity <= residual_reach) & allowed
    follow = np.zeros(pre.shape, dtype=np.uint8)
    follow[(new_edema | residual) & ~blob] = ED
    follow[blob] = ET
    follow[blob & core] = NC
    return follow, cavity, seed_mm


def _seed(
    rng: np.random.Generator,
    cavity: np.ndarray,
    neh: np.ndarray,
    allowed: np.ndarray,
    spacing: tuple[float, float, float],
    origin: str,
) -> tuple[int, int, int]:
    """A voxel where the recurrence starts: in the NEH, on the cavity wall away from it
    (``"random"``), or anywhere on the cavity wall (``"wall"``, independent of the NEH)."""
    if origin == "wall":
        wall = ndi.binary_dilation(cavity) & ~cavity & allowed
        if not wall.any():
            wall = ndi.binary_dilation(cavity) & ~cavity
        candidates = np.flatnonzero(wall)
    elif origin == "neh" and neh.any():
        candidates = np.flatnonzero(neh & allowed) if (neh & allowed).any() else np.flatnonzero(neh)
    else:
        wall = ndi.binary_dilation(cavity) & ~cavity & allowed
        if not wall.any():
            wall = ndi.binary_dilation(cavity) & ~cavity
        far = ndi.distance_transform_edt(~neh, sampling=spacing) if neh.any() else None
        if far is not None and (wall & (far >= _MIN_DISTANCE_FROM_NEH_MM)).any():
            wall &= far >= _MIN_DISTANCE_FROM_NEH_MM
        elif far is not None:
            wall &= far >= far[wall].max()
        candidates = np.flatnonzero(wall)
    flat = int(candidates[rng.integers(candidates.size)])
    index = np.unravel_index(flat, cavity.shape)
    return (int(index[0]), int(index[1]), int(index[2]))


def _rigid(rng: np.random.Generator, drawn: Mapping[str, Any]) -> np.ndarray:
    """A 4x4 rigid matrix: small rotation about the brain centre plus a translation."""
    angles = np.deg2rad(rng.uniform(-1.0, 1.0, size=3) * drawn["rotation_deg"])
    translation = rng.uniform(-1.0, 1.0, size=3) * drawn["translation_mm"]
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    rotation = rz @ ry @ rx
    centre = np.asarray(BRAIN_CENTRE_MM)
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = centre - rotation @ centre + translation
    return matrix


def _waves(rng: np.random.Generator, drawn: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Sine waves of the displacement; their amplitudes sum to ``deformation_mm``."""
    vectors = rng.standard_normal((_N_WAVES, 3))
    norms = np.linalg.norm(vectors, axis=1)
    vectors *= drawn["deformation_mm"] / max(float(norms.sum()), 1e-12)
    waves = []
    for k in range(_N_WAVES):
        direction = rng.standard_normal(3)
        direction /= np.linalg.norm(direction)
        scale = drawn["deformation_scale_mm"]
        wavelength = float(scale if np.isscalar(scale) else rng.uniform(*scale))
        waves.append(
            {
                "amplitude_mm": vectors[k].tolist(),
                "direction": direction.tolist(),
                "wavelength_mm": wavelength,
                "phase": float(rng.uniform(0.0, 2.0 * np.pi)),
            }
        )
    return waves


def _grid_axes(grid: Grid) -> Axes:
    affine = grid.canonical_affine
    return tuple(  # type: ignore[return-value]
        affine[a, 3] + affine[a, a] * np.arange(n) for a, n in enumerate(grid.canonical_shape)
    )


def _wave_sum(waves: list[Mapping[str, Any]], axes: Axes, component: int) -> np.ndarray:
    """Component ``component`` of the displacement (mm) on the grid of ``axes``."""
    shape = tuple(len(a) for a in axes)
    out = np.zeros(shape, dtype=np.float32)
    for wave in waves:
        k = 2.0 * np.pi * np.asarray(wave["direction"]) / wave["wavelength_mm"]
        phase = (
            (k[0] * axes[0]).astype(np.float32)[:, None, None]
            + (k[1] * axes[1]).astype(np.float32)[None, :, None]
            + (k[2] * axes[2] + wave["phase"]).astype(np.float32)[None, None, :]
        )
        out += np.float32(wave["amplitude_mm"][component]) * np.sin(phase)
    return out


def _warp(
    anatomy: Anatomy,
    tissues: Mapping[str, np.ndarray],
    code: np.ndarray,
    rigid: np.ndarray,
    waves: list[Mapping[str, Any]],
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Resample the pre-operative content into recurrence space.

    Only voxels whose pre-operative position can fall in the brain are sampled (the
    brain's bounding box grown by the largest possible motion).
    """
    shape = anatomy.shape
    spacing = np.asarray(anatomy.spacing)
    reach = _max_motion_mm(rigid, waves)
    box = _box_around(anatomy.brain, reach, anatomy.spacing, shape)
    axes = box_axes(anatomy.world_axes(), box)
    points = [
        np.broadcast_to(a.reshape(_axis_shape(i)), [len(b) for b in axes])
        for i, a in enumerate(axes)
    ]
    moved = [points[c] + _wave_sum(waves, axes, c) for c in range(3)]
    origin = anatomy.grid.canonical_affine[:3, 3]
    coords = np.empty((3, *moved[0].shape), dtype=np.float32)
    for row in range(3):
        world = rigid[row, 0] * moved[0] + rigid[row, 1] * moved[1] + rigid[row, 2] * moved[2]
        coords[row] = (world + rigid[row, 3] - origin[row]) / spacing[row]
    warped = {}
    for name in ("gm", "wm", "csf"):
        out = np.zeros(shape, dtype=np.float32)
        out[box] = ndi.map_coordinates(tissues[name], coords, order=1, mode="constant")
        warped[name] = out
    warped_code = np.zeros(shape, dtype=np.uint8)
    warped_code[box] = ndi.map_coordinates(code, coords, order=0, mode="constant")
    return warped, warped_code


def _axis_shape(axis: int) -> tuple[int, int, int]:
    shape = [1, 1, 1]
    shape[axis] = -1
    return (shape[0], shape[1], shape[2])


def _max_motion_mm(rigid: np.ndarray, waves: list[Mapping[str, Any]]) -> float:
    """An upper bound (mm) on how far a brain point moves between the time points."""
    deformation = sum(float(np.linalg.norm(w["amplitude_mm"])) for w in waves)
    rotation = float(np.linalg.norm(rigid[:3, :3] - np.eye(3), ord=2)) * 140.0
    return deformation + rotation + float(np.linalg.norm(rigid[:3, 3])) + 2.0


def _facts(
    labels: np.ndarray,
    cavity: np.ndarray,
    preop_neh: np.ndarray,
    spacing: tuple[float, float, float],
    origin: str,
) -> dict[str, Any]:
    voxel = float(np.prod(spacing))
    et = labels == ET
    overlap = float((et & preop_neh).sum() / et.sum()) if et.any() else 0.0
    return {
        "origin": origin,
        "volume_mm3": {
            "NC": float((labels == NC).sum() * voxel),
            "ED": float((labels == ED).sum() * voxel),
            "ET": float(et.sum() * voxel),
            "cavity": float(cavity.sum() * voxel),
        },
        "et_in_preop_neh": overlap,
    }
