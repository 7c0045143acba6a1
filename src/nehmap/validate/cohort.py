"""Choosing the cases of a validation cohort, recording why each excluded case is out.

Cases can be included or excluded by id (for example the cases that overlap the
training data: the paper excluded the 173 UPenn-GBM cases also in BraTS 2018), by time
point (pre-operative scans only, by default, for the perfusion analyses), by the
presence of a file (rCBV), and by columns of a clinical table. Every excluded case gets
a row (case, reason) in ``excluded.csv``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from nehmap.errors import NehmapInputError
from nehmap.io.layouts import CaseFiles


def read_id_list(spec: str | Path | Iterable[str] | None) -> set[str]:
    """Case ids from a comma-separated string, a text/CSV file (first column), or a list."""
    if spec is None:
        return set()
    if not isinstance(spec, str | Path):
        return {str(s).strip() for s in spec if str(s).strip()}
    path = Path(spec)
    if path.is_file():
        lines = path.read_text().splitlines()
        ids = [ln.split(",")[0].strip() for ln in lines if ln.strip() and not ln.startswith("#")]
        if ids and ids[0].lower() in ("case", "id", "case_id", "subject"):
            ids = ids[1:]
        return set(ids)
    return {s.strip() for s in str(spec).split(",") if s.strip()}


@dataclass
class Selection:
    """The cases kept, and the excluded ones with their reasons."""

    cases: list[CaseFiles]
    excluded: list[dict] = field(default_factory=list)

    def exclude(self, case: CaseFiles | str, reason: str) -> None:
        """Drop ``case`` (a case or its identifier) from the selection and record ``reason``."""
        case_id = case if isinstance(case, str) else case.case_id
        self.cases = [c for c in self.cases if c.case_id != case_id]
        self.excluded.append({"case": case_id, "reason": reason})

    def excluded_table(self) -> pd.DataFrame:
        """The excluded cases as a table with columns ``case`` and ``reason``."""
        return pd.DataFrame(self.excluded, columns=["case", "reason"])


def _matches(case: CaseFiles, ids: set[str]) -> bool:
    return case.case_id in ids or case.subject in ids


def parse_condition(text: str) -> tuple[str, str, str]:
    """``COLUMN=VALUE`` / ``COLUMN!=VALUE`` / ``COLUMN=`` (empty) -> (column, op, value)."""
    for op in ("!=", "="):
        if op in text:
            column, value = text.split(op, 1)
            return column.strip(), op, value.strip()
    raise ValueError(f"Condition {text!r} must look like COLUMN=VALUE or COLUMN!=VALUE.")


def select_cases(
    cases: Sequence[CaseFiles],
    *,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] | None = None,
    timepoints: Sequence[str | None] | None = None,
    require: Sequence[str] = (),
    clinical: pd.DataFrame | None = None,
    clinical_id: str = "ID",
    exclude_where: Sequence[str] = (),
) -> Selection:
    """Apply the cohort rules in order; each excluded case gets its reason.

    Parameters
    ----------
    cases : Sequence[CaseFiles]
        The candidate cases.
    include : Iterable[str] | None
        If given, only these case or subject ids are kept.
    exclude : Iterable[str] | None
        Case or subject ids to leave out (e.g. overlap with training data).
    timepoints : Sequence[str | None] | None
        Keep only these time points (None in the list keeps cases without one).
    require : Sequence[str]
        Files a case must have (``"rcbv"``, ``"seg"``).
    clinical : pd.DataFrame | None
        A clinical table, one row per subject or case.
    clinical_id : str
        Its id column (matched against case id, then subject).
    exclude_where : Sequence[str]
        Conditions on clinical columns that exclude a case, e.g.
        ``"Survival_Censor=Alive"`` or ``"PsP_TP_score="`` (empty value).
    """
    selection = Selection(list(cases))
    include_ids = set(include) if include is not None else None
    exclude_ids = set(exclude or ())
    for case in list(selection.cases):
        if include_ids is not None and not _matches(case, include_ids):
            selection.exclude(case, "not in the list of cases to include")
        elif _matches(case, exclude_ids):
            selection.exclude(case, "in the list of cases to exclude")
        elif timepoints is not None and case.timepoint not in timepoints:
            selection.exclude(
                case,
                f"time point {case.timepoint or 'unknown'} is not one of "
                f"{', '.join(str(t) for t in timepoints)}",
            )
        else:
            missing = [key for key in require if key not in case.files]
            if missing:
                selection.exclude(case, f"no {', '.join(missing)} file")
    if clinical is not None and exclude_where:
        if clinical_id not in clinical.columns:
            raise NehmapInputError(
                None,
                f"the clinical table has no column {clinical_id!r}.",
                f"Columns: {', '.join(map(str, clinical.columns))}.",
            )
        rows = clinical.astype(str).set_index(clinical_id)
        conditions = [parse_condition(c) for c in exclude_where]
        for column, _, _ in conditions:
            if column not in rows.columns:
                raise NehmapInputError(
                    None,
                    f"the clinical table has no column {column!r}.",
                    f"Columns: {', '.join(map(str, clinical.columns))}.",
                )
        for case in list(selection.cases):
            key = case.case_id if case.case_id in rows.index else case.subject
            if key not in rows.index:
                selection.exclude(case, "not in the clinical table")
                continue
            row = rows.loc[key]
            if isinstance(row, pd.DataFrame):
                row = row.iloc[0]
            for column, op, value in conditions:
                cell = "" if row[column] in ("nan", "None") else row[column].strip()
                if (op == "=" and cell == value) or (op == "!=" and cell != value):
                    selection.exclude(case, f"clinical {column} {op} {value!r} (is {cell!r})")
                    break
    return selection
