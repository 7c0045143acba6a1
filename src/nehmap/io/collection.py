"""The cases of a collection as found on disk: :class:`CaseFiles` and :class:`Collection`.

Both are plain records of file paths; :mod:`nehmap.io.layouts` fills them from a
folder (or :mod:`nehmap.io.manifest` from a CSV), and :func:`nehmap.io.case.load_case`
reads the voxels they point at.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from nehmap.io.modalities import MODALITIES
from nehmap.labels import LabelScheme

TIMEPOINTS = ("preop", "postop", "recurrence", "followup")
"""Canonical names of time points."""


@dataclass
class CaseFiles:
    """The files of one scan (one case at one time point), found on disk.

    Attributes
    ----------
    case_id : str
        Unique id of the scan within the collection (file-name prefix).
    subject : str
        Patient id (equal to ``case_id`` for single-time-point collections).
    timepoint : str | None
        Canonical time point (``preop``, ``postop``, ``recurrence``,
        ``followup``) or None when the collection does not say.
    layout : str
        The layout the case was found in.
    files : dict[str, Path]
        ``t1``, ``t1c``, ``t2``, ``flair``, ``seg``, ``rcbv`` -> path (only those found).
    label_scheme : str | LabelScheme | None
        Scheme of the label file (name or :class:`LabelScheme`).
    extras : dict[str, Path]
        Other files of the case (``adc``, ``seg_automated``, ...).
    notes : list[str]
        Remarks about how files were matched (fallbacks, duplicates).
    problems : list[str]
        Reasons the case cannot be used as it is (besides missing files).
    """

    case_id: str
    subject: str
    timepoint: str | None
    layout: str
    files: dict[str, Path] = field(default_factory=dict)
    label_scheme: str | LabelScheme | None = None
    extras: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def missing(self, required: tuple[str, ...] = MODALITIES) -> list[str]:
        """Required keys with no file."""
        return [key for key in required if key not in self.files]

    @property
    def complete(self) -> bool:
        """True when all four modalities are present and nothing else is wrong."""
        return not self.missing() and not self.problems

    @property
    def paths(self) -> list[Path]:
        """Every input file of the case (never to be overwritten)."""
        return [*self.files.values(), *self.extras.values()]


@dataclass
class Collection:
    """The cases found under a folder (or in a manifest).

    Attributes
    ----------
    root : Path
        The folder or manifest file.
    layout : str
        Detected or given layout name.
    cases : list[CaseFiles]
        Cases sorted by id.
    unmatched : list[Path]
        Image files under ``root`` that no case could claim.
    """

    root: Path
    layout: str
    cases: list[CaseFiles]
    unmatched: list[Path] = field(default_factory=list)

    def __iter__(self) -> Iterator[CaseFiles]:
        return iter(self.cases)

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, case_id: str) -> CaseFiles:
        for case in self.cases:
            if case.case_id == case_id:
                return case
        raise KeyError(f"No case {case_id!r} in {self.root}.")

    @property
    def ids(self) -> list[str]:
        """Case identifiers, in the collection's order."""
        return [c.case_id for c in self.cases]

    def by_subject(self) -> dict[str, dict[str | None, CaseFiles]]:
        """Cases grouped by subject, then by time point (for longitudinal analyses)."""
        out: dict[str, dict[str | None, CaseFiles]] = defaultdict(dict)
        for case in self.cases:
            out[case.subject][case.timepoint] = case
        return dict(out)
