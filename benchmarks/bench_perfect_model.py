"""What a perfect model could score on the phantoms of the transfer benchmarks.

Usage::

    python benchmarks/bench_perfect_model.py                      # 4 cases per family, 1 mm
    python benchmarks/bench_perfect_model.py --n 4 --out perfect.csv
    python benchmarks/bench_perfect_model.py --sigma-mm 0.75 --threshold 0.4
    python benchmarks/bench_perfect_model.py --scores transfer.csv mni.csv

For the same phantoms as ``bench_transfer.py`` (nehmap's tumour families, seed 7000) and
``bench_mni_phantoms.py`` (phantoms made without ``nehmap.synth``, seed 31337), at 1 mm,
:func:`nehmap.evaluate.perfect_model.perfect_model_dice` replaces the networks by a perfect
model run at the shipped models' spacing (their cards: 2 mm): the truth's class
occupancy on that grid, brought back and fused by nehmap's own code. Printed per family:
the mean Dice of the perfect model's WT, TC, ET and NEH, of the fused NEH mask (the
paper's sigma 1.5 mm and threshold 0.5 unless given), and of the fused mask of a perfect
model at 1 mm (the cost of the fusion alone), with the lowest case's fused Dice. A region
absent from a case's truth (ET of a non-enhancing tumour, NEH of a thin-neh case without
NEH) is left out of that region's mean, as in the transfer benchmark. No network runs:
the whole table takes a few minutes on one core. ``--scores`` takes the per-case CSVs
(``--out``) of ``bench_transfer.py --spacing 1`` and ``bench_mni_phantoms.py`` with the
same ``--n`` and seeds and prints each model's mean Dice beside the perfect model's on
the same cases.

These are the scores of a model that is right, not an upper bound: a model that draws
a thin NEH layer thicker than it is can leave a fused mask closer to the truth than the
perfect model's (see :mod:`nehmap.evaluate.perfect_model`). Where a goal lies above
them, meeting it means training the models to be wrong in the way that undoes the
pipeline's blur.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from bench_mni_phantoms import FAMILIES as INDEPENDENT_FAMILIES
from bench_mni_phantoms import anatomy, phantom
from bench_transfer import make_case

from nehmap.evaluate.perfect_model import PERFECT_MODEL_REGIONS, perfect_model_dice
from nehmap.fusion import DEFAULT_SIGMA_MM, DEFAULT_THRESHOLD
from nehmap.models.checkpoint import read_card
from nehmap.synth.cohort import case_seeds
from nehmap.synth.families import FAMILY_NAMES

REPO = Path(__file__).resolve().parents[1]


def shipped_spacing_mm() -> tuple[float, ...]:
    """The spacing the shipped 4-label models run at (their cards agree)."""
    spacings = {
        tuple(read_card(REPO / "models" / f"{m}.json").spacing_mm) for m in ("paunet", "unetrpp")
    }
    if len(spacings) != 1:
        raise SystemExit(f"The shipped models run at different spacings {sorted(spacings)}.")
    return spacings.pop()


def nehmap_cases(n: int, seed: int):
    """(family, case id, labels, brain, spacing) of bench_transfer's phantoms at 1 mm."""
    for family in FAMILY_NAMES:
        for index, case_seed in enumerate(case_seeds(seed + FAMILY_NAMES.index(family), n)):
            case, _ = make_case(family, index, case_seed, 1.0)
            yield family, case.case_id, case.labels, case.brain_mask(), case.spacing


