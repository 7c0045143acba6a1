"""The H3 section's primary test: which test, why, its measured calibration, and a figure.

The calibration numbers are read from ``nehmap/report/data/h3_calibration.json``, the
committed output of ``benchmarks/bench_h3_calibration.py``; nothing is recomputed when a
report is built.
"""

from __future__ import annotations

import json
import math
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from nehmap.report.examples import RecurrenceMaps, crop_box, radiological
from nehmap.report.figures import to_data_uri
from nehmap.report.formatting import format_p_phrase, is_missing
from nehmap.report.html import esc

CALIBRATION_FILE = "h3_calibration.json"
HEADLINE_N = 24
CONTROL_COLOUR = (0.1, 0.75, 0.95)

WHY_PRIMARY = (
    "<b>Primary H3 test.</b> The distance-matched chance model's rank test "
    "(<i>matched</i>, <i>chance_rank</i>), Holm-adjusted across the four paper metrics. "
    "Each subject's pNEH is compared with placements of the same shape at the same "
    "distances from the tumour core (the resection cavity after warping), in tissue that "
    "could hold NEH; the test asks whether the pNEH is nearer to the recurrence than "
    "<i>other tissue equally near the tumour</i>. Recurrences arise at the resection "
    "margin whatever their origin, so the paper's whole-brain chance model (<i>brain</i>, "
    "reported as the paper in Table 7) also finds 'agreement' for tissue that merely lies "
    "beside the cavity; its measured false-positive rate is far above 5 %."
)


@cache
def calibration() -> dict[str, Any] | None:
    """The committed calibration record, or None when the package lacks it."""
    try:
        raw = resources.files("nehmap.report").joinpath("data", CALIBRATION_FILE).read_text()
    except (FileNotFoundError, OSError):
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return None


def _rate(record: dict, model: str, test: str, metric: str, scenario: str, n: int) -> dict | None:
    for row in record.get("rows", []):
        if (row["chance_model"], row["test"], row["metric"], row["scenario"], row["n"]) == (
            model,
            test,
            metric,
            scenario,
            n,
        ):
            return row
    return None


def _pct(row: dict | None, interval: bool = True) -> str:
    if row is None or row.get("rate") is None or math.isnan(row["rate"]):
        return "not measured"
    text = f"{100 * row['rate']:.1f} %"
    if interval:
        text += f" (95 % CI {100 * row['ci_low']:.1f}-{100 * row['ci_high']:.1f} %)"
    return text


def calibration_headline(record: dict | None = None) -> str:
    """One sentence: the primary test's false-positive rate and power, and the paper's test.

    Parameters
    ----------
    record : dict | None
        A calibration record (default: the committed one).

    Returns
    -------
    str
        HTML text; a note that the calibration is missing when there is none.
    """
    record = record if record is not None else calibration()
    if not record:
        return "The calibration of the H3 tests was not found in this installation."
    n = HEADLINE_N
    any_metric = "any (Holm)"
    fpr_wall = _rate(record, "matched", "chance_rank", any_metric, "H3 false (wall)", n)
    fpr_away = _rate(record, "matched", "chance_rank", any_metric, "H3 false (away)", n)
    power = _rate(record, "matched", "chance_rank", any_metric, "H3 true (90 %)", n)
    paper_fpr = _rate(record, "brain", "paper", any_metric, "H3 false (away)", n)
    cohorts = (fpr_wall or {}).get("cohorts", "?")
    return (
        f"<b>Calibration</b> ({esc(record.get('benchmark', 'benchmark'))}, {esc(cohorts)} "
        f"simulated cohorts of {n} subjects per cell, label maps without registration, "
        f"alpha = 0.05): the primary test rejects in {_pct(fpr_wall)} of cohorts whose "
        f"recurrences grow from the cavity wall independently of NEH, and in "
        f"{_pct(fpr_away)} when they grow from the wall at least 10 mm from NEH "
        f"(false-positive rates); it finds H3 in {_pct(power)} of cohorts where 90 % of "
        f"recurrences grow from NEH (power). The paper's test rejects in "
        f"{_pct(paper_fpr, interval=False)} of the cohorts whose recurrences grow away "
        f"from NEH. The full table is in docs/method.md."
    )


PRIMARY_COLUMNS = {
    "metric": "metric",
    "observed_mean": "mean chance rank",
    "p_value": "one-sided p",
    "p_adjusted": "Holm-adjusted p",
    "n": "subjects",
}


