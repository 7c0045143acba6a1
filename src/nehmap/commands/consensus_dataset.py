"""``nehmap consensus-dataset SEGDIR --images COLLECTION -o OUT``: two-level NEH training set.

Writes an nnU-Net v2 raw dataset whose label files hold the two-level consensus map
(0 background, 1 low-, 2 high-probability NEH; ``"label_scheme": "neh-consensus"``),
NOT nehmap's tissue labels, for training ``unetrpp-consensus``. See
:mod:`nehmap.derive.consensus`.
"""

from __future__ import annotations

import argparse

from nehmap.commands import dataset_options, options

HELP = "build the two-level NEH consensus training set (nnU-Net layout) from segment outputs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("segdir", help="output folder of nehmap segment")
    parser.add_argument(
        "--images", required=True, help="collection (folder or manifest) with the cases' images"
    )
    options.add_out(parser, "dataset folder ($nnUNet_raw with --dataset-id/--name)")
    parser.add_argument(
        "--low",
        type=float,
        help="recompute the levels from <case>_neh-prob with this lower bound of the low "
        "level (default: use <case>_neh-levels as segment wrote it; 0.2 when recomputing)",
    )
    parser.add_argument(
        "--high",
        type=float,
        help="recompute the levels from <case>_neh-prob with this high-level threshold "
        "(default: as segment; 0.5 when recomputing)",
    )
    options.add_layout(parser, "the image collection's")
    dataset_options.add_write_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from nehmap.derive.consensus import consensus_dataset
    from nehmap.errors import NehmapInputError, OutputError
    from nehmap.io import discover

    try:
        images = discover(args.images, layout=args.layout)
        report = consensus_dataset(
            args.segdir,
            images,
            args.out,
            low=args.low,
            high=args.high,
            **dataset_options.write_options(args),
        )
    except (NehmapInputError, OutputError, ValueError) as exc:
        return dataset_options.error(exc)
    print(f"consensus dataset: {report.root} (labels 0 background, 1 NEH-low, 2 NEH-high)")
    return dataset_options.print_summary("written", report)