def independent_cases(n: int, seed: int):
    """The same for bench_mni_phantoms' phantoms (MNI152 anatomy, 1 mm)."""
    mni = anatomy()
    for f, family in enumerate(INDEPENDENT_FAMILIES):
        for i in range(n):
            _, labels = phantom(family, seed + 1000 * f + i, mni)
            case_id = f"BraTS2021_{90000 + 100 * f + i:05d}"  # bench_mni_phantoms' ids
            yield family, case_id, labels, mni["brain"], (1.0, 1.0, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=4, help="cases per family (default 4)")
    parser.add_argument("--seed", type=int, default=7000, help="nehmap phantoms' seed (7000)")
    parser.add_argument("--mni-seed", type=int, default=31337, help="independent phantoms' seed")
    parser.add_argument("--sigma-mm", type=float, default=DEFAULT_SIGMA_MM)
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--out", type=Path, help="tidy per-case CSV")
    parser.add_argument(
        "--scores",
        type=Path,
        nargs="*",
        default=[],
        help="per-case CSVs of bench_transfer.py / bench_mni_phantoms.py (--out) to print "
        "beside the perfect model, case for case",
    )
    args = parser.parse_args()
    model_spacing = shipped_spacing_mm()
    fusion = {"sigma_mm": args.sigma_mm, "threshold": args.threshold}
    rows = []
    start = time.perf_counter()
    sets = (("nehmap", nehmap_cases(args.n, args.seed)),
            ("independent", independent_cases(args.n, args.mni_seed)))  # fmt: skip
    for name, cases in sets:
        for family, case_id, labels, brain, spacing in cases:
            at_model = perfect_model_dice(
                labels, spacing, model_spacing_mm=model_spacing, brain=brain, **fusion
            )
            at_case = perfect_model_dice(
                labels, spacing, model_spacing_mm=spacing, brain=brain, **fusion
            )
            base = {"set": name, "family": family, "case": case_id}
            for region in PERFECT_MODEL_REGIONS:
                rows.append({**base, "model_spacing_mm": model_spacing[0], "region": region,
                             "dice": at_model[region]})  # fmt: skip
            rows.append({**base, "model_spacing_mm": spacing[0], "region": "fused NEH",
                         "dice": at_case["fused NEH"]})  # fmt: skip
            print(f"[{time.perf_counter() - start:5.0f} s] {name} {case_id}", flush=True)
    table = pd.DataFrame(rows)
    if args.out:
        table.to_csv(args.out, index=False)
    print(f"\n{summary(table, model_spacing[0]).to_string()}")
    print(
        f"\nMean Dice of a perfect model, {args.n} cases per family at 1 mm; fusion sigma "
        f"{args.sigma_mm:g} mm, threshold {args.threshold:g}. Columns at {model_spacing[0]:g} mm: "
        "the perfect model run at the shipped models' spacing; 'fused NEH 1 mm': run at the "
        "case's; 'lowest': the lowest case's fused NEH at the models' spacing."
    )
    if args.scores:
        scores = pd.concat([read_scores(path) for path in args.scores], ignore_index=True)
        print(f"\n{beside(table, scores, model_spacing[0]).to_string()}")
        print(
            "\nMean Dice of the models (--scores) and of the perfect model on the same cases "
            "('fused NEH' against the perfect model's fused mask, every other column against "
            "its label map)."
        )


def summary(table: pd.DataFrame, model_mm: float) -> pd.DataFrame:
    """Mean Dice per set and family; the fused NEH at both spacings; the lowest case."""
    at_model = table[table.model_spacing_mm == model_mm]
    means = at_model.pivot_table(index=["set", "family"], columns="region", values="dice",
                                 aggfunc="mean", sort=False)  # fmt: skip
    means = means[list(PERFECT_MODEL_REGIONS)]
    fused = at_model[at_model.region == "fused NEH"].groupby(["set", "family"], sort=False).dice
    means["lowest fused NEH"] = fused.min()
    fine = table[(table.model_spacing_mm != model_mm) & (table.region == "fused NEH")]
    means["fused NEH 1 mm"] = fine.groupby(["set", "family"], sort=False).dice.mean()
    return means.round(2).replace({np.nan: None})


def read_scores(path: Path) -> pd.DataFrame:
    """(case, model, region, dice) rows of a bench_transfer or bench_mni_phantoms CSV."""
    frame = pd.read_csv(path)
    if "metric" in frame:  # bench_transfer: Dice rows only (not false_positive_ml)
        frame = frame[frame.metric == "dice"].rename(columns={"value": "dice"})
    missing = {"case", "model", "region", "dice"} - set(frame.columns)
    if missing:
        raise SystemExit(
            f"{path}: no column {', '.join(sorted(missing))}; give the --out CSV of "
            "bench_transfer.py or bench_mni_phantoms.py."
        )
    frame = frame[["case", "model", "region", "dice"]].copy()
    fused = frame.model == "fused"
    frame.loc[fused, "region"] = "fused NEH"
    return frame


def beside(perfect: pd.DataFrame, scores: pd.DataFrame, model_mm: float) -> pd.DataFrame:
    """Per set and family, each model's mean Dice and the perfect model's on its cases."""
    ours = perfect[perfect.model_spacing_mm == model_mm]
    ours = ours.rename(columns={"dice": "perfect"})[["set", "family", "case", "region", "perfect"]]
    joined = scores.merge(ours, on=["case", "region"], how="inner")
    if joined.empty:
        raise SystemExit(
            "No case of --scores matches the perfect model's cases: score the same phantoms "
            "(the same --n and seeds, 1 mm)."
        )
    named = joined.model + " " + joined.region
    joined["column"] = np.where(joined.model == "fused", "fused NEH", named)
    means = joined.groupby(["set", "family", "column"], sort=False)[["dice", "perfect"]].mean()
    table = means.rename(columns={"dice": "model"}).unstack("column").swaplevel(axis=1)
    return table.sort_index(axis=1, level=0, sort_remaining=False).round(2)


if __name__ == "__main__":
    main()
