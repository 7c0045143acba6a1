"""Exceptions that nehmap raises for problems with the user's input.

Every message names the file (or case) and the problem, and says what to do about it.
"""

from __future__ import annotations

from pathlib import Path


class NehmapInputError(ValueError):
    """A problem with an input file or folder.

    Attributes
    ----------
    path : Path | None
        The offending file or folder, when there is one.
    problem : str
        What is wrong.
    hint : str
        What the user can do about it.
    """

    def __init__(self, path: str | Path | None, problem: str, hint: str = "") -> None:
        self.path = Path(path) if path is not None else None
        self.problem = problem
        self.hint = hint
        where = f"{self.path}: " if self.path is not None else ""
        message = f"{where}{problem}"
        if hint:
            message += f" {hint}"
        super().__init__(message)


class CaseError(NehmapInputError):
    """A case cannot be used (missing modality, mismatched grids, bad values...)."""

    def __init__(self, case: str, path: str | Path | None, problem: str, hint: str = "") -> None:
        self.case = case
        super().__init__(path, problem, hint)

    def __str__(self) -> str:
        case = self.case.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        return f"case {case}: {super().__str__()}"


class OutputError(RuntimeError):
    """An output cannot be written where asked (it would overwrite an input, ...)."""


class DiskFullError(OutputError):
    """An output could not be written because its file system is full (or over quota)."""
