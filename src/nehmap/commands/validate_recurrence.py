"""``nehmap validate recurrence COHORT ...``: the pre-operative NEH against the recurrence (H3).

Registers every patient's pre-operative scan onto the scan at first recurrence, warps
the pre-operative NEH (pNEH) onto it and compares it with the enhancing tumour at
recurrence (ETRL): four spatial metrics per patient, each against its chance
expectation, and sign-flip permutation tests over the cohort. See
:mod:`nehmap.validate.recurrence` for the definitions and the tests.

Outputs in ``OUT``: ``recurrence_cases.csv`` (one row per patient and metric),
``recurrence_tests.csv`` (one row per metric and test), ``recurrence_summary.csv``
(mean and SD per metric, raw and as chance ratio), ``excluded.csv`` (patient, reason),
``warped/<patient>_pneh.nii.gz`` and ``warped/<patient>_preop-core.nii.gz`` on the
recurrence grid, ``transforms/<patient>/`` with ``--keep-transforms``, and
``recurrence_run.json`` (parameters, versions, column descriptions).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "compare the pre-operative NEH with the enhancing tumour at recurrence (H3)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``nehmap validate recurrence``."""
    from nehmap.commands import options
    from nehmap.validate.registration_schedule import PRESETS

    parser.add_argument(
        "cohort",
        help="collection with pre-operative and recurrence scans (RHUH-GBM layout, or a "
        "manifest CSV with time points)",
    )
    parser.add_argument(
        "--preop-seg",
        required=True,
        type=Path,
        metavar="DIR",
        help="segmentations of the pre-operative scans ('nehmap segment' output, or "
        "<case>.nii.gz label maps in nehmap labels)",
    )
    parser.add_argument(
        "--recurrence-seg",
        required=True,
        type=Path,
        metavar="DIR",
        help="segmentations of the recurrence scans (as --preop-seg)",
    )
    options.add_out(parser, "output folder", type=Path)
    parser.add_argument(
        "--preop-model",
        metavar="M",
        help="model of the pre-operative segmentation (<case>_seg-M.nii.gz), e.g. paunet, "
        "or 'fused'; default on 'nehmap segment' output: pNEH from the fused NEH mask "
        "(<case>_neh-mask), tumour core from unetrpp",
    )
    parser.add_argument(
        "--recurrence-model",
        metavar="M",
        help="model of the recurrence segmentation; default on 'nehmap segment' output: "
        "unetrpp (or the only network present)",
    )
    parser.add_argument(
        "--preset",
        choices=PRESETS,
        default="quick",
        help="registration: quick (nehmap's affine + SyN schedule, default), full "
        "(ANTsPy SyN defaults, about twice as slow) or affine",
    )
    options.add_threads(parser, 2)
    parser.add_argument(
        "--modalities",
        default="t1",
        help="comma-separated images to register (t1, t1c, t2, flair; default t1)",
    )
    parser.add_argument(
        "--mask-exclude",
        choices=("tumour", "core"),
        default="tumour",
        help="lesion left out of the registration metric: the whole tumour (default) or "
        "only ET + NC",
    )
    parser.add_argument(
        "--chance",
        default="matched,brain",
        metavar="MODELS",
        help="comma-separated chance models: matched (pNEH at other places equally near "
        "the tumour, in tissue that could hold NEH: the primary test), brain (anywhere in "
        "the brain, as the paper), spin (rotated about the cavity); default matched,brain",
    )
    parser.add_argument(
        "--null-n",
        type=options.int_at_least(1),
        default=500,
        help="chance placements per patient (500)",
    )
    parser.add_argument(
        "--within-mm",
        type=float,
        default=5.0,
        help="distance of FractionNearEdge in mm (5)",
    )
    options.add_seed(parser, 0)
    parser.add_argument(
        "--permutations",
        type=int,
        default=10_000,
        help="random sign flips when the test is not exact (n > 40; 10000)",
    )
    options.add_case_selection(parser, unit="patients or scans")
    parser.add_argument(
        "--keep-transforms",
        action="store_true",
        help="keep every registration's transforms in OUT/transforms/<patient>/",
    )
    parser.add_argument(
        "--keep-flagged",
        action="store_true",
        help="keep patients whose registration failed its quality check in the tests",
    )
    parser.add_argument(
        "--min-brain-dice",
        type=float,
        default=0.9,
        help="flag registrations whose warped brain Dice is below this (0.9)",
    )
    parser.add_argument(
        "--min-jacobian",
        type=float,
        default=0.0,
        help="flag registrations whose Jacobian determinant reaches this or less (0)",
    )
    options.add_layout(parser, "the cohort's")
    options.add_progress(parser)


