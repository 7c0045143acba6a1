"""Options every command shares, defined once so that they mean the same everywhere.

Exit codes (all commands; docs/conventions.md):

- 0 (:data:`EXIT_OK`): all done;
- 1 (:data:`EXIT_SOME_FAILED`): some cases failed; the others were written;
- 2 (:data:`EXIT_NOTHING_STARTED`): nothing could start (bad input, options or
  configuration; argparse's own usage errors are 2 too).

Progress bars are drawn only on a terminal (standard error is a TTY), never with
``--no-progress`` or ``--quiet``; see :func:`show_progress`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_NOTHING_STARTED = 2

HELP_TEXTS = {
    "--no-progress": "no progress bar (bars are only drawn on a terminal anyway)",
    "--quiet": "no progress bar and no progress messages; warnings, errors and the final "
    "summary are still printed",
    "--overwrite": "redo or replace outputs that already exist",
    "--device": "cuda, cuda:1, mps or cpu (default: automatic)",
    "--threads": "CPU threads per process (default: {default})",
    "--workers": "parallel worker processes (default: {default})",
    "--seed": "seed of all randomness (default: {default})",
}
"""The help text of each shared option; ``{default}`` is filled in per command."""


def add_progress(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--no-progress`` and ``-q/--quiet`` (destinations ``no_progress`` and ``quiet``)."""
    parser.add_argument("--no-progress", action="store_true", help=HELP_TEXTS["--no-progress"])
    add_quiet(parser)


def add_quiet(parser: argparse.ArgumentParser | argparse._ArgumentGroup, **kwargs) -> None:
    """``-q/--quiet`` alone (for short commands without a progress bar)."""
    parser.add_argument("-q", "--quiet", action="store_true", help=HELP_TEXTS["--quiet"], **kwargs)


def add_overwrite(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, what: str | None = None
) -> None:
    """``--overwrite``; ``what`` says what is redone for this command (shown after a colon)."""
    text = HELP_TEXTS["--overwrite"] + (f": {what}" if what else "")
    parser.add_argument("--overwrite", action="store_true", help=text)


def add_device(parser: argparse.ArgumentParser | argparse._ArgumentGroup, **kwargs) -> None:
    """``--device`` (torch device name)."""
    parser.add_argument("--device", help=HELP_TEXTS["--device"], **kwargs)


def add_threads(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    default: int,
    default_text: str | None = None,
) -> None:
    """``--threads N``: CPU threads per process (``default_text`` replaces the default's
    value in the help, e.g. "the file's")."""
    parser.add_argument(
        "--threads", type=int, default=default, metavar="N",
        help=HELP_TEXTS["--threads"].format(default=default_text or default),
    )  # fmt: skip


def add_workers(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    default: int | None,
    default_text: str | None = None,
    **kwargs,
) -> None:
    """``--workers N``: parallel worker processes (``default_text`` as for --threads)."""
    parser.add_argument(
        "--workers", type=int, default=default, metavar="N",
        help=HELP_TEXTS["--workers"].format(default=default_text or default), **kwargs,
    )  # fmt: skip


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer no smaller than ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def add_seed(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    default: int | None = 0,
    default_text: str | None = None,
    **kwargs,
) -> None:
    """``--seed N``: seed of all randomness (``default_text`` as for --threads)."""
    kwargs.setdefault("type", int_at_least(0))
    parser.add_argument(
        "--seed", default=default, metavar="N",
        help=HELP_TEXTS["--seed"].format(default=default_text or default), **kwargs,
    )  # fmt: skip


def add_out(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    what: str,
    *,
    required: bool = True,
    **kwargs,
) -> None:
    """``-o/--out``: where the command writes; ``what`` says what it is."""
    parser.add_argument("-o", "--out", required=required, help=what, **kwargs)


def add_layout(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    whose: str = "the collection's",
    *,
    label_scheme: str | None = None,
    **kwargs,
) -> None:
    """``--layout``: force the layout of an input collection instead of detecting it;
    with ``label_scheme`` (what its label files are) also ``--label-scheme``.

    ``whose`` names the collection in the help ("the collection's", "the cohort's").
    """
    parser.add_argument("--layout", help=f"force {whose} layout instead of detecting it", **kwargs)
    if label_scheme is not None:
        parser.add_argument(
            "--label-scheme", help=f"force the label scheme of {label_scheme}", **kwargs
        )


def add_case_selection(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, unit: str = "cases"
) -> None:
    """``--include``, ``--exclude`` (comma lists or files of ids), ``--clinical``,
    ``--clinical-id`` and ``--exclude-where``: which cases (or scans) an analysis keeps."""
    parser.add_argument("--include", metavar="IDS", help=f"only these {unit} (comma list or file)")
    parser.add_argument(
        "--exclude",
        metavar="IDS",
        help=f"leave out these {unit} (comma list or file), e.g. those overlapping the "
        "training data or with broken data",
    )
    parser.add_argument("--clinical", metavar="CSV", help="clinical table for --exclude-where")
    parser.add_argument("--clinical-id", default="ID", help="id column of the clinical table (ID)")
    parser.add_argument(
        "--exclude-where",
        action="append",
        default=[],
        metavar="COLUMN=VALUE",
        help=f"exclude {unit} whose clinical COLUMN equals (or with != differs from) VALUE; "
        "repeatable",
    )


def show_progress(args: argparse.Namespace) -> bool:
    """Whether to draw progress bars: on a terminal, without --no-progress or --quiet."""
    if getattr(args, "no_progress", False) or getattr(args, "quiet", False):
        return False
    return sys.stderr.isatty()
