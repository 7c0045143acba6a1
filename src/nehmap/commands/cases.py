"""``nehmap cases DIR``: list the cases of a folder, what was found and what is missing."""

from __future__ import annotations

import argparse
import sys

from nehmap.bars import case_bar

HELP = "list the cases of a folder or manifest: what was found and what is missing"

_COLUMNS = ("t1", "t1c", "t2", "flair", "seg", "rcbv")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nehmap.commands import options

    parser.add_argument("input", help="collection folder, single case folder, or manifest CSV")
    options.add_layout(parser, "the input's", label_scheme="the label files")
    parser.add_argument(
        "--check",
        action="store_true",
        help="read every file and check values and grids (slower; default checks headers)",
    )
    parser.add_argument("--csv", metavar="FILE", help="also write the listing as CSV")
    options.add_progress(parser)
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 1 if any case is incomplete or bad"
    )


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from nehmap.commands.options import show_progress
    from nehmap.errors import NehmapInputError
    from nehmap.io import check_case_headers, discover, load_case, write_text_atomic

    try:
        collection = discover(args.input, layout=args.layout, label_scheme=args.label_scheme)
    except NehmapInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = []
    cases = case_bar(collection.cases, "checking cases", args.check and show_progress(args))
    for case in cases:
        status, problem = "ok", ""
        try:
            if args.check:
                load_case(case)
            else:
                check_case_headers(case)
        except NehmapInputError as exc:
            status = "incomplete" if case.missing() else "bad"
            problem = str(exc).removeprefix(f"case {case.case_id}: ")
        row = {"case": case.case_id, "subject": case.subject, "timepoint": case.timepoint or ""}
        for key in _COLUMNS:
            row[key] = case.files[key].name if key in case.files else ""
        row["status"] = status
        row["problem"] = problem
        row["notes"] = "; ".join(case.notes)
        rows.append(row)
    table = pd.DataFrame(rows)
    _print_table(table, collection)
    if args.csv:
        write_text_atomic(args.csv, table.to_csv(index=False), inputs=collection.cases[0].paths)
    n_bad = int((table["status"] != "ok").sum())
    return 1 if (args.strict and n_bad) else 0


def _print_table(table, collection) -> None:  # noqa: ANN001 - DataFrame, Collection
    show_tp = bool(table["timepoint"].astype(bool).any())
    header = ["case", *(["timepoint"] if show_tp else []), *_COLUMNS, "status"]
    lines = []
    for row in table.to_dict("records"):
        cells = [row["case"], *([row["timepoint"]] if show_tp else [])]
        for key in _COLUMNS:
            if row[key]:
                cells.append("found")
            else:
                cells.append("MISSING" if key in ("t1", "t1c", "t2", "flair") else "-")
        cells.append(row["status"])
        lines.append(cells)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    print(f"{collection.root}: layout {collection.layout}, {len(table)} case(s)")
    print(fmt.format(*header))
    for cells in lines:
        print(fmt.format(*cells))
    problems = table[table["status"] != "ok"]
    for row in problems.to_dict("records"):
        print(f"  {row['case']}: {row['problem']}")
    for row in table[table["notes"] != ""].to_dict("records"):
        print(f"  note {row['case']}: {row['notes']}")
    n_ok = int((table["status"] == "ok").sum())
    print(f"{n_ok} usable, {len(table) - n_ok} with problems", end="")
    if collection.unmatched:
        print(f"; {len(collection.unmatched)} file(s) not part of any case:")
        for path in collection.unmatched[:20]:
            print(f"  {path}")
        if len(collection.unmatched) > 20:
            print(f"  ... and {len(collection.unmatched) - 20} more")
    else:
        print()
