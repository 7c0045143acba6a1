"""Image figures: segmentations over the T1c (the paper's Figures 1 and 4).

Slices are axial and shown in the radiological convention (anterior up, the patient's
right on the image's left; see :func:`nehmap.report.examples.radiological`), with the
in-plane voxel aspect from the spacing. Colours follow the paper's Figure 1: green
edema, yellow enhancing tumour, red necrosis, blue NEH; in consensus maps green is the
low- and red the high-probability NEH.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.patches import Patch

from nehmap.labels import ED, ET, LABEL_COLOURS, NC, NEH
from nehmap.report.examples import (
    CaseMaps,
    RecurrenceMaps,
    best_axial_slice,
    crop_box,
    radiological,
)
from nehmap.report.figures import to_data_uri
from nehmap.report.formatting import model_label

OVERLAY_ALPHA = 0.6
LOW_COLOUR = (0.17, 0.63, 0.17)
HIGH_COLOUR = (0.84, 0.15, 0.16)
PNEH_COLOUR = (0.84, 0.15, 0.16)
ET_COLOUR = tuple(c / 255 for c in LABEL_COLOURS[ET])


def _rgba(mask_colours: Sequence[tuple[np.ndarray, tuple]], shape: tuple[int, int]) -> np.ndarray:
    """An RGBA overlay: each (mask, rgb) painted with :data:`OVERLAY_ALPHA`."""
    out = np.zeros((*shape, 4), dtype=float)
    for mask, rgb in mask_colours:
        out[mask, :3] = rgb
        out[mask, 3] = OVERLAY_ALPHA
    return out


def label_overlay(labels_2d: np.ndarray) -> np.ndarray:
    """RGBA image of a four-label slice in the paper's colours."""
    pairs = [
        (labels_2d == value, tuple(c / 255 for c in LABEL_COLOURS[value]))
        for value in (ED, NC, NEH, ET)
    ]
    return _rgba(pairs, labels_2d.shape)


def levels_overlay(levels_2d: np.ndarray) -> np.ndarray:
    """RGBA image of a two-level consensus slice: green low, red high probability."""
    return _rgba([(levels_2d == 1, LOW_COLOUR), (levels_2d == 2, HIGH_COLOUR)], levels_2d.shape)


def _window(image: np.ndarray) -> tuple[float, float]:
    values = image[image > 0]
    if values.size == 0:
        values = image.ravel()
    low, high = np.percentile(values, [1.0, 99.5]) if values.size else (0.0, 1.0)
    return float(low), float(max(high, low + 1e-6))


def _show_background(
    ax: Axes, image: np.ndarray | None, shape: tuple[int, int], aspect: float
) -> None:
    if image is None:
        ax.imshow(
            np.zeros(shape), cmap="gray", vmin=0, vmax=1, aspect=aspect, interpolation="nearest"
        )
        return
    low, high = _window(image)
    ax.imshow(image, cmap="gray", vmin=low, vmax=high, aspect=aspect, interpolation="nearest")


def _orientation_marks(ax: Axes) -> None:
    style = {"color": "white", "fontsize": 8, "fontweight": "bold", "transform": ax.transAxes}
    ax.text(0.03, 0.5, "R", ha="left", va="center", **style)
    ax.text(0.97, 0.5, "L", ha="right", va="center", **style)
    ax.text(0.5, 0.97, "A", ha="center", va="top", **style)


def _panels(maps: CaseMaps) -> list[tuple[str, str, np.ndarray | None]]:
    """(kind, title, 3D map) of each panel of a case's row."""
    name = maps.background_name.upper().replace("T1C", "T1c") or "no T1c"
    panels: list[tuple[str, str, np.ndarray | None]] = [("background", name, None)]
    panels += [("labels", model_label(m), a) for m, a in maps.labels.items()]
    panels += [
        ("levels", "Fused consensus" if m == "levels" else model_label(m), a)
        for m, a in maps.consensus.items()
    ]
    if maps.probability is not None:
        panels.append(("probability", "NEH probability", maps.probability))
    return panels


def case_row_slice(maps: CaseMaps) -> int:
    """The axial slice of a case: most NEH over all maps, else most tumour."""
    neh = [a == NEH for a in maps.labels.values()] + [a > 0 for a in maps.consensus.values()]
    tumour = [a > 0 for a in maps.labels.values()]
    return best_axial_slice(neh, tumour)


