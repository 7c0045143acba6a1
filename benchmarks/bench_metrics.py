"""Benchmark nehmap's HD95 + surface Dice against MONAI and DeepMind's surface-distance.

Generates BraTS-size masks (240 x 240 x 155) holding irregular tumour-like blobs
(thresholded smoothed noise inside an ellipsoid) and a perturbed "prediction" of each:
close pairs (a solid blob and a rim), far pairs (the prediction moved by 2-3 cm, HD95
over 20 mm, as NEH maps of two models can be), a disjoint pair (9 cm apart) and a pair
with an empty prediction. It times HD95 + surface Dice (tolerance 2 mm) of one region for

* nehmap ``surface_metrics(method="voxels")`` vs MONAI ``compute_hausdorff_distance`` +
  ``compute_surface_dice`` (the two calls a MONAI user makes), and
* nehmap ``surface_metrics(method="surface_elements")`` vs surface-distance
  ``compute_surface_distances`` + ``compute_robust_hausdorff`` +
  ``compute_surface_dice_at_tolerance``,

at spacing 1 mm and 0.9375 x 0.9375 x 2 mm. It prints the median time of several runs,
the speed-up, the peak memory of one run and checks that the values agree (with one mask
empty, nehmap's HD95 is NaN where the peers give NaN or infinity). Last, it times the
distance step alone: nehmap's query-restricted transform against the whole-box
transforms of the ``edt`` library and of scipy, with the same values.

Usage::

    python benchmarks/bench_metrics.py            # 7 repeats
    python benchmarks/bench_metrics.py --quick    # 3 repeats
    python benchmarks/bench_metrics.py --workers 2  # nehmap's transforms on 2 threads

The peers run on one thread (MONAI and surface-distance call scipy's single-threaded
distance transform); ``--workers`` sets nehmap's threads (default 1, the same footing).
"""

from __future__ import annotations

import argparse
import gc
import math
import time
import tracemalloc
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from nehmap.metrics import surface_metrics

SHAPE = (240, 240, 155)
SPACINGS = ((1.0, 1.0, 1.0), (0.9375, 0.9375, 2.0))
TOLERANCE_MM = 2.0


