"""``nehmap train --model NAME --data DIR --out RUN``: train a network on a labelled collection.

Settings come, in increasing priority, from the defaults, the run's saved configuration
(with ``--resume``), a ``--config`` file (TOML or YAML), and the flags. Several GPUs::

    torchrun --nproc_per_node 4 -m nehmap.train --model unetrpp --preset paper ...
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HELP = "train a network (PAUNet, UNETR++, UNETR++ consensus) on a labelled collection"

# flag destination -> TrainConfig field, for the flags that map one to one
_DIRECT = (
    "data",
    "out",
    "model",
    "preset",
    "layout",
    "label_scheme",
    "target",
    "epochs",
    "iterations_per_epoch",
    "batch_size",
    "optimizer",
    "lr",
    "weight_decay",
    "momentum",
    "grad_clip",
    "foreground_fraction",
    "neh_fraction",
    "val_fraction",
    "val_every",
    "val_mode",
    "val_patches",
    "patience",
    "seed",
    "device",
    "num_workers",
    "cache",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``nehmap train``.

    Every option but --config and --quiet defaults to 'not given' (its group's
    ``argument_default``), so that :func:`config_from_args` can tell a flag from a default.
    """
    from nehmap.commands import options

    s = argparse.SUPPRESS
    g = parser.add_argument_group("what to train", argument_default=s)
    g.add_argument("--model", help="paunet, unetrpp or unetrpp-consensus (paunet)")
    g.add_argument("--preset", help="network preset: demo (CPU) or paper (demo)")
    g.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="network argument over the preset's, value as JSON (e.g. base_features=16)",
    )
    g.add_argument("--patch-size", metavar="N", help="patch, voxels: N or X,Y,Z")
    g = parser.add_argument_group("data and run folder", argument_default=s)
    g.add_argument("--data", metavar="DIR", help="labelled collection folder or manifest CSV")
    g.add_argument(
        "-o",
        "--out",
        metavar="RUN",
        help="run folder (checkpoints, logs, split, config)",
    )
    g.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="TOML or YAML file of settings (flags override it)",
    )
    g.add_argument("--resume", action="store_true", help="continue the run in --out")
    g.add_argument(
        "--init",
        metavar="CHECKPOINT",
        help="start from these weights (fine-tuning: same network; for unetrpp-consensus also a "
        "unetrpp checkpoint, whose output layers are left out), fresh optimizer and schedule",
    )
    options.add_layout(g, label_scheme="the label files", metavar="NAME")
    g.add_argument(
        "--target",
        choices=("auto", "tissue", "consensus"),
        help="what the labels hold: auto (from the model), tissue (labels 0-4) or consensus "
        "(two-level NEH map 0/1/2, for unetrpp-consensus)",
    )
    g.add_argument(
        "--spacing",
        metavar="MM",
        help="training spacing in mm: S, X,Y,Z or 'data' (the training cases' median) (1.0)",
    )
    g.add_argument(
        "--cache",
        choices=("auto", "memory", "disk"),
        help="keep preprocessed cases in memory or as .npy in RUN/cache; auto: on disk above "
        "an estimated 4 GB or with several processes",
    )
    g = parser.add_argument_group("optimisation", argument_default=s)
    g.add_argument("--epochs", type=int, metavar="N", help="epochs (1000)")
    g.add_argument(
        "--iterations",
        dest="iterations_per_epoch",
        type=int,
        metavar="N",
        help="iterations per epoch (250)",
    )
    g.add_argument("--batch-size", type=int, metavar="N", help="patches per step per process (2)")
    g.add_argument("--optimizer", choices=("sgd", "adamw"), help="(sgd, Nesterov)")
    g.add_argument("--lr", type=float, help="initial lr (sgd 1e-2, adamw 3e-4)")
    g.add_argument("--weight-decay", type=float, metavar="WD", help="(sgd 3e-5, adamw 1e-2)")
    g.add_argument("--momentum", type=float, metavar="M", help="SGD momentum (0.99)")
    g.add_argument("--grad-clip", type=float, metavar="NORM", help="gradient norm clip, 0 off (12)")
    g.add_argument("--amp", action="store_true", help="mixed precision (CUDA default)")
    g.add_argument("--no-amp", dest="amp", action="store_false", help="float32 only")
    g.add_argument(
        "--foreground-fraction",
        type=float,
        metavar="F",
        help="share of patches centred on tumour (0.33)",
    )
    g.add_argument("--neh-fraction", type=float, metavar="F", help="NEH among those (0.5)")
    g.add_argument(
        "--no-augment",
        dest="augment",
        action="store_false",
        help="no augmentation (flips, rotations, scaling, intensity, gamma, noise, blur)",
    )
    g.add_argument(
        "--no-randomise",
        dest="randomise",
        action="store_false",
        help="augmentation without domain randomisation (per-label contrasts, bias, Rician "
        "noise, thick slices, modality dropout): the first stage of a curriculum",
    )
    options.add_seed(g, s, "0")
    g.add_argument(
        "--deterministic",
        action="store_true",
        help="deterministic algorithms only (slower on GPU)",
    )
    g = parser.add_argument_group("validation", argument_default=s)
    g.add_argument("--val-fraction", type=float, metavar="F", help="share of cases held out (0.2)")
    g.add_argument("--val-every", type=int, metavar="N", help="validate every N epochs (1)")
    g.add_argument(
        "--val-mode",
        choices=("patches", "cases"),
        help="fixed patches per case (fast, default) or whole cases by sliding window",
    )
    g.add_argument("--val-patches", type=int, metavar="N", help="patches per case (8)")
    g.add_argument(
        "--patience",
        type=int,
        metavar="N",
        help="stop after N epochs without a better validation mean Dice (off)",
    )
    g = parser.add_argument_group("machine", argument_default=s)
    options.add_device(g)
    options.add_workers(g, s, "0, loading data in the training process", dest="num_workers")
    g.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help=options.HELP_TEXTS["--no-progress"],
    )
    options.add_quiet(g, default=False)
    g.add_argument(
        "--no-tensorboard",
        dest="tensorboard",
        action="store_false",
        help="no TensorBoard logs (written when TensorBoard is installed)",
    )


