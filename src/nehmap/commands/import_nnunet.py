"""``nehmap import-nnunet DATASET -o OUT``: an nnU-Net v2 raw dataset in one of nehmap's layouts."""

from __future__ import annotations

import argparse

from nehmap.commands import dataset_options, options

HELP = "write an nnU-Net v2 raw dataset as a manifest or in a public collection's layout"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nehmap.io.nnunet import IMPORT_LAYOUTS

    parser.add_argument("dataset", help="the nnU-Net dataset folder (DatasetXXX_Name)")
    options.add_out(parser, "output folder")
    parser.add_argument(
        "--layout",
        default="manifest",
        choices=IMPORT_LAYOUTS,
        help="output layout (default: manifest, which keeps NEH and any case IDs)",
    )
    parser.add_argument(
        "--merge-neh",
        action="store_true",
        help="allow layouts without an NEH label: write NEH where the layout's release puts "
        "non-enhancing tumour (the core label, ET/TC/WT preserved; edema in brats2021)",
    )
    dataset_options.add_write_arguments(parser, dataset=False)


def run(args: argparse.Namespace) -> int:
    from nehmap.errors import NehmapInputError, OutputError
    from nehmap.io.nnunet import import_nnunet

    try:
        report = import_nnunet(
            args.dataset,
            args.out,
            layout=args.layout,
            merge_neh=args.merge_neh,
            **dataset_options.write_options(args, dataset=False),
        )
    except (NehmapInputError, OutputError, ValueError) as exc:
        return dataset_options.error(exc)
    where = report.index if report.index is not None else report.root
    print(f"{args.layout}: {where}")
    return dataset_options.print_summary("imported", report)
