"""Which rCBV voxels can be measured: perfusion signal present, large vessels excluded.

Large vessels carry rCBV values far above any tissue's and would dominate a
compartment's mean. They are excluded either with a vessel mask, when one is given, or
as the voxels whose rCBV lies above a percentile of the brain's rCBV values (default the
99th). Voxels without perfusion signal (rCBV <= ``min_value``, default 0, or not
finite) are excluded too: DSC maps are zero or undefined outside the perfused brain and
in susceptibility dropouts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_VESSEL_PERCENTILE = 99.0


@dataclass(frozen=True)
class PerfusionMask:
    """The measurable rCBV voxels of a case.

    Attributes
    ----------
    valid : np.ndarray
        bool (X, Y, Z): brain voxels with signal and not vessel.
    vessels : np.ndarray
        bool (X, Y, Z): voxels excluded as large vessels.
    no_signal : np.ndarray
        bool (X, Y, Z): brain voxels excluded for lack of signal.
    vessel_threshold : float
        The rCBV value above which voxels count as vessels (NaN when a
        vessel mask was given).
    """

    valid: np.ndarray
    vessels: np.ndarray
    no_signal: np.ndarray
    vessel_threshold: float


def perfusion_mask(
    rcbv: np.ndarray,
    brain: np.ndarray,
    *,
    vessel_percentile: float | None = DEFAULT_VESSEL_PERCENTILE,
    vessel_mask: np.ndarray | None = None,
    min_value: float = 0.0,
) -> PerfusionMask:
    """Split the brain's voxels into measurable, vessel and no-signal voxels.

    Parameters
    ----------
    rcbv : np.ndarray
        rCBV map, float (X, Y, Z).
    brain : np.ndarray
        Brain mask, bool (X, Y, Z).
    vessel_percentile : float | None
        Percentile (0-100) of the brain's rCBV above which voxels are
        vessels; None to exclude no vessels by value.
    vessel_mask : np.ndarray | None
        Explicit vessel mask (bool), used instead of the percentile.
    min_value : float
        rCBV at or below which a voxel has no perfusion signal.
    """
    if rcbv.shape != brain.shape:
        raise ValueError(
            f"rCBV map of shape {rcbv.shape} and brain mask of shape {brain.shape} differ: "
            "put the rCBV map on the structural grid first."
        )
    signal = brain & np.isfinite(rcbv) & (rcbv > min_value)
    threshold = float("nan")
    if vessel_mask is not None:
        vessels = signal & vessel_mask.astype(bool)
    elif vessel_percentile is not None and signal.any():
        if not 0 < vessel_percentile <= 100:
            raise ValueError(f"vessel_percentile must be in (0, 100], got {vessel_percentile}.")
        threshold = float(np.percentile(rcbv[signal], vessel_percentile))
        vessels = signal & (rcbv > threshold)
    else:
        vessels = np.zeros_like(signal)
    return PerfusionMask(signal & ~vessels, vessels, brain & ~signal, threshold)


def region_statistics(rcbv: np.ndarray, region: np.ndarray, valid: np.ndarray) -> dict:
    """Mean, median and voxel count of rCBV in ``region & valid`` (NaN when empty)."""
    values = rcbv[region & valid]
    if values.size == 0:
        return {"mean": float("nan"), "median": float("nan"), "n_voxels": 0}
    return {
        "mean": float(values.mean()),
        "median": float(np.median(values)),
        "n_voxels": int(values.size),
    }
