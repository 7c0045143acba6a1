"""The report's interactive viewer section: the Figure 1 cases and the Figure 4 patient.

The cases are chosen exactly as the static figures choose them
(:mod:`nehmap.report.examples`), so the viewer and the figures show the same patients.
"""

from __future__ import annotations

from pathlib import Path

from nehmap.report import examples, paper
from nehmap.report.context import ReportContext, figure1_choice
from nehmap.report.html import note, section, what_this_shows
from nehmap.report.viewer import ViewerCase, encode_cases
from nehmap.report.viewer_cases import recurrence_case, segment_case
from nehmap.report.viewer_page import viewer_block

REPORT_IMAGES = ("t1c", "flair", "rcbv")
"""The input images the report's viewer shows (T1 and T2 are left out to save space)."""

ANCHOR, TITLE = "viewer", "Interactive viewer: Figure 1 cases and the Figure 4 patient"

WHAT_VIEWER = (
    "The cases of Figure 1 and the H3 patient of Figure 4 in 3D: scroll through them, "
    "toggle each layer over the T1c, FLAIR and rCBV, and read every layer's value under "
    "the crosshair. Layers: each model's four labels (NC red, ED green, NEH blue, ET "
    "yellow), the fused NEH probability above an adjustable threshold (colour bar), the "
    "two-level map (light blue low, dark blue high probability), the models' uncertainty "
    "and, for H3, the warped pre-operative NEH (magenta) on the recurrence scan. The volumes are "
    "cropped to the brain and quantised to 256 levels; the page needs no network."
)


def figure1_cases(ctx: ReportContext) -> list[ViewerCase]:
    """The Figure 1 cases (same cohort, same choice by NEH volume) as viewer cases."""
    choice = figure1_choice(ctx)
    if choice is None:
        return []
    cohort, seg_root, chosen = choice
    out = []
    for case, why in chosen:
        viewer_case = segment_case(
            seg_root / case,
            models=ctx.models,
            title=f"Figure 1, {cohort} cohort: {why}",
            threshold=ctx.config.segment.threshold,
            modalities=REPORT_IMAGES,
        )
        if viewer_case.layers:
            out.append(viewer_case)
    return out


def figure4_case(ctx: ReportContext) -> ViewerCase | None:
    """The Figure 4 subject on the recurrence scan, chosen as Figure 4 chooses it."""
    files = examples.find_pneh_files(ctx.work_dir)
    cases = ctx.inputs.table("recurrence_cases")
    included = None if cases is None else paper.included_rows(cases)
    subject, _ = examples.pick_recurrence_subject(sorted(files), included)
    if subject is None:
        return None
    scan_id = examples.recurrence_scan_ids(cases).get(subject)
    model = ctx.config.recurrence.recurrence_model
    maps = examples.load_recurrence_maps(ctx.work_dir, subject, files[subject], model, scan_id)
    if maps is None:
        return None
    image = Path(maps.sources[2]) if len(maps.sources) > 2 else None
    title = "Figure 4 (H3): warped pre-operative NEH on the recurrence scan"
    return recurrence_case(subject, files[subject], Path(maps.sources[1]), image, title)


def viewer_section(ctx: ReportContext) -> str:
    """The viewer section, or a note when no case could be read."""
    cases = figure1_cases(ctx)
    h3 = figure4_case(ctx)
    if h3 is not None:
        cases.append(h3)
    parts = [what_this_shows(WHAT_VIEWER)]
    if not cases:
        parts.append(note("No segmentation or recurrence outputs to show: the viewer is left out."))
    else:
        encoded = encode_cases(cases)
        parts.append(viewer_block(encoded))
        for case in encoded:  # said outside the viewer too, for readers without JavaScript
            parts.extend(note(f"{case['id']}: {n}") for n in case["notes"] if "Down-sampled" in n)
    return section(ANCHOR, TITLE, parts)
