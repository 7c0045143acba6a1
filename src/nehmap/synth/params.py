"""Parameters of the synthetic cases: defaults, overrides and per-case draws.

Every parameter has a default in :data:`DEFAULT_PARAMS`. A value that is a pair
``(low, high)`` is a range: each case draws its value uniformly from it. A single
number fixes the value for every case. Dictionaries (e.g. ``rcbv_means``) are merged
key by key with the defaults. All lengths are in mm.

Pass overrides as ``params={...}`` to :func:`nehmap.synth.generate_case`; the values
actually used by a case (draws included) are recorded in ``SyntheticCase.params``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

MODALITIES: tuple[str, ...] = ("t1", "t1c", "t2", "flair")
"""Structural modalities, in nehmap's order."""

TISSUES: tuple[str, ...] = ("WM", "GM", "CSF", "NC", "ED", "NEH", "ET", "CAVITY")
"""Classes with an intensity in every modality (CAVITY: resection cavity)."""

_DEFAULT_INTENSITIES: dict[str, dict[str, float]] = {
    # relative signal before bias, noise and the global scale; WM of T1 is 1
    # T1: WM > GM > CSF; tumour dark, edema dark-ish.
    "t1": {"WM": 1.00, "GM": 0.62, "CSF": 0.22, "NC": 0.30, "ED": 0.70, "ET": 0.72, "CAVITY": 0.22},
    # T1c: like T1, enhancing rim bright.
    "t1c": {
        "WM": 1.00,
        "GM": 0.64,
        "CSF": 0.24,
        "NC": 0.32,
        "ED": 0.72,
        "ET": 1.55,
        "CAVITY": 0.24,
    },
    # T2: CSF > GM > WM; necrosis and edema bright.
    "t2": {"WM": 0.50, "GM": 0.72, "CSF": 1.50, "NC": 1.35, "ED": 1.05, "ET": 0.90, "CAVITY": 1.50},
    # FLAIR: GM > WM, CSF suppressed; edema bright.
    "flair": {
        "WM": 0.70,
        "GM": 0.90,
        "CSF": 0.18,
        "NC": 0.85,
        "ED": 1.45,
        "ET": 1.10,
        "CAVITY": 0.20,
    },
}

