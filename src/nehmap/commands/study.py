"""``nehmap study CONFIG``: segment, measure, test and report, from MRI folders to the report."""

from __future__ import annotations

import argparse
import sys

HELP = "run the whole validation study described by a TOML/YAML file and write the report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", help="study file (.toml or .yaml)")
    parser.add_argument("--init", metavar="FILE", help="write a commented template study file")
    parser.add_argument(
        "--force",
        action="append",
        default=[],
        metavar="STEP",
        help="redo a cached step: segment, measure or recurrence (repeatable)",
    )
    from nehmap.commands import options

    options.add_workers(parser, None, "the study file's")
    options.add_progress(parser)
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run the per-case steps on this Dask scheduler (tcp://host:8786)",
    )
    parser.add_argument("--no-report", action="store_true", help="tables only, no HTML report")


def _progress(args: argparse.Namespace) -> bool:
    from nehmap.commands.options import show_progress

    return show_progress(args)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nehmap.errors import NehmapInputError
    from nehmap.io.lock import output_lock
    from nehmap.study import TEMPLATE, StudyConfig, run_study

    if args.init:
        target = Path(args.init)
        if target.exists():
            print(f"error: {target} exists; choose another file name.", file=sys.stderr)
            return 2
        from nehmap.io import write_text_atomic

        write_text_atomic(target, TEMPLATE)
        print(
            f"Wrote a study template to {target}; edit the cohort paths, then run "
            f"nehmap study {target}"
        )
        return 0
    if not args.config:
        print("error: give a study file, or --init FILE to write a template.", file=sys.stderr)
        return 2
    try:
        config = StudyConfig.from_file(args.config)
        if args.workers:
            config.execution.workers = args.workers
        if args.scheduler:
            config.execution.scheduler = args.scheduler
        with output_lock(config.output_dir, "nehmap study"):  # one run per output folder
            result = run_study(
                config, force=args.force, report=not args.no_report, progress=_progress(args)
            )
    except (NehmapInputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return print_result(result)


def print_result(result) -> int:  # noqa: ANN001 - StudyResult
    """Print where the tables and report are, stage timings and failures; the exit code."""
    print(f"Tables: {result.output / 'tables'}")
    for stage, seconds in result.timings.items():
        print(f"  {stage:<22} {seconds:7.1f} s")
    if len(result.excluded):
        print(f"{len(result.excluded)} case(s) excluded (see tables/excluded.csv)")
    if len(result.errors):
        print(f"{len(result.errors)} case(s) failed (see tables/errors.csv):")
        for row in result.errors.head(10).to_dict("records"):
            print(f"  {row['stage']} {row['case']}: {row['message']}")
    if result.report is not None:
        print(f"Report: {result.report}")
    return 1 if len(result.errors) else 0
