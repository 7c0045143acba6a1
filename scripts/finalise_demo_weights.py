"""Write the best demo checkpoints with their cards, score them on held-out phantoms
beside the installed weights.

Usage: python scripts/finalise_demo_weights.py WORK_DIR OUT_DIR [INSTALLED_DIR]

WORK_DIR is the folder of scripts/train-demo-weights.sh (runs/, heldout/). The weights,
their model cards and a README (its hand-written sections taken from INSTALLED_DIR's,
default models/) go to OUT_DIR, never into INSTALLED_DIR: ``make install-weights`` copies
them there once they have been compared. The held-out phantoms (1 mm, nehmap labels in
the nnU-Net layout) are segmented with the new and with the installed models and scored
per region; the new scores go into each model card and the README, both tables are
printed side by side (and written to WORK_DIR/heldout-compare.csv).
"""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from nehmap.evaluate import evaluate_collections
from nehmap.fusion import smooth
from nehmap.io import discover, load_case
from nehmap.labels import NEH
from nehmap.metrics import dice
from nehmap.models.checkpoint import load_checkpoint, read_card, save_checkpoint
from nehmap.segmentation import Segmentation, load_models, segment, write_segmentation
from nehmap.synth.cohort import truth_folder
from nehmap.train import TrainConfig
from nehmap.train.augment_config import DOMAIN_RANDOMISATION_PROBS

MODELS = ("paunet", "unetrpp", "unetrpp-consensus")
SIGMAS_MM = (0.0, 0.75, 1.5)
THRESHOLDS = (0.3, 0.4, 0.5)
DESCRIPTIONS = {
    "paunet": "PAUNet (demo size), nehmap's reconstruction of the paper's PAUNet (the paper"
    " publishes neither its sizes nor its code): 3D residual U-Net with "
    "attention-gated (filtered) skip connections and a high-resolution branch, "
    "residual blocks on the raw input at full resolution that are never down-"
    "sampled and join the last decoder level (unlike a decoding branch, which "
    "upsamples encoder features); 5 classes (background, NC, ED, NEH, ET).",
    "unetrpp": "UNETR++ (demo size): efficient paired-attention transformer U-Net, nehmap's "
    "clean EPA layout (heads concatenated; epa_layout in config); 5 classes "
    "(background, NC, ED, NEH, ET).",
    "unetrpp-consensus": "UNETR++ consensus model (demo size), trained on the two-level fused NEH map "
    "of PAUNet and UNETR++; 3 classes (background, NEH-low, NEH-high).",
}


def training_log(run: Path) -> dict:
    rows = list(csv.DictReader((run / "log.csv").open()))
    best = max(rows, key=lambda r: float(r["val_metric"] or 0))
    keep = [k for k in best if k.startswith("dice_") or k in ("val_loss", "val_metric")]
    return {
        "epochs": len(rows),
        "best_epoch": int(best["epoch"]),
        "validation_at_best": {k: float(best[k]) for k in keep if best[k] not in ("", None)},
    }


def final_run(work: Path, name: str) -> Path:
    """The run whose best weights are shipped: the fine-tuning stage when there is one."""
    tuned = work / "runs" / f"{name}-finetune"
    return tuned if (tuned / "best.json").is_file() else work / "runs" / name


def schedule_words(work: Path, name: str) -> str:
    """How many epochs of which stages trained the shipped weights, in words."""
    first_run = work / "runs" / name
    first = f"{training_log(first_run)['epochs']} epochs{_stage_words(first_run)}"
    run = final_run(work, name)
    if run.name == name:
        return first
    config = TrainConfig.from_file(run / "config.toml")
    return (
        f"{first}, then {training_log(run)['epochs']} epochs of fine-tuning from the "
        f"best of those{_randomisation_words(config)} (poly schedule restarted at lr "
        f"{config.lr:g})"
    )


def _stage_words(run: Path) -> str:
    """A first stage's phantoms (when not the mixed set), randomisation and start."""
    config = TrainConfig.from_file(run / "config.toml")
    return _data_words(config) + _randomisation_words(config) + _init_words(config)


def _data_words(config: TrainConfig) -> str:
    """Which tumour family a stage trained on, as its synthetic cohort records it;
    nothing for the mixed families (or data that is not a ``nehmap synth`` cohort)."""
    cohort = truth_folder(config.data) / "cohort.json"
    family = json.loads(cohort.read_text()).get("family") if cohort.is_file() else None
    if family in (None, "mixed"):
        return ""
    return (
        f" on the {family} family only (`nehmap synth --family {family}`, same seed and "
        "size; a curriculum step, docs/synthetic-data.md)"
    )