def make_case(
    seed: int, rim: bool = False, offset: tuple[int, int, int] = (0, 0, 0), empty: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """A reference blob and a perturbed prediction of it, on the BraTS grid.

    The blob is an ellipsoid whose boundary is roughened by smoothed noise (several lobes,
    occasional satellite islands); the prediction adds a second, finer noise field, so its
    boundary wanders by a few voxels and it has its own small false positives/negatives.
    With ``rim=True`` both become shells (enhancing-tumour-like rims) a few voxels thick.
    ``offset`` (voxels) moves the prediction away from the reference (the pair is centred
    on the grid), as when two models place a region centimetres apart; ``empty=True``
    makes the prediction empty.
    """
    rng = np.random.default_rng(seed)
    radii = rng.uniform([24, 22, 18], [34, 30, 26])
    shift = np.asarray(offset)
    centre = np.array(SHAPE) / 2 + rng.uniform(-15, 15, 3) * (shift == 0) - shift / 2
    lo = np.maximum((centre - 1.6 * radii).astype(int), 0)
    hi = np.minimum((centre + 1.6 * radii).astype(int), np.array(SHAPE) - shift)
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    moved = tuple(slice(a + d, b + d) for a, b, d in zip(lo, hi, shift, strict=True))
    shape = tuple(int(b - a) for a, b in zip(lo, hi, strict=True))
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    ell = sum(((g + a - c) / r) ** 2 for g, a, c, r in zip(grid, lo, centre, radii, strict=True))

    def field(sigma: float) -> np.ndarray:
        f = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
        return f / f.std()

    coarse, fine = field(4.0), field(2.0)
    level_ref = (1.0 - ell) + 0.35 * coarse
    level_pred = level_ref + 0.12 * fine + 0.03
    ref, pred = np.zeros(SHAPE, bool), np.zeros(SHAPE, bool)
    ref[box], pred[moved] = level_ref > 0, level_pred > 0
    if rim:
        ref &= ~ndi.binary_erosion(ref, iterations=3)
        pred &= ~ndi.binary_erosion(pred, iterations=3)
    if empty:
        pred[:] = False
    return pred, ref


def median_time(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def _rss_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_memory(fn: Callable[[], object]) -> tuple[float, float | None]:
    """(tracemalloc peak in MiB, resident-set high-water growth in MiB or None).

    tracemalloc sees numpy (and Python) allocations but not torch's. The resident-set
    figure covers everything (torch included) but only counts memory the process had to
    take from the system during the call, not memory reused from earlier calls; it needs
    Linux's /proc/self/clear_refs.
    """
    gc.collect()
    rss = None
    try:
        Path("/proc/self/clear_refs").write_text("5")
        before = _rss_kib("VmRSS")
    except OSError:
        before = None
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    if before is not None:
        hwm = _rss_kib("VmHWM")
        if hwm is not None:
            rss = max(hwm - before, 0) / 1024
    return peak / 2**20, rss


def run_nehmap(
    pred: np.ndarray, ref: np.ndarray, spacing, method: str, workers: int = 1
) -> tuple[float, float]:
    m = surface_metrics(pred, ref, spacing, TOLERANCE_MM, method, workers=workers)
    return m.hd_percentile, m.surface_dice


def run_monai(yp, y, spacing) -> tuple[float, float]:
    from monai.metrics import compute_hausdorff_distance, compute_surface_dice

    sp = [float(v) for v in spacing]
    h = compute_hausdorff_distance(yp, y, include_background=True, percentile=95, spacing=sp)
    s = compute_surface_dice(yp, y, [TOLERANCE_MM], include_background=True, spacing=sp)
    return float(h.item()), float(s.item())


def run_surface_distance(pred: np.ndarray, ref: np.ndarray, spacing) -> tuple[float, float]:
    import surface_distance as sd

    d = sd.compute_surface_distances(ref, pred, spacing)
    return (
        float(sd.compute_robust_hausdorff(d, 95)),
        float(sd.compute_surface_dice_at_tolerance(d, TOLERANCE_MM)),
    )


def agree(ours: tuple[float, float], peer: tuple[float, float]) -> bool:
    """HD95 within 1e-4 mm and surface Dice within 1e-6; an empty mask's NaN HD95 matches
    a peer's NaN or infinity, and its surface Dice of 0 a peer's 0 or NaN."""
    if math.isnan(ours[0]):
        return not math.isfinite(peer[0]) and (ours[1] == peer[1] or math.isnan(peer[1]))
    return abs(ours[0] - peer[0]) <= 1e-4 and abs(ours[1] - peer[1]) <= 1e-6


def compare_transforms(cases: dict, repeats: int, workers: int) -> None:
    """Time the distance step alone, one direction: nehmap's query-restricted transform
    (the planes holding the reference's boundary, then the prediction's boundary voxels)
    against the whole-box transforms of the ``edt`` library and of scipy, same values."""
    import edt

    from nehmap.metrics._grid import _crop, _extent, _union, _voxel_boundary
    from nehmap.metrics._query_edt import squared_distances

    print("distance step alone (prediction boundary -> reference boundary, 1 mm):")
    for name in ("blob", "far", "disjoint"):
        pred, ref = cases[name]
        extent = _union(_extent(pred), _extent(ref))
        src = _voxel_boundary(_crop(pred, extent, 1))
        dst = _voxel_boundary(_crop(ref, extent, 1))
        queries = np.argwhere(src)
        spacing = (1.0, 1.0, 1.0)
        t_ours, ours = median_time(
            partial(squared_distances, dst, queries, spacing, workers), repeats
        )
        background = np.ascontiguousarray(~dst).view(np.uint8)
        t_edt, field = median_time(
            partial(edt.edtsq, background, anisotropy=spacing, parallel=workers), repeats
        )
        t_scipy, exact = median_time(partial(ndi.distance_transform_edt, ~dst), repeats)
        at = tuple(queries.T)
        same = np.allclose(ours, exact[at] ** 2, rtol=1e-12) and np.allclose(
            ours, field[at], rtol=1e-6
        )
        print(
            f"  {name:<8} box {'x'.join(map(str, dst.shape))}: query transform "
            f"{t_ours * 1e3:.1f} ms, edt {t_edt * 1e3:.1f} ms ({t_edt / t_ours:.1f}x), "
            f"scipy {t_scipy * 1e3:.1f} ms ({t_scipy / t_ours:.1f}x); "
            f"same values: {'yes' if same else 'NO'}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats instead of 7")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument(
        "--workers", type=int, default=1, help="nehmap's threads (default 1; peers: 1)"
    )
    args = parser.parse_args()
    repeats = args.repeats or (3 if args.quick else 7)

    warnings.simplefilter("ignore")  # MONAI's and scipy's deprecation chatter
    import torch

    # surface-distance 0.1 still uses aliases that NumPy 2 removed.
    for alias, value in (("NaN", np.nan), ("Inf", np.inf)):
        if not hasattr(np, alias):
            setattr(np, alias, value)
    torch.set_num_threads(1)

    cases = {
        "blob": make_case(7),
        "rim": make_case(11, rim=True),
        "far": make_case(7, offset=(22, 14, 0)),
        "farrim": make_case(11, rim=True, offset=(0, 26, 8)),
        "disjoint": make_case(5, offset=(92, 0, 0)),
        "empty": make_case(7, empty=True),
    }
    print(
        f"grid {SHAPE}, tolerance {TOLERANCE_MM} mm, median of {repeats} runs; nehmap on "
        f"{args.workers} thread(s), the peers on 1"
    )
    header = f"{'case':<8} {'spacing':<17} {'library':<18} {'time ms':>9} {'speed-up':>9}"
    header += f" {'tracemalloc MiB':>16} {'RSS growth MiB':>15}  HD95 mm / surface Dice"
    print(header)
    all_ok = True
    ratios: dict[str, list[float]] = {"MONAI 1.6": [], "surface-distance": []}
    for name, (pred, ref) in cases.items():
        n_p, n_r = int(pred.sum()), int(ref.sum())
        print(
            f"# {name}: |ref| = {n_r} voxels, |pred| = {n_p}, "
            f"Dice = {2 * int((pred & ref).sum()) / (n_p + n_r):.3f}"
        )
        yp = torch.from_numpy(pred[None, None].astype(np.float32))
        y = torch.from_numpy(ref[None, None].astype(np.float32))
        for spacing in SPACINGS:
            comparisons = (
                ("nehmap voxels", partial(run_nehmap, pred, ref, spacing, "voxels", args.workers)),
                ("MONAI 1.6", partial(run_monai, yp, y, spacing)),
                (
                    "nehmap surf.elem.",
                    partial(run_nehmap, pred, ref, spacing, "surface_elements", args.workers),
                ),
                ("surface-distance", partial(run_surface_distance, pred, ref, spacing)),
            )
            for (label_fast, fast), (label_slow, slow) in (comparisons[:2], comparisons[2:]):
                t_fast, v_fast = median_time(fast, repeats)
                t_slow, v_slow = median_time(slow, repeats)
                m_fast, m_slow = peak_memory(fast), peak_memory(slow)
                ok = agree(v_fast, v_slow)
                all_ok &= ok
                ratios[label_slow].append(t_slow / t_fast)
                sp_txt = "x".join(f"{v:g}" for v in spacing)
                for label, t, m, v, ratio in (
                    (label_fast, t_fast, m_fast, v_fast, f"{t_slow / t_fast:8.1f}x"),
                    (label_slow, t_slow, m_slow, v_slow, ""),
                ):
                    rss = "n/a" if m[1] is None else f"{m[1]:.1f}"
                    print(
                        f"{name:<8} {sp_txt:<17} {label:<18} {t * 1e3:9.1f} {ratio:>9} "
                        f"{m[0]:16.1f} {rss:>15}  {v[0]:.6f} / {v[1]:.8f}"
                    )
                print(f"{'':<8} {'':<17} values agree (1e-4 mm, 1e-6): {'yes' if ok else 'NO'}")
    compare_transforms(cases, repeats, args.workers)
    for peer, values in ratios.items():
        print(f"speed-up over {peer}: {min(values):.1f}x to {max(values):.1f}x")
    print("all values agree" if all_ok else "SOME VALUES DISAGREE")
    if not all_ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
