"""The ``nehmap synth`` command: write a synthetic cohort in a public layout.

Usage::

    nehmap synth OUT [--n N] [--seed S] [--spacing MM] [--layout LAYOUT]
                     [--rcbv | --no-rcbv] [--recurrence | --no-recurrence]
                     [--family NAME] [--overwrite] [--no-progress] [-q]

The collection goes to ``OUT`` and its ground truth to ``OUT_truth`` beside it.
"""

from __future__ import annotations

import argparse
import sys

from nehmap.errors import OutputError
from nehmap.io.writers import LAYOUTS
from nehmap.synth.cohort import truth_folder, write_cohort
from nehmap.synth.families import CHOICES, MIXED


def _family(text: str) -> str:
    if text not in CHOICES:
        raise argparse.ArgumentTypeError(
            f"unknown tumour family {text!r}; choose one of: {', '.join(CHOICES)}"
        )
    return text


def _spacing(text: str) -> float | tuple[float, float, float]:
    """Parse ``2`` or ``1,1,3`` (mm)."""
    parts = [p for p in text.replace("x", ",").split(",") if p.strip()]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid spacing {text!r}: give one number or three, e.g. 2 or 1,1,3 (mm)"
        ) from None
    if len(values) == 1 and values[0] > 0:
        return values[0]
    if len(values) == 3 and all(v > 0 for v in values):
        return (values[0], values[1], values[2])
    raise argparse.ArgumentTypeError(
        f"invalid spacing {text!r}: give one positive number or three, e.g. 2 or 1,1,3 (mm)"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``synth`` command's arguments to ``parser``."""
    parser.add_argument(
        "out",
        metavar="OUT",
        help="collection folder to create (the ground truth goes to OUT_truth beside it)",
    )
    from nehmap.commands import options

    parser.add_argument(
        "--n", type=options.int_at_least(1), default=10, help="number of cases (default: 10)"
    )

    options.add_seed(parser, 0)
    parser.add_argument(
        "--spacing",
        type=_spacing,
        default=1.0,
        metavar="MM",
        help="voxel size in mm, one value or three like 1,1,3 (default: 1; "
        "the field of view is always 240 x 240 x 155 mm)",
    )
    parser.add_argument(
        "--layout",
        choices=list(LAYOUTS),
        default="brats2021",
        help="file layout and label scheme of a public collection (default: brats2021)",
    )
    parser.add_argument(
        "--rcbv",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write rCBV maps (default: only for the upenn layout)",
    )
    parser.add_argument(
        "--recurrence",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="add a recurrence time point (default: only for the rhuh layout)",
    )
    parser.add_argument(
        "--family",
        type=_family,
        default="ellipsoidal",
        metavar="NAME",
        help=f"tumour family: {', '.join(CHOICES)} (default: ellipsoidal, the original "
        f"generator; {MIXED} draws one family per case, the training recipe's choice; "
        "see docs/synthetic-data.md)",
    )
    options.add_overwrite(
        parser, "replace OUT (and OUT_truth) when a previous nehmap synth run wrote them"
    )
    parser.add_argument(
        "--second-segmentation",
        action="store_true",
        help="also write a BraTS 2021-style second segmentation of each case (NEH called "
        "edema, boundaries perturbed as another model's) under OUT_truth/second, the "
        "--second input of nehmap derive-neh; pair it with --layout brats2018 or brats2020, "
        "whose label files hold NEH in label 1 (NCR/NET)",
    )
    options.add_progress(parser)


def run(args: argparse.Namespace) -> int:
    """Run ``nehmap synth``; returns the exit status (0 success, 2 nothing written)."""
    from nehmap.commands.options import EXIT_NOTHING_STARTED, show_progress

    try:
        result = write_cohort(
            args.out,
            args.n,
            args.seed,
            spacing=args.spacing,
            layout=args.layout,
            rcbv=args.rcbv,
            recurrence=args.recurrence,
            progress=show_progress(args),
            overwrite=args.overwrite,
            second_segmentation=args.second_segmentation,
            family=args.family,
        )
    except (OutputError, ValueError) as exc:
        print(f"nehmap synth: error: {exc}", file=sys.stderr)
        return EXIT_NOTHING_STARTED
    print(
        f"Wrote {len(result.case_ids)} synthetic cases ({args.layout} layout) to "
        f"{result.collection}\nGround truth: {truth_folder(result.collection)}"
    )
    return 0
