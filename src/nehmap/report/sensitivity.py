"""Sensitivity lines of the report: the same analysis done another defensible way.

H1 with large vessels: the paper leaves large vessels out in H2 only, so the study's H1
keeps every voxel with perfusion signal by default; ``rcbv_vessel_sensitivity.csv``
holds the H1 tests both ways, and this module puts the ordered test of each side on one
line per model.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from nehmap.report.formatting import format_p_phrase, model_label
from nehmap.report.html import esc, paragraph
from nehmap.report.paper import ordered

_WAYS = {"kept": "large vessels kept", "excluded": "large vessels left out"}


def _ordered_phrase(rows: pd.DataFrame) -> str:
    order = rows[rows["test"] == "ordered_one_sided"]
    if order.empty:
        return "not computed"
    return ", ".join(
        f"{r['a']} > {r['b']} {format_p_phrase(r['p_adjusted'])}" for _, r in order.iterrows()
    )


def vessel_sensitivity_html(
    table: pd.DataFrame | None, models: Sequence[str], primary: str, percentile: float
) -> str:
    """One paragraph: H1's ordered test per model with large vessels kept and left out.

    Parameters
    ----------
    table : pd.DataFrame | None
        ``rcbv_vessel_sensitivity`` (columns ``vessels`` and those of
        ``rcbv_tests``), or None.
    models : Sequence[str]
        The models in report order (others in the table follow).
    primary : str
        The way the study's H1 used (``kept`` or ``excluded``).
    percentile : float
        The brain rCBV percentile above which voxels count as large vessels.
    """
    if table is None or not {"vessels", "model", "test", "a", "b"} <= set(table.columns):
        return ""
    lines = []
    for model in ordered(table["model"], models):
        sub = table[table["model"].astype(str) == model]
        if not (sub["test"] == "ordered_one_sided").any():
            continue  # e.g. a two-level consensus map: no ET/NEH/ED order to test
        ways = "; ".join(
            f"{_WAYS[way]}{' (primary)' if way == primary else ''}: "
            f"{_ordered_phrase(sub[sub['vessels'] == way])}"
            for way in ("kept", "excluded")
            if (sub["vessels"] == way).any()
        )
        lines.append(f"{esc(model_label(model))}: {esc(ways)}")
    if not lines:
        return ""
    head = (
        "<b>Sensitivity: large vessels.</b> The paper leaves large vessels out in H2 only. "
        f"Leaving them out of H1 too (voxels above the brain's {esc(f'{percentile:g}')}th "
        "rCBV percentile) trims the most perfused tissue, the enhancing tumour first. "
        "Ordered test ET &gt; NEH &gt; ED (one-sided, Holm) both ways: "
    )
    return paragraph(head + "<br>".join(lines) + ".", raw=True)
