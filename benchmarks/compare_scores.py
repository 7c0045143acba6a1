"""Compare two or more sets of weights case for case: ``old → new`` tables of mean Dice.

``make weights`` writes new weights to ``build/weights/models/``; before installing them
(``make install-weights``), score both sets on the same cases and read this table. The
inputs are the tidy per-case CSVs of ``bench_mni_phantoms.py --out`` (case, family,
model, region, dice) or ``bench_transfer.py --out`` (case, family, style, model, region,
metric, value; its ``dice`` rows are used). Only the cases present in every file are compared. Each
model's name is reduced to its role, so that ``paunet`` and ``paunet-finetune-best`` are
one column: ``fused`` (the fused NEH mask), ``unetrpp-consensus``, ``unetrpp`` or
``paunet`` by the name's contents, otherwise the name itself.

Usage::

    python benchmarks/bench_mni_phantoms.py --n 4 --out old.csv
    python benchmarks/bench_mni_phantoms.py --n 4 --out new.csv --models RUNS/paunet-finetune/best ...
    python benchmarks/compare_scores.py old.csv new.csv            # by family
    python benchmarks/compare_scores.py old.csv new.csv --by style # bench_transfer's styles

Prints a Markdown table (one ``a → b → ...`` cell per role and region, in the order of
the files) and the mean Dice of the fused NEH mask over all compared cases.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

COLUMNS: tuple[tuple[str, str], ...] = (
    ("paunet", "WT"),
    ("paunet", "TC"),
    ("paunet", "ET"),
    ("paunet", "NEH"),
    ("unetrpp", "ET"),
    ("unetrpp", "NEH"),
    ("fused", "NEH"),
)
"""(role, region) columns of the table, when present in the files."""


def role(model: str) -> str:
    """The role of a model column: fused, unetrpp-consensus, unetrpp or paunet."""
    for name in ("fused", "unetrpp-consensus", "unetrpp", "paunet"):
        if name in model:
            return name
    return model


def read_scores(path: Path) -> pd.DataFrame:
    """A per-case table with columns case, family, (style,) role, region, dice."""
    table = pd.read_csv(path)
    if "metric" in table.columns:
        table = table[table["metric"] == "dice"].rename(columns={"value": "dice"})
    missing = {"case", "family", "model", "region", "dice"} - set(table.columns)
    if missing:
        raise SystemExit(
            f"{path}: not a per-case score table (missing columns {sorted(missing)}); "
            "give the --out CSV of bench_mni_phantoms.py or bench_transfer.py."
        )
    return table.assign(role=table["model"].map(role)).drop(columns="model")


def common_cases(tables: Sequence[pd.DataFrame]) -> set[str]:
    """The cases that every table scored."""
    return set.intersection(*(set(t["case"]) for t in tables))


def compare(tables: Sequence[pd.DataFrame], by: str = "family") -> tuple[str, list[float]]:
    """The Markdown table of ``a → b`` means by ``by`` over the cases common to all tables,
    and the mean fused NEH Dice of each table over those cases (NaN without fused rows)."""
    common = common_cases(tables)
    if not common:
        raise SystemExit("the files share no case; score the same phantoms (same --seed, --n).")
    means = [
        t[t["case"].isin(common)].groupby([by, "role", "region"])["dice"].mean() for t in tables
    ]
    present = {key[1:] for m in means for key in m.index}  # (role, region) pairs scored
    columns = [c for c in COLUMNS if c in present]
    lines = [
        f"| {by} | " + " | ".join(f"{r} {g}" for r, g in columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for group in sorted(set().union(*(m.index.get_level_values(0) for m in means))):
        cells = [
            " → ".join(f"{m[(group, *c)]:.2f}" if (group, *c) in m.index else "" for m in means)
            for c in columns
        ]
        lines.append(f"| {group} | " + " | ".join(cells) + " |")
    fused = [t[t["case"].isin(common) & (t["role"] == "fused")]["dice"].mean() for t in tables]
    return "\n".join(lines), [float(v) for v in fused]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("csv", nargs="+", type=Path, help="per-case score tables, oldest first")
    parser.add_argument("--by", default="family", help="group by this column (family)")
    args = parser.parse_args(argv)
    if len(args.csv) < 2:
        parser.error("give two or more tables to compare")
    tables = [read_scores(p) for p in args.csv]
    text, fused = compare(tables, args.by)
    print(
        f"{len(common_cases(tables))} cases in every file; mean Dice, "
        + " → ".join(p.stem for p in args.csv)
    )
    print(text)
    print("\nfused NEH, mean over the cases: " + " → ".join(f"{v:.3f}" for v in fused))
    return 0


if __name__ == "__main__":
    sys.exit(main())