def _parse_model_args(items: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--model-arg {item!r}: expected KEY=VALUE.")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def config_from_args(args: argparse.Namespace) -> tuple[Any, str]:
    """The :class:`~nehmap.train.TrainConfig` of the command line, and the format of the
    configuration file to save (``toml`` or ``yaml``).

    Raises
    ------
    nehmap.train.ConfigError
        For invalid settings or an unreadable configuration file.
    """
    from nehmap.train.config import TrainConfig, read_config_file
    from nehmap.train.loop import run_config_path

    given = vars(args)
    values: dict[str, Any] = {}
    out = given.get("out")
    fmt = "toml"
    file_values: dict[str, Any] = read_config_file(args.config) if args.config else {}
    if args.config and Path(args.config).suffix.lower() in (".yaml", ".yml"):
        fmt = "yaml"
    out = out or file_values.get("out")
    if given.get("resume") and out:
        saved = run_config_path(out)
        if saved is not None:
            values.update(read_config_file(saved))
    for key, value in file_values.items():
        if key in ("augmentation", "model_kwargs") and isinstance(value, dict):
            values[key] = {**values.get(key, {}), **value}
        else:
            values[key] = value
    for key in (*_DIRECT, "amp", "augment", "deterministic", "progress", "tensorboard", "resume"):
        if key in given:
            values[key] = given[key]
    for key in ("data", "out", "init"):
        if key in given:
            values[key] = str(Path(given[key]).expanduser().resolve())
    if given.get("randomise") is False:
        from nehmap.train.augment_config import DOMAIN_RANDOMISATION_PROBS

        off = dict.fromkeys(DOMAIN_RANDOMISATION_PROBS, 0.0)
        values["augmentation"] = {**values.get("augmentation", {}), **off}
    if "patch_size" in given:
        parts = [int(v) for v in str(given["patch_size"]).replace("x", ",").split(",") if v]
        values["patch_size"] = parts * 3 if len(parts) == 1 else parts
    if "spacing" in given:
        values["spacing"] = given["spacing"]
    if args.model_arg:
        values["model_kwargs"] = {
            **values.get("model_kwargs", {}),
            **_parse_model_args(args.model_arg),
        }
    return TrainConfig.from_dict(values), fmt


def run(args: argparse.Namespace) -> int:
    """Run ``nehmap train``; returns the exit status (2 for bad input, 1 for failures)."""
    from nehmap.errors import NehmapInputError, OutputError

    try:
        config, fmt = config_from_args(args)
        if args.quiet:
            config.progress = False
    except (NehmapInputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from nehmap.train.loop import train

    try:
        result = train(config, config_format=fmt)
    except NehmapInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (OutputError, FloatingPointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    import os

    if result.best is not None and int(os.environ.get("RANK", "0")) == 0:
        metric = f"{result.best_metric:.4f}" if result.best_metric is not None else "?"
        print(
            f"{result.epochs_completed} epoch(s) done"
            + (" (stopped early)" if result.stopped_early else "")
            + f"; best validation mean Dice {metric} at epoch {result.best_epoch}: {result.best}"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m nehmap.train``."""
    parser = argparse.ArgumentParser(prog="nehmap train", description=HELP)
    add_arguments(parser)
    return run(parser.parse_args(argv))
