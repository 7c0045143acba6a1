"""What the report's sections share: :class:`ReportContext` and small rendering helpers.

A section builder takes a :class:`ReportContext` and returns HTML. The helpers render a
table with its CSV source line, or a note saying why the table is missing
(:func:`table_or_note`, :func:`csv_table`), a figure or a note (:func:`figure_or_note`),
and choose the Figure 1 cases shared by the figure and the viewer (:func:`figure1_choice`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from nehmap.report import examples
from nehmap.report.html import figure, html_table, note, source_line
from nehmap.report.inputs import StudyInputs

if TYPE_CHECKING:
    from nehmap.study.config import StudyConfig

__all__ = [
    "ReportContext",
    "csv_table",
    "figure1_choice",
    "figure_or_note",
    "n_cases",
    "table_or_note",
]


@dataclass
class ReportContext:
    """What every section may use.

    Attributes
    ----------
    config : StudyConfig
        The study configuration.
    inputs : StudyInputs
        The study's tables and record.
    models : list[str]
        The study's model names as they appear in file names and tables.
    n_examples : int
        How many example cases Figure 1 shows.
    """

    config: StudyConfig
    inputs: StudyInputs
    models: list[str]
    n_examples: int = 3

    @property
    def work_dir(self) -> Path:
        """The study's work folder."""
        return self.inputs.work_dir


def table_or_note(ctx: ReportContext, name: str, render: Callable[[pd.DataFrame], str]) -> str:
    """``render(table)`` and its source line, or a note saying why the table is missing."""
    frame = ctx.inputs.table(name)
    if frame is None:
        return note(f"Not available: {ctx.inputs.missing_note(name)}")
    return render(frame) + source_line([f"{name}.csv"])


def csv_table(ctx: ReportContext, name: str, caption: str) -> str:
    """A table printed exactly as its CSV (same rows and columns)."""
    return table_or_note(
        ctx, name, lambda frame: html_table(frame, source=f"{name}.csv", caption=caption)
    )


def figure_or_note(uri: str | None, caption: str, alt: str, missing: str) -> str:
    """The figure at ``uri``, or the note ``missing`` when there is none."""
    return figure(uri, caption, alt) if uri else note(missing)


def n_cases(frame: pd.DataFrame | None, column: str = "case") -> int:
    """Distinct values of ``column`` (cases) in ``frame``; 0 without the table or column."""
    return 0 if frame is None or column not in frame.columns else int(frame[column].nunique())


def figure1_choice(ctx: ReportContext) -> tuple[str, Path, list[tuple[str, str]]] | None:
    """The Figure 1 cohort, its segment folder and chosen cases (figure and viewer)."""
    return examples.figure1_choice(
        ctx.work_dir,
        ("perfusion", "recurrence", *sorted(ctx.config.cohorts)),
        ctx.inputs.table("intensity_cases"),
        ctx.inputs.table("rcbv_cases"),
        ctx.models,
        ctx.n_examples,
    )