def _init_words(config: TrainConfig) -> str:
    """Where a stage's first weights came from, when not from scratch."""
    if not config.init:
        return ""
    init = Path(config.init)
    words = f", starting from the weights of {init.parent.name}"
    if read_card(init).architecture != config.model:
        words += " (all but the output layers)"
    return words


def _randomisation_words(config: TrainConfig) -> str:
    """`` with domain randomisation`` or `` without ...``, as the run was configured."""
    on = config.augment and any(
        getattr(config.augmentation, key) > 0 for key in DOMAIN_RANDOMISATION_PROBS
    )
    return " with domain randomisation" if on else " without domain randomisation"


def fusion_sensitivity(seg: Segmentation, truth: np.ndarray, spacing: tuple) -> list[dict]:
    """NEH Dice of the fused mask for several smoothing sigmas (mm) and thresholds."""
    rows = []
    assert seg.consensus is not None
    for sigma in SIGMAS_MM:
        smoothed = smooth(seg.consensus.raw, spacing, sigma)
        for threshold in THRESHOLDS:
            score = dice(smoothed >= threshold, truth)
            rows.append({"sigma_mm": sigma, "threshold": threshold, "dice": score})
    return rows


def heldout_scores(
    models_dir: Path, heldout: Path, seg_dir: Path
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Segment the held-out phantoms with the models in ``models_dir`` and score them.

    Returns the mean Dice per model and region (rows: paunet, unetrpp, fused,
    unetrpp-consensus), the fused NEH Dice per smoothing sigma (mm) and threshold, and
    the Dice per model as ``{"dice_<region>": value}`` for the cards.
    """
    models = load_models([str(models_dir / m) for m in MODELS])
    sensitivity = []
    for files in discover(heldout):
        case = load_case(files, load_labels=True)
        assert case.labels is not None
        seg = segment(case, models)
        sensitivity += fusion_sensitivity(seg, case.labels == NEH, case.spacing)
        write_segmentation(seg, case, seg_dir)
    fusion_table = (
        pd.DataFrame(sensitivity)
        .groupby(["sigma_mm", "threshold"])["dice"]
        .mean()
        .round(3)
        .unstack("threshold")
    )
    scores = {}
    rows = []
    for name in ("paunet", "unetrpp", "fused", "unetrpp-consensus"):
        result = evaluate_collections(seg_dir, heldout, pred_model=name)
        summary = result.summary
        dice = summary[summary.metric == "dice"].set_index("region")["mean"]
        scores[name] = {f"dice_{region}": round(float(value), 4) for region, value in dice.items()}
        for region, value in dice.items():
            rows.append({"model": name, "region": region, "dice": round(float(value), 4)})
    table = pd.DataFrame(rows).pivot(index="model", columns="region", values="dice")
    return table, fusion_table, scores


def compare_heldout(installed: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """Installed and new mean Dice per model and region, one row each, with the change."""
    both = pd.concat({"installed": installed.stack(), "new": new.stack()}, axis=1, join="outer")
    both.index.names = ["model", "region"]
    both = both.dropna(how="all")  # a region the model does not score (fused ET)
    both["change"] = (both["new"] - both["installed"]).round(4)
    return both.reset_index()


def main(work: Path, out_dir: Path, installed_dir: Path = Path("models")) -> None:
    if out_dir.resolve() == installed_dir.resolve():
        sys.exit(
            f"error: {out_dir} is the installed weights' folder; write the new weights "
            "elsewhere (e.g. build/weights/models) and copy them after comparing "
            "(make install-weights)."
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    readme = installed_dir / "README.md"
    if readme.is_file() and not (out_dir / "README.md").is_file():
        (out_dir / "README.md").write_text(readme.read_text())  # its own sections are kept
    n_train = len(discover(work / "train"))
    for name in MODELS:
        run = final_run(work, name)
        network, card = load_checkpoint(run / "best")
        log = training_log(run)
        card.name = name
        card.description = DESCRIPTIONS[name]
        source = (
            "the two-level fused NEH maps of the paunet and unetrpp demo models on "
            if name == "unetrpp-consensus"
            else ""
        )
        card.training_data = (
            f"SYNTHETIC PHANTOMS ONLY - not for real patients. {source}{n_train} cases of "
            "`nehmap synth --spacing 2 --layout nnunet --seed 2026 --family mixed` (MNI152 "
            "anatomy with simulated glioblastoma-like tumours of every family: necrosis, "
            "enhancing rim, a thin NEH layer, edema; see docs/synthetic-data.md), with domain "
            "randomisation (random per-label contrasts, bias, Rician noise, thick slices, "
            f"modality dropout), 80/20 split by case, {schedule_words(work, name)}, each of 40 "
            "patches of 64^3 at 2 mm, on a CPU. Reproduce with `make weights` (scripts/train-demo-weights.sh)."
        )
        card.validation_metrics = {"training_validation_patches": log}
        save_checkpoint(network, card, out_dir / name)
        print(f"{name}: best epoch {log['best_epoch']} of {log['epochs']}")
    # held-out phantoms at 1 mm, through the whole pipeline
    heldout = work / "heldout"
    n_heldout = len(discover(heldout))
    table, fusion_table, scores = heldout_scores(out_dir, heldout, work / "heldout-seg")
    print(fusion_table.to_string())
    print(table.to_string())
    if all((installed_dir / f"{m}.safetensors").is_file() for m in MODELS):
        installed, _, _ = heldout_scores(installed_dir, heldout, work / "heldout-seg-installed")
        comparison = compare_heldout(installed, table)
        comparison.to_csv(work / "heldout-compare.csv", index=False)
        print(f"held-out phantoms, installed ({installed_dir}) against new ({out_dir}):")
        print(comparison.to_string(index=False))
    for name in MODELS:
        network, card = load_checkpoint(out_dir / name)
        card.validation_metrics["heldout_phantoms_1mm"] = {
            "cases": n_heldout,
            "data": "nehmap synth --spacing 1 --layout nnunet --seed 2027 (not seen in training)",
            "this_model": scores[name],
            "fused_neh_of_paunet_and_unetrpp": scores["fused"],
        }
        transfer = transfer_scores(work / "transfer.csv", name)
        if transfer:
            card.validation_metrics["transfer_heldout_families"] = transfer
        save_checkpoint(network, card, out_dir / name)
    (work / "heldout-scores.json").write_text(json.dumps(scores, indent=2))
    transfer = work / "transfer.md"
    write_model_readme(
        out_dir,
        table,
        fusion_table,
        n_train,
        n_heldout,
        shipped_names(transfer.read_text()) if transfer.is_file() else None,
    )


TRANSFER_RUNS = {
    "paunet": "paunet-finetune-best",
    "unetrpp": "unetrpp-finetune-best",
    "unetrpp-consensus": "unetrpp-consensus-best",
}
"""The names bench_transfer gives the run checkpoints scripts/train-demo-weights.sh passes."""


def shipped_names(text: str) -> str:
    """The transfer tables with the shipped models' names instead of the runs'."""
    for name, run_name in TRANSFER_RUNS.items():
        text = text.replace(f"{run_name} ", f"{name} ")
    return text


def transfer_scores(
    path: Path,
    name: str,
    model: str | None = None,
    data: str = "benchmarks/bench_transfer.py (held-out families and styles)",
) -> dict:
    """Mean Dice per family and region of model ``name`` (and the fused NEH) in the
    transfer benchmark's per-case table; empty when there is none. ``model`` is the
    name the table gives it (default: the run checkpoint's, :data:`TRANSFER_RUNS`),
    ``data`` how the table was made."""
    if not path.is_file():
        return {}
    table = pd.read_csv(path)
    table = table[table.metric == "dice"]
    out: dict = {"data": data}
    for label, table_name in (("this_model", model or TRANSFER_RUNS[name]), ("fused_neh", "fused")):
        rows = table[table.model == table_name]
        means = rows.groupby(["family", "region"])["value"].mean().round(4)
        out[label] = {
            family: {region: float(v) for (f, region), v in means.items() if f == family}
            for family in sorted(rows.family.unique())
        }
    return out


TRANSFER_START = "<!-- transfer -->"
TRANSFER_END = "<!-- /transfer -->"
BASELINE_START = "<!-- transfer-baseline -->"
BASELINE_END = "<!-- /transfer-baseline -->"


def _block(text: str, start: str, end: str) -> list[str]:
    """The marked block of ``text`` (markers included) as one line, or nothing."""
    if start not in text or end not in text:
        return []
    return [text[text.index(start) : text.index(end) + len(end)], ""]


def transfer_section(models_dir: Path, new: str | None) -> list[str]:
    """The transfer-benchmark sections: the new table (else the README's current one),
    then the baseline of the weights before the wider recipe, always kept."""
    old = models_dir / "README.md"
    text = old.read_text() if old.is_file() else ""
    baseline = _block(text, BASELINE_START, BASELINE_END)
    if new is None:
        return _block(text, TRANSFER_START, TRANSFER_END) + baseline
    return [
        TRANSFER_START,
        "## Transfer: held-out tumour families and acquisition styles",
        "",
        "`benchmarks/bench_transfer.py` (families and styles never in the training phantoms;",
        "see docs/synthetic-data.md). Goals: every family WT >= 0.90, ET >= 0.85, TC >= 0.80,",
        "fused NEH >= 0.50; small tumours WT >= 0.85.",
        "",
        new.strip(),
        TRANSFER_END,
        "",
        *baseline,
    ]


def kept_sections(models_dir: Path) -> list[str]:
    """The README's own ``## `` sections that this script does not write (what the
    networks are, the cost of derived labels, imported weights...), in their order."""
    old = models_dir / "README.md"
    text = old.read_text() if old.is_file() else ""
    for start, end in ((TRANSFER_START, TRANSFER_END), (BASELINE_START, BASELINE_END)):
        if start in text and end in text:
            text = text[: text.index(start)] + text[text.index(end) + len(end) :]
    written_here = ("Reproduce: `make weights`", "For real use, train on BraTS-derived")
    kept: list[str] = []
    for part in re.split(r"(?m)^(?=## )", text)[1:]:  # [0]: the title and tables above
        lines = [line for line in part.splitlines() if not line.startswith(written_here)]
        kept += ["\n".join(lines).strip(), ""]
    return kept


def write_model_readme(
    models_dir: Path,
    table: pd.DataFrame,
    fusion: pd.DataFrame,
    n_train: int,
    n_heldout: int,
    transfer: str | None = None,
) -> None:
    section = transfer_section(models_dir, transfer)
    own = kept_sections(models_dir)
    lines = [
        "# Shipped demo weights",
        "",
        "**Trained on synthetic phantoms only. Do not use them on patients.** They exist so",
        "that nehmap can be tried (`make demo`) and tested without real data or a GPU.",
        "",
        "| file | network | classes |",
        "|---|---|---|",
        "| `paunet.safetensors` + `.json` | PAUNet, demo size | background, NC, ED, NEH, ET |",
        "| `unetrpp.safetensors` + `.json` | UNETR++, demo size | background, NC, ED, NEH, ET |",
        "| `unetrpp-consensus.safetensors` + `.json` | UNETR++ consensus, demo size | "
        "background, NEH-low, NEH-high |",
        "",
        f"Training: {n_train} phantoms of `nehmap synth` at 2 mm (80/20 split), on a CPU; the",
        "consensus model on the two-level fused NEH maps of the other two. Each `.json` is the",
        "model card: architecture and arguments, classes, input modalities and order, spacing,",
        "normalisation, patch size, training data, validation metrics, sha256 of the weights.",
        "",
        f"Mean Dice on {n_heldout} held-out phantoms at 1 mm (whole pipeline: crop, normalise,",
        "resample to 2 mm, sliding window, back to 1 mm; `fused` = the consensus NEH mask of",
        "paunet and unetrpp; the consensus model is scored on its high level as NEH):",
        "",
        table.fillna("").to_markdown()
        if hasattr(table, "to_markdown") and _has_tabulate()
        else "```\n" + table.to_string(na_rep="") + "\n```",
        "",
        "The fused mask follows the paper: mean of the two NEH probabilities, Gaussian",
        "smoothing with sigma 1.5 mm, threshold 0.5. On a layer only 2-6 mm thick the",
        "smoothing lowers the probability inside the layer, so the mask depends on how",
        "confident the models are. Fused NEH Dice on the same phantoms for other settings",
        "(rows: sigma in mm, columns: threshold; `nehmap segment --sigma-mm/--threshold`):",
        "",
        "```",
        fusion.to_string(),
        "```",
        "",
        *section,
        "Reproduce: `make weights` (scripts/train-demo-weights.sh, about 3 h on 2 CPU cores).",
        "For real use, train on BraTS-derived data with NEH labels on a GPU; see the README.",
        "",
        *own,
    ]
    (models_dir / "README.md").write_text("\n".join(lines))


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    main(*(Path(arg) for arg in sys.argv[1:]))
