"""ED versus NEH intensities per modality (the paper's Tables 3 and 4).

Per case and model: the mean intensity of each modality within the edema (label 2) and
within NEH (label 3). Intensities are the scan's own values by default (as in the
paper); ``normalise="zscore"`` z-scores each modality inside the brain first, which
removes scanner scaling but not the within-case contrast.

Across cases, a linear mixed-effects model per model and modality,
``mean ~ C(label) + (1 | case)`` with ED as reference, gives the NEH - ED effect
(estimate, SE, z and t, omnibus F and p; see :func:`nehmap.stats.mixed_model`). The
random intercept per case absorbs the scanner's global intensity level, so the
estimate is the within-case difference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from nehmap.labels import ED, LABEL_NAMES, NEH

DEFAULT_LABELS: tuple[int, ...] = (ED, NEH)


def label_intensities(
    images: Mapping[str, np.ndarray],
    labels: np.ndarray,
    *,
    label_values: Sequence[int] = DEFAULT_LABELS,
    brain: np.ndarray | None = None,
    normalise: str | None = None,
) -> pd.DataFrame:
    """Mean intensity per modality within each label.

    Parameters
    ----------
    images : Mapping[str, np.ndarray]
        Modality -> array (X, Y, Z).
    labels : np.ndarray
        nehmap label map (X, Y, Z).
    label_values : Sequence[int]
        Labels to measure.
    brain : np.ndarray | None
        Brain mask for ``normalise="zscore"`` (default: non-zero voxels).
    normalise : str | None
        None (raw values) or ``"zscore"`` (per modality inside the brain).

    Returns
    -------
    pd.DataFrame
        Rows (modality, label, label_name, mean, n_voxels); mean is NaN for absent labels.
    """
    rows = []
    for modality, image in images.items():
        data = image.astype(np.float64)
        if normalise == "zscore":
            mask = brain if brain is not None else image != 0
            values = data[mask]
            data = (data - values.mean()) / values.std()
        elif normalise is not None:
            raise ValueError(f"normalise must be None or 'zscore', got {normalise!r}.")
        for value in label_values:
            voxels = data[labels == value]
            rows.append(
                {
                    "modality": modality,
                    "label": int(value),
                    "label_name": LABEL_NAMES[int(value)],
                    "mean": float(voxels.mean()) if voxels.size else float("nan"),
                    "n_voxels": int(voxels.size),
                }
            )
    return pd.DataFrame(rows)


def intensity_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean +/- SD over cases per model, modality and label (Table 3's numbers)."""
    if "label_name" not in table.columns:
        table = table.assign(label_name=table["label"].map(LABEL_NAMES))
    grouped = table.dropna(subset=["mean"]).groupby(["model", "modality", "label_name"])["mean"]
    return (
        grouped.agg(["mean", "std", "count"])
        .reset_index()
        .rename(columns={"mean": "mean_of_means", "std": "sd", "count": "n_cases"})
    )


def intensity_tests(table: pd.DataFrame, reference: int = ED, level: int = NEH) -> pd.DataFrame:
    """Mixed model NEH vs ED per model and modality (Table 4).

    Parameters
    ----------
    table : pd.DataFrame
        Rows (case, model, modality, label, mean) from :func:`label_intensities`.
    reference : int
        Label of the reference level of the mixed model (default ED).
    level : int
        Label compared with it (default NEH); the estimate is ``level - reference``.

    Returns
    -------
    pd.DataFrame
        One row per (model, modality): estimate (NEH - ED, intensity units), se, z, t
        (= z on the model's denominator df), F, df_num, df_den, p (of F), n_cases,
        converged, warnings.
    """
    from nehmap.stats import mixed_model

    rows = []
    for (model, modality), data in table.dropna(subset=["mean"]).groupby(["model", "modality"]):
        data = data[data["label"].isin([reference, level])]
        row = {"model": model, "modality": modality, "n_cases": int(data["case"].nunique())}
        if data["case"].nunique() < 3 or data["label"].nunique() < 2:
            rows.append({**row, "note": "fewer than 3 cases with both labels"})
            continue
        result = mixed_model(data, "mean", "label", "case", reference=reference)
        contrast = result.contrasts.set_index("level").loc[level]
        rows.append(
            {
                **row,
                "estimate": float(contrast["estimate"]),
                "se": float(contrast["se"]),
                "z": float(contrast["z"]),
                "p_z": float(contrast["p"]),
                "F": result.F,
                "df_num": result.df_num,
                "df_den": result.df_den,
                "p": result.p_F,
                "converged": result.converged,
                "warnings": " | ".join(result.warnings),
                "note": f"{LABEL_NAMES[level]} - {LABEL_NAMES[reference]}",
            }
        )
    return pd.DataFrame(rows)
