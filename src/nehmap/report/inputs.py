"""What the report reads: the study's CSV tables and its ``study.json`` record.

Every table is optional. A study with one cohort, or a stage that produced nothing,
simply lacks some files; :class:`StudyInputs` answers ``None`` for them and remembers
files that exist but cannot be read, so that the report can say why a section is empty.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd


def read_table(path: Path) -> pd.DataFrame:
    """Read one study CSV: only empty cells are missing values (ids like "NA" stay text)."""
    try:
        return pd.read_csv(path, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


@dataclass
class StudyInputs:
    """The tables and record of one study output folder.

    Attributes
    ----------
    output_dir : Path
        The study's output folder.
    work_dir : Path
        Its work folder (segmentations, per-case results).
    tables : dict[str, pd.DataFrame]
        Table name (CSV stem) -> table, for every readable CSV.
    problems : dict[str, str]
        Table name -> why its CSV could not be read.
    record : dict[str, Any]
        The parsed ``study.json`` (empty when absent or unreadable).
    """

    output_dir: Path
    work_dir: Path
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, output_dir: Path, work_dir: Path) -> StudyInputs:
        """Read ``output_dir/tables/*.csv`` and ``output_dir/study.json``."""
        inputs = cls(Path(output_dir), Path(work_dir))
        folder = inputs.output_dir / "tables"
        for path in sorted(folder.glob("*.csv")) if folder.is_dir() else []:
            try:
                inputs.tables[path.stem] = read_table(path)
            except (OSError, ValueError, pd.errors.ParserError) as exc:
                inputs.problems[path.stem] = f"{path.name} could not be read ({exc})"
        record = inputs.output_dir / "study.json"
        if record.is_file():
            try:
                inputs.record = json.loads(record.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                inputs.record = {}
        return inputs

    def table(self, name: str) -> pd.DataFrame | None:
        """The table, or None when its CSV is absent, unreadable or has no rows."""
        frame = self.tables.get(name)
        if frame is None or frame.empty:
            return None
        return frame

    def has_columns(self, name: str, columns: list[str]) -> bool:
        """True when the table exists with rows and all of ``columns``."""
        frame = self.table(name)
        return frame is not None and all(c in frame.columns for c in columns)

    def missing_note(self, *names: str) -> str:
        """Why the named tables are not available, in one sentence."""
        parts = []
        for name in names:
            if name in self.problems:
                parts.append(self.problems[name])
            elif name in self.tables:
                parts.append(f"tables/{name}.csv has no rows")
            else:
                parts.append(f"tables/{name}.csv was not produced")
        return "; ".join(parts) + "."

    def cohort_sizes(self) -> dict[str, int]:
        """Selected cases per cohort, from ``study.json`` (empty when unknown)."""
        sizes = self.record.get("cohorts", {})
        return {str(k): int(v) for k, v in sizes.items()} if isinstance(sizes, dict) else {}
