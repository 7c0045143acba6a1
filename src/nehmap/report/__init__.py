"""The self-contained HTML report of a study (``OUTPUT/report.html``).

Typical use (the study runner does this as its last step)::

    from nehmap.report import write_report

    path = write_report(config, output_dir, output_dir / "work")

The report reads the study's CSV tables (``OUTPUT/tables``), its ``study.json`` and the
segmentation and recurrence outputs under the work folder. It holds the paper's Tables
1-7 and Figures 1-4 (figures as embedded PNGs), a plain-language summary per section,
a methods text generated from the configuration with software versions, and the lists
of excluded and failed cases. Tables print numbers with fixed formats
(:mod:`nehmap.report.formatting`) so that they can be checked against the CSVs.
"""

from nehmap.report.build import render_report, write_report
from nehmap.report.formatting import format_mean_sd, format_number, format_p
from nehmap.report.html import html_table

__all__ = [
    "format_mean_sd",
    "format_number",
    "format_p",
    "html_table",
    "render_report",
    "write_report",
]
