"""Figures drawn from the study's tables (the paper's Figures 2 and 3, Table 5, H3 ratios).

Every function takes tidy CSV tables and returns the figure as a ``data:image/png``
URI (or None when the table holds nothing to draw). Figures are built on
:class:`matplotlib.figure.Figure` objects, rendered by the Agg backend, and never touch
pyplot's global state. Points are jittered with a fixed seed, so the same tables give the
same picture.
"""

from __future__ import annotations

import base64
import io
import textwrap
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from nehmap.labels import ED, ET, LABEL_COLOURS, NC, NEH
from nehmap.report.formatting import format_p_phrase, is_missing, model_label
from nehmap.report.paper import CONSENSUS_LEVELS, ordered

DPI = 110

COMPARTMENT_COLOURS: dict[str, tuple[float, ...]] = {
    name: tuple(c / 255 for c in LABEL_COLOURS[value])
    for name, value in (("ET", ET), ("NEH", NEH), ("ED", ED), ("NC", NC))
}
"""The paper's Figure 1 colours: ET yellow, NEH blue, ED green, NC red."""

LEVEL_COLOURS: dict[str, str] = {
    "NEH-low": "#2ca02c",
    "NEH-high": "#d62728",
    "NEH-low+high": "#ff7f0e",
}
"""Consensus levels: green low, red high probability (as the paper's Figure 1d)."""

COMPARTMENTS = ("ET", "NEH", "ED", "NC")