def run(args: argparse.Namespace) -> int:
    """Run the analysis; 0 on success, 1 when no patient could be analysed (the tables
    say why), 2 on bad input or options (nothing written)."""
    from nehmap.commands import options
    from nehmap.errors import NehmapInputError, OutputError
    from nehmap.validate.cohort import read_id_list
    from nehmap.validate.recurrence import RecurrenceConfig, run_recurrence

    modalities = tuple(m.strip().lower() for m in args.modalities.split(",") if m.strip())
    known = ("t1", "t1c", "t2", "flair")
    unknown = [m for m in modalities if m not in known]
    problems = []
    if unknown or not modalities:
        problems.append(f"--modalities: unknown {unknown or 'empty'}; use {', '.join(known)}")
    if args.threads < 1:
        problems.append("--threads must be at least 1")
    from nehmap.validate.chance import CHANCE_MODELS

    chance = tuple(m.strip().lower() for m in args.chance.split(",") if m.strip())
    wrong = [m for m in chance if m not in CHANCE_MODELS]
    if wrong or not chance:
        problems.append(f"--chance: unknown {wrong or 'empty'}; use {', '.join(CHANCE_MODELS)}")
    if (args.recurrence_model or "").strip().lower() == "fused":
        problems.append(
            "--recurrence-model fused: the fused map holds NEH only, not the recurrence's "
            "enhancing tumour; name a network (e.g. unetrpp) or leave the option out"
        )
    for option, folder in (
        ("--preop-seg", args.preop_seg),
        ("--recurrence-seg", args.recurrence_seg),
    ):
        if not folder.is_dir():
            problems.append(f"{option} {folder}: no such folder")
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    config = RecurrenceConfig(
        preop_seg=args.preop_seg,
        recurrence_seg=args.recurrence_seg,
        preop_model=args.preop_model,
        recurrence_model=args.recurrence_model,
        preset=args.preset,
        threads=args.threads,
        null_n=args.null_n,
        seed=args.seed,
        chance=chance,
        modalities=modalities,
        mask_exclude=args.mask_exclude,
        within_mm=args.within_mm,
        exclude=tuple(sorted(read_id_list(args.exclude))),
        keep_transforms=args.keep_transforms,
        keep_flagged=args.keep_flagged,
        n_permutations=args.permutations,
        min_brain_dice=args.min_brain_dice,
        min_jacobian=args.min_jacobian,
        layout=args.layout,
        include=tuple(sorted(read_id_list(args.include))),
        clinical=Path(args.clinical) if args.clinical else None,
        clinical_id=args.clinical_id,
        exclude_where=tuple(args.exclude_where),
    )
    try:
        result = run_recurrence(args.cohort, args.out, config, progress=options.show_progress(args))
    except (NehmapInputError, OutputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    n_cases = result.cases["case"].nunique() if len(result.cases) else 0
    n_in = (
        result.cases.loc[result.cases["included"].astype(bool), "case"].nunique()
        if len(result.cases)
        else 0
    )
    print(
        f"{n_cases} patient(s) analysed, {n_in} in the tests, {len(result.excluded)} excluded; "
        f"tables in {args.out}"
    )
    for row in result.excluded.itertuples():
        print(f"  excluded {row.case}: {row.reason}")
    if n_in:
        from nehmap.validate.recurrence_tests import primary_tests

        primary = primary_tests(result.tests)
        if len(primary):
            print("  primary H3 test (matched chance model, chance rank; Holm over 4 metrics):")
        for row in primary.itertuples():
            shown = (
                f"p = {row.p_value:.4g}, Holm-adjusted p = {row.p_adjusted:.4g}"
                if row.method != "not computed"
                else row.note
            )
            print(f"    {row.metric:<28} mean rank {row.observed_mean:6.3f}  {shown}")
    return 0 if n_cases else 1
