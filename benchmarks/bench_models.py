"""Timing of nehmap's networks: forward + backward on a CPU batch.

Usage::

    python benchmarks/bench_models.py                    # demo presets, 2 x 4 x 64^3
    python benchmarks/bench_models.py --threads 1 2 --repeats 3
    python benchmarks/bench_models.py --preset paper --size 128 --batch 1

Prints, per network and thread count, the parameter count and the median seconds of
one forward + backward pass (training mode, deep supervision, summed outputs as loss).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from nehmap.models import available_models, create_model


def time_step(model: torch.nn.Module, x: torch.Tensor, repeats: int) -> float:
    """Median seconds of ``repeats`` forward + backward passes (after one warm-up)."""
    model.train()
    times = []
    for i in range(repeats + 1):
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        out = model(x)
        outs = out if isinstance(out, list) else [out]
        sum(o.float().mean() for o in outs).backward()
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="*", default=None, help="default: all registered")
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--size", type=int, default=None, help="default: the preset's patch")
    parser.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    names = args.models or available_models()
    print(f"torch {torch.__version__}, preset {args.preset}, batch {args.batch}")
    print(f"{'network':<20}{'parameters':>12}{'input':>22}{'threads':>9}{'seconds':>10}")
    for name in names:
        torch.manual_seed(0)
        model = create_model(name, preset=args.preset)
        size = [args.size] * 3 if args.size else list(model.patch_size)
        x = torch.randn(args.batch, model.in_channels, *size)
        n_params = sum(p.numel() for p in model.parameters())
        for threads in args.threads:
            torch.set_num_threads(threads)
            seconds = time_step(model, x, args.repeats)
            shape = "x".join(str(s) for s in x.shape)
            print(f"{name:<20}{n_params:>12,}{shape:>22}{threads:>9}{seconds:>10.2f}")


if __name__ == "__main__":
    main()