def to_data_uri(fig: Figure) -> str:
    """Render a figure to PNG and return it as a base64 ``data:`` URI."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _values(frame: pd.DataFrame, column: str = "mean") -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
    return values[np.isfinite(values)]


def box_with_points(
    ax: Axes,
    groups: Sequence[np.ndarray],
    positions: Sequence[float],
    colours: Sequence,
    *,
    width: float = 0.6,
    seed: int = 0,
) -> None:
    """Box plots (no outlier markers) with every value drawn as a jittered point."""
    rng = np.random.default_rng(seed)
    keep = [i for i, g in enumerate(groups) if len(g)]
    if not keep:
        return
    boxes = ax.boxplot(
        [groups[i] for i in keep],
        positions=[positions[i] for i in keep],
        widths=width,
        patch_artist=True,
        showfliers=False,
        medianprops={"color": "black", "linewidth": 1.4},
        manage_ticks=False,
    )
    for patch, i in zip(boxes["boxes"], keep, strict=True):
        patch.set_facecolor(colours[i])
        patch.set_alpha(0.45)
    for i in keep:
        jitter = rng.uniform(-width * 0.28, width * 0.28, len(groups[i]))
        ax.scatter(
            positions[i] + jitter,
            groups[i],
            s=11,
            color=colours[i],
            edgecolors="black",
            linewidths=0.3,
            zorder=3,
        )


def bracket(ax: Axes, x1: float, x2: float, y: float, height: float, text: str) -> None:
    """A significance bracket between two positions with its label above."""
    ax.plot([x1, x1, x2, x2], [y, y + height, y + height, y], color="black", linewidth=0.9)
    ax.text((x1 + x2) / 2, y + height, text, ha="center", va="bottom", fontsize=8)


def _stacked_brackets(
    ax: Axes, pairs: Sequence[tuple[float, float, str]], top: float, span: float
) -> None:
    step = 0.09 * span if span > 0 else 1.0
    for k, (x1, x2, text) in enumerate(pairs):
        bracket(ax, x1, x2, top + step * (0.4 + k), 0.25 * step, text)
    if pairs:
        low, _ = ax.get_ylim()
        ax.set_ylim(low, top + step * (len(pairs) + 0.8))


def _test_p(tests: pd.DataFrame | None, column: str = "p_adjusted", **where: str) -> float:
    """The p-value of the first test row matching ``where`` (NaN when there is none)."""
    if tests is None or tests.empty:
        return float("nan")
    rows = tests
    for key, value in where.items():
        if key not in rows.columns:
            return float("nan")
        rows = rows[rows[key].astype(str) == value]
    if rows.empty or column not in rows.columns:
        return float("nan")
    value = rows.iloc[0][column]
    return float("nan") if is_missing(value) else float(value)


def _pair_p(tests: pd.DataFrame | None, test: str, a: str, b: str, **where: str) -> float:
    p = _test_p(tests, test=test, a=a, b=b, **where)
    return p if np.isfinite(p) else _test_p(tests, test=test, a=b, b=a, **where)


def _span(groups: Sequence[np.ndarray]) -> tuple[float, float]:
    filled = [g for g in groups if len(g)]
    if not filled:
        return 0.0, 1.0
    allv = np.concatenate(filled)
    return float(allv.min()), float(allv.max())


# --------------------------------------------------------------------------- Figure 2


def four_label_models(cases: pd.DataFrame, models: Sequence[str] = ()) -> list[str]:
    """Models of the rCBV table that have the four compartments ET, NEH, ED, NC."""
    have = cases[cases["compartment"].isin(COMPARTMENTS)]["model"]
    return ordered(have, models)


def rcbv_compartments_figure(
    cases: pd.DataFrame, tests: pd.DataFrame | None, models: Sequence[str] = ()
) -> str | None:
    """The paper's Figure 2: per-case mean rCBV in ET, NEH, ED and NC, one panel per model.

    Brackets mark the one-sided paired tests of the expected order ET > NEH > ED
    (Holm-adjusted p); each panel's title gives the repeated-measures ANOVA p-value.
    """
    chosen = four_label_models(cases, models)
    if not chosen:
        return None
    fig = Figure(figsize=(3.3 * len(chosen) + 0.6, 4.4))
    axes = np.atleast_1d(fig.subplots(1, len(chosen), sharey=True, squeeze=False)[0])
    for ax, model in zip(axes, chosen, strict=True):
        sub = cases[cases["model"] == model]
        groups = [_values(sub[sub["compartment"] == c]) for c in COMPARTMENTS]
        positions = list(range(len(COMPARTMENTS)))
        box_with_points(ax, groups, positions, [COMPARTMENT_COLOURS[c] for c in COMPARTMENTS])
        ax.set_xticks(
            positions, [f"{c}\n(n={len(g)})" for c, g in zip(COMPARTMENTS, groups, strict=True)]
        )
        low, high = _span(groups)
        pairs = []
        for a, b in (("ET", "NEH"), ("NEH", "ED")):
            p = _pair_p(tests, "ordered_one_sided", a, b, model=model)
            if np.isfinite(p):
                pairs.append(
                    (
                        COMPARTMENTS.index(a),
                        COMPARTMENTS.index(b),
                        f"{a} > {b}: {format_p_phrase(p)}",
                    )
                )
        _stacked_brackets(ax, pairs, high, high - low)
        anova = _test_p(tests, column="p", test="rm_anova", model=model)
        title = model_label(model)
        if np.isfinite(anova):
            title += f"\nrm-ANOVA (ET, NEH, ED): {format_p_phrase(anova)}"
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("mean rCBV in the compartment (per case)")
    fig.tight_layout()
    return to_data_uri(fig)


# --------------------------------------------------------------------------- Table 5 panel


def consensus_figure(
    cases: pd.DataFrame, tests: pd.DataFrame | None, models: Sequence[str] = ()
) -> str | None:
    """Per-case mean rCBV in NEH of each model and in the consensus levels (Table 5).

    Four-label models contribute a blue NEH box; each consensus model its low (green),
    high (red) and low+high (orange) levels, with the paired low-vs-high p-value.
    """
    entries: list[tuple[str, str, str]] = []  # (model, compartment, colour)
    for model in ordered(cases["model"], models):
        sub = cases[cases["model"] == model]
        present = set(sub["compartment"].astype(str))
        if "NEH" in present:
            entries.append((model, "NEH", COMPARTMENT_COLOURS["NEH"]))
        entries.extend((model, c, LEVEL_COLOURS[c]) for c in CONSENSUS_LEVELS if c in present)
    if not any(c in CONSENSUS_LEVELS for _, c, _ in entries):
        return None
    groups = [
        _values(cases[(cases["model"] == m) & (cases["compartment"] == c)]) for m, c, _ in entries
    ]
    fig = Figure(figsize=(max(5.0, 1.05 * len(entries) + 1.5), 4.4))
    ax = fig.subplots()
    positions = list(range(len(entries)))
    box_with_points(ax, groups, positions, [c for _, _, c in entries], seed=1)
    labels = [
        f"{c.removeprefix('NEH-') if c != 'NEH' else 'NEH'}\n(n={len(g)})"
        for (_, c, _), g in zip(entries, groups, strict=True)
    ]
    ax.set_xticks(positions, labels, fontsize=8)
    _group_labels(ax, [m for m, _, _ in entries])
    low, high = _span(groups)
    pairs = []
    for model in dict.fromkeys(m for m, _, _ in entries):
        keys = [(m, c) for m, c, _ in entries]
        if (model, "NEH-low") in keys and (model, "NEH-high") in keys:
            p = _pair_p(tests, "paired_t", "NEH-low", "NEH-high", model=model)
            if np.isfinite(p):
                pairs.append(
                    (
                        keys.index((model, "NEH-low")),
                        keys.index((model, "NEH-high")),
                        f"low vs high: {format_p_phrase(p)}",
                    )
                )
    _stacked_brackets(ax, pairs, high, high - low)
    ax.set_ylabel("mean rCBV in NEH (per case)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return to_data_uri(fig)


def _group_labels(ax: Axes, owners: Sequence[str]) -> None:
    """Model names under runs of ticks that belong to them, with separators between."""
    transform = ax.get_xaxis_transform()
    start = 0
    for i in range(1, len(owners) + 1):
        if i < len(owners) and owners[i] == owners[start]:
            continue
        name = model_label(owners[start]).replace(" (two levels)", "")
        ax.text(
            (start + i - 1) / 2,
            -0.2,
            name,
            transform=transform,
            ha="center",
            va="top",
            fontsize=9,
            fontweight="bold",
        )
        if i < len(owners):
            ax.axvline(i - 0.5, color="0.7", lw=0.8, ls=":")
        start = i


# --------------------------------------------------------------------------- Figure 3


def rim_order(regions: Sequence[str]) -> list[str]:
    """Rims by thickness (``rim_2mm`` before ``rim_10mm``), then NEH, then others."""

    def thickness(name: str) -> float:
        digits = name.removeprefix("rim_").removesuffix("mm")
        try:
            return float(digits)
        except ValueError:
            return float("inf")

    unique = list(dict.fromkeys(str(r) for r in regions))
    rims = sorted((r for r in unique if r.startswith("rim_")), key=thickness)
    rest = [r for r in unique if r not in rims and r != "NEH"]
    return rims + (["NEH"] if "NEH" in unique else []) + rest


def _paired_wide(cases: pd.DataFrame, regions: Sequence[str]) -> pd.DataFrame:
    data = cases.dropna(subset=["mean"])
    wide = data.pivot_table(index="case", columns="region", values="mean", aggfunc="first")
    return wide.reindex(columns=list(regions))


def rims_figure(cases: pd.DataFrame, tests: pd.DataFrame | None) -> str | None:
    """The paper's Figure 3: rCBV in each peri-enhancing rim and in NEH.

    Left: per-case means with lines joining a case's values and brackets giving the
    two-sided paired NEH-vs-rim p (Holm). Right: per-case difference NEH - rim, with the
    one-sided p of NEH > rim (Holm) above each box.
    """
    regions = rim_order(cases["region"])
    if not regions:
        return None
    wide = _paired_wide(cases, regions)
    groups = [wide[r].dropna().to_numpy(dtype=float) for r in regions]
    grey = {r: str(0.85 - 0.2 * i) for i, r in enumerate(x for x in regions if x != "NEH")}
    colours = [COMPARTMENT_COLOURS["NEH"] if r == "NEH" else grey.get(r, "0.6") for r in regions]
    rims = [r for r in regions if r != "NEH"]
    has_neh = "NEH" in regions and len(rims) > 0
    fig = Figure(figsize=(11.0 if has_neh else 6.0, 4.6))
    axes = fig.subplots(1, 2 if has_neh else 1, squeeze=False)[0]
    ax = axes[0]
    positions = list(range(len(regions)))
    complete = wide.dropna()
    if len(complete) <= 200:
        for _, row in complete.iterrows():
            ax.plot(positions, row.to_numpy(dtype=float), color="0.55", alpha=0.25, lw=0.6)
    box_with_points(ax, groups, positions, colours, seed=2)
    ax.set_xticks(
        positions,
        [f"{r.replace('_', ' ')}\n(n={len(g)})" for r, g in zip(regions, groups, strict=True)],
    )
    ax.set_ylabel("mean rCBV in the region (per case)")
    ax.grid(axis="y", alpha=0.3)
    low, high = _span(groups)
    if has_neh:
        neh = regions.index("NEH")
        pairs = []
        for rim in rims:
            p = _pair_p(tests, "paired_t", "NEH", rim)
            if np.isfinite(p):
                pairs.append((regions.index(rim), neh, format_p_phrase(p)))
        _stacked_brackets(ax, pairs, high, high - low)
        anova = _test_p(tests, column="p", test="rm_anova")
        title = "rCBV per region"
        if np.isfinite(anova):
            title += f"\nrm-ANOVA (NEH and rims): {format_p_phrase(anova)}"
        ax.set_title(title, fontsize=10)
        _rim_differences(axes[1], wide, rims, tests)
    fig.tight_layout()
    return to_data_uri(fig)


def _rim_differences(
    ax: Axes, wide: pd.DataFrame, rims: Sequence[str], tests: pd.DataFrame | None
) -> None:
    diffs = [(wide["NEH"] - wide[r]).dropna().to_numpy(dtype=float) for r in rims]
    positions = list(range(len(rims)))
    box_with_points(ax, diffs, positions, [COMPARTMENT_COLOURS["NEH"]] * len(rims), seed=3)
    ax.axhline(0.0, color="black", lw=0.9, ls="--")
    ax.set_xticks(positions, [f"NEH − {r.replace('_', ' ')}" for r in rims])
    ax.set_ylabel("difference in mean rCBV (per case)")
    ax.set_title("NEH minus rim, paired by case\n(one-sided test NEH > rim, Holm)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    low, high = _span(diffs)
    offset = 0.04 * (high - low if high > low else 1.0)
    for x, (rim, d) in enumerate(zip(rims, diffs, strict=True)):
        p = _pair_p(tests, "paired_t_greater", "NEH", rim)
        if np.isfinite(p) and len(d):
            ax.text(x, high + offset, format_p_phrase(p), ha="center", va="bottom", fontsize=8)
    if diffs and any(len(d) for d in diffs):
        ax.set_ylim(min(low, 0.0) - offset, high + 4 * offset)


# --------------------------------------------------------------------------- H3 ratios


def recurrence_ratio_figure(cases: pd.DataFrame) -> str | None:
    """Per-subject ratio observed / expected by chance of each recurrence metric.

    A dashed line marks the chance level 1; the axis is logarithmic when the ratios
    span more than a factor of 20.
    """
    if "ratio" not in cases.columns or "metric" not in cases.columns:
        return None
    metrics = ordered(cases["metric"], ())
    groups = []
    for metric in metrics:
        values = _values(cases[cases["metric"] == metric], "ratio")
        groups.append(values)
    if not any(len(g) for g in groups):
        return None
    fig = Figure(figsize=(max(5.0, 1.6 * len(metrics) + 1.5), 4.2))
    ax = fig.subplots()
    positions = list(range(len(metrics)))
    box_with_points(ax, groups, positions, ["#6a8fc7"] * len(metrics), seed=4)
    ax.axhline(1.0, color="#b22222", ls="--", lw=1.1, label="chance level (ratio 1)")
    labels = [
        f"{textwrap.fill(m.replace('_', ' '), 14)}\n(n={len(g)})"
        for m, g in zip(metrics, groups, strict=True)
    ]
    ax.set_xticks(positions, labels, fontsize=8)
    allv = np.concatenate([g for g in groups if len(g)])
    positive = allv[allv > 0]
    if len(positive) == len(allv) and positive.max() / positive.min() > 20:
        ax.set_yscale("log")
    ax.set_ylabel("observed / expected by chance")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return to_data_uri(fig)
