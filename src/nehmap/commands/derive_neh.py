"""``nehmap derive-neh REFERENCE --second SECOND -o OUT``: NEH pseudo-ground truth.

The paper's rule: NEH = the reference's BraTS 2017-2020 label 1 (NCR/NET, outside the
reference enhancing tumour) that the second, BraTS 2021-style segmentation does not call
necrosis, opened with a ball of ``--opening-mm`` mm and cleared of components smaller
than ``--min-volume-mm3`` mm^3. See :mod:`nehmap.derive.rule` and docs/derive-neh.md.
"""

from __future__ import annotations

import argparse

from nehmap.commands import dataset_options, options

HELP = "derive NEH labels from a reference and a second segmentation (pseudo-ground truth)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "reference",
        help="collection (folder or manifest) with the reference segmentations "
        "(BraTS 2017-2020 style: 1 NCR/NET, 2 ED, 4 ET)",
    )
    parser.add_argument(
        "--second",
        required=True,
        help="the second segmentations (BraTS 2021 style: 1 NCR, 2 ED incl. non-enhancing "
        "tumour, 4 ET): a folder of <case>.nii.gz or <case>_seg*.nii.gz label maps "
        "(subfolders searched), or a collection",
    )
    options.add_out(parser, "output folder")
    parser.add_argument(
        "--opening-mm",
        type=float,
        default=1.0,
        help="radius (mm) of the ball of the morphological opening; 0 skips it (1.0)",
    )
    parser.add_argument(
        "--min-volume-mm3",
        type=float,
        default=50.0,
        help="smallest NEH component kept, mm^3; 0 keeps all (50)",
    )
    parser.add_argument(
        "--second-scheme",
        help="label scheme of the second segmentations (default: brats2021 for a folder of "
        "label maps, the collection's own for a collection; nehmap for nehmap segment outputs)",
    )
    parser.add_argument(
        "--second-pattern",
        metavar="PATTERN",
        help="file of each case's second segmentation, relative to SECOND, with {case} for "
        "the case id, e.g. '{case}/{case}_seg-unetrpp.nii.gz'",
    )
    options.add_layout(parser, "the reference collection's")
    parser.add_argument(
        "--reference-scheme",
        help="label scheme of the reference label files (default: the collection's; BraTS "
        "IDs tell the release: Brats18_/BraTS19_/BraTS20_ brats2018, BraTS2021_ brats2021)",
    )
    parser.add_argument(
        "--rule",
        choices=("paper", "mirrored"),
        help="derivation rule (default: told from the schemes; 'paper' for a brats2018 "
        "reference: its NCR/NET that the second segmentation does not call necrosis; "
        "'mirrored': the second's NCR/NET inside a brats2021 reference's edema)",
    )
    parser.add_argument(
        "--keep-outside-wt",
        action="store_true",
        help="rule 'mirrored' only: also turn candidates outside the reference whole tumour "
        "into NEH (default: only reference edema becomes NEH)",
    )
    parser.add_argument(
        "--format",
        choices=("nnunet", "manifest"),
        help="output format (default: manifest for a manifest input, else nnunet)",
    )
    dataset_options.add_write_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from nehmap.derive.neh import SecondSegmentations, derive_dataset
    from nehmap.errors import NehmapInputError, OutputError
    from nehmap.io import discover

    try:
        reference = discover(args.reference, layout=args.layout, label_scheme=args.reference_scheme)
        second = SecondSegmentations(
            args.second, scheme=args.second_scheme, pattern=args.second_pattern
        )
        report = derive_dataset(
            reference,
            second,
            args.out,
            opening_mm=args.opening_mm,
            min_volume_mm3=args.min_volume_mm3,
            within_wt=not args.keep_outside_wt,
            rule=args.rule,
            output_format=args.format,
            **dataset_options.write_options(args),
        )
    except (NehmapInputError, OutputError, ValueError) as exc:
        return dataset_options.error(exc)
    print(f"{report.output_format} dataset: {report.root}")
    if report.stats:
        final = sorted(s.volume_mm3("final") for s in report.stats.values())
        before = sorted(s.volume_mm3("candidates") for s in report.stats.values())
        mid = len(final) // 2
        print(
            f"  NEH volume per case, median: {before[mid]:.0f} mm^3 before cleaning, "
            f"{final[mid]:.0f} mm^3 after; {sum(v == 0 for v in final)} case(s) without NEH"
        )
    print(f"  volumes: {report.volumes}")
    return dataset_options.print_summary("derived", report)
