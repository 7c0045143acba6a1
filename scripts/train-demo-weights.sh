#!/usr/bin/env bash
# Reproduce the shipped demo weights (models/paunet, models/unetrpp, models/unetrpp-consensus)
# in WORK_DIR/models; `make install-weights` copies them into models/ after comparing.
#
# They are trained on synthetic phantoms (nehmap synth, 2 mm) on a CPU, so that nehmap can
# be tried and tested without real data or a GPU. They are NOT for real patients.
# PAUNet and UNETR++ train in two stages: a first run, then a fine-tuning run that starts
# from its best weights with the poly schedule restarted (nehmap train --init). UNETR++'s
# first run is a curriculum step: ellipsoidal tumours only, domain randomisation off
# (--no-randomise). PAUNet's first run randomises the domain; both fine-tuning runs are on
# every family without it (--no-randomise: randomising the fine-tuning stage too costs ET,
# models/README.md). The consensus model trains, with randomisation, on the fused maps of
# the fine-tuned pair, starting from the fine-tuned UNETR++ (all but its output layers).
# About 3 h on 2 cores.
# The phantoms mix every tumour family (--family mixed); domain randomisation is
# nehmap.train.randomise (on by default; docs/synthetic-data.md). The transfer
# benchmark (benchmarks/bench_transfer.py) then scores the new weights on held-out
# families and acquisition styles; its table goes into models/README.md.
#
# Usage: scripts/train-demo-weights.sh [WORK_DIR]        (make weights)
# Environment: NEHMAP (the nehmap command), N_TRAIN, N_HELDOUT, EPOCHS_*, FINETUNE_*,
# ITERATIONS, DEVICE, TRANSFER_N (cases per family in the transfer benchmark, 0: skip),
# TRANSFER_SPACING.
set -euo pipefail
WORK=${1:-build/weights}
NEHMAP=${NEHMAP:-.venv/bin/nehmap}
PYTHON=${PYTHON:-.venv/bin/python}
N_TRAIN=${N_TRAIN:-48}
N_HELDOUT=${N_HELDOUT:-8}
ITERATIONS=${ITERATIONS:-40}
EPOCHS_PAUNET=${EPOCHS_PAUNET:-30}
EPOCHS_UNETRPP=${EPOCHS_UNETRPP:-40}
EPOCHS_CONSENSUS=${EPOCHS_CONSENSUS:-20}
# second stage: fine-tune PAUNet and UNETR++ from their best weights, poly schedule restarted
FINETUNE_PAUNET=${FINETUNE_PAUNET:-36}
FINETUNE_UNETRPP=${FINETUNE_UNETRPP:-20}
FINETUNE_LR=${FINETUNE_LR:-0.005}
DEVICE=${DEVICE:-}
TRANSFER_N=${TRANSFER_N:-4}
TRANSFER_SPACING=${TRANSFER_SPACING:-1}  # the goals are stated at 1 mm
SEED=2026
dev=()
[ -n "$DEVICE" ] && dev=(--device "$DEVICE")
mkdir -p "$WORK"

step() { printf '\n== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

step "training phantoms: $N_TRAIN cases at 2 mm, every tumour family"
[ -d "$WORK/train" ] || "$NEHMAP" synth "$WORK/train" --n "$N_TRAIN" --seed "$SEED" \
    --spacing 2 --layout nnunet --family mixed --quiet

train() {  # model epochs data out [more flags]
    local resume=()
    [ -f "$4/resume/state.json" ] && resume=(--resume)
    "$NEHMAP" train --model "$1" --preset demo --data "$3" --out "$4" --spacing 2 \
        --epochs "$2" --iterations "$ITERATIONS" --seed "$SEED" --no-progress "${dev[@]}" \
        "${resume[@]}" "${@:5}"
}

step "PAUNet"
train paunet "$EPOCHS_PAUNET" "$WORK/train" "$WORK/runs/paunet"
# UNETR++ learns NEH only after a first stage on ellipsoidal tumours (docs/synthetic-data.md)
step "ellipsoidal phantoms for UNETR++'s first stage: $N_TRAIN cases at 2 mm"
[ -d "$WORK/train-ellipsoidal" ] || "$NEHMAP" synth "$WORK/train-ellipsoidal" --n "$N_TRAIN" \
    --seed "$SEED" --spacing 2 --layout nnunet --family ellipsoidal --quiet
step "UNETR++, first stage: ellipsoidal tumours, no domain randomisation"
train unetrpp "$EPOCHS_UNETRPP" "$WORK/train-ellipsoidal" "$WORK/runs/unetrpp" --no-randomise
for model in paunet unetrpp; do
    step "$model: fine-tuning from its best weights"
    epochs=FINETUNE_${model^^}
    train "$model" "${!epochs}" "$WORK/train" "$WORK/runs/$model-finetune" \
        --init "$WORK/runs/$model/best" --lr "$FINETUNE_LR" --no-randomise
done

step "fused NEH maps of the training phantoms -> two-level consensus training set"
"$NEHMAP" segment "$WORK/train" -o "$WORK/train-seg" "${dev[@]}" \
    --models "$WORK/runs/paunet-finetune/best,$WORK/runs/unetrpp-finetune/best"
[ -d "$WORK/consensus" ] || "$NEHMAP" consensus-dataset "$WORK/train-seg" \
    --images "$WORK/train" -o "$WORK/consensus"
step "UNETR++ consensus, from the fine-tuned UNETR++ (its output layers start fresh)"
train unetrpp-consensus "$EPOCHS_CONSENSUS" "$WORK/consensus" "$WORK/runs/unetrpp-consensus" \
    --init "$WORK/runs/unetrpp-finetune/best"

step "held-out phantoms at 1 mm: $N_HELDOUT cases"
[ -d "$WORK/heldout" ] || "$NEHMAP" synth "$WORK/heldout" --n "$N_HELDOUT" --seed $((SEED + 1)) \
    --spacing 1 --layout nnunet --quiet

if [ "$TRANSFER_N" -gt 0 ]; then
    step "transfer benchmark: $TRANSFER_N cases per family at $TRANSFER_SPACING mm"
    "$PYTHON" benchmarks/bench_transfer.py --n "$TRANSFER_N" --spacing "$TRANSFER_SPACING" \
        --models "$WORK/runs/paunet-finetune/best" "$WORK/runs/unetrpp-finetune/best" \
        "$WORK/runs/unetrpp-consensus/best" --out "$WORK/transfer.csv" \
        --markdown "$WORK/transfer.md"
fi

step "model cards, evaluation on the held-out phantoms beside the installed weights"
"$PYTHON" scripts/finalise_demo_weights.py "$WORK" "$WORK/models" models
echo "New weights, cards and README in $WORK/models; models/ is unchanged."
echo "Compare them with the installed ones first (held-out table above, in"
echo "$WORK/heldout-compare.csv; benchmarks/compare_scores.py on phantoms nehmap did not"
echo "make, models/README.md), then install them with: make install-weights"
