"""``nehmap segment INPUT -o OUT``: NEH probability maps for a case, a collection or a manifest."""

from __future__ import annotations

import argparse
import sys

from nehmap.bars import case_bar

HELP = "segment cases with each model and write the fused NEH probability maps"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nehmap.commands import options

    parser.add_argument("input", help="case folder, collection folder or manifest CSV")
    options.add_out(parser, "output folder (one subfolder per case)")
    parser.add_argument(
        "--models",
        help="comma-separated shipped model names or checkpoint paths "
        "(default: the shipped paunet,unetrpp)",
    )
    options.add_device(parser)
    parser.add_argument("--tta", action="store_true", help="test-time mirroring (8x slower)")
    options.add_overwrite(parser, "redo cases already complete")
    options.add_layout(parser, "the input's")
    parser.add_argument(
        "--external",
        action="append",
        default=[],
        metavar="NAME=PATTERN:LABELS",
        help="join an external model's probability maps to the ensemble, e.g. "
        "'nnunet=/preds/{case}.npz:background,ED,NC,ET' ({case} is replaced by the case id; "
        "LABELS is the nehmap label of each channel in order)",
    )
    parser.add_argument(
        "--fusion",
        choices=("mean", "staple"),
        default="mean",
        help="how the models' NEH outputs are combined before smoothing and threshold: "
        "'mean' of their NEH probabilities (default, the paper's consensus) or 'staple' "
        "(STAPLE of their NEH masks, each model weighted by its estimated sensitivity and "
        "specificity); recorded in each case's JSON record",
    )
    parser.add_argument("--weights", help="comma-separated weights of the consensus mean")
    parser.add_argument("--sigma-mm", type=float, default=1.5, help="Gaussian sigma in mm (1.5)")
    parser.add_argument("--threshold", type=float, default=0.5, help="NEH threshold (0.5)")
    parser.add_argument(
        "--low", type=float, default=0.2, help="lower bound of the low-probability level (0.2)"
    )
    parser.add_argument("--overlap", type=float, default=0.5, help="sliding-window overlap")
    parser.add_argument("--batch-size", type=int, default=2, help="windows per forward pass")
    parser.add_argument(
        "--save-probabilities",
        action="store_true",
        help="also write each model's class probabilities",
    )
    parser.add_argument(
        "--html",
        action="store_true",
        help="also write each case's interactive 3D viewer, OUT/CASE/CASE_viewer.html "
        "(one offline file, as 'nehmap view' writes it)",
    )
    options.add_progress(parser)


