"""``nehmap export-nnunet COLLECTION -o OUT``: a collection as an nnU-Net v2 raw dataset."""

from __future__ import annotations

import argparse

from nehmap.commands import dataset_options, options

HELP = "write a collection as an nnU-Net v2 raw dataset in nehmap's labels"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("collection", help="collection folder or manifest CSV")
    options.add_out(parser, "$nnUNet_raw (with --dataset-id/--name) or dataset folder")
    parser.add_argument(
        "--regions",
        action="store_true",
        help="region-based labels for nnU-Net: whole tumor [1,2,3,4], tumor core [1,3,4], "
        "NEH [3], enhancing tumor [4], regions_class_order [2,1,3,4] (same label files)",
    )
    options.add_layout(parser, label_scheme="the collection's label files")
    dataset_options.add_write_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from nehmap.errors import NehmapInputError, OutputError
    from nehmap.io import discover
    from nehmap.io.nnunet import export_nnunet

    try:
        collection = discover(args.collection, layout=args.layout, label_scheme=args.label_scheme)
        report = export_nnunet(
            collection,
            args.out,
            regions=args.regions,
            **dataset_options.write_options(args),
        )
    except (NehmapInputError, OutputError, ValueError) as exc:
        return dataset_options.error(exc)
    print(f"nnU-Net dataset: {report.root} ({report.index.name if report.index else ''})")
    if report.unlabelled:
        print(f"  {len(report.unlabelled)} case(s) without labels went to imagesTs")
    return dataset_options.print_summary("exported", report)
