"""Training speed and memory: seconds per iteration and peak memory per network and preset.

Usage::

    python benchmarks/bench_train.py                          # demo and paper, CPU (and GPU)
    python benchmarks/bench_train.py --presets demo --threads 2 --iterations 3
    python benchmarks/bench_train.py --device cuda            # GPU only, mixed precision

One iteration is what ``nehmap train`` does per step: draw and augment ``batch``
patches from preprocessed cases (default augmentation), forward, Dice + CE loss with
deep supervision, backward, gradient clipping, SGD step. Each (network, preset) runs in
its own process, so the peak memory reported is that configuration's: the process's
peak resident memory on the CPU (Python and torch included), or the peak allocated
CUDA memory on a GPU (with float16 autocast).

The paper presets are large for a CPU. Before running one there, a proxy at half the
patch size (an eighth of the voxels; for UNETR++ with the spatial projections clipped
to the smaller token grids) is timed and its cost scaled by 8; when that estimate
exceeds ``--max-seconds`` per iteration or ``--max-memory-gb``, the preset is skipped
with a note giving the estimate. Otherwise ``--paper-iterations`` iterations are timed
(the first one included, so it contains the warm-up).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

PRESETS = ("demo", "paper")


def _synthetic_cases(
    channels: int, n_classes: int, shape: tuple[int, int, int], n: int = 2
) -> list[Any]:
    """Preprocessed-like cases: z-scored noise with a spherical 'tumour' of all classes."""
    import numpy as np

    from nehmap.train.data import PreparedCase

    rng = np.random.default_rng(0)
    cases = []
    grid = np.stack(np.meshgrid(*(np.arange(s) for s in shape), indexing="ij"))
    for i in range(n):
        centre = np.array(shape) / 2 + rng.uniform(-8, 8, size=3)
        r = np.sqrt(((grid - centre[:, None, None, None]) ** 2).sum(0))
        target = np.zeros(shape, dtype=np.uint8)
        for value, radius in ((2, 20), (3, 14), (4, 9), (1, 5)):
            target[r < radius] = min(value, n_classes - 1)
        image = rng.normal(size=(channels, *shape)).astype(np.float32)
        image += target[None].astype(np.float32) * 0.5
        cases.append(
            PreparedCase(
                f"synthetic{i}",
                image,
                target,
                np.argwhere(target > 0).astype(np.int32),
                np.argwhere(target == min(3, n_classes - 1)).astype(np.int32),
                (1.0, 1.0, 1.0),
            )
        )
    return cases


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # kB on Linux


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Time ``spec["iterations"]`` training iterations of one configuration."""
    import torch

    from nehmap.models import create_model
    from nehmap.train.config import AugmentConfig
    from nehmap.train.dataset import PatchDataset
    from nehmap.train.loss import DeepSupervisionLoss, DiceCELoss
    from nehmap.train.step import make_optimizer, train_step

    baseline_gb = _peak_rss_gb()  # Python, torch and MONAI loaded, nothing allocated
    torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    amp = device.type == "cuda"
    torch.manual_seed(0)
    model = create_model(spec["model"], spec["preset"], **spec.get("kwargs", {})).to(device)
    patch = tuple(int(p) for p in model.patch_size)
    shape = tuple(p + 32 for p in patch)
    cases = _synthetic_cases(model.in_channels, model.n_classes, shape)  # type: ignore[arg-type]
    data = PatchDataset(cases, patch, seed=0, augmentation=AugmentConfig())
    optimizer = make_optimizer(model)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    loss_fn = DeepSupervisionLoss(
        DiceCELoss(model.n_classes), getattr(model, "deep_supervision_weights", (1.0,))
    )
    if amp:
        torch.cuda.reset_peak_memory_stats(device)
    model.train()
    step_times, data_times = [], []
    warmup = 1 if spec["warmup"] else 0
    for it in range(spec["iterations"] + warmup):
        t0 = time.perf_counter()
        batch = [data[(0, it, b)] for b in range(spec["batch"])]
        x = torch.stack([b[0] for b in batch]).to(device)
        y = torch.stack([b[1] for b in batch]).to(device)
        t1 = time.perf_counter()
        train_step(model, x, y, optimizer, scaler, loss_fn, amp=amp)
        if amp:
            torch.cuda.synchronize(device)
        t2 = time.perf_counter()
        if it >= warmup:
            data_times.append(t1 - t0)
            step_times.append(t2 - t0)
    return {
        "patch": list(patch),
        "parameters": sum(p.numel() for p in model.parameters()),
        "seconds": statistics.median(step_times),
        "data_seconds": statistics.median(data_times),
        "peak_gb": (torch.cuda.max_memory_allocated(device) / 1024**3 if amp else _peak_rss_gb()),
        "baseline_gb": 0.0 if amp else baseline_gb,
    }


