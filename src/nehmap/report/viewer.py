"""Volumes for the interactive viewer: layers, cropping, compact encoding, size budget.

The viewer (NiiVue, see :mod:`nehmap.report.viewer_page`) reads each layer as a small
gzip-compressed NIfTI file embedded as base64 text in the page. To keep a page small:

- every layer of a case is cropped to one box: the brain's bounding box (non-zero voxels
  of the images and maps) plus a margin of :data:`MARGIN` voxels;
- label maps are stored as uint8; images, probabilities and uncertainty are quantised to
  uint8 with the NIfTI scale slope and intercept, so the viewer's read-out is in the
  original units (within half a quantisation step; images are clipped at their 99.9th
  percentile first);
- when the encoded cases exceed the size budget, the largest case is down-sampled by 2
  (then 4, ...) until they fit, and a note says so: a case is never left out silently.

Arrays are canonical RAS+ (axis 0 left -> right, 1 posterior -> anterior, 2 inferior ->
superior), shape (X, Y, Z), with the voxel size in mm. The embedded affine is diagonal:
world coordinates are mm from the corner of the case's original grid.
"""

from __future__ import annotations

import base64
import gzip
from dataclasses import dataclass, field

import nibabel as nib
import numpy as np

from nehmap.labels import LABEL_COLOURS, LABEL_NAMES

MARGIN = 3
"""Voxels kept around the brain's bounding box."""

DATA_BUDGET_BYTES = 12 * 2**20
"""Size budget of the embedded volumes of one page (base64 text), bytes. With the NiiVue
library (2.3 MB) a viewer stays under 15 MB."""

IMAGE_CLIP_PERCENTILE = 99.9
"""Images are clipped at this percentile of their non-zero voxels before quantising."""

KINDS = ("image", "labels", "levels", "probability", "uncertainty")
"""Layer kinds: how a layer is stored and coloured."""

LEVEL_COLOURS = {1: (120, 200, 255), 2: (20, 60, 220)}
"""Colours of the two-level map: 1 low, 2 high probability NEH (RGB 0-255)."""

LEVEL_NAMES = {1: "low-probability NEH", 2: "high-probability NEH"}


@dataclass
class Layer:
    """One volume of a case as the viewer shows it.

    Attributes
    ----------
    name : str
        The name in the layer list, e.g. ``"T1c"`` or ``"paunet labels"``.
    kind : str
        One of :data:`KINDS`.
    array : np.ndarray
        Canonical RAS+ array, shape (X, Y, Z), on the case's grid.
    visible : bool
        Shown when the case opens.
    opacity : float
        Opacity when shown (0-1).
    threshold : float | None
        For probabilities, the value below which nothing is drawn.
    palette : dict[int, tuple[tuple[int, int, int], str]] | None
        For label and level maps, value -> (RGB 0-255, name) replacing the
        standard colours (:data:`~nehmap.labels.LABEL_COLOURS`, :data:`LEVEL_COLOURS`).
    """

    name: str
    kind: str
    array: np.ndarray
    visible: bool = True
    opacity: float = 1.0
    threshold: float | None = None
    palette: dict[int, tuple[tuple[int, int, int], str]] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"layer {self.name!r}: kind {self.kind!r} is not one of {KINDS}")
        if self.array.ndim != 3:
            raise ValueError(f"layer {self.name!r}: expected a 3D array, got {self.array.shape}")


@dataclass
class ViewerCase:
    """A case of the viewer: its layers on one grid.

    Attributes
    ----------
    case_id : str
        The case id (the picker's entry).
    title : str
        What the case is, e.g. ``"Figure 1: median NEH volume"``.
    spacing : tuple[float, float, float]
        Voxel size in mm (X, Y, Z).
    layers : list[Layer]
        The layers, the first image underneath.
    notes : list[str]
        Remarks shown with the case (missing inputs, down-sampling).
    """

    case_id: str
    title: str
    spacing: tuple[float, float, float]
    layers: list[Layer] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- geometry


def bounding_box(arrays: list[np.ndarray], margin: int = MARGIN) -> tuple[slice, slice, slice]:
    """The box around the non-zero voxels of ``arrays`` (all one shape), plus ``margin``.

    Returns the whole grid when every array is zero.
    """
    shape = arrays[0].shape
    union = np.zeros(shape, dtype=bool)
    for a in arrays:
        union |= a != 0
    if not union.any():
        return tuple(slice(0, s) for s in shape)  # type: ignore[return-value]
    box = []
    for axis in range(3):
        other = tuple(i for i in range(3) if i != axis)
        hits = np.flatnonzero(union.any(axis=other))
        box.append(slice(max(0, hits[0] - margin), min(shape[axis], hits[-1] + margin + 1)))
    return tuple(box)  # type: ignore[return-value]


