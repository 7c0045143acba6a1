"""Seconds, memory and accuracy of the registration presets on synthetic 1 mm pairs.

For each synthetic case (``nehmap.synth.generate_case(seed, spacing, recurrence=True)``)
the pre-operative scan is registered onto the recurrence scan, as ``nehmap validate
recurrence`` does (T1, lesions masked out of the metric), with each preset, and the
pre-operative NEH is warped onto the recurrence grid. Reported per pair and preset:

* ``seconds``: wall time of the ANTs call; ``cpu_s``: CPU time of the process during it
  (``cpu_s / threads`` approximates the wall time on an idle machine);
* ``peak_mb``: peak resident memory of a fresh process running that one registration
  (each preset runs in its own subprocess so peaks do not mask each other);
* ``neh_dice``: Dice of the warped NEH and the true pre-operative NEH in recurrence
  space (``SyntheticCase.recurrence.preop_neh``); ``neh_dice_none``: the same without
  registration;
* ``error_mm``: mean distance (mm) between the recovered and the true position of
  brain points within 15 mm of the lesion;
* the registration's own quality (brain Dice, Jacobian range).

Usage::

    python benchmarks/bench_registration.py --pairs 1 --presets quick,full --threads 2

Keep it to one pair on a shared 2-core machine: a 1 mm pair takes minutes in all.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np


def prepare(seed: int, spacing: float, path: str) -> None:
    """Generate one synthetic pair and save what the registration needs to ``path``."""
    from scipy import ndimage as ndi

    from nehmap.synth import generate_case
    from nehmap.validate.recurrence import Scan, registration_masks

    case = generate_case(seed, spacing=spacing, recurrence=True)
    rec = case.recurrence
    assert rec is not None
    affine = case.grid.canonical_affine
    pre = Scan({"t1": case.images["t1"]}, case.labels, affine, case.brain_mask)
    post = Scan({"t1": rec.images["t1"]}, rec.labels, affine, rec.brain_mask)
    fixed_mask, moving_mask = registration_masks(pre, post)
    # true mapping of brain points near the lesion: x = rigid @ (y + u(y))
    u = rec.displacement(case.grid)
    near = ndi.binary_dilation(rec.labels > 0, iterations=int(round(15 / spacing)))
    idx = np.argwhere(near & rec.brain_mask)
    idx = idx[np.random.default_rng(0).choice(len(idx), min(2000, len(idx)), replace=False)]
    y = (affine @ np.c_[idx, np.ones(len(idx))].T).T[:, :3]
    moved = y + u[tuple(idx.T)]
    x_true = (rec.rigid @ np.c_[moved, np.ones(len(moved))].T).T[:, :3]
    np.savez(
        path,
        fixed=rec.images["t1"],
        moving=case.images["t1"],
        affine=affine,
        fixed_mask=fixed_mask,
        moving_mask=moving_mask,
        fixed_brain=rec.brain_mask,
        moving_brain=case.brain_mask,
        neh=case.labels == 3,
        truth=rec.preop_neh,
        points=y,
        points_true=x_true,
        origin=rec.origin,
    )


def peak_mb() -> float:
    """Peak resident memory of this process (MB), from VmHWM (reset at exec, unlike
    ``ru_maxrss``, which a child inherits from the parent that forked it)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one(path: str, preset: str, threads: int) -> dict:
    """Register one prepared pair with one preset (run in a subprocess)."""
    from nehmap.validate.registration import brain_dice, register, warp_labels

    data = np.load(path)
    neh, truth = data["neh"], data["truth"]
    y, x_true = data["points"], data["points_true"]
    base_mb = peak_mb()
    before = resource.getrusage(resource.RUSAGE_SELF)
    crop = None if preset.endswith("-uncropped") else 10.0
    reg = register(
        data["fixed"],
        data["moving"],
        data["affine"],
        data["affine"],
        fixed_mask=data["fixed_mask"],
        moving_mask=data["moving_mask"],
        fixed_brain=data["fixed_brain"],
        moving_brain=data["moving_brain"],
        preset=preset.removesuffix("-uncropped"),  # type: ignore[arg-type]
        threads=threads,
        crop_margin_mm=crop,
    )
    after = resource.getrusage(resource.RUSAGE_SELF)
    with reg:
        warped = warp_labels(reg, neh.astype(np.uint8)) > 0
        error = float(np.linalg.norm(reg.map_points(y) - x_true, axis=1).mean())
        q = reg.quality
        assert q is not None
        return {
            "preset": preset,
            "threads": threads,
            "seconds": round(reg.seconds, 1),
            "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1),
            "peak_mb": round(peak_mb()),
            "inputs_mb": round(base_mb),
            "neh_dice": round(brain_dice(warped, truth), 4),
            "neh_dice_none": round(brain_dice(neh, truth), 4),
            "error_mm": round(error, 2),
            "error_mm_none": round(float(np.linalg.norm(y - x_true, axis=1).mean()), 2),
            "brain_dice": round(q.brain_dice, 4),
            "jacobian_min": round(q.jacobian_min, 3),
            "jacobian_max": round(q.jacobian_max, 3),
            "origin": str(data["origin"]),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=1, help="synthetic pairs (seeds 1..N)")
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--spacing", type=float, default=1.0, help="voxel size (mm)")
    parser.add_argument(
        "--presets",
        default="quick,full",
        help="comma-separated presets; '<preset>-uncropped' registers the full grids",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child: a prepared pair
    args = parser.parse_args(argv)
    if args.one:  # child process: one registration, JSON on stdout
        print(json.dumps(one(args.one, args.presets, args.threads)))
        return 0
    rows = []
    with tempfile.TemporaryDirectory(prefix="nehmap-bench-") as tmp:
        for seed in range(args.first_seed, args.first_seed + args.pairs):
            pair = os.path.join(tmp, f"pair-{seed}.npz")
            prepare(seed, args.spacing, pair)
            for preset in args.presets.split(","):
                start = time.perf_counter()
                cmd = [sys.executable, __file__, "--one", pair, "--presets", preset]
                cmd += ["--threads", str(args.threads)]
                done = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    print(done.stderr[-2000:], file=sys.stderr)
                    return done.returncode
                row = {"seed": seed, "spacing_mm": args.spacing}
                row.update(json.loads(done.stdout.strip().splitlines()[-1]))
                row["process_s"] = round(time.perf_counter() - start, 1)
                rows.append(row)
                print(json.dumps(row), flush=True)
    print()
    header = (
        "seed preset          seconds  cpu_s  peak_mb  neh_dice (none)  error_mm (none)  "
        "brain_dice  jacobian"
    )
    print(header)
    for r in rows:
        print(
            f"{r['seed']:>4} {r['preset']:<15}{r['seconds']:>8}{r['cpu_s']:>7}{r['peak_mb']:>9}"
            f"   {r['neh_dice']:.3f} ({r['neh_dice_none']:.3f})   {r['error_mm']:.2f} "
            f"({r['error_mm_none']:.2f})       {r['brain_dice']:.3f}  "
            f"{r['jacobian_min']:.2f}..{r['jacobian_max']:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