def _run(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run :func:`worker` in a fresh process; returns its result or an 'error'."""
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--worker", json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "OMP_NUM_THREADS": str(spec["threads"])},
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["killed (out of memory?)"])[-1]
        return {"error": last[:200]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _proxy_kwargs(model: str, preset: str) -> dict[str, Any]:
    """Arguments of a half-patch proxy of a preset (UNETR++: projections clipped)."""
    from nehmap.models import model_presets

    args = model_presets(model)[preset]
    patch = args.get("patch_size", 128)
    patch = [p // 2 for p in patch] if isinstance(patch, list | tuple) else [patch // 2] * 3
    out: dict[str, Any] = {"patch_size": patch}
    if "stem_stride" in args:
        stem, feats = args["stem_stride"], args["feature_sizes"]
        tokens = [math.prod(p // (stem * 2**i) for p in patch) for i in range(len(feats))]
        out["proj_sizes"] = [min(p, t) for p, t in zip(args["proj_sizes"], tokens, strict=False)]
        dec = args.get("decoder_proj_sizes", args["proj_sizes"][:-1])
        out["decoder_proj_sizes"] = [min(p, t) for p, t in zip(dec, tokens, strict=False)]
    return out


def _line(name: str, preset: str, device: str, result: dict[str, Any], note: str = "") -> str:
    if "error" in result:
        return f"{name:<19}{preset:<7}{device:<6}  {note or result['error']}"
    patch = "x".join(str(p) for p in result["patch"])
    return (
        f"{name:<19}{preset:<7}{device:<6}{result['parameters']:>12,}{patch:>13}"
        f"{result['seconds']:>10.2f}{result['data_seconds']:>9.2f}{result['peak_gb']:>9.2f}"
        + (f"  {note}" if note else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--models", nargs="*", default=["paunet", "unetrpp", "unetrpp-consensus"])
    parser.add_argument("--presets", nargs="*", default=list(PRESETS), choices=PRESETS)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=3, help="timed demo iterations")
    parser.add_argument("--paper-iterations", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", choices=("cpu", "cuda", "all"), default="all")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="per CPU iteration")
    parser.add_argument("--max-memory-gb", type=float, default=None, help="default 75%% of RAM")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return

    import torch

    total_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    max_gb = args.max_memory_gb or 0.75 * total_gb
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        devices.remove("cuda")
        print("no CUDA device: GPU part skipped")
    print(
        f"torch {torch.__version__}, batch {args.batch}, {args.threads} CPU threads, "
        f"{os.cpu_count()} cores, {total_gb:.0f} GB RAM"
    )
    print(
        f"{'network':<19}{'preset':<7}{'device':<6}{'parameters':>12}{'patch':>13}"
        f"{'s/iter':>10}{'data s':>9}{'peak GB':>9}"
    )
    for device in devices:
        for preset in args.presets:
            for name in args.models:
                spec = {
                    "model": name,
                    "preset": preset,
                    "batch": args.batch,
                    "threads": args.threads,
                    "device": device,
                    "iterations": args.iterations,
                    "warmup": True,
                }
                note = ""
                if preset == "paper" and device == "cpu":
                    proxy = _run(
                        {**spec, "kwargs": _proxy_kwargs(name, preset), "iterations": 1},
                        timeout=args.max_seconds * 2,
                    )
                    if "error" in proxy:
                        print(_line(name, preset, device, proxy, "proxy failed: " + proxy["error"]))
                        continue
                    base = proxy["baseline_gb"]
                    est_s = 8 * proxy["seconds"]
                    est_gb = base + 8 * (proxy["peak_gb"] - base)
                    if est_s > args.max_seconds or est_gb > max_gb:
                        print(
                            _line(
                                name,
                                preset,
                                device,
                                {"error": ""},
                                f"skipped: estimated {est_s:.0f} s/iteration and {est_gb:.1f} GB "
                                f"(limits {args.max_seconds:.0f} s, {max_gb:.1f} GB), from a "
                                f"half-patch proxy ({proxy['seconds']:.1f} s, "
                                f"{proxy['peak_gb']:.1f} GB)",
                            )  # fmt: skip
                        )
                        continue
                    spec.update(iterations=args.paper_iterations, warmup=False)
                    note = f"{args.paper_iterations} iteration(s), warm-up included"
                result = _run(spec, timeout=max(600.0, 10 * args.max_seconds))
                print(_line(name, preset, device, result, note), flush=True)


if __name__ == "__main__":
    main()
