"""H1: rCBV per tumour compartment, per model.

For each case and each model's segmentation, the mean and median rCBV within the
enhancing tumour (ET), NEH, edema (ED) and necrosis (NC), over the measurable voxels
(:mod:`nehmap.validate.perfusion`). A consensus-family segmentation (two levels:
1 low-, 2 high-probability NEH) gives the compartments ``NEH-low``, ``NEH-high`` and
``NEH-low+high`` instead (the paper's Table 5).

Cohort statistics per model (:func:`rcbv_tests`):

- repeated-measures ANOVA of the mean rCBV over ET, NEH and ED (compartments share a
  case, so the case is the subject; Greenhouse-Geisser corrected p reported too). NC is
  described but left out of the tests: its perfusion is ambivalent (the paper's 3.2.1);
- paired post-hoc t-tests between those compartments, Holm-corrected;
- the expected order ET > NEH > ED, each adjacent pair tested one-sided (paired,
  Holm-corrected);
- for the consensus levels: NEH-low versus NEH-high, paired, two-sided.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from nehmap.labels import ED, ET, NC, NEH
from nehmap.validate.perfusion import PerfusionMask, region_statistics
from nehmap.validate.perfusion_tests import (
    TEST_ROW_COLUMNS,
    anova_row,
    mean_of_means,
    paired_row,
    untested_row,
)

COMPARTMENTS: dict[str, tuple[int, ...]] = {"ET": (ET,), "NEH": (NEH,), "ED": (ED,), "NC": (NC,)}
CONSENSUS_COMPARTMENTS: dict[str, tuple[int, ...]] = {
    "NEH-low": (1,),
    "NEH-high": (2,),
    "NEH-low+high": (1, 2),
}
TESTED = ("ET", "NEH", "ED")

CASE_COLUMNS = ["case", "model", "compartment", "mean", "median", "n_voxels"]


def compartment_rcbv(
    rcbv: np.ndarray, labels: np.ndarray, perfusion: PerfusionMask, *, consensus: bool = False
) -> pd.DataFrame:
    """Mean/median rCBV per compartment of one segmentation.

    Parameters
    ----------
    rcbv : np.ndarray
        rCBV map (X, Y, Z).
    labels : np.ndarray
        nehmap label map, or a two-level consensus map when ``consensus``.
    perfusion : PerfusionMask
        The measurable voxels.
    consensus : bool
        ``labels`` is a two-level consensus map (1 low, 2 high NEH probability): the
        compartments are ``NEH-low``, ``NEH-high`` and ``NEH-low+high``.

    Returns
    -------
    pd.DataFrame
        Rows (compartment, mean, median, n_voxels).
    """
    if rcbv.shape != labels.shape:
        raise ValueError(
            f"rCBV map {rcbv.shape} and segmentation {labels.shape} are on different grids."
        )
    compartments = CONSENSUS_COMPARTMENTS if consensus else COMPARTMENTS
    rows = []
    for name, values in compartments.items():
        stats = region_statistics(rcbv, np.isin(labels, values), perfusion.valid)
        rows.append({"compartment": name, **stats})
    return pd.DataFrame(rows)


def _test_rows(model: str, frame: pd.DataFrame) -> list[dict]:
    from nehmap.stats import ordered_test, pairwise_tests, repeated_measures_anova

    rows: list[dict] = []
    data = frame[frame["compartment"].isin(TESTED)].dropna(subset=["mean"])
    complete = data.groupby("case")["compartment"].nunique()
    n_complete = int((complete == len(TESTED)).sum())
    if n_complete >= 2:
        anova = repeated_measures_anova(data, "mean", "compartment", "case")
        rows.append({"model": model, **anova_row(anova, "ET,NEH,ED")})
        pairs = pairwise_tests(data, "mean", "compartment", subject="case", correction="holm")
        for r in pairs.to_dict("records"):
            note = f"mean difference {r['mean_diff']:.4g}; Holm"
            rows.append({"model": model, **paired_row(r, "paired_t", note)})
        order = ordered_test(data, "mean", "compartment", order=TESTED, subject="case")
        for r in order.table.to_dict("records"):
            note = f"H1: {r['a']} > {r['b']}; order holds overall: {order.conclusion}"
            rows.append({"model": model, **paired_row(r, "ordered_one_sided", note)})
    else:
        note = "fewer than 2 cases with ET, NEH and ED all present"
        rows.append({"model": model, **untested_row("rm_anova", "ET,NEH,ED", n_complete, note)})
    levels = frame[frame["compartment"].isin(["NEH-low", "NEH-high"])].dropna(subset=["mean"])
    both = levels.groupby("case")["compartment"].nunique()
    if int((both == 2).sum()) >= 2:
        pairs = pairwise_tests(levels, "mean", "compartment", subject="case", correction=None)
        for r in pairs.to_dict("records"):
            note = "consensus levels: low vs high probability NEH"
            rows.append({"model": model, **paired_row(r, "paired_t", note, adjusted=False)})
    return rows


def rcbv_tests(cases: pd.DataFrame, models: Sequence[str] | None = None) -> pd.DataFrame:
    """Cohort tests of H1 per model from the per-case table (columns of :data:`CASE_COLUMNS`).

    Returns
    -------
    pd.DataFrame
        One row per test: model, test, a, b, statistic, df, p, p_adjusted, n, note.
    """
    rows: list[dict] = []
    for model in models or sorted(cases["model"].unique()):
        rows.extend(_test_rows(model, cases[cases["model"] == model]))
    return pd.DataFrame(rows, columns=["model", *TEST_ROW_COLUMNS])


def rcbv_summary(cases: pd.DataFrame) -> pd.DataFrame:
    """Mean +/- SD over cases of the per-case mean rCBV, per model and compartment
    (the data of the paper's Figure 2 and Table 5)."""
    return mean_of_means(cases, ["model", "compartment"], median=True)


VESSEL_VARIANTS: tuple[str, ...] = ("kept", "excluded")
"""H1's two ways with large vessels: ``kept`` (the paper) and ``excluded``."""


def vessel_sensitivity(by_variant: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """H1's cohort tests with large vessels kept and excluded, side by side.

    The paper leaves out large vessels in H2 only. Leaving them out of H1 too trims the
    most perfused tissue, the enhancing tumour first, and pulls ET > NEH > ED towards no
    difference; this table shows how much.

    Parameters
    ----------
    by_variant : Mapping[str, pd.DataFrame]
        ``"kept"`` and/or ``"excluded"`` -> per-case table (columns of
        :data:`CASE_COLUMNS`) measured that way.

    Returns
    -------
    pd.DataFrame
        :func:`rcbv_tests` rows of each variant with a leading ``vessels`` column.
    """
    frames = []
    for variant in VESSEL_VARIANTS:
        cases = by_variant.get(variant)
        if cases is None or not len(cases):
            continue
        frames.append(rcbv_tests(cases).assign(vessels=variant))
    if not frames:
        return pd.DataFrame()
    table = pd.concat(frames, ignore_index=True)
    return table[["vessels", *[c for c in table.columns if c != "vessels"]]]