def _parse_external(specs: list[str]) -> dict[str, tuple[str, list[int]]]:
    from nehmap.io.external import parse_label_order

    out = {}
    for spec in specs:
        name, sep, rest = spec.partition("=")
        pattern, sep2, labels = rest.rpartition(":")
        if not (sep and sep2 and name and pattern):
            raise ValueError(f"--external {spec!r}: expected NAME=PATTERN:LABELS.")
        out[name] = (pattern, parse_label_order(labels))
    return out


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nehmap.errors import NehmapInputError, OutputError
    from nehmap.io import discover
    from nehmap.io.lock import check_outside_inputs, input_folders, output_lock
    from nehmap.segmentation import load_models

    out = Path(args.out)
    try:
        external = _parse_external(args.external)
        weights = [float(w) for w in args.weights.split(",")] if args.weights else None
        if weights is not None and args.fusion == "staple":
            raise ValueError("--weights apply to --fusion mean only; STAPLE weighs the models.")
        collection = discover(args.input, layout=args.layout)
        check_outside_inputs(out, input_folders(collection))
    except (NehmapInputError, ValueError, OutputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # the output folder is checked and locked before any work (OutputError -> exit 1)
    with output_lock(out, "nehmap segment"):
        try:
            models = load_models(args.models.split(",") if args.models else None, args.device)
        except (NehmapInputError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return _run_locked(args, out, collection, models, external, weights)


def _run_locked(args, out, collection, models, external, weights) -> int:  # noqa: ANN001
    """The segmentation of the cases, while this run holds the output folder's lock."""
    from nehmap.commands.options import show_progress
    from nehmap.errors import DiskFullError, NehmapInputError
    from nehmap.io import load_case
    from nehmap.io.external import read_external_probabilities
    from nehmap.segmentation import (
        is_complete,
        segment,
        settings_differences,
        settings_record,
        write_segmentation,
    )

    settings = settings_record(
        models,
        list(external),
        weights=weights,
        sigma_mm=args.sigma_mm,
        threshold=args.threshold,
        low=args.low,
        mirror=args.tta,
        overlap=args.overlap,
        fusion=args.fusion,
    )
    todo = [c for c in collection if args.overwrite or not is_complete(out, c.case_id)]
    skipped = len(collection) - len(todo)
    if skipped:
        print(f"{skipped} case(s) already complete in {out} (use --overwrite to redo them)")
        redo = {c.case_id for c in todo}
        other = {}
        for c in collection:
            differences = (
                [] if c.case_id in redo else settings_differences(out, c.case_id, settings)
            )
            if differences:
                other[c.case_id] = differences
        if other:
            keys = sorted({k for d in other.values() for k in d})
            print(
                f"warning: {len(other)} of them were segmented with other settings "
                f"({', '.join(keys)} differ; e.g. {next(iter(other))}); they are kept as they "
                "are. Use --overwrite to redo them with these settings, or another -o.",
                file=sys.stderr,
            )
    failures: list[tuple[str, str]] = []
    progress = show_progress(args)
    bar = case_bar(todo, "cases", progress)
    for files in bar:
        try:
            case = load_case(files, load_labels=False, load_rcbv=False)
            ext = {
                name: read_external_probabilities(
                    pattern.replace("{case}", case.case_id), case.grid, labels
                )
                for name, (pattern, labels) in external.items()
            }
            result = segment(
                case,
                models,
                device=args.device,
                mirror=args.tta,
                overlap=args.overlap,
                batch_size=args.batch_size,
                external=ext,
                weights=weights,
                sigma_mm=args.sigma_mm,
                threshold=args.threshold,
                low=args.low,
                fusion=args.fusion,
                progress=progress,
            )
            write_segmentation(result, case, out, save_probabilities=args.save_probabilities)
        except DiskFullError:
            raise  # no later case can be written either
        except (NehmapInputError, ValueError, OSError, RuntimeError) as exc:
            failures.append((files.case_id, str(exc)))
            bar.write(f"failed: {files.case_id}: {exc}", file=sys.stderr)
    done = len(todo) - len(failures)
    if args.html:
        failed = {c for c, _ in failures}
        failures += _write_viewers(out, collection, failed, {c.case_id for c in todo})
    print(f"{done} case(s) segmented into {out}, {skipped} skipped, {len(failures)} failed")
    for case_id, message in failures:
        print(f"  FAILED {case_id}: {message}")
    return 1 if failures else 0


def _write_viewers(out, collection, failed, redone) -> list[tuple[str, str]]:  # noqa: ANN001
    """``--html``: the viewer of every case segmented by this run (``redone``, minus the
    ``failed``) and of earlier cases that lack one; returns the cases whose viewer could
    not be written, with the reason."""
    from nehmap.commands.view import write_case_viewer
    from nehmap.errors import NehmapInputError

    problems = []
    for files in collection:
        folder = out / files.case_id
        page = folder / f"{files.case_id}_viewer.html"
        if files.case_id in failed or (page.exists() and files.case_id not in redone):
            continue
        try:
            write_case_viewer(folder, page, overwrite=True)
        except (NehmapInputError, ValueError, OSError) as exc:
            problems.append((files.case_id, f"viewer: {exc}"))
    return problems