def downsample(array: np.ndarray, factor: int, *, nearest: bool) -> np.ndarray:
    """Down-sample a 3D array by an integer ``factor`` along every axis.

    Blocks of ``factor``^3 voxels (the edge padded by repetition) become one voxel: their
    mean, or with ``nearest`` the voxel nearest the block's centre (for label maps).
    """
    if factor == 1:
        return array
    if nearest:
        return np.ascontiguousarray(
            array[factor // 2 :: factor, factor // 2 :: factor, factor // 2 :: factor]
        )
    pad = [(0, (-s) % factor) for s in array.shape]
    padded = np.pad(array.astype(np.float32), pad, mode="edge")
    x, y, z = (s // factor for s in padded.shape)
    return padded.reshape(x, factor, y, factor, z, factor).mean(axis=(1, 3, 5))


# --------------------------------------------------------------------------- encoding


def quantise(array: np.ndarray, kind: str) -> tuple[np.ndarray, float, float]:
    """uint8 data and the (slope, intercept) that map it back: value = slope * q + inter.

    Labels and levels are stored as they are (slope 1). Probabilities use 0-1 on 255
    steps; uncertainty 0 to its maximum; images their minimum to the
    :data:`IMAGE_CLIP_PERCENTILE` of their non-zero voxels.
    """
    if kind in ("labels", "levels"):
        return np.clip(np.rint(array), 0, 255).astype(np.uint8), 1.0, 0.0
    values = np.nan_to_num(array.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if kind == "probability":
        low, high = 0.0, 1.0
    elif kind == "uncertainty":
        low, high = 0.0, float(values.max()) if values.size else 0.0
    else:
        nonzero = values[values != 0]
        low = float(min(values.min(), 0.0)) if values.size else 0.0
        high = float(np.percentile(nonzero, IMAGE_CLIP_PERCENTILE)) if nonzero.size else 0.0
    if high <= low:
        high = low + 1.0
    slope = (high - low) / 255.0
    q = np.clip(np.rint((values - low) / slope), 0, 255).astype(np.uint8)
    return q, slope, low


def nifti_base64(
    data: np.ndarray,
    spacing: tuple[float, ...],
    origin_mm: tuple[float, ...],
    slope: float,
    inter: float,
) -> str:
    """A gzip-compressed NIfTI-1 file of a uint8 array, as base64 text.

    The affine is diagonal (``spacing`` in mm) with ``origin_mm`` the centre of voxel 0.
    """
    affine = np.diag([*(float(s) for s in spacing), 1.0])
    affine[:3, 3] = origin_mm
    image = nib.Nifti1Image(np.ascontiguousarray(data), affine)
    image.header.set_data_dtype(np.uint8)
    image.header.set_slope_inter(slope, inter)
    image.header.set_xyzt_units("mm")
    raw = gzip.compress(image.to_bytes(), compresslevel=9, mtime=0)
    return base64.b64encode(raw).decode("ascii")


def label_colormap(
    kind: str, palette: dict[int, tuple[tuple[int, int, int], str]] | None = None
) -> dict:
    """NiiVue's label colour table (R, G, B, A, I, labels) of a label or level layer."""
    colours = LABEL_COLOURS if kind == "labels" else LEVEL_COLOURS
    names = LABEL_NAMES if kind == "labels" else LEVEL_NAMES
    if palette:
        colours = {v: rgb for v, (rgb, _) in palette.items()}
        names = {v: name for v, (_, name) in palette.items()}
    table: dict[str, list] = {"R": [0], "G": [0], "B": [0], "A": [0], "I": [0], "labels": [""]}
    for value in sorted(colours):
        r, g, b = colours[value]
        for key, v in zip("RGBA", (r, g, b, 255), strict=True):
            table[key].append(int(v))
        table["I"].append(int(value))
        table["labels"].append(str(names[value]))
    return table


def _display_range(kind: str, q: np.ndarray, slope: float, inter: float) -> tuple[float, float]:
    """The (cal_min, cal_max) a layer opens with, in its own units."""
    if kind == "probability":
        return 0.0, 1.0
    nonzero = q[q != 0]
    if not nonzero.size:
        return inter, inter + slope * 255
    low = float(np.percentile(nonzero, 0.5)) if kind == "image" else 0.0
    high = float(np.percentile(nonzero, 99.5)) if kind == "image" else float(nonzero.max())
    return inter + slope * low, inter + slope * max(high, low + 1)


def focus_fraction(case: ViewerCase, box: tuple[slice, slice, slice]) -> list[float] | None:
    """Where the crosshair opens, as fractions of the cropped box (0-1 per axis).

    On the fused probability above its threshold (else a two-level map's, else a label
    map's non-zero voxels, e.g. the warped pNEH of the H3 case before the labels): the
    voxel of that mask nearest the point whose three planes hold the most of it. None
    when no map has any.
    """
    order = {"probability": 0, "levels": 1, "labels": 2, "uncertainty": 3}
    maps = sorted(
        (layer for layer in case.layers if layer.kind != "image"),
        key=lambda layer: order[layer.kind],
    )
    for layer in maps:
        cropped = layer.array[box]
        cut = layer.threshold if layer.threshold is not None else 0.0
        mask = cropped > cut
        if mask.any():
            peak = []
            for axis in range(3):
                other = tuple(i for i in range(3) if i != axis)
                peak.append(int(np.argmax(mask.sum(axis=other))))
            voxels = np.argwhere(mask)
            index = voxels[np.argmin(((voxels - np.array(peak)) ** 2).sum(axis=1))]
            return [(int(i) + 0.5) / s for i, s in zip(index, mask.shape, strict=True)]
    return None


def encode_case(case: ViewerCase, factor: int = 1) -> dict:
    """The JSON-ready record of a case for the page: cropped, quantised, compressed.

    Parameters
    ----------
    case : ViewerCase
        The case; all layers on one grid.
    factor : int
        Down-sampling factor (1: none).

    Returns
    -------
    dict
        ``{"id", "title", "notes", "spacing", "shape", "focus", "bytes", "layers": [...]}``
        (``focus``: :func:`focus_fraction`) where
        each layer holds ``name, kind, visible, opacity, threshold, cal_min, cal_max,
        slope, inter, colormap, labels`` (a NiiVue label table or null) and ``data``
        (base64 .nii.gz). ``bytes`` counts the base64 text of all layers.
    """
    if not case.layers:
        raise ValueError(f"case {case.case_id}: no layer to show")
    shapes = {layer.array.shape for layer in case.layers}
    if len(shapes) != 1:
        raise ValueError(f"case {case.case_id}: layers on different grids {sorted(shapes)}")
    box = bounding_box([layer.array for layer in case.layers])
    spacing = tuple(float(s) * factor for s in case.spacing)
    origin = tuple(
        (b.start + (factor - 1) / 2) * float(s) for b, s in zip(box, case.spacing, strict=True)
    )
    layers, total, shape = [], 0, None
    for layer in case.layers:
        nearest = layer.kind in ("labels", "levels")
        cropped = downsample(layer.array[box], factor, nearest=nearest)
        shape = cropped.shape
        q, slope, inter = quantise(cropped, layer.kind)
        data = nifti_base64(q, spacing, origin, slope, inter)
        total += len(data)
        cal_min, cal_max = _display_range(layer.kind, q, slope, inter)
        layers.append(
            {
                "name": layer.name,
                "kind": layer.kind,
                "visible": bool(layer.visible),
                "opacity": float(layer.opacity),
                "threshold": layer.threshold,
                "cal_min": cal_min,
                "cal_max": cal_max,
                "slope": slope,
                "inter": inter,
                "colormap": {
                    "image": "gray",
                    "probability": "warm",
                    "uncertainty": "viridis",
                }.get(layer.kind, ""),
                "labels": label_colormap(layer.kind, layer.palette) if nearest else None,
                "data": data,
            }
        )
    notes = list(case.notes)
    if factor > 1:
        notes.append(
            f"Down-sampled by {factor} (voxels of "
            f"{' x '.join(f'{s:g}' for s in spacing)} mm) to keep the page within its "
            f"size budget of {DATA_BUDGET_BYTES / 2**20:.0f} MB; the NIfTI files hold "
            "the full resolution."
        )
    return {
        "id": case.case_id,
        "title": case.title,
        "notes": notes,
        "spacing": list(spacing),
        "shape": list(shape or ()),
        "focus": focus_fraction(case, box),
        "bytes": total,
        "layers": layers,
    }


def encode_cases(
    cases: list[ViewerCase], budget_bytes: int = DATA_BUDGET_BYTES, *, max_factor: int = 8
) -> list[dict]:
    """Encode ``cases`` (:func:`encode_case`) within ``budget_bytes`` of base64 text.

    While the total is over budget, the largest case is encoded again down-sampled by
    twice its previous factor (up to ``max_factor``). Each down-sampled case carries a
    note; if the cases cannot fit even at ``max_factor``, they are kept at that factor
    and the last note says by how much the budget is exceeded. No case is ever dropped.
    """
    factors = [1] * len(cases)
    encoded = [encode_case(c) for c in cases]
    while encoded and sum(e["bytes"] for e in encoded) > budget_bytes:
        order = sorted(range(len(cases)), key=lambda i: -encoded[i]["bytes"])
        grow = [i for i in order if factors[i] < max_factor]
        if not grow:
            total = sum(e["bytes"] for e in encoded) / 2**20
            encoded[order[0]]["notes"].append(
                f"The volumes take {total:.1f} MB, over the budget of "
                f"{budget_bytes / 2**20:.1f} MB even down-sampled by {max_factor}."
            )
            break
        i = grow[0]
        factors[i] *= 2
        encoded[i] = encode_case(cases[i], factors[i])
    return encoded
