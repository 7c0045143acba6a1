"""The report's fixed prose: plain-language introductions and figure captions (HTML).

Kept apart from the code that assembles the sections so that the wording can be read
and edited in one place. Values from data or configuration are filled in by the
functions, escaped.
"""

from __future__ import annotations

from pathlib import Path

from nehmap.report.html import esc

RADIOLOGICAL = (
    "Axial slices in the radiological convention: anterior at the top, the patient's right "
    "on the image's left (marked R)."
)

WHAT_SUMMARY = (
    "Which cases went into the study, how many each analysis used, and the main test "
    "results. Details, figures and all tables follow in the sections below."
)

WHAT_EXAMPLES = (
    "What the networks segment, on a few cases of the study: the contrast-enhanced T1 "
    "(T1c) image, each network's four-compartment segmentation, the two-level consensus "
    "map and the NEH probability map. Cases are chosen by their NEH volume (median, then "
    "lower and upper quartile), not by how good they look."
)

WHAT_INTENSITIES = (
    "Whether the region the networks call NEH looks different from edema on routine MRI. "
    "Table 3 gives the average signal in each region; Table 4 tests the within-patient "
    "difference NEH - ED with a mixed model (a negative estimate means NEH is darker than "
    "edema). The method's paper found NEH darker than edema on FLAIR and T1, brighter on "
    "T1c, and no clear difference on T2."
)

WHAT_RCBV = (
    "Whether NEH has the blood volume expected of tumour tissue. rCBV (relative cerebral "
    "blood volume, from perfusion MRI) is high in active tumour. If NEH is tumour, its rCBV "
    "should lie below the enhancing tumour's and above the edema's (ET &gt; NEH &gt; ED). "
    "Each point is one case's mean rCBV in the compartment."
)

WHAT_RECURRENCE = (
    "Whether the tumour recurs where NEH was before surgery. The pre-operative NEH is "
    "carried onto the recurrence scan by image registration and compared with the "
    "recurrent enhancing tumour. Each metric is also computed for placements of the same "
    "NEH shape by chance: at the same distances from the tumour core (the primary test) "
    "and, as the paper, anywhere in the brain. A chance rank above 0.5, or a ratio to "
    "chance away from 1 in the direction of agreement (above 1 for overlaps, below 1 for "
    "distances), means the two regions are closer than chance would give."
)

WHAT_CASES = (
    "Cases left out by the selection rules (with the reason) and cases whose processing "
    "failed (with the error message). Failed cases are in no table."
)

WHAT_APPENDIX = (
    "The study's cohort tables exactly as written to CSV (same rows and columns), for "
    "checking and re-use. Per-case tables are only listed: open the CSVs."
)

RECURRENCE_TESTS = (
    "How to read the tests: the paper's tests (Table 7, whole-brain chance) compare the "
    "chance ratios with 1 and the raw MeanEdgeDistance with 0; a mean distance is always "
    "above 0, so that one test cannot fail and says nothing about proximity. The "
    "<i>chance_ratio</i> tests ask whether pNEH is nearer to (distance ratio below 1) or "
    "overlaps more with (ratio above 1) the recurrence than its chance placements; the "
    "<i>chance_rank</i> tests ask the same with each subject's rank among its placements "
    "(0.5 = chance), which stays valid when the ratios are skewed; "
    "<i>matched_control</i> compares pNEH with its matched controls (distance-matched "
    "placements overlapping it by at most 10 %). <i>p_adjusted</i>: Holm across the four "
    "metrics."
)

CAPTION_FIGURE2 = (
    "<b>Figure 2.</b> Per-case mean rCBV in the enhancing tumour (ET, yellow), NEH (blue), "
    "edema (ED, green) and necrosis (NC, red) for each four-label model. Boxes: median and "
    "quartiles; whiskers: 1.5 × IQR; points: cases. Brackets: one-sided paired tests of "
    "ET &gt; NEH and NEH &gt; ED (Holm-adjusted); titles: repeated-measures ANOVA over ET, "
    "NEH and ED."
)

CAPTION_FIGURE2B = (
    "<b>Figure 2b (the data of Table 5).</b> Per-case mean rCBV in NEH of each four-label "
    "model (blue) and in the levels of the two-level consensus maps: low (green), high "
    "(red) and both together (orange). Brackets: paired two-sided t-test of low versus "
    "high probability."
)

CAPTION_FIGURE3 = (
    "<b>Figure 3.</b> Left: per-case mean rCBV in each peri-enhancing rim (grey) and in NEH "
    "(blue); thin lines join a case's values; brackets give the two-sided paired t-test of "
    "NEH versus each rim (Holm-adjusted). Right: the per-case difference NEH − rim, with "
    "the one-sided paired test of NEH &gt; rim (Holm-adjusted) above each box; the dashed "
    "line is no difference."
)

CAPTION_FIGURE4B = (
    "<b>Figure 4b.</b> Per-subject ratio of each metric to its value expected by chance "
    "(random placements of the pre-operative NEH in the brain). The dashed red line is the "
    "chance level 1."
)


def what_agreement(pair: str, tolerance_mm: float) -> str:
    """Introduction of the model-agreement section."""
    return (
        f"How closely two networks ({esc(pair)}) agree on the same scans. Dice and Jaccard "
        f"measure overlap (1 = identical, 0 = none); HD95 is a near-worst boundary distance "
        f"in mm (lower is better); surface Dice is the share of boundary within "
        f"{esc(f'{tolerance_mm:g}')} mm of the other network's boundary. Agreement is "
        f"expected to be high for the whole tumour and lower for NEH, which has no sharp "
        f"visible border."
    )


def what_rims(rims_mm: list[float]) -> str:
    """Introduction of the rims section."""
    rims = ", ".join(f"{v:g}" for v in rims_mm)
    return (
        f"Whether NEH's raised rCBV is only the usual halo around any enhancing tumour. Bands "
        f"({esc(rims)} mm wide) grown around the enhancing tumour are compared with NEH in "
        f"the same patients. If NEH is a distinct compartment, its rCBV should exceed the "
        f"bands', and the bands' rCBV should fall as they widen (more edema and normal brain)."
    )


def caption_figure1(cohort: str) -> str:
    """Caption of the example segmentations."""
    return (
        f"<b>Figure 1.</b> Example cases of the {esc(cohort)} cohort (one row each), on the "
        f"axial slice with the most NEH. First column: T1c. Four-label segmentations: green "
        f"edema, yellow enhancing tumour, red necrosis, blue NEH. Consensus maps: green low, "
        f"red high probability NEH. Last column: fused NEH probability (shown where ≥ 0.05). "
        f"{RADIOLOGICAL}"
    )


def caption_figure4(subject: str, chosen_by_metric: bool, sources: list[str]) -> str:
    """Caption of the warped pNEH on the recurrence."""
    why = (
        "the subject at the median FractionInside"
        if chosen_by_metric
        else "the first subject in alphabetical order"
    )
    return (
        f"<b>Figure 4.</b> Subject {esc(subject)} ({why}): the pre-operative NEH warped onto "
        f"the recurrence scan (red) on the enhancing tumour at recurrence (yellow); overlap "
        f"in orange. {RADIOLOGICAL} Files: {esc(', '.join(Path(p).name for p in sources))}."
    )