DEFAULT_PARAMS: Mapping[str, Any] = MappingProxyType(
    {
        # --- tumour geometry (mm) -------------------------------------------------
        "tumour_radius_mm": (12.0, 24.0),  # equivalent radius of the enhancing bulk
        "shape_irregularity": (0.15, 0.30),  # relative radial perturbation (lobulation)
        "shape_scale_mm": (5.0, 9.0),  # correlation length of the lobulation
        "et_thickness_mm": (2.0, 5.0),  # local enhancing-rim thickness range
        "neh_thickness_mm": (2.0, 6.0),  # local NEH layer thickness range
        "neh_coverage": (0.3, 0.7),  # fraction of the rim's outer surface under NEH
        "neh_patch_scale_mm": (6.0, 10.0),  # correlation length of the NEH patches
        "edema_extent_mm": (10.0, 30.0),  # edema reach beyond the rim (in white matter)
        "mass_effect": (0.0, 0.5),  # fraction of the bulk's volume pushed out of the way
        "hemisphere": None,  # "left", "right" or None (random)
        # --- structural contrasts -------------------------------------------------
        "intensities": _DEFAULT_INTENSITIES,
        # NEH relative to edema, per modality (the method paper's Table 3 directions)
        "neh_contrast": {"t1": -0.07, "t1c": 0.10, "t2": 0.0, "flair": -0.07},
        "intensity_jitter": 0.04,  # relative per-case jitter of every class mean
        "neh_cnr": (0.5, 1.0),  # NEH-vs-edema contrast-to-noise ratio (sets the noise)
        "texture": 0.03,  # relative amplitude of smooth tumour heterogeneity
        "partial_volume_mm": 0.5,  # Gaussian blur (sd, mm) of the tumour compartments
        "bias_strength": (0.05, 0.20),  # max |log bias| over the brain
        "intensity_scale": (0.5, 2.0),  # global per-modality scale (drawn log-uniform)
        # --- rCBV -----------------------------------------------------------------
        "rcbv_means": {
            "WM": 1.0,
            "GM": 2.0,
            "CSF": 0.4,
            "NC": 0.6,
            "ED": 1.3,
            "NEH": 2.2,
            "ET": 3.5,
        },
        "rcbv_vessel": (6.0, 12.0),  # rCBV of large vessels (x WM)
        "rcbv_cortical_vessel": (2.5, 4.0),  # rCBV of cortical surface vessels (x WM)
        "n_vessels": (3, 6),  # number of large vessels (integers)
        "rcbv_noise": 0.15,  # additive noise sd (x WM)
        "rcbv_texture": 0.10,  # relative amplitude of smooth heterogeneity
        "rcbv_variation": 0.10,  # max |log| of the smooth spatial variation
        "rcbv_fwhm_mm": 2.0,  # resolution of the perfusion map (Gaussian FWHM, mm)
        "rcbv_scale": (0.5, 2.0),  # global scale of the map (drawn log-uniform)
        # --- recurrence -------------------------------------------------------------
        "p_recurrence_from_neh": 0.7,  # probability that the recurrence grows from NEH
        "recurrence_origin": None,  # force "neh", "random" (wall away from NEH) or "wall"
        "recurrence_radius_mm": (6.0, 11.0),  # equivalent radius of the new tumour
        "recurrence_edema_mm": (5.0, 15.0),  # edema around the new tumour
        "residual_edema": (0.3, 0.6),  # fraction of the pre-operative edema reach left
        "rotation_deg": 3.0,  # max |rotation| about each axis between time points
        "translation_mm": 3.0,  # max |translation| along each axis
        "deformation_mm": 3.0,  # max amplitude of the smooth non-rigid displacement
        "deformation_scale_mm": (50.0, 100.0),  # wavelength of the displacement
    }
)
"""Defaults of every parameter (see the module docstring for the conventions)."""

LOG_UNIFORM: frozenset[str] = frozenset({"intensity_scale", "rcbv_scale"})
INTEGER: frozenset[str] = frozenset({"n_vessels"})


def merge_params(overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults updated with ``overrides`` (dictionaries merged one level deep).

    Raises
    ------
    ValueError
        For an unknown parameter name (the message lists the known ones).
    """
    merged = copy.deepcopy(dict(DEFAULT_PARAMS))
    for key, value in (overrides or {}).items():
        if key not in merged:
            known = ", ".join(sorted(merged))
            raise ValueError(f"Unknown synthetic-case parameter {key!r}. Known: {known}.")
        default = merged[key]
        if isinstance(default, dict) and isinstance(value, Mapping):
            merged[key] = _merge_dict(default, value, key)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _merge_dict(default: dict, value: Mapping, name: str) -> dict:
    out = copy.deepcopy(default)
    for sub, sub_value in value.items():
        if isinstance(out.get(sub), dict) and isinstance(sub_value, Mapping):
            out[sub].update(sub_value)
        else:
            out[sub] = sub_value
    return out


def is_range(value: Any) -> bool:
    """Whether a parameter value is a ``(low, high)`` range to draw from."""
    return (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, (int, float)) for v in value)
    )


def draw(rng: np.random.Generator, params: Mapping[str, Any], name: str) -> Any:
    """The value of parameter ``name`` for one case (drawn when it is a range)."""
    value = params[name]
    if not is_range(value):
        return value
    low, high = float(value[0]), float(value[1])
    if high < low:
        raise ValueError(f"Parameter {name!r}: range {value!r} has high < low.")
    if name in INTEGER:
        return int(rng.integers(int(low), int(high) + 1))
    if name in LOG_UNIFORM and low > 0:
        return float(np.exp(rng.uniform(np.log(low), np.log(high))))
    return float(rng.uniform(low, high))


def bounds(params: Mapping[str, Any], name: str) -> tuple[float, float]:
    """``(low, high)`` of a parameter (both equal for a fixed value)."""
    value = params[name]
    if is_range(value):
        return float(value[0]), float(value[1])
    return float(value), float(value)


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars/arrays and tuples turned into JSON types."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
