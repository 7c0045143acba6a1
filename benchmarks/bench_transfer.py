"""Transfer benchmark: the shipped models on tumour families and acquisition styles.

Usage::

    python benchmarks/bench_transfer.py                        # 4 cases per family, 2 mm
    python benchmarks/bench_transfer.py --n 4 --spacing 1 --out transfer.csv
    python benchmarks/bench_transfer.py --families small cortical --models paunet unetrpp

For every tumour family of :mod:`nehmap.synth.families`, ``--n`` phantoms are drawn
from a cohort seed that training never uses (``--seed``, default 7000; the demo
weights train on seed 2026). Case ``i`` of a family is acquired in style
``STYLES[i % 4]``, each outside the training phantoms' range:

* ``standard``: the generator's defaults;
* ``contrast``: other contrast tables: every class mean jittered by up to 15 % per
  case (training: 4 %) and a stronger bias field (0.20-0.35, training 0.05-0.20);
* ``low-snr``: NEH-vs-edema contrast-to-noise ratio 0.25-0.45 (training 0.5-1.0), so
  about twice the noise;
* ``thick-slices``: 1 x 1 x 5 mm acquisition: every image averaged over 5 mm slabs along
  the inferior-superior axis and linearly resampled back to the grid.

Each case goes through :func:`nehmap.segmentation.segment` (crop, normalise, resample
to the model's spacing, sliding window, back). Dice per model of WT, TC, ET (PAUNet
and UNETR++) and NEH (the consensus model: its high level), and of the fused NEH mask.
A region absent from the truth (ET of a non-enhancing tumour, NEH of a thin-neh case
without NEH) is left out of that region's mean; the predicted volume there is kept
in the CSV as ``false_positive_ml``. Prints the per-family table of means and, with
``--out``, writes the tidy per-case table (case, family, style, model, region, metric,
value).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from nehmap.io.case import Case
from nehmap.io.layouts import CaseFiles
from nehmap.labels import NEH, region_mask
from nehmap.metrics.overlap import dice
from nehmap.segmentation import load_models, segment
from nehmap.synth.case import generate_case
from nehmap.synth.cohort import case_seeds
from nehmap.synth.families import FAMILY_NAMES
from nehmap.train.randomise import thick_slices

STYLES: dict[str, dict] = {
    "standard": {},
    "contrast": {"intensity_jitter": 0.15, "bias_strength": (0.20, 0.35)},
    "low-snr": {"neh_cnr": (0.25, 0.45)},
    "thick-slices": {},
}
THICK_SLICE_MM = 5.0
REGIONS = ("WT", "TC", "ET", "NEH")


def make_case(family: str, index: int, seed: int, spacing: float) -> tuple[Case, str]:
    """Phantom ``index`` of ``family`` (seeded), acquired in its style."""
    style = list(STYLES)[index % len(STYLES)]
    synthetic = generate_case(seed, spacing, params=STYLES[style], family=family)
    images = dict(synthetic.images)
    if style == "thick-slices":
        thickness = THICK_SLICE_MM / synthetic.spacing[2]
        for name, image in images.items():
            thick = thick_slices(torch.from_numpy(image), 2, thickness).numpy()
            images[name] = np.where(synthetic.brain_mask, thick, 0.0).astype(np.float32)
    case_id = f"{family}-{index:02d}"
    files = CaseFiles(case_id=case_id, subject=case_id, timepoint=None, layout="synthetic")
    return Case(files, images, synthetic.grid, synthetic.labels), style


def score(case: Case, seg, rows: list[dict], family: str, style: str) -> None:
    """Append the Dice rows of one segmented case to ``rows``."""
    truth = case.labels
    assert truth is not None
    voxel_ml = float(np.prod(case.spacing)) / 1000.0
    base = {"case": case.case_id, "family": family, "style": style}

    def add(model: str, region: str, pred: np.ndarray, ref: np.ndarray) -> None:
        if ref.any():
            rows.append(
                {
                    **base,
                    "model": model,
                    "region": region,
                    "metric": "dice",
                    "value": dice(pred, ref),
                }
            )
        else:
            rows.append(
                {
                    **base,
                    "model": model,
                    "region": region,
                    "metric": "false_positive_ml",
                    "value": float(pred.sum()) * voxel_ml,
                }
            )

    for model, labels in seg.labels.items():
        if seg.schemes[model] == "nehmap":
            for region in REGIONS:
                key = NEH if region == "NEH" else region
                add(model, region, region_mask(labels, key), region_mask(truth, key))
        else:
            add(model, "NEH", labels == 2, truth == NEH)
    if seg.consensus is not None:
        add("fused", "NEH", seg.consensus.mask.astype(bool), truth == NEH)


def summary(table: pd.DataFrame, by: str) -> pd.DataFrame:
    """Mean Dice per ``by`` (rows) and model/region (columns)."""
    d = table[table.metric == "dice"].copy()
    d["column"] = d.model + " " + d.region
    out = d.pivot_table(index=by, columns="column", values="value", aggfunc="mean")
    return out.round(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=4, help="cases per family (default 4)")
    parser.add_argument("--spacing", type=float, default=2.0, help="voxel size, mm")
    parser.add_argument("--seed", type=int, default=7000, help="held-out cohort seed")
    parser.add_argument("--families", nargs="*", default=list(FAMILY_NAMES))
    parser.add_argument("--models", nargs="*", default=["paunet", "unetrpp", "unetrpp-consensus"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="tidy per-case CSV")
    parser.add_argument(
        "--markdown", type=Path, default=None, help="write the two tables as Markdown here"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = load_models(args.models, device="cpu")
    rows: list[dict] = []
    start = time.perf_counter()
    for family in args.families:
        seeds = case_seeds(args.seed + FAMILY_NAMES.index(family), args.n)
        for index, seed in enumerate(seeds):
            case, style = make_case(family, index, seed, args.spacing)
            seg = segment(case, models, device="cpu")
            score(case, seg, rows, family, style)
            print(f"[{time.perf_counter() - start:6.0f} s] {case.case_id} ({style})", flush=True)
    table = pd.DataFrame(rows)
    if args.out:
        table.to_csv(args.out, index=False)
    pd.set_option("display.width", 200)
    title = f"Mean Dice, {args.n} cases per family at {args.spacing:g} mm (seed {args.seed})"
    by_family, by_style = summary(table, "family"), summary(table, "style")
    print(f"\n{title}:\n{by_family.to_string()}\n\nBy acquisition style:\n{by_style.to_string()}")
    if args.markdown:
        text = f"{title}, by family:\n\n{markdown(by_family)}\n\nBy acquisition style:\n\n"
        args.markdown.write_text(text + markdown(by_style) + "\n")


def markdown(frame: pd.DataFrame) -> str:
    """A Markdown table of ``frame`` (its index as the first column)."""
    frame = frame.reset_index()
    head = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = [
        "| "
        + " | ".join(
            "" if pd.isna(v) else f"{v:.2f}" if isinstance(v, float) else str(v) for v in row
        )
        + " |"
        for row in frame.itertuples(index=False)
    ]
    return "\n".join([head, rule, *body])


if __name__ == "__main__":
    main()