def examples_figure(cases: Sequence[tuple[CaseMaps, str]]) -> str | None:
    """The paper's Figure 1 for each example case: one row of panels per case.

    Panels: the T1c alone, each four-label model's segmentation, each two-level
    consensus map (consensus models and the fused levels), and the fused NEH probability.
    """
    rows = [(m, why) for m, why in cases if m.shape() is not None]
    if not rows:
        return None
    n_cols = max(len(_panels(m)) for m, _ in rows)
    fig = Figure(figsize=(2.35 * n_cols, 2.55 * len(rows) + 0.7))
    axes = fig.subplots(len(rows), n_cols, squeeze=False)
    same_panels = len({tuple(t for _, t, _ in _panels(m)) for m, _ in rows}) == 1
    image = None
    for r, (maps, why) in enumerate(rows):
        titles = r == 0 or not same_panels
        image = _draw_case_row(axes[r], maps, why, titles) or image
    handles = [
        Patch(color=tuple(c / 255 for c in LABEL_COLOURS[v]), label=t)
        for v, t in (
            (ED, "edema (ED)"),
            (ET, "enhancing tumour (ET)"),
            (NC, "necrosis (NC)"),
            (NEH, "NEH"),
        )
    ]
    handles += [
        Patch(color=LOW_COLOUR, label="consensus: low probability"),
        Patch(color=HIGH_COLOUR, label="consensus: high probability"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=6, fontsize=8, frameon=False)
    fig.subplots_adjust(left=0.06, right=0.92, top=0.93, bottom=0.1, wspace=0.05, hspace=0.12)
    if image is not None:
        bar = fig.colorbar(image, cax=fig.add_axes((0.935, 0.3, 0.012, 0.45)))
        bar.set_label("NEH probability", fontsize=8)
        bar.ax.tick_params(labelsize=7)
    return to_data_uri(fig)


def _draw_map(ax: Axes, kind: str, data: np.ndarray, aspect: float) -> AxesImage | None:
    """Draw one panel's map over its background; returns the probability image if any."""
    if kind == "labels":
        ax.imshow(label_overlay(data), aspect=aspect, interpolation="nearest")
    elif kind == "levels":
        ax.imshow(levels_overlay(data), aspect=aspect, interpolation="nearest")
    elif kind == "probability":
        return ax.imshow(
            np.ma.masked_less(data, 0.05),
            cmap="inferno",
            vmin=0,
            vmax=1,
            alpha=0.85,
            aspect=aspect,
            interpolation="nearest",
        )
    return None


def _draw_case_row(
    axes: Sequence[Axes], maps: CaseMaps, why: str, titles: bool = True
) -> AxesImage | None:
    """Draw one case's panels; returns the probability image (for the colour bar) if any."""
    k = case_row_slice(maps)
    panels = _panels(maps)
    aspect = maps.spacing[1] / maps.spacing[0]
    background = None if maps.background is None else radiological(maps.background[:, :, k])
    slices = [None if a is None else radiological(a[:, :, k]) for _, _, a in panels]
    if background is not None:
        rows, cols = crop_box([background])
    else:
        rows, cols = crop_box([s for s in slices if s is not None], margin=15)
    bg = None if background is None else background[rows, cols]
    crop_shape = (rows.stop - rows.start, cols.stop - cols.start)
    colour_image = None
    for ax, (kind, title, _), data in zip(axes, panels, slices, strict=False):
        _show_background(ax, bg, crop_shape, aspect)
        if data is not None:
            colour_image = _draw_map(ax, kind, data[rows, cols], aspect) or colour_image
        if titles:
            ax.set_title(title, fontsize=9)
    _orientation_marks(axes[0])
    axes[0].set_ylabel(f"{maps.case}\n{why}\naxial slice {k}", fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[len(panels) :]:
        ax.axis("off")
    return colour_image


OVERLAP_COLOUR = (1.0, 0.55, 0.0)


def recurrence_figure(maps: RecurrenceMaps) -> str:
    """The paper's Figure 4: warped pre-operative NEH (red) on the recurrence ET (yellow).

    The axial slice with the largest overlap (else the most pNEH and ET). With the
    recurrence T1c: the T1c alone, then the masks over it; without: the masks alone.
    ET in yellow, the warped pNEH in red, their overlap in orange.
    """
    k = best_axial_slice([maps.pneh & maps.et], [maps.pneh, maps.et])
    aspect = maps.spacing[1] / maps.spacing[0]
    pneh = radiological(maps.pneh[:, :, k])
    et = radiological(maps.et[:, :, k])
    background = None if maps.background is None else radiological(maps.background[:, :, k])
    rows, cols = crop_box([background] if background is not None else [pneh, et], margin=10)
    pneh, et = pneh[rows, cols], et[rows, cols]
    bg = None if background is None else background[rows, cols]
    overlay = _rgba(
        [(et & ~pneh, ET_COLOUR), (pneh & ~et, PNEH_COLOUR), (pneh & et, OVERLAP_COLOUR)],
        pneh.shape,
    )
    titles = (
        ["pNEH on recurrence ET"] if bg is None else ["Recurrence T1c", "pNEH on recurrence ET"]
    )
    fig = Figure(figsize=(3.8 * len(titles), 3.9))
    axes = fig.subplots(1, len(titles), squeeze=False)[0]
    for ax, title in zip(axes, titles, strict=True):
        _show_background(ax, bg, pneh.shape, aspect)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[-1].imshow(overlay, aspect=aspect, interpolation="nearest")
    _orientation_marks(axes[0])
    axes[0].set_ylabel(f"{maps.subject}\naxial slice {k}", fontsize=8)
    handles = [
        Patch(color=ET_COLOUR, label="recurrence ET"),
        Patch(color=PNEH_COLOUR, label="warped pre-operative NEH"),
        Patch(color=OVERLAP_COLOUR, label="overlap"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.9, bottom=0.14, wspace=0.05)
    return to_data_uri(fig)
