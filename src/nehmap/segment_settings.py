"""The settings that decide a segmented case's outputs, as kept in its JSON record.

``nehmap segment`` compares them with a case's record on a rerun, to find outputs made
with other models or settings.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DEFAULTS_OF_OLDER_RECORDS: dict[str, Any] = {"fusion": "mean"}
"""Values a setting had before records kept it (records without ``fusion`` used the mean)."""


def settings_record(
    models: Sequence[Any],
    external: Sequence[str],
    *,
    weights: Sequence[float] | None,
    sigma_mm: float,
    threshold: float,
    low: float,
    mirror: bool,
    overlap: float,
    fusion: str = "mean",
) -> dict:
    """The settings that decide a case's outputs, as kept in its JSON record: the models
    (by output name, with the sha256 of their weights), external maps and fusion
    parameters. A rerun compares them to find outputs made with other settings."""
    return {
        "model_sha256": {m.name: getattr(m.card, "weights_sha256", None) for m in models},
        "external": sorted(external),
        "weights": list(weights) if weights is not None else None,
        "sigma_mm": sigma_mm,
        "threshold": threshold,
        "low": low,
        "mirror": mirror,
        "overlap": overlap,
        "fusion": fusion,
    }


def settings_differences(out_dir: str | Path, case_id: str, settings: dict) -> list[str]:
    """Names of the ``settings`` (:func:`settings_record`) that differ from those in the
    case's record, e.g. ``["model_sha256", "sigma_mm"]``; empty when they agree."""
    path = Path(out_dir) / case_id / f"{case_id}_nehmap.json"
    try:
        recorded = json.loads(path.read_text(encoding="utf-8")).get("parameters", {})
    except (OSError, ValueError, AttributeError):
        return ["record"]
    return [
        key
        for key, value in settings.items()
        if recorded.get(key, DEFAULTS_OF_OLDER_RECORDS.get(key)) != value
    ]
