"""What training on derive-neh labels costs, against training on the generator's truth.

The paper's pipeline trains its networks on NEH labels *derived* from two segmentations
(section 1.1), not on a true NEH. This script runs that pipeline on phantoms and
measures what it costs:

1. ``nehmap synth --layout brats2018 --second-segmentation``: BraTS 2018-style training
   phantoms (NEH merged into label 1, NCR/NET) with a BraTS 2021-style second
   segmentation of each (NEH called edema, boundaries perturbed);
2. ``nehmap derive-neh``: the derived 4-label training set (nnU-Net layout);
3. the same cases, images and IDs with the generator's true labels instead;
4. ``nehmap train`` of one network on each (same seed, split and schedule);
5. both networks segment held-out 1 mm phantoms; Dice per label against the truth.

Usage::

    python scripts/derived_labels_cost.py WORK [--model paunet] [--epochs 12]
        [--n-train 48] [--n-heldout 8] [--iterations 40] [--init CHECKPOINT --lr LR]

From scratch the demo networks need 60+ epochs to learn the thin NEH layer (about 3 h
for the pair on 2 CPU cores). ``make weights-derived`` therefore fine-tunes the shipped
network (``--init models/paunet --lr 0.005``) for 6 epochs on each label set: both
runs start from the same weights and see the same cases, so the difference is what the
derived labels cost (about 30 min on 2 idle CPU cores). Without ``--init`` it trains from
scratch. The table is printed and written to ``WORK/derived-cost.csv``;
models/README.md quotes it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

SEED = 2026
NEHMAP = os.environ.get("NEHMAP", str(Path(sys.executable).with_name("nehmap")))


def run(*args: str) -> None:
    print("$ nehmap", " ".join(args), flush=True)
    subprocess.run([NEHMAP, *args], check=True)


def truth_copy(derived: Path, truth_dir: Path, out: Path) -> None:
    """``derived`` with every label file replaced by the generator's truth (same IDs)."""
    if out.exists():
        return
    shutil.copytree(derived, out, copy_function=os.link)
    for label in sorted((out / "labelsTr").glob("*.nii.gz")):
        case_id = label.name[: -len(".nii.gz")]
        label.unlink()
        shutil.copyfile(truth_dir / f"{case_id}_truth-labels.nii.gz", label)


def score(checkpoint: Path, heldout: Path, seg_dir: Path, name: str) -> pd.DataFrame:
    from nehmap.evaluate import evaluate_collections
    from nehmap.io import discover, load_case
    from nehmap.segmentation import load_models, segment, write_segmentation

    models = load_models([str(checkpoint)])
    for files in discover(heldout):
        case = load_case(files)
        write_segmentation(segment(case, models), case, seg_dir)
    result = evaluate_collections(seg_dir, heldout, pred_model=models[0].name)
    summary = result.summary
    dice = summary[summary.metric == "dice"][["region", "mean"]].copy()
    dice.insert(0, "labels", name)
    return dice


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--model", default="paunet")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--n-train", type=int, default=48)
    parser.add_argument("--n-heldout", type=int, default=8)
    parser.add_argument("--init", help="start both runs from this checkpoint (fine-tuning)")
    parser.add_argument("--lr", type=float, help="initial learning rate (default: nehmap's)")
    args = parser.parse_args(argv)
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    b18 = work / "train-brats2018"
    if not b18.exists():
        run("synth", str(b18), "--n", str(args.n_train), "--seed", str(SEED), "--spacing", "2",
            "--layout", "brats2018", "--second-segmentation", "--quiet")  # fmt: skip
    derived = work / "train-derived"
    if not derived.exists():
        run("derive-neh", str(b18), "--second", str(work / "train-brats2018_truth" / "second"),
            "-o", str(derived))  # fmt: skip
    truth = work / "train-truth"
    truth_copy(derived, work / "train-brats2018_truth", truth)
    heldout = work / "heldout"
    if not heldout.exists():
        run("synth", str(heldout), "--n", str(args.n_heldout), "--seed", str(SEED + 1),
            "--spacing", "1", "--layout", "nnunet", "--quiet")  # fmt: skip
    tables = []
    for name, data in (("truth", truth), ("derived", derived)):
        out = work / "runs" / f"{args.model}-{name}{'-finetune' if args.init else ''}"
        start = ["--init", args.init] if args.init else []
        start += ["--lr", str(args.lr)] if args.lr else []
        if not (out / "best.json").is_file() or (out / "resume" / "state.json").is_file():
            resume = ["--resume"] if (out / "resume" / "state.json").is_file() else []
            run("train", "--model", args.model, "--preset", "demo", "--data", str(data),
                "--out", str(out), "--spacing", "2", "--epochs", str(args.epochs),
                "--iterations", str(args.iterations), "--seed", str(SEED), "--no-progress",
                *start, *resume)  # fmt: skip
        tables.append(score(out / "best", heldout, work / f"heldout-seg-{name}", name))
    table = pd.concat(tables).pivot(index="labels", columns="region", values="mean").round(3)
    print(table.to_string())
    table.to_csv(work / "derived-cost.csv")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
