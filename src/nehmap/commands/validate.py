"""``nehmap validate rcbv|rims|recurrence``: the clinical validation of NEH maps."""

from __future__ import annotations

import argparse
import importlib
import sys

HELP = "validate NEH maps against perfusion (rcbv, rims) and recurrence"

SUBCOMMANDS = {
    "rcbv": "H1: rCBV per compartment and model",
    "rims": "H2: rCBV in peri-enhancing rims versus NEH",
}
# the recurrence sub-command lives in its own module
RECURRENCE_MODULE = "nehmap.commands.validate_recurrence"


def _add_cohort_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("cohort", help="collection with rCBV maps (e.g. UPenn-GBM), or a manifest")
    p.add_argument(
        "--segmentations",
        required=True,
        metavar="SEGDIR",
        help="the output folder of nehmap segment for this cohort",
    )
    from nehmap.commands import options

    options.add_out(p, "output folder for the tables")
    options.add_progress(p)
    options.add_layout(p, "the cohort's")
    p.add_argument(
        "--vessel-percentile",
        type=float,
        default=99.0,
        help="large vessels: voxels above this percentile of the brain's rCBV (99); left "
        "out of H2 (as the paper), and of H1 only with --exclude-vessels",
    )
    p.add_argument(
        "--vessel-masks",
        metavar="DIR",
        help="folder of vessel masks (<case>.nii.gz) used instead of the percentile",
    )
    options.add_case_selection(p)
    p.add_argument(
        "--all-timepoints",
        action="store_true",
        help="keep post-operative and follow-up scans (default: pre-operative only)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="validation", metavar="ANALYSIS", required=True)
    p = sub.add_parser("rcbv", help=SUBCOMMANDS["rcbv"], description=SUBCOMMANDS["rcbv"])
    _add_cohort_arguments(p)
    p.add_argument(
        "--models",
        help="comma-separated models of SEGDIR (default: all, plus the "
        "fused two-level map 'levels')",
    )
    p.add_argument(
        "--exclude-vessels",
        action="store_true",
        help="leave large vessels out of H1 (default: keep them, as the paper does; the "
        "other way is always written to rcbv_vessel_sensitivity.csv)",
    )
    p.set_defaults(_run=run_rcbv_command)
    p = sub.add_parser("rims", help=SUBCOMMANDS["rims"], description=SUBCOMMANDS["rims"])
    _add_cohort_arguments(p)
    p.add_argument(
        "--et-model", help="model whose enhancing tumour defines the rims (default: paunet)"
    )
    p.add_argument(
        "--neh-model", help="model whose NEH is compared, or 'fused' (default: the same model)"
    )
    p.add_argument("--rims-mm", default="2,4,6", help="rim thicknesses in mm (2,4,6)")
    p.set_defaults(_run=run_rims_command)
    try:
        module = importlib.import_module(RECURRENCE_MODULE)
    except ModuleNotFoundError:
        return
    p = sub.add_parser("recurrence", help=module.HELP, description=module.HELP)
    module.add_arguments(p)
    p.set_defaults(_run=module.run)


def run(args: argparse.Namespace) -> int:  # dispatch is done through set_defaults
    return int(args._run(args) or 0)


def _selection(args: argparse.Namespace):  # noqa: ANN202 - (Collection, Selection)
    import pandas as pd

    from nehmap.io import discover
    from nehmap.validate.cohort import read_id_list, select_cases

    collection = discover(args.cohort, layout=args.layout)
    clinical = pd.read_csv(args.clinical) if args.clinical else None
    selection = select_cases(
        collection.cases,
        include=read_id_list(args.include) if args.include else None,
        exclude=read_id_list(args.exclude),
        timepoints=None if args.all_timepoints else ("preop", None),
        require=("rcbv",),
        clinical=clinical,
        clinical_id=args.clinical_id,
        exclude_where=args.exclude_where,
    )
    return collection, selection


def _settings(args: argparse.Namespace):  # noqa: ANN202
    from pathlib import Path

    from nehmap.validate.perfusion_cohort import PerfusionSettings

    return PerfusionSettings(
        vessel_percentile=args.vessel_percentile,
        vessel_masks=Path(args.vessel_masks) if args.vessel_masks else None,
        h1_exclude_vessels=bool(getattr(args, "exclude_vessels", False)),
    )


def _report(tables, out, prefix: str) -> None:  # noqa: ANN001
    n = tables.cases["case"].nunique() if len(tables.cases) else 0
    print(f"{n} case(s) measured, {len(tables.excluded)} exclusion(s); tables in {out}:")
    if len(tables.tests):
        cols = [
            c
            for c in ("model", "test", "a", "b", "statistic", "p", "p_adjusted", "n")
            if c in tables.tests.columns
        ]
        with __import__("pandas").option_context("display.width", 120):
            print(tables.tests[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))


def _run_perfusion(args: argparse.Namespace, prefix: str, analysis: str, compute) -> int:  # noqa: ANN001
    """Shared driver of ``rcbv`` and ``rims``: select, compute, write, print."""
    from pathlib import Path

    from nehmap.errors import NehmapInputError
    from nehmap.validate.perfusion_cohort import write_tables

    try:
        collection, selection = _selection(args)
        tables = compute(collection, selection, Path(args.segmentations))
    except (NehmapInputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    record = {"analysis": analysis, "arguments": vars_without_callables(args)}
    write_tables(Path(args.out), prefix, tables, record)
    _report(tables, args.out, prefix)
    return 0


def show_progress(args: argparse.Namespace) -> bool:
    """Whether to draw progress bars (see :func:`nehmap.commands.options.show_progress`)."""
    from nehmap.commands import options

    return options.show_progress(args)


def run_rcbv_command(args: argparse.Namespace) -> int:
    """Run ``nehmap validate rcbv`` (H1): per-compartment rCBV tables and tests."""
    from nehmap.validate.perfusion_cohort import run_rcbv

    models = args.models.split(",") if args.models else None
    return _run_perfusion(
        args,
        "rcbv",
        "H1 rCBV per compartment",
        lambda collection, selection, segdir: run_rcbv(
            collection,
            selection,
            segdir,
            models=models,
            settings=_settings(args),
            progress=show_progress(args),
        ),
    )


def run_rims_command(args: argparse.Namespace) -> int:
    """Run ``nehmap validate rims`` (H2): rCBV of NEH against peri-enhancing rims."""
    from nehmap.validate.perfusion_cohort import run_rims

    try:
        rims = tuple(float(v) for v in args.rims_mm.split(","))
    except ValueError:
        print(
            f"error: --rims-mm {args.rims_mm!r}: give thicknesses in mm, e.g. 2,4,6",
            file=sys.stderr,
        )
        return 2
    return _run_perfusion(
        args,
        "rims",
        "H2 peri-enhancing rims",
        lambda collection, selection, segdir: run_rims(
            collection,
            selection,
            segdir,
            et_model=args.et_model,
            neh_model=args.neh_model,
            distances_mm=rims,
            settings=_settings(args),
            progress=show_progress(args),
        ),
    )


def vars_without_callables(args: argparse.Namespace) -> dict:
    """The parsed arguments, JSON-friendly (for run records)."""
    return {k: v for k, v in vars(args).items() if not callable(v) and not k.startswith("_")}
