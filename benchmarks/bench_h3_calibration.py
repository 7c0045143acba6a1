"""Calibration of the H3 tests: false-positive rate and power of every chance model.

Simulates many cohorts on label maps directly (no images, no registration: the metrics
are taken in pre-operative space, where the pNEH, the tumour core and the recurrence
are known exactly) and runs each chance model's cohort tests on them.

The synthetic patients come from :mod:`nehmap.synth` (real anatomy, the generator's
tumours); each recurrence from :func:`nehmap.synth.recurrence.follow_up_labels`, with
its origin forced:

``wall``    anywhere on the cavity wall, independent of the NEH (H3 false, exactly);
``random``  on the cavity wall at least 10 mm from the NEH (H3 false, the synthetic
            default for recurrences that do not grow from NEH);
``neh``     inside the NEH (H3 true).

Cohort scenarios: ``H3 false (wall)``, ``H3 false (away)`` (every patient from the
corresponding pool) and ``H3 true (90 %)`` (each patient from NEH with probability 0.9,
otherwise away from it). A pool of ``--pool`` patients with ``--recurrences`` recurrences
per origin is simulated once; each cohort draws ``n`` distinct patients and one of their
recurrences at random. The per-patient chance placements do not depend on the
recurrence, so they are drawn once per patient.

Tests per cohort (one-sided, alpha 0.05, sign-flip with ``--flips`` random patterns):
``chance_rank`` (rank vs 0.5) for every model, ``matched_control`` (pNEH minus matched
controls vs 0) and ``paper`` (brain: chance ratio vs 1, as the paper; not for the
degenerate raw distance). "any (Holm)" rejects when any of the four paper metrics has a
Holm-adjusted p below alpha: the decision rule of the primary test.

Run (about 15 minutes on one shared core; niced, in the background)::

    nice -n 10 python benchmarks/bench_h3_calibration.py \
        --out src/nehmap/report/data/h3_calibration.json

The JSON it writes (rates with Wilson 95 % intervals, the markdown table) is what
``docs/method.md`` shows and what the report's H3 section quotes (read from the package,
never recomputed when a report is built).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from nehmap.labels import ET, NC, NEH
from nehmap.stats import holm
from nehmap.stats.spatial_null import _Placer
from nehmap.synth.anatomy import load_anatomy
from nehmap.synth.case import _assemble
from nehmap.synth.params import merge_params
from nehmap.synth.recurrence import PreoperativeCase, follow_up_labels
from nehmap.synth.tumour import make_tumour
from nehmap.validate.chance import (
    CONTROL_MAX_OVERLAP,
    matched_placements,
    peritumoral_domain,
    scale_to_volume,
    spin_placements,
)
from nehmap.validate.recurrence_metrics import FAMILY_METRICS, METRICS, CaseExcluded, EdgePanel

ORIGINS = ("wall", "random", "neh")
SCENARIOS = {
    "H3 false (wall)": ("wall", 0.0),
    "H3 false (away)": ("random", 0.0),
    "H3 true (90 %)": ("random", 0.9),
}
FAMILY = [i for i, m in enumerate(METRICS) if m.name in FAMILY_METRICS]


def _rank(observed: float, null: np.ndarray, agreement: str) -> float:
    null = null[np.isfinite(null)]
    if null.size == 0 or not math.isfinite(observed):
        return math.nan
    tie = np.isclose(null, observed, rtol=1e-9, atol=1e-12)
    worse = (null > observed) if agreement == "less" else (null < observed)
    return float(((worse & ~tie).sum() + 0.5 * tie.sum()) / null.size)


def simulate_patient(seed: int, anatomy, params, null_n: int, recurrences: int) -> dict | None:
    """Placements and per-recurrence statistics of one synthetic patient."""
    rng = np.random.default_rng(seed)
    tumour = make_tumour(anatomy, rng, params)
    tissues, labels = _assemble(anatomy, tumour)
    pneh = labels == NEH
    core = (labels == ET) | (labels == NC)
    if not pneh.any() or not core.any():
        return None
    sp = anatomy.spacing
    domain = (
        peritumoral_domain(anatomy.brain, core, anatomy.ventricles | (tissues["csf"] >= 0.6)) | pneh
    )
    try:
        matched = matched_placements(pneh, core, domain, sp, null_n, rng)
    except CaseExcluded as exc:
        return {"excluded": exc.reason}
    placer = _Placer(
        pneh, anatomy.brain, np.asarray(sp), min_inside=0.95, rotate=True, clip_to_brain=True
    )
    brain_flats: list[np.ndarray] = []
    while len(brain_flats) < null_n:
        mats, targets = placer.draw_batch(rng, 64)
        for mat, target in zip(mats, targets, strict=True):
            flat = placer.place(mat, target)
            if flat is not None and len(brain_flats) < null_n:
                brain_flats.append(np.asarray(flat))
    centre = np.argwhere(core).mean(axis=0) * np.asarray(sp)
    spin_flats = list(spin_placements(pneh, anatomy.brain, sp, centre, null_n, rng, 0.95))
    nulls = {"matched": matched.flats, "brain": brain_flats, "spin": spin_flats}
    is_control = matched.overlap <= CONTROL_MAX_OVERLAP
    a_flat = np.flatnonzero(pneh)
    out: dict = {origin: [] for origin in ORIGINS}
    for origin in ORIGINS:
        for _ in range(recurrences):
            p = {**params, "recurrence_origin": origin}
            preop = PreoperativeCase(anatomy, tissues, labels, p, tumour.params["edema_extent_mm"])
            follow, _, _ = follow_up_labels(rng, preop)
            etrl = follow == ET
            if not etrl.any():
                continue
            panel = EdgePanel(etrl, sp, 5.0)
            observed = np.asarray(panel.values(a_flat))
            row: dict = {}
            for model, flats in nulls.items():
                records = panel.values_many(flats)
                if model == "matched":
                    records = scale_to_volume(records, a_flat.size, panel.n_b, panel.voxel_mm3)
                ranks = [
                    _rank(observed[j], records[:, j], m.agreement) for j, m in enumerate(METRICS)
                ]
                expected = np.nanmean(records, axis=0)
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratio = np.where(expected > 0, observed / expected, np.nan)
                row[model] = {"rank": ranks, "ratio": ratio.tolist()}
                if model == "matched":
                    ctrl = records[is_control]
                    diff = observed - ctrl.mean(axis=0) if len(ctrl) else np.full(5, np.nan)
                    row[model]["control"] = diff.tolist()
            out[origin].append(row)
    return out


def _sign_flip_p(x: np.ndarray, greater: np.ndarray, flips: int, rng) -> np.ndarray:
    """One-sided Monte Carlo sign-flip p-values of the means of the rows of ``x``.

    ``x`` (cohorts, n) holds deviations from the baseline; NaN values are omitted (as
    :func:`nehmap.validate.recurrence_tests.cohort_tests` does; a zero deviation does not
    change under a sign flip), and rows with fewer than 5 values give NaN. ``greater``
    (bool per row) picks the direction.
    """
    n = x.shape[1]
    signs = rng.choice(np.array([-1.0, 1.0]), size=(flips, n))
    filled = np.nan_to_num(x)
    t = filled.sum(axis=1)
    t_star = filled @ signs.T  # (cohorts, flips); sums, the mean's order
    tol = 1e-9 * np.abs(filled).sum(axis=1)
    hit = np.where(
        greater[:, None], t_star >= t[:, None] - tol[:, None], t_star <= t[:, None] + tol[:, None]
    )
    p = (hit.sum(axis=1) + 1) / (flips + 1)
    p[np.isfinite(x).sum(axis=1) < 5] = np.nan
    return p


def _wilson(k: int, n: int) -> tuple[float, float]:
    if n == 0:
        return math.nan, math.nan
    z = 1.959964
    phat = k / n
    centre = (phat + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def _plans() -> list[tuple[str, str, str, float]]:
    """(model, test, field, baseline)."""
    plans = []
    for model in ("matched", "brain", "spin"):
        plans.append((model, "chance_rank", "rank", 0.5))
    plans.append(("matched", "matched_control", "control", 0.0))
    plans.append(("brain", "paper", "ratio", 1.0))
    return plans


def run_cohorts(pool: list[dict], sizes, cohorts: int, flips: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for scenario, (other, p_neh) in SCENARIOS.items():
        for n in sizes:
            if n > len(pool):
                continue
            picks = []  # (patient, origin, recurrence) per cohort and slot
            for _ in range(cohorts):
                patients = rng.choice(len(pool), size=n, replace=False)
                slots = []
                for i in patients:
                    origin = "neh" if rng.random() < p_neh else other
                    options = pool[i][origin]
                    slots.append(options[rng.integers(len(options))])
                picks.append(slots)
            for model, test, key, baseline in _plans():
                p_all = np.full((cohorts, len(METRICS)), np.nan)
                used = np.full(len(METRICS), float(n))
                for j, spec in enumerate(METRICS):
                    if test == "paper" and spec.name == "mean_edge_distance":
                        continue
                    x = np.array(
                        [[slot[model][key][j] for slot in cohort] for cohort in picks], float
                    )
                    x = x - baseline
                    if test == "paper":
                        greater = np.ones(cohorts, bool)
                    elif test == "matched_control":
                        greater = np.full(cohorts, spec.agreement == "greater")
                    else:
                        greater = np.ones(cohorts, bool)
                    p_all[:, j] = _sign_flip_p(x, greater, flips, rng)
                    used[j] = float(np.isfinite(x).sum(axis=1).mean())
                for j, spec in enumerate(METRICS):
                    if np.isnan(p_all[:, j]).all():
                        continue
                    valid = np.isfinite(p_all[:, j])
                    k = int((p_all[valid, j] < 0.05).sum())
                    row = _row(model, test, spec.name, scenario, n, k, int(valid.sum()))
                    rows.append(row | {"mean_patients_used": used[j]})
                family = p_all[:, FAMILY]
                adjusted = np.vstack([holm(r) for r in family])
                reject = np.nanmin(np.where(np.isnan(adjusted), 1.0, adjusted), axis=1) < 0.05
                rows.append(
                    _row(model, test, "any (Holm)", scenario, n, int(reject.sum()), cohorts)
                )
    return rows


def _row(model, test, metric, scenario, n, k, total) -> dict:
    lo, hi = _wilson(k, total)
    return {
        "chance_model": model,
        "test": test,
        "metric": metric,
        "scenario": scenario,
        "n": n,
        "rate": k / total if total else math.nan,
        "ci_low": lo,
        "ci_high": hi,
        "cohorts": total,
    }


def markdown(rows: list[dict], sizes) -> str:
    """The calibration table: one line per model, test and metric; rates per scenario and n."""
    keys = []
    for r in rows:
        key = (r["chance_model"], r["test"], r["metric"])
        if key not in keys:
            keys.append(key)
    head = ["chance model", "test", "metric"] + [
        f"{s.replace(' (', ', ').rstrip(')')} n={n}" for s in SCENARIOS for n in sizes
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    index = {(r["chance_model"], r["test"], r["metric"], r["scenario"], r["n"]): r for r in rows}
    for key in keys:
        cells = list(key)
        for s in SCENARIOS:
            for n in sizes:
                r = index.get((*key, s, n))
                cells.append(f"{100 * r['rate']:.1f}" if r else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pool", type=int, default=40, help="synthetic patients (40)")
    parser.add_argument("--recurrences", type=int, default=6, help="per patient and origin (6)")
    parser.add_argument("--null-n", type=int, default=100, help="placements per model (100)")
    parser.add_argument("--cohorts", type=int, default=200, help="cohorts per cell (200)")
    parser.add_argument("--sizes", default="12,24,40", help="cohort sizes (12,24,40)")
    parser.add_argument("--flips", type=int, default=2000, help="sign flips per test (2000)")
    parser.add_argument("--spacing", type=float, default=2.0, help="voxel size, mm (2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    started = time.time()
    anatomy = load_anatomy(args.spacing)
    params = merge_params(None)
    pool, excluded = [], []
    for i in range(args.pool * 2):
        if len(pool) >= args.pool:
            break
        patient = simulate_patient(
            args.seed * 100_000 + i, anatomy, params, args.null_n, args.recurrences
        )
        if patient is None:
            continue
        if "excluded" in patient:
            excluded.append(patient["excluded"])
            continue
        if all(patient[o] for o in ORIGINS):
            pool.append(patient)
        print(f"patient {i}: pool {len(pool)} ({time.time() - started:.0f} s)", file=sys.stderr)
    rows = run_cohorts(pool, sizes, args.cohorts, args.flips, args.seed + 1)
    pool_ranks = {
        f"{model} {origin}": {
            spec.name: float(
                np.nanmean([r[model]["rank"][j] for patient in pool for r in patient[origin]])
            )
            for j, spec in enumerate(METRICS)
        }
        for model in ("matched", "brain", "spin")
        for origin in ORIGINS
    }
    table = markdown(rows, sizes)
    print(table)
    record = {
        "benchmark": "benchmarks/bench_h3_calibration.py",
        "parameters": vars(args) | {"out": str(args.out) if args.out else None},
        "pool": len(pool),
        "excluded_patients": len(excluded),
        "exclusion_reasons": excluded[:5],
        "seconds": round(time.time() - started, 1),
        "alpha": 0.05,
        "primary": {"chance_model": "matched", "test": "chance_rank", "metric": "any (Holm)"},
        "pool_mean_rank": pool_ranks,
        "rows": rows,
        "markdown": table,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
