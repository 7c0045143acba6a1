"""HTML building blocks of the report: the page, sections, notes, figures and tables.

Everything here returns HTML text. Text that comes from data (case ids, messages, model
names, file paths) is escaped with :func:`html.escape`; nothing is loaded from the
network (no fonts, scripts or style sheets). Tables are never wider than the page: wide
ones scroll inside their box, and long text cells wrap. The only script is the viewer's
(:mod:`nehmap.report.viewer_page`). The page is laid out for reading on screen and for
printing on A4 paper.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from nehmap.report.formatting import format_number, format_p, is_missing

Formatter = Callable[[Any], str]

COLUMN_LABELS: dict[str, str] = {
    "mean_of_means": "mean",
    "median_of_means": "median",
    "sd": "SD",
    "n": "n",
    "n_cases": "cases",
    "n_voxels": "voxels",
    "p": "p",
    "p_adjusted": "p (adjusted)",
    "p_z": "p (z)",
    "p_greater": "p (one-sided, greater)",
    "p_less": "p (one-sided, less)",
    "p_two_sided": "p (two-sided)",
    "p_value": "p",
    "df_num": "df (num.)",
    "df_den": "df (den.)",
    "se": "SE",
    "label_name": "label",
    "observed_mean": "observed mean",
    "null_mean": "null mean",
    "chance_expected": "expected by chance",
}
"""Column headers shown for the CSV column names (others: underscores become spaces)."""

SHORT_TEXT = 30
"""Text cells up to this many characters are not wrapped."""

WIDE_TABLE = 9
"""Tables with more columns than this are set compact (smaller type, headers wrapped)."""

COUNT_COLUMNS = {"n", "count", "n_cases", "n_voxels", "n_subjects", "n_permutations"}

CSS = """
:root { --ink: #1d2330; --muted: #5b6475; --rule: #d5d9e0; --band: #f3f5f8;
        --accent: #1f4e8c; --warn: #8a5a00; }
* { box-sizing: border-box; }
body { font-family: "Helvetica Neue", Arial, "Liberation Sans", sans-serif; color: var(--ink);
       line-height: 1.45; margin: 0; background: #fff; font-size: 15px; }
main { max-width: 1120px; margin: 0 auto; padding: 28px 32px 60px; }
h1 { font-size: 26px; margin: 0 0 4px; color: var(--accent); }
h2 { font-size: 20px; margin: 34px 0 8px; padding-bottom: 4px;
     border-bottom: 2px solid var(--accent); color: var(--accent); }
h3 { font-size: 16px; margin: 22px 0 6px; }
p { margin: 6px 0 10px; }
.subtitle { color: var(--muted); margin: 0 0 18px; }
.what { background: var(--band); border-left: 4px solid var(--accent);
        padding: 8px 12px; margin: 10px 0 14px; }
.what b { color: var(--accent); }
.note { border-left: 4px solid var(--warn); background: #fff8e8; padding: 6px 12px;
        margin: 10px 0; color: var(--warn); }
.source { color: var(--muted); font-size: 12px; margin: 2px 0 16px; }
table.data { border-collapse: collapse; margin: 6px 0 4px; font-size: 13px;
             font-variant-numeric: tabular-nums; }
p.caption { font-weight: bold; font-size: 14px; margin: 14px 0 4px; }
table.data th, table.data td { border: 1px solid var(--rule); padding: 3px 8px;
                               vertical-align: top; }
table.data th { background: var(--band); text-align: left; }
table.data td.num { text-align: right; white-space: nowrap; }
table.data td.nw { white-space: nowrap; }
table.data td.long { min-width: 14em; max-width: 30em; }
table.data.wide { font-size: 12px; }
table.data.wide th, table.data.wide td { padding: 2px 5px; }
table.data.wide td.nw { white-space: normal; overflow-wrap: break-word; }
table.data tbody tr:nth-child(even) td { background: #fafbfc; }
.scroll { overflow-x: auto; max-width: 100%; }
figure { margin: 14px 0 20px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--rule); }
figcaption { font-size: 13px; color: var(--ink); margin-top: 4px; }
figcaption b { color: var(--accent); }
ul.glance li { margin: 3px 0; }
.methods p { max-width: 60em; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px;
         border-top: 1px solid var(--rule); padding-top: 8px; }
@media print {
  body { font-size: 11pt; }
  main { max-width: none; padding: 0; }
  h2 { break-after: avoid; }
  figure, table.data, .what, .note { break-inside: avoid; }
  .scroll { overflow: visible; }
  @page { size: A4; margin: 15mm; }
}
"""


def esc(value: Any) -> str:
    """Escape any value for HTML text (quotes included)."""
    return html.escape(str(value), quote=True)


def page(title: str, body: str) -> str:
    """The whole HTML document around ``body``."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def section(anchor: str, title: str, parts: Iterable[str]) -> str:
    """A ``<section>`` with an ``<h2>`` heading."""
    inner = "\n".join(p for p in parts if p)
    return f'<section id="{esc(anchor)}">\n<h2>{esc(title)}</h2>\n{inner}\n</section>'


def heading(title: str) -> str:
    """A sub-heading."""
    return f"<h3>{esc(title)}</h3>"


def paragraph(text: str, *, raw: bool = False) -> str:
    """A paragraph; ``raw=True`` for text that is already HTML."""
    return f"<p>{text if raw else esc(text)}</p>"


def what_this_shows(text: str) -> str:
    """The plain-language box that opens a section (``text`` is already HTML)."""
    return f'<div class="what"><b>What this shows.</b> {text}</div>'


def note(text: str) -> str:
    """A highlighted remark, e.g. why a section is empty (``text`` is plain text)."""
    return f'<p class="note">{esc(text)}</p>'


def source_line(names: Iterable[str]) -> str:
    """Where a table or figure comes from (``tables/<name>``)."""
    files = ", ".join(f"tables/{esc(n)}" for n in names)
    return f'<p class="source">Source: {files}</p>'


def figure(data_uri: str, caption_html: str, alt: str) -> str:
    """An embedded PNG figure with its caption (``caption_html`` is already HTML)."""
    return (
        f'<figure>\n<img src="{data_uri}" alt="{esc(alt)}">\n'
        f"<figcaption>{caption_html}</figcaption>\n</figure>"
    )


def bullet_list(items: Iterable[str], css_class: str = "") -> str:
    """A ``<ul>`` of items that are already HTML."""
    cls = f' class="{esc(css_class)}"' if css_class else ""
    body = "".join(f"<li>{item}</li>" for item in items)
    return f"<ul{cls}>{body}</ul>"


# ----------------------------------------------------------------------------- tables


def is_p_column(name: str) -> bool:
    """True for the columns holding p-values (``p``, ``p_adjusted``, ``p_two_sided``...)."""
    return name == "p" or name.startswith("p_")


def _is_count_column(name: str, values: pd.Series) -> bool:
    if name not in COUNT_COLUMNS and not name.startswith("n_"):
        return False
    finite = pd.to_numeric(values, errors="coerce").dropna()
    return bool(len(finite)) and bool(np.all(np.mod(finite.to_numpy(dtype=float), 1) == 0))


def column_formatter(name: str, values: pd.Series) -> Formatter:
    """The fixed format of a CSV column, from its name and values.

    p-value columns use :func:`format_p`; numeric columns :func:`format_number` (counts
    as integers); everything else is printed as text.
    """
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if numeric and is_p_column(name):
        return format_p
    if numeric and _is_count_column(name, values):
        return lambda v: format_number(v) if is_missing(v) else str(int(v))
    if numeric:
        return format_number
    return lambda v: "–" if is_missing(v) else str(v)


def column_label(name: str) -> str:
    """The header shown for a column name."""
    return COLUMN_LABELS.get(name, name.replace("_", " "))


def html_table(
    frame: pd.DataFrame,
    *,
    source: str,
    form: str = "csv",
    caption: str | None = None,
    formats: Mapping[str, Formatter] | None = None,
    labels: Mapping[str, str] | None = None,
    numeric: Iterable[str] = (),
) -> str:
    """Render a DataFrame as an HTML table with fixed number formats.

    Parameters
    ----------
    frame : pd.DataFrame
        The table; its index is ignored (reset it first if it holds data).
    source : str
        The CSV it comes from (``data-source`` attribute, for checking).
    form : str
        ``"csv"`` for a table printed as its CSV (same rows and columns), or the
        name of a derived form (``"table3"``...) for tables reshaped from a CSV.
    caption : str | None
        Table title (plain text), printed above the table.
    formats : Mapping[str, Formatter] | None
        Column -> formatter, overriding the automatic choice
        (:func:`column_formatter`).
    labels : Mapping[str, str] | None
        Column -> header text, overriding :data:`COLUMN_LABELS`.
    numeric : Iterable[str]
        Columns to right-align although they hold preformatted text.

    Every ``<th>`` carries the column name in ``data-col``.
    """
    formats = dict(formats or {})
    labels = dict(labels or {})
    right = set(numeric)
    columns = [str(c) for c in frame.columns]
    formatters: list[Formatter] = []
    aligned: list[bool] = []
    for name in columns:
        values = frame[name]
        formatters.append(formats.get(name) or column_formatter(name, values))
        is_num = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        aligned.append(is_num or name in right)
    head = "".join(
        f'<th data-col="{esc(c)}">{esc(labels.get(c, column_label(c)))}</th>' for c in columns
    )
    rows = []
    for record in frame.itertuples(index=False, name=None):
        cells = []
        for value, fmt, num in zip(record, formatters, aligned, strict=True):
            text = fmt(value)
            cls = (
                ' class="num"'
                if num
                else (' class="nw"' if len(text) <= SHORT_TEXT else ' class="long"')
            )
            shown = esc(text) if num else esc(text).replace("_", "_<wbr>")
            cells.append(f"<td{cls}>{shown}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    cap = f'<p class="caption">{esc(caption)}</p>' if caption else ""
    wide = " wide" if len(columns) > WIDE_TABLE else ""
    return (
        f'<div class="scroll">{cap}<table class="data{wide}" data-source="{esc(source)}" '
        f'data-form="{esc(form)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )
