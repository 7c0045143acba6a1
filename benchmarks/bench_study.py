"""Wall time and peak memory of the demo study on this machine, per stage.

Generates the demo cohorts (12 UPenn-like cases with rCBV, 8 RHUH-like pairs, 2 mm),
runs the study with the shipped weights, and prints the seconds per stage, the peak
memory and the cases per minute of segmentation and of the measurement stages.

Run: python benchmarks/bench_study.py [--out DIR] [--workers 1]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--perfusion-cases", type=int, default=12)
    parser.add_argument("--recurrence-cases", type=int, default=8)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="nehmap-bench-study-"))
    from nehmap.commands.demo import DEMO_CONFIG
    from nehmap.study import StudyConfig, run_study
    from nehmap.synth import write_cohort

    start = time.perf_counter()
    write_cohort(
        out / "data" / "upenn", args.perfusion_cases, 0, spacing=2.0, layout="upenn", progress=False
    )
    write_cohort(
        out / "data" / "rhuh", args.recurrence_cases, 1, spacing=2.0, layout="rhuh", progress=False
    )
    synth_seconds = time.perf_counter() - start
    (out / "study.toml").write_text(
        DEMO_CONFIG.format(
            seed=0,
            workers=args.workers,
            recurrence_block='\n[cohorts.recurrence]\npath = "data/rhuh"\n',
        )
    )
    start = time.perf_counter()
    result = run_study(StudyConfig.from_file(out / "study.toml"), progress=False)
    total = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    n_pre = args.perfusion_cases
    n_scans = n_pre + 2 * args.recurrence_cases
    print(
        f"demo study, {args.workers} worker(s): {n_pre} perfusion cases, "
        f"{args.recurrence_cases} recurrence pairs at 2 mm"
    )
    print(f"{'stage':<24}{'seconds':>10}")
    print(f"{'synthetic cohorts':<24}{synth_seconds:>10.1f}")
    for stage, seconds in result.timings.items():
        print(f"{stage:<24}{seconds:>10.1f}")
    print(f"{'study total':<24}{total:>10.1f}")
    seg = sum(v for k, v in result.timings.items() if k.startswith("segment"))
    print(f"segmentation: {60 * n_scans / seg:.1f} scans per minute")
    if "measure" in result.timings:
        print(f"measurement: {60 * n_pre / result.timings['measure']:.1f} cases per minute")
    if "recurrence" in result.timings:
        print(
            f"recurrence: {60 * args.recurrence_cases / result.timings['recurrence']:.1f} "
            "pairs per minute"
        )
    print(f"peak memory of this process: {peak:.0f} MB; errors: {len(result.errors)}")
    print(f"report: {result.report}")
    if args.out is None:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
