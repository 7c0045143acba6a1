"""Fixed text formats for the numbers, p-values and names printed in the report.

One set of rules for every table, so that a printed value can be read back and checked
against its CSV within the precision it was printed with:

- a number is printed with 4 significant digits in fixed notation (``57.39``,
  ``0.8312``, ``12346`` for large values), in scientific notation below 0.001
  (``4.210e-05``); integers as integers;
- a p-value as ``< 0.0001`` below 0.0001, otherwise with 4 significant digits
  (``0.03441``, ``0.5000``);
- "mean ± SD" with 2 decimals, more for small means (``0.83 ± 0.15``, ``0.042 ± 0.011``);
- a missing value (NaN, None, empty) as an en dash.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

MISSING = "–"
"""Printed for a missing or undefined value."""

P_FLOOR = 1e-4
"""p-values below this are printed as ``< 0.0001``."""

MODEL_LABELS: dict[str, str] = {
    "paunet": "PAUNet",
    "unetrpp": "UNETR++",
    "unetrpp-consensus": "UNETR++ consensus",
    "levels": "Fused consensus (two levels)",
    "fused": "Fused NEH mask",
}
"""Display names of the shipped models and of the fused maps."""


def is_missing(value: Any) -> bool:
    """True for None, NaN, pandas' NA and empty or blank strings."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    try:
        return bool(value != value)  # NaN and pandas.NA compare unequal to themselves
    except (TypeError, ValueError):
        return False


def format_number(value: Any) -> str:
    """A number with 4 significant digits (see the module docstring); text is kept."""
    if is_missing(value):
        return MISSING
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | np.integer):
        return str(int(value))
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if x == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(x)))
    if magnitude < -3:
        return f"{x:.3e}"
    text = f"{x:.{max(0, 3 - magnitude)}f}"
    # rounding can add a digit (9.9996 -> "10.000"); re-format at the new magnitude
    if len(text.lstrip("-").replace(".", "").lstrip("0")) > 4 and "." in text:
        text = f"{x:.{max(0, 2 - magnitude)}f}"
    return text


def format_p(value: Any) -> str:
    """A p-value: ``< 0.0001`` below 0.0001, else 4 significant digits (``0.5000``)."""
    if is_missing(value):
        return MISSING
    p = float(value)
    if p < P_FLOOR:
        return "< 0.0001"
    return f"{p:#.4g}"


def format_p_phrase(value: Any) -> str:
    """A p-value for running text: ``p < 0.0001`` or ``p = 0.03441``."""
    text = format_p(value)
    if text == MISSING:
        return "p not available"
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def mean_sd_decimals(mean: float) -> int:
    """Decimals of a "mean ± SD" cell: 2, more for means below 0.1 (at most 6)."""
    if not math.isfinite(mean) or mean == 0:
        return 2
    return int(min(6, max(2, 1 - math.floor(math.log10(abs(mean))))))


def format_mean_sd(mean: Any, sd: Any) -> str:
    """``"mean ± SD"``; the mean alone when the SD is missing; an en dash without a mean."""
    if is_missing(mean):
        return MISSING
    m = float(mean)
    digits = mean_sd_decimals(m)
    if is_missing(sd):
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ± {float(sd):.{digits}f}"


def model_label(name: str) -> str:
    """Display name of a model (``paunet`` -> ``PAUNet``); unknown names unchanged."""
    return MODEL_LABELS.get(str(name), str(name))