def primary_rows(tests: pd.DataFrame | None) -> pd.DataFrame | None:
    """The primary test's rows of ``recurrence_tests.csv``, or None."""
    if tests is None or "primary" not in tests.columns:
        return None
    flags = tests["primary"].astype(str).str.strip().str.lower() == "true"
    rows = tests[flags]
    return rows if len(rows) else None


def primary_verdict(rows: pd.DataFrame) -> str:
    """A sentence on the primary test's outcome (or why it was not computed)."""
    adjusted = pd.to_numeric(rows.get("p_adjusted"), errors="coerce")
    if adjusted is None or adjusted.isna().all():
        notes = sorted({str(n) for n in rows.get("note", []) if not is_missing(n)})
        why = "; ".join(notes) if notes else "no usable subjects"
        return f"The primary test was not computed ({esc(why)})."
    smallest = float(adjusted.min())
    tied = rows[adjusted == smallest]
    outcome = "supports" if smallest < 0.05 else "does not support"
    names = [str(m) for m in tied["metric"]]
    which = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    if len(names) == len(rows) > 1:
        which = f"every metric ({which})"
    return (
        f"The primary test {outcome} H3: smallest Holm-adjusted p "
        f"({esc(format_p_phrase(tied['p_adjusted'].iloc[0]))}) for {esc(which)}."
    )


def matched_controls_figure(maps: RecurrenceMaps) -> str | None:
    """pNEH (red), its distance-matched placements (cyan outlines) and the recurrence ET.

    The axial slice with the most pNEH, placement and ET voxels together, over the
    recurrence T1c when available. None when the maps hold no matched placements.
    """
    controls = getattr(maps, "controls", None)
    if controls is None or not np.any(controls):
        return None
    from matplotlib.colors import to_rgba

    stack = [maps.pneh, controls > 0, maps.et]
    counts = sum(np.count_nonzero(m, axis=(0, 1)) for m in stack)
    k = int(np.argmax(counts))
    pneh = radiological(maps.pneh[:, :, k])
    et = radiological(maps.et[:, :, k])
    ctrl = radiological(controls[:, :, k])
    bg = None if maps.background is None else radiological(maps.background[:, :, k])
    rows, cols = crop_box([pneh, et, ctrl], margin=12)
    pneh, et, ctrl = pneh[rows, cols], et[rows, cols], ctrl[rows, cols]
    aspect = maps.spacing[1] / maps.spacing[0]
    fig = Figure(figsize=(4.4, 4.4))
    ax = fig.subplots()
    if bg is not None:
        bg = bg[rows, cols]
        lo, hi = np.percentile(bg[np.isfinite(bg)], [1, 99]) if bg.size else (0, 1)
        ax.imshow(bg, cmap="gray", vmin=lo, vmax=hi, aspect=aspect, interpolation="nearest")
    else:
        ax.imshow(np.zeros(pneh.shape), cmap="gray", aspect=aspect, interpolation="nearest")
    overlay = np.zeros((*pneh.shape, 4))
    overlay[et] = to_rgba((1.0, 0.85, 0.0), 0.6)
    overlay[pneh] = to_rgba((0.84, 0.15, 0.16), 0.7)
    ax.imshow(overlay, aspect=aspect, interpolation="nearest")
    for label in np.unique(ctrl[ctrl > 0]):
        ax.contour(ctrl == label, levels=[0.5], colors=[CONTROL_COLOUR], linewidths=0.9)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{maps.subject}, axial slice {k}", fontsize=9)
    handles = [
        Patch(color=(0.84, 0.15, 0.16), label="pNEH"),
        Patch(facecolor="none", edgecolor=CONTROL_COLOUR, label="matched placements"),
        Patch(color=(1.0, 0.85, 0.0), label="recurrence ET"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.subplots_adjust(left=0.03, right=0.97, top=0.92, bottom=0.1)
    return to_data_uri(fig)


CAPTION_MATCHED = (
    "<b>Figure 4c.</b> The primary test's chance model for one subject: the warped "
    "pre-operative NEH (red), up to eight of its distance-matched placements (cyan "
    "outlines; the least overlapping pNEH first: same distances to the tumour core, in "
    "tissue that could hold NEH) and the enhancing tumour at recurrence (yellow). The "
    "subject's chance rank is the share of all its placements that lie farther from (or "
    "overlap less with) the recurrence than the pNEH."
)
