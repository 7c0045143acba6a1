"""H2: rCBV in peri-enhancing rims versus the NEH compartment.

If NEH were only the usual rCBV elevation around any enhancing rim (susceptibility,
leakage, partial volume), rims of the same thickness grown around the enhancing tumour
would show the same rCBV. The rims:

- the lesion core is the enhancing tumour together with everything it encloses:
  ``fill_holes(ET | NC)``, so the necrotic inside of the ring is not "outside";
- rim_k = voxels outside the core whose Euclidean distance (mm, with the voxel spacing,
  correct for anisotropic voxels) to the core is at most k mm, for k = 2, 4, 6 — i.e.
  the paper's 0-2, 0-4 and 0-6 mm rims grown outward from the ET's outer boundary;
- necrosis, enhancing tumour and vessels are excluded when measuring (vessels through
  :mod:`nehmap.validate.perfusion`); the brain mask bounds the rims.

Tests (:func:`rim_tests`): each rim against NEH, paired by case (two-sided and the
one-sided NEH > rim, Holm-corrected), and a repeated-measures ANOVA over NEH and the
three rims together (the paper's Figure 3).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import ndimage

from nehmap.labels import ET, NC
from nehmap.validate.perfusion import PerfusionMask, region_statistics
from nehmap.validate.perfusion_tests import anova_row, mean_of_means, paired_row, untested_row

DEFAULT_RIMS_MM: tuple[float, ...] = (2.0, 4.0, 6.0)


def rim_name(distance_mm: float) -> str:
    """Column name of a rim: ``rim_2mm``."""
    return f"rim_{distance_mm:g}mm"


def lesion_core(labels: np.ndarray) -> np.ndarray:
    """Enhancing tumour plus the necrosis and holes it encloses (bool)."""
    return ndimage.binary_fill_holes(np.isin(labels, (ET, NC)))


def peri_enhancing_rims(
    labels: np.ndarray,
    spacing: Sequence[float],
    distances_mm: Sequence[float] = DEFAULT_RIMS_MM,
    brain: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Rims grown outward from the lesion core, by Euclidean distance in mm.

    Parameters
    ----------
    labels : np.ndarray
        nehmap label map (X, Y, Z) of the model whose ET defines the rims.
    spacing : Sequence[float]
        Voxel size in mm per axis.
    distances_mm : Sequence[float]
        Rim thicknesses (each rim spans 0 < d <= thickness).
    brain : np.ndarray | None
        Optional brain mask bounding the rims.

    Returns
    -------
    dict[str, np.ndarray]
        ``rim_2mm`` ... -> bool masks; empty masks when the map has no ET.
    """
    if len(spacing) != labels.ndim or any(s <= 0 for s in spacing):
        raise ValueError(f"spacing {tuple(spacing)} must be {labels.ndim} positive sizes (mm).")
    core = lesion_core(labels)
    rims = {rim_name(d): np.zeros(labels.shape, bool) for d in distances_mm}
    if not core.any():
        return rims
    reach = max(distances_mm)
    margin = [int(np.ceil(reach / s)) + 1 for s in spacing]
    idx = np.nonzero(core)
    box = tuple(
        slice(max(int(i.min()) - m, 0), min(int(i.max()) + 1 + m, n))
        for i, m, n in zip(idx, margin, labels.shape, strict=True)
    )
    distance = ndimage.distance_transform_edt(~core[box], sampling=spacing)
    excluded = np.isin(labels[box], (ET, NC))
    if brain is not None:
        excluded |= ~brain[box]
    for d in distances_mm:
        rims[rim_name(d)][box] = (distance > 0) & (distance <= d) & ~excluded
    return rims


def rim_rcbv(
    rcbv: np.ndarray,
    labels: np.ndarray,
    neh: np.ndarray,
    perfusion: PerfusionMask,
    spacing: Sequence[float],
    distances_mm: Sequence[float] = DEFAULT_RIMS_MM,
) -> pd.DataFrame:
    """Mean/median rCBV in each rim and in the NEH compartment of one case.

    Parameters
    ----------
    rcbv, labels : np.ndarray
        rCBV map and nehmap label map (X, Y, Z); the label map's ET defines the rims.
    neh : np.ndarray
        NEH mask to compare with (bool).
    perfusion : PerfusionMask
        Measurable voxels (vessels and voxels without signal excluded).
    spacing : Sequence[float]
        Voxel size in mm per axis.
    distances_mm : Sequence[float]
        Outer distances of the rims from the lesion core, in mm (default 2, 4, 6).

    Returns
    -------
    pd.DataFrame
        Rows (region, mean, median, n_voxels) for each rim and ``NEH``.
    """
    rims = peri_enhancing_rims(labels, spacing, distances_mm, brain=None)
    rows = [
        {"region": name, **region_statistics(rcbv, mask, perfusion.valid)}
        for name, mask in rims.items()
    ]
    neh_mask = neh.astype(bool) & ~np.isin(labels, (ET, NC))
    rows.append({"region": "NEH", **region_statistics(rcbv, neh_mask, perfusion.valid)})
    return pd.DataFrame(rows)


def rims_summary(cases: pd.DataFrame) -> pd.DataFrame:
    """Mean +/- SD over cases of the per-case mean rCBV per region (Figure 3's data)."""
    return mean_of_means(cases, "region")


def rim_tests(cases: pd.DataFrame) -> pd.DataFrame:
    """Cohort tests of H2 from the per-case table (case, region, mean, ...).

    Returns
    -------
    pd.DataFrame
        One row per test: test, a, b, statistic, df, p, p_adjusted, n, note.
    """
    from nehmap.stats import pairwise_tests, repeated_measures_anova

    data = cases.dropna(subset=["mean"])
    regions = [r for r in data["region"].unique() if r != "NEH"]
    rows: list[dict] = []
    complete = data.groupby("case")["region"].nunique() == data["region"].nunique()
    if int(complete.sum()) < 2 or "NEH" not in set(data["region"]):
        n = int(data["case"].nunique())
        return pd.DataFrame(
            [untested_row("rm_anova", "", n, "fewer than 2 cases with NEH and rims")]
        )
    pairs = [("NEH", r) for r in regions]
    for alternative, note in (
        ("two-sided", "NEH vs rim, paired, Holm"),
        ("greater", "H2: NEH > rim, one-sided, paired, Holm"),
    ):
        table = pairwise_tests(
            data,
            "mean",
            "region",
            subject="case",
            correction="holm",
            pairs=pairs,
            alternative=alternative,
        )
        test = "paired_t" if alternative == "two-sided" else "paired_t_greater"
        for r in table.to_dict("records"):
            rows.append(paired_row(r, test, f"{note}; mean difference {r['mean_diff']:.4g}"))
    anova = repeated_measures_anova(data, "mean", "region", "case")
    rows.append(anova_row(anova, ",".join(map(str, anova.levels))))
    return pd.DataFrame(rows)


__all__ = [
    "DEFAULT_RIMS_MM",
    "lesion_core",
    "peri_enhancing_rims",
    "rim_rcbv",
    "rim_tests",
]
