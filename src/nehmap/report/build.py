"""Assemble the report page and write it (see :func:`write_report`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from nehmap._version import __version__
from nehmap.io import write_text_atomic
from nehmap.report import sections, viewer_section
from nehmap.report.html import esc, note, page, section
from nehmap.report.inputs import StudyInputs

if TYPE_CHECKING:
    from nehmap.study.config import StudyConfig

REPORT_NAME = "report.html"

SectionBuilder = Callable[[sections.ReportContext], str]

CONTENTS: tuple[tuple[str, str, SectionBuilder], ...] = (
    ("summary", "Summary", sections.summary_section),
    ("examples", "Figure 1: example segmentations", sections.examples_section),
    (viewer_section.ANCHOR, "Interactive viewer", viewer_section.viewer_section),
    ("agreement", "Model agreement (Tables 1-2)", sections.agreement_section),
    ("intensities", "ED vs NEH intensities (Tables 3-4)", sections.intensity_section),
    ("h1-rcbv", "H1: rCBV per compartment", sections.rcbv_section),
    ("h2-rims", "H2: rims vs NEH", sections.rims_section),
    ("h3-recurrence", "H3: NEH vs recurrence", sections.recurrence_section),
    ("methods", "Methods", sections.methods_section),
    ("cases", "Excluded and failed cases", sections.cases_section),
    ("appendix", "Appendix: cohort tables", sections.appendix_section),
)
"""(anchor, title, builder) of the report's sections, in order."""

SECTION_ERRORS = (KeyError, ValueError, TypeError, IndexError, AttributeError, OSError)
"""Errors from unexpected table contents that cost a section, never the whole report."""


def model_names(config: StudyConfig) -> list[str]:
    """The names the study's models write under (file stems of checkpoint paths)."""
    return [Path(m).name.removesuffix(".json") for m in config.segment.models]


def _header(config: StudyConfig) -> str:
    contents = " · ".join(f'<a href="#{anchor}">{esc(title)}</a>' for anchor, title, _ in CONTENTS)
    return (
        f"<header><h1>{esc(config.name)}</h1>"
        f'<p class="subtitle">NEH validation study report · nehmap {esc(__version__)}</p>'
        f'<nav class="source">{contents}</nav></header>'
    )


def _build_section(
    ctx: sections.ReportContext, anchor: str, title: str, builder: SectionBuilder
) -> str:
    """One section, or a note naming the error when its inputs are not as expected."""
    try:
        return builder(ctx)
    except SECTION_ERRORS as exc:
        problem = f"This section could not be built ({type(exc).__name__}: {exc})."
        return section(anchor, title, [note(problem)])


def render_report(
    config: StudyConfig,
    output_dir: Path,
    work_dir: Path,
    *,
    n_examples: int = 3,
) -> str:
    """The report's HTML text (see :func:`write_report`)."""
    inputs = StudyInputs.load(Path(output_dir), Path(work_dir))
    ctx = sections.ReportContext(config, inputs, model_names(config), n_examples)
    body = [
        _header(config),
        *(_build_section(ctx, anchor, title, builder) for anchor, title, builder in CONTENTS),
        f"<footer>Written by nehmap {esc(__version__)} from {esc(Path(output_dir))}. "
        f"Tables: {esc(Path(output_dir) / 'tables')}.</footer>",
    ]
    return page(f"{config.name}: nehmap study report", "\n".join(body))


def write_report(
    config: StudyConfig, output_dir: Path, work_dir: Path, *, n_examples: int = 3
) -> Path:
    """Write the study's self-contained HTML report to ``output_dir/report.html``.

    Parameters
    ----------
    config : StudyConfig
        The study configuration (for the methods text and the models).
    output_dir : Path
        The study output folder, holding ``tables/*.csv`` and ``study.json``.
    work_dir : Path
        The study's work folder (segmentations for Figure 1, recurrence outputs
        for Figure 4).
    n_examples : int
        Example cases shown in Figure 1 (at most 3: median and quartiles).

    Returns
    -------
    Path
        The path of the report, written atomically. Figures are embedded PNGs; the page
        loads nothing from the network. The one script is the interactive viewer
        (NiiVue, embedded); without JavaScript the page reads the same. Missing tables
        or images give a note in their section, never an error.
    """
    text = render_report(config, Path(output_dir), Path(work_dir), n_examples=n_examples)
    return write_text_atomic(Path(output_dir) / REPORT_NAME, text)
