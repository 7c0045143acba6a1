"""Timings of the statistics engine (``python benchmarks/bench_stats.py``).

* ``sign_flip_test`` Monte Carlo, 10,000 sign flips of 39 values (goal: under 1 ms);
* ``sign_flip_test`` exact, all 2**39 sign patterns (goal: under 0.5 s);
* ``spatial_null``, 1000 placements of a few-hundred-voxel mask in a 2 mm brain, with a
  metric that costs nothing, so that the placements themselves are timed.

Each figure is the median of several runs, after one warm-up run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from nehmap.stats import sign_flip_test, spatial_null


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _ellipsoid(shape, spacing, centre_mm, radii_mm) -> np.ndarray:
    pos = np.indices(shape).transpose(1, 2, 3, 0) * np.asarray(spacing, dtype=float)
    return (((pos - np.asarray(centre_mm)) / np.asarray(radii_mm)) ** 2).sum(-1) <= 1.0


def _no_metric(a: np.ndarray, b: np.ndarray, spacing: tuple[float, ...]) -> float:
    return 0.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200, help="runs of the Monte Carlo test")
    args = parser.parse_args(argv)

    values = np.random.default_rng(0).normal(0.2, 1.0, size=39)

    t_mc = _median_seconds(
        lambda: sign_flip_test(values, n_permutations=10_000, exact=False), args.repeats
    )
    print(f"sign_flip_test  monte-carlo  n=39, 10,000 flips : {t_mc * 1e3:8.3f} ms (goal < 1 ms)")

    t_exact = _median_seconds(lambda: sign_flip_test(values, exact=True), 7)
    print(
        f"sign_flip_test  exact        n=39, 2**39 flips  : {t_exact * 1e3:8.1f} ms (goal < 500 ms)"
    )

    shape, spacing = (90, 110, 90), (2.0, 2.0, 2.0)
    brain = _ellipsoid(shape, spacing, (90, 110, 90), (70, 85, 70))
    A = _ellipsoid(shape, spacing, (70, 120, 90), (12, 8, 10))
    t_null = _median_seconds(
        lambda: spatial_null(A, A, brain, spacing, _no_metric, n=1000, seed=0), 3
    )
    res = spatial_null(A, A, brain, spacing, _no_metric, n=1000, seed=0)
    print(
        f"spatial_null    1000 placements, |A|={int(A.sum())} voxels, grid {shape}: "
        f"{t_null:6.2f} s (acceptance rate {res.acceptance_rate:.2f})"
    )


if __name__ == "__main__":
    main()
