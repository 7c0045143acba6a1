"""Inference speed and memory on a BraTS-size case (4 x 240 x 240 x 155 at 1 mm).

Prints, for the shipped models:
- seconds and peak memory of each model's whole pipeline (crop, normalise, resample,
  sliding window, back to 1 mm) and of the fused two-model map (``nehmap.segmentation``);
- nehmap's sliding window against MONAI's ``sliding_window_inference`` with the same
  network, window, 50 % overlap and Gaussian blending, in the same run: time ratio
  (goal <= 1.05) and the largest probability difference (goal <= 1e-5);
- on a GPU, when there is one, seconds per case with mixed precision.

Run: python benchmarks/bench_inference.py [--repeats 3] [--threads 2]
Each measurement runs in a fresh process so that its peak memory is its own.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import time


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _case():
    from nehmap.io import new_grid
    from nehmap.io.case import Case
    from nehmap.io.layouts import CaseFiles
    from nehmap.synth import generate_case

    synth = generate_case(7, spacing=1.0)
    files = CaseFiles("bench", "bench", None, "synthetic")
    grid = new_grid(synth.labels.shape, (1.0, 1.0, 1.0))
    return Case(files, synth.images, grid, synth.labels)


def _job(kind: str, threads: int, device: str, queue) -> None:  # noqa: ANN001
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    from nehmap.segmentation import load_models, predict_probabilities, segment

    case = _case()
    models = load_models(["paunet", "unetrpp"], device)
    base = _peak_mb()
    start = time.perf_counter()
    if kind == "fused":
        result = segment(case, models, device=device)
        assert result.consensus is not None
    elif kind.startswith("model:"):
        model = next(m for m in models if m.name == kind.split(":", 1)[1])
        predict_probabilities(case, model, device=device)
    elif kind in ("window:nehmap", "window:monai"):
        from nehmap.infer import sliding_window_logits
        from nehmap.preprocess import brain_crop, resample_channels, resampled_shape, zscore_in_mask

        model = models[0]
        brain = case.brain_mask()
        crop = brain_crop(brain)
        block = zscore_in_mask(case.stack()[(slice(None), *crop.slices)], brain[crop.slices])
        block = resample_channels(
            block, resampled_shape(crop.shape, case.spacing, tuple(model.card.spacing_mm))
        )
        patch = tuple(model.card.patch_size)
        start = time.perf_counter()
        if kind == "window:nehmap":
            out = sliding_window_logits(model.network, block, patch, overlap=0.5, batch_size=2)
        else:
            from monai.inferers import sliding_window_inference

            with torch.inference_mode():
                out = sliding_window_inference(
                    torch.from_numpy(block)[None],
                    patch,
                    2,
                    model.network,
                    overlap=0.5,
                    mode="gaussian",
                )[0].numpy()
        np.save("/tmp/nehmap-bench-window-" + kind.split(":")[1] + ".npy", out)
    queue.put((time.perf_counter() - start, _peak_mb() - base, _peak_mb()))


def measure(kind: str, threads: int, device: str, repeats: int) -> tuple[float, float, float]:
    ctx = mp.get_context("spawn")
    times, peaks, totals = [], [], []
    for _ in range(repeats):
        queue = ctx.Queue()
        proc = ctx.Process(target=_job, args=(kind, threads, device, queue))
        proc.start()
        seconds, extra, total = queue.get()
        proc.join()
        times.append(seconds)
        peaks.append(extra)
        totals.append(total)
    return statistics.median(times), max(peaks), max(totals)


def main() -> None:
    import numpy as np
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    print(
        f"BraTS-size case 4x240x240x155 at 1 mm, {args.threads} threads, CPU, median of "
        f"{args.repeats}"
    )
    print(f"{'what':<34}{'seconds':>10}{'peak MB (process)':>20}")
    rows = {}
    for kind in ("model:paunet", "model:unetrpp", "fused", "window:nehmap", "window:monai"):
        rows[kind] = measure(kind, args.threads, "cpu", args.repeats)
        print(f"{kind:<34}{rows[kind][0]:>10.2f}{rows[kind][2]:>20.0f}")
    ours = np.load("/tmp/nehmap-bench-window-nehmap.npy")
    theirs = np.load("/tmp/nehmap-bench-window-monai.npy")

    def softmax(x):  # noqa: ANN001, ANN202
        e = np.exp(x - x.max(0, keepdims=True))
        return e / e.sum(0, keepdims=True)

    diff = float(np.abs(softmax(ours) - softmax(theirs)).max())
    ratio = rows["window:nehmap"][0] / rows["window:monai"][0]
    print(f"\nsliding window nehmap / MONAI time ratio: {ratio:.3f} (goal <= 1.05)")
    print(f"largest probability difference: {diff:.2e} (goal <= 1e-5)")
    print(f"fused two-model map: {rows['fused'][0]:.1f} s (goal <= 60 s on 2 CPU cores)")
    if torch.cuda.is_available():
        gpu = measure("fused", args.threads, "cuda", args.repeats)
        print(
            f"fused two-model map on {torch.cuda.get_device_name()}: {gpu[0]:.2f} s "
            "(mixed precision; goal <= 2 s on an H100)"
        )
    else:
        print("no GPU here: the GPU figure is not measured")


if __name__ == "__main__":
    main()
