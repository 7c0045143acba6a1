"""Command-line options shared by the dataset commands.

``derive-neh``, ``consensus-dataset``, ``export-nnunet`` and ``import-nnunet`` all write
a dataset next to (never over) their inputs; they share how images are placed
(hard link by default, ``--symlink``, ``--copy``), the nnU-Net dataset naming
(``--dataset-id`` with ``--name``) and the channel order (``--channels``). The two nnU-Net
commands themselves are :mod:`nehmap.commands.export_nnunet` and
:mod:`nehmap.commands.import_nnunet`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any


def add_link_arguments(parser: argparse.ArgumentParser) -> None:
    """``--copy`` / ``--symlink`` (default: hard links, falling back to symlinks, then copies)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--copy",
        dest="link",
        action="store_const",
        const="copy",
        help="copy the images (default: hard links where the file system allows, else "
        "symbolic links, else copies)",
    )
    group.add_argument(
        "--symlink",
        dest="link",
        action="store_const",
        const="symlink",
        help="link the images with symbolic links (absolute paths)",
    )
    parser.set_defaults(link="hard")


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """``--dataset-id``, ``--name`` and ``--channels`` of an nnU-Net dataset."""
    parser.add_argument(
        "--dataset-id",
        type=int,
        metavar="N",
        help="nnU-Net dataset id (1-999); with --name the dataset is written to "
        "OUT/DatasetNNN_NAME (OUT being $nnUNet_raw), without them OUT is the dataset folder",
    )
    parser.add_argument("--name", help="nnU-Net dataset name (with --dataset-id), e.g. NEH")
    parser.add_argument(
        "--channels",
        default="t1,t1c,t2,flair",
        help="channel order of the images, _0000 first (default: t1,t1c,t2,flair)",
    )


def add_overwrite_argument(parser: argparse.ArgumentParser) -> None:
    """The shared ``--overwrite``, ``--no-progress`` and ``-q/--quiet`` of these commands."""
    from nehmap.commands import options

    options.add_overwrite(
        parser,
        "write into a non-empty output folder, replacing the files written there "
        "(inputs are never touched)",
    )
    options.add_progress(parser)


def add_write_arguments(parser: argparse.ArgumentParser, dataset: bool = True) -> None:
    """Every shared option of a dataset command, the ones :func:`write_options` reads:
    with ``dataset`` the nnU-Net naming and channels (:func:`add_dataset_arguments`), then
    how images are placed (:func:`add_link_arguments`), ``--overwrite`` and the progress
    options (:func:`add_overwrite_argument`)."""
    if dataset:
        add_dataset_arguments(parser)
    add_link_arguments(parser)
    add_overwrite_argument(parser)


def progress_enabled(args: argparse.Namespace) -> bool:
    """Progress bars go to stderr: on a terminal, without --no-progress or --quiet."""
    from nehmap.commands.options import show_progress

    return show_progress(args)


def write_options(args: argparse.Namespace, dataset: bool = True) -> dict[str, object]:
    """The keyword arguments of the dataset writers that come from the shared options:
    ``link``, ``overwrite``, ``progress`` and, with ``dataset``, ``dataset_id``, ``name``
    and ``channels``."""
    options: dict[str, object] = {
        "link": args.link,
        "overwrite": args.overwrite,
        "progress": progress_enabled(args),
    }
    if dataset:
        options |= {"dataset_id": args.dataset_id, "name": args.name, "channels": args.channels}
    return options


def print_summary(what: str, report: Any) -> int:
    """Print what a dataset writer did and what failed; return the exit status (1 if any
    failed).

    ``report`` is the writer's report: a :class:`~nehmap.derive.neh.DeriveReport`,
    :class:`~nehmap.derive.consensus.ConsensusReport` or
    :class:`~nehmap.io.nnunet.TransferReport` (``failures``, ``placed``, ``notes`` and the
    cases written: ``cases``, or ``labelled`` and ``unlabelled``).
    """
    done = getattr(report, "cases", None)
    if done is None:
        done = [*report.labelled, *report.unlabelled]
    failures: Sequence[tuple[str, str]] = report.failures
    placed: Mapping[str, int] | None = report.placed
    notes: Sequence[str] = report.notes
    line = f"{len(done)} case(s) {what}, {len(failures)} failed"
    if placed:
        line += " (images: " + ", ".join(f"{n} {k}" for k, n in sorted(placed.items())) + ")"
    print(line)
    for note in notes:
        print(f"  note: {note}")
    for case_id, message in failures:
        print(f"  FAILED {case_id}: {message}")
    return 1 if failures else 0


def error(exc: BaseException) -> int:
    """Print a setup error (bad argument, unreadable input) and return exit status 2."""
    print(f"error: {exc}", file=sys.stderr)
    return 2
