"""``nehmap evaluate PRED REF -o OUT``: score predicted label maps against references.

Writes, atomically and never over an input file:

``evaluation_cases.csv``
    one row per case, region and metric: ``case, region, metric, value``;
``evaluation_summary.csv``
    one row per region and metric: ``region, metric, mean, sd, median, n``;
``table_regions.csv`` / ``table_neh.csv``
    paper-style tables (rows Dice, Hausdorff95, Jaccard, Surface Dice; columns ET, TC,
    WT, or NEH; cells ``"mean ± sd"``; Hausdorff95 in mm);
``evaluation.json``
    parameters, software versions, counts, one-sided and failed cases.

Exit status: 0 when every matched case was evaluated, 1 when some failed (or, with
``--strict``, when a case is on one side only), 2 on unusable input.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

HELP = "score predicted label maps against reference ones (Dice, Jaccard, HD95, surface Dice)"

CASES_FILE = "evaluation_cases.csv"
SUMMARY_FILE = "evaluation_summary.csv"
TABLE_REGIONS_FILE = "table_regions.csv"
TABLE_NEH_FILE = "table_neh.csv"
RECORD_FILE = "evaluation.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "pred",
        help="predictions: nehmap segment output, a collection, or a folder of <case>.nii.gz",
    )
    parser.add_argument("ref", help="references, in any of the same forms")
    from nehmap.commands import options

    options.add_out(parser, "output folder for the tables")
    options.add_progress(parser)
    parser.add_argument(
        "--pred-model",
        help="model whose maps to take from a nehmap segment output PRED "
        "('fused': the fused NEH mask)",
    )
    parser.add_argument(
        "--ref-model", help="model whose maps to take from a nehmap segment output REF"
    )
    parser.add_argument(
        "--pred-scheme",
        help="label scheme of PRED's label maps (default: nehmap, or the collection's)",
    )
    parser.add_argument(
        "--ref-scheme",
        help="label scheme of REF's label maps (default: nehmap, or the collection's)",
    )
    parser.add_argument(
        "--method",
        choices=("voxels", "surface_elements"),
        default="voxels",
        help="surface convention of HD95 and surface Dice: boundary voxels (MONAI) or "
        "surface elements (DeepMind's surface-distance) (default: voxels)",
    )
    parser.add_argument(
        "--tolerance-mm", type=float, default=2.0, help="surface-Dice tolerance in mm (2.0)"
    )
    parser.add_argument(
        "--empty-penalty",
        type=float,
        metavar="MM",
        help="HD95 in mm when a region is empty in exactly one map "
        "(default: undefined, left out of the summary)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit with status 1 when a case has a label map on one side only "
        "(the other cases are still evaluated and written)",
    )


def _versions() -> dict[str, str]:
    import platform
    from importlib import metadata

    from nehmap._version import __version__

    out = {"nehmap": __version__, "python": platform.python_version()}
    for package in ("numpy", "scipy", "pandas", "nibabel", "SimpleITK"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out


def _record(result: Any, args: argparse.Namespace) -> dict:  # noqa: ANN401 - EvaluationResult
    import math
    from datetime import UTC, datetime

    undefined = (
        result.cases[result.cases["value"].isna()].groupby(["region", "metric"], sort=False).size()
    )
    return {
        "command": "nehmap evaluate",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "parameters": {**result.parameters, "strict": bool(args.strict)},
        "versions": _versions(),
        "counts": result.counts,
        "undefined_values": [
            {"region": region, "metric": metric, "cases": int(n)}
            for (region, metric), n in undefined.items()
        ],
        "missing": result.missing.to_dict("records"),
        "failures": result.failures.to_dict("records"),
        "notes": list(result.notes),
        "outputs": [CASES_FILE, SUMMARY_FILE, TABLE_REGIONS_FILE, TABLE_NEH_FILE, RECORD_FILE],
        "summary": [
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
            for row in result.summary.to_dict("records")
        ],
    }


def _print_report(result: Any, out: str) -> None:  # noqa: ANN401 - EvaluationResult
    counts = result.counts
    print(
        f"{counts['evaluated']} of {counts['matched']} matched case(s) evaluated "
        f"(PRED {counts['pred_label_maps']} label map(s), REF {counts['ref_label_maps']}); "
        f"{counts['failed']} failed, {len(result.missing)} on one side only"
    )
    for row in result.missing.itertuples(index=False):
        other = "REF" if row.only_in == "pred" else "PRED"
        print(f"  MISSING {row.case}: only in {row.only_in.upper()}, none in {other} ({row.path})")
    for row in result.failures.itertuples(index=False):
        print(f"  FAILED {row.case}: {row.message}")
    for note in result.notes:
        print(f"note: {note}")
    if counts["evaluated"]:
        n = counts["evaluated"]
        print(f"\nRegions: mean ± sd over {n} case(s) (Hausdorff95 in mm)")
        print(result.table_regions.to_string())
        print(f"\nNEH: mean ± sd over {n} case(s) (Hausdorff95 in mm)")
        print(result.table_neh.to_string())
    print(f"\nwrote {out}")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from nehmap.commands.options import show_progress
    from nehmap.errors import NehmapInputError, OutputError
    from nehmap.evaluate import evaluate_collections
    from nehmap.io import write_text_atomic

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        print(f"error: {out}: is a file; give an output folder.", file=sys.stderr)
        return 2
    try:
        result = evaluate_collections(
            args.pred,
            args.ref,
            pred_model=args.pred_model,
            ref_model=args.ref_model,
            pred_scheme=args.pred_scheme,
            ref_scheme=args.ref_scheme,
            method=args.method,
            tolerance_mm=args.tolerance_mm,
            empty_penalty=args.empty_penalty,
            progress=show_progress(args),
        )
    except (NehmapInputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    outputs = {
        CASES_FILE: result.cases.to_csv(index=False),
        SUMMARY_FILE: result.summary.to_csv(index=False),
        TABLE_REGIONS_FILE: result.table_regions.to_csv(),
        TABLE_NEH_FILE: result.table_neh.to_csv(),
        RECORD_FILE: json.dumps(_record(result, args), indent=2, allow_nan=False) + "\n",
    }
    try:
        for name, text in outputs.items():
            write_text_atomic(out / name, text, inputs=result.inputs)
    except (OutputError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _print_report(result, str(out))
    strict_failure = bool(args.strict and not result.missing.empty)
    if strict_failure:
        print(
            f"error: {len(result.missing)} case(s) have a label map on one side only (--strict).",
            file=sys.stderr,
        )
    return 1 if strict_failure or not result.failures.empty else 0
