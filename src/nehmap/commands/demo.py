"""``nehmap demo``: a synthetic cohort, the whole study with the shipped weights, the report."""

from __future__ import annotations

import argparse
import sys

HELP = "generate a small synthetic cohort, run the study on it and print the report's path"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nehmap.commands import options

    options.add_out(
        parser, "folder for everything (demo-output)", required=False, default="demo-output"
    )
    parser.add_argument(
        "--perfusion-cases", type=int, default=12, help="UPenn-like cases with rCBV (12)"
    )
    parser.add_argument(
        "--recurrence-cases",
        type=int,
        default=8,
        help="RHUH-like pre-operative/recurrence pairs (8)",
    )
    parser.add_argument("--spacing", type=float, default=2.0, help="voxel size in mm (2)")
    options.add_seed(parser, 0)
    options.add_workers(parser, 1)
    options.add_progress(parser)


DEMO_CONFIG = """\
# Written by nehmap demo: the study of the method's paper on synthetic phantoms.
[study]
name = "nehmap demo (synthetic phantoms)"
output = "study"
seed = {seed}

[cohorts.perfusion]
path = "data/upenn"
{recurrence_block}
[segment]
models = ["paunet", "unetrpp", "unetrpp-consensus"]

[recurrence]
preset = "quick"
threads = 2
null_n = 100

[execution]
workers = {workers}
"""


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nehmap.errors import NehmapInputError
    from nehmap.io import write_text_atomic
    from nehmap.segmentation import DEFAULT_MODELS, models_dir
    from nehmap.study import StudyConfig, run_study
    from nehmap.synth import write_cohort

    out = Path(args.out)
    missing = [
        m
        for m in (*DEFAULT_MODELS, "unetrpp-consensus")
        if not (models_dir() / f"{m}.json").is_file()
    ]
    if missing:
        print(
            f"error: the shipped weights {', '.join(missing)} are not in {models_dir()}. "
            "Train them with 'make weights' or set NEHMAP_MODELS_DIR.",
            file=sys.stderr,
        )
        return 2
    data = out / "data"
    from nehmap.commands.options import show_progress

    progress = show_progress(args)
    if not (data / "upenn").is_dir():
        print(f"Generating {args.perfusion_cases} UPenn-like cases with rCBV ...")
        write_cohort(
            data / "upenn",
            args.perfusion_cases,
            args.seed,
            spacing=args.spacing,
            layout="upenn",
            progress=progress,
        )
    recurrence_block = ""
    if args.recurrence_cases > 0:
        if not (data / "rhuh").is_dir():
            print(
                f"Generating {args.recurrence_cases} RHUH-like pre-operative/recurrence pairs ..."
            )
            write_cohort(
                data / "rhuh",
                args.recurrence_cases,
                args.seed + 1,
                spacing=args.spacing,
                layout="rhuh",
                progress=progress,
            )
        recurrence_block = '\n[cohorts.recurrence]\npath = "data/rhuh"\n'
    config_path = out / "study.toml"
    write_text_atomic(
        config_path,
        DEMO_CONFIG.format(seed=args.seed, workers=args.workers, recurrence_block=recurrence_block),
    )
    try:
        config = StudyConfig.from_file(config_path)
        result = run_study(config, progress=progress)
    except (NehmapInputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from nehmap.commands.study import print_result

    print(f"Study configuration: {config_path}")
    return print_result(result)
