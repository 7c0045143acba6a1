"""Manifests: a CSV that lists each case's files, for collections in no known layout.

Columns ``case, timepoint, modality, path`` (optional ``label_scheme``); see
:func:`read_manifest`. :func:`nehmap.io.layouts.discover` reads a ``.csv`` it is given
through here.
"""

from __future__ import annotations

from pathlib import Path

from nehmap.errors import NehmapInputError
from nehmap.io.collection import CaseFiles, Collection
from nehmap.io.modalities import normalise_modality


def _canonical_timepoint(raw: str) -> str | None:
    key = raw.strip().lower().replace("-", "").replace("_", "")
    if not key:
        return None
    if key in ("0", "pre", "preop", "preoperative", "baseline", "11"):
        return "preop"
    if key in ("1", "post", "postop", "postoperative", "earlypostop"):
        return "postop"
    if key in ("2", "rec", "recurrence", "progression"):
        return "recurrence"
    if key in ("21", "followup", "fu"):
        return "followup"
    return raw.strip()


def _manifest_separator(path: Path) -> str:
    """``,`` unless the header line uses ``;`` (spreadsheets in many locales) or tabs."""
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as handle:
            header = handle.readline()
    except OSError:
        return ","
    if "," not in header:
        if "\t" in header:
            return "\t"
        if ";" in header:
            return ";"
    return ","


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` (links resolved) lies inside ``folder``."""
    try:
        path.resolve().relative_to(folder.resolve())
    except (ValueError, OSError, RuntimeError):
        return False
    return True


def read_manifest(path: str | Path) -> Collection:
    """Read a manifest CSV (columns ``case, timepoint, modality, path``).

    Paths may be relative to the manifest's folder (a relative path leading outside
    that folder, e.g. ``../x.nii.gz``, makes its case unusable; absolute paths are taken
    as given). The separator may be ``,``, ``;`` or a tab, and a UTF-8 byte-order mark
    is ignored. ``modality`` is one of t1, t1c, t2,
    flair, rcbv, seg (aliases such as T1Gd, t1ce, FLAIR, label accepted). An optional
    ``label_scheme`` column names the scheme of the label files (default ``nehmap``).
    A scan is identified by ``case`` plus ``timepoint`` (``<case>_<timepoint>`` when a
    time point is given).
    """
    import pandas as pd

    p = Path(path)
    try:
        table = pd.read_csv(
            p, dtype=str, keep_default_na=False, sep=_manifest_separator(p), encoding="utf-8-sig"
        )
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise NehmapInputError(
            p,
            f"cannot be read as a CSV manifest ({exc}).",
            "Give a CSV with columns case, timepoint, modality, path.",
        ) from exc
    table.columns = [c.strip().lower() for c in table.columns]
    needed = {"case", "modality", "path"}
    if not needed <= set(table.columns):
        raise NehmapInputError(
            p,
            f"is missing the column(s) {sorted(needed - set(table.columns))}.",
            "A manifest needs the columns case, timepoint (may be empty), modality, path.",
        )
    cases: dict[str, CaseFiles] = {}
    for row_number, row in enumerate(table.to_dict("records"), start=2):
        case_name = row["case"].strip()
        raw_tp = row.get("timepoint", "").strip()
        key = normalise_modality(row["modality"])
        if not case_name or key is None:
            raise NehmapInputError(
                p,
                f"row {row_number}: unknown modality {row['modality']!r} or empty case.",
                "Use one of t1, t1c, t2, flair, rcbv, seg.",
            )
        case_id = f"{case_name}_{raw_tp}" if raw_tp else case_name
        scheme = row.get("label_scheme", "").strip() or "nehmap"
        case = cases.setdefault(
            case_id,
            CaseFiles(
                case_id, case_name, _canonical_timepoint(raw_tp), "manifest", label_scheme=scheme
            ),
        )
        file_path = Path(row["path"].strip())
        if not file_path.is_absolute():
            file_path = p.parent / file_path
            if not _inside(file_path, p.parent):
                case.problems.append(
                    f"row {row_number}: the relative path {row['path'].strip()!r} points "
                    f"outside the manifest's folder {p.parent} (give an absolute path if "
                    "that is really meant)"
                )
                continue
        if key in case.files:
            case.problems.append(f"{key} is listed twice in the manifest (rows up to {row_number})")
        if not file_path.is_file():
            case.problems.append(f"{key} file {file_path} listed in the manifest does not exist")
            continue
        case.files[key] = file_path
    return Collection(p, "manifest", [cases[k] for k in sorted(cases)])
