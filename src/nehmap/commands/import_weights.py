"""``nehmap import-weights CHECKPOINT -o OUT``: a reference UNETR++ checkpoint as a nehmap one."""

from __future__ import annotations

import argparse
import json
import sys

HELP = "import a UNETR++ checkpoint of the reference implementation (nnU-Net v1 .model)"

DESCRIPTION = """\
Reads an nnU-Net v1 checkpoint (.model: a torch file whose 'state_dict' holds the
weights) of the reference UNETR++ implementation (github.com/Amshaker/unetr_plus_plus),
without running pickled code, renames its tensors to nehmap's UNETR++ and writes
OUT.safetensors + OUT.json (model card). The network is built with the reference's EPA
layout (epa_layout "reference": the reference reshapes the spatial attention's output in
a way that mixes tokens and channels; nehmap's own networks default to "clean"), so the
imported network gives the reference's outputs. A checkpoint whose tensors do not fit
the network is refused, naming the first tensor and both shapes.

Example (the public BraTS model: MSD channel order, 3 tumour classes):
  nehmap import-weights model_final_checkpoint.model -o models/unetrpp-brats \\
      --modalities flair,t1,t1c,t2 --class-names background,ED,NCR-NET,ET \\
      --class-labels 0,2,null,4 --spacing-mm 1,1,1
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``nehmap import-weights``."""
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("checkpoint", help="the nnU-Net v1 .model file")
    from nehmap.commands import options

    options.add_out(parser, "nehmap checkpoint name (writes .safetensors, .json)")
    parser.add_argument(
        "--architecture",
        default="unetrpp",
        choices=("unetrpp", "unetrpp-consensus"),
        help="nehmap architecture (default unetrpp)",
    )
    parser.add_argument(
        "--preset",
        default="reference",
        help="architecture preset (default 'reference': the UNETR++ tumour configuration, "
        "128^3 patch, with the reference EPA layout)",
    )
    parser.add_argument(
        "--config",
        metavar="JSON",
        help="constructor arguments overriding the preset, as a JSON object",
    )
    parser.add_argument(
        "--epa-layout",
        choices=("reference", "clean"),
        default="reference",
        help="EPA spatial-branch layout (default reference, needed for the reference's "
        "outputs; 'clean' only to fine-tune the weights as a nehmap network)",
    )
    parser.add_argument(
        "--class-names", help="output classes in order, comma-separated (default nehmap's)"
    )
    parser.add_argument(
        "--class-labels",
        help="nehmap label (0-4, or null) of each class, comma-separated",
    )
    parser.add_argument(
        "--modalities",
        help="input channels in order, comma-separated (default t1,t1c,t2,flair)",
    )
    parser.add_argument(
        "--spacing-mm", help="training voxel spacing, mm per axis, comma-separated (1,1,1)"
    )
    parser.add_argument("--name", help="checkpoint name in the card (default: OUT's name)")
    parser.add_argument("--training-data", default="", help="training data, in words")
    parser.add_argument("--description", default="", help="description for the card")


def _split(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",")] if text else None


def _labels(text: str | None) -> list[int | None] | None:
    items = _split(text)
    if items is None:
        return None
    try:
        return [None if t.lower() in ("null", "none", "") else int(t) for t in items]
    except ValueError:
        raise ValueError(
            f"--class-labels {text!r}: give integers 0-4 or null, comma-separated."
        ) from None


def run(args: argparse.Namespace) -> int:
    """Import the checkpoint; 0 on success, 2 with a message for bad input."""
    from nehmap.errors import NehmapInputError
    from nehmap.models.import_weights import import_unetrpp_weights

    try:
        overrides = json.loads(args.config) if args.config else {}
        if not isinstance(overrides, dict):
            raise ValueError(f"--config must be a JSON object, got {args.config!r}.")
        overrides.setdefault("epa_layout", args.epa_layout)
        fields: dict = {"training_data": args.training_data, "description": args.description}
        if args.name:
            fields["name"] = args.name
        if args.spacing_mm:
            fields["spacing_mm"] = [float(s) for s in _split(args.spacing_mm) or []]
        card = import_unetrpp_weights(
            args.checkpoint,
            args.out,
            architecture=args.architecture,
            preset=args.preset,
            class_names=_split(args.class_names),
            class_labels=_labels(args.class_labels),
            modalities=_split(args.modalities),
            overrides=overrides,
            **fields,
        )
    except json.JSONDecodeError as exc:
        print(f"error: --config is not valid JSON: {exc}", file=sys.stderr)
        return 2
    except (NehmapInputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"imported {args.checkpoint} -> {args.out}.safetensors + .json "
        f"({card.architecture}, epa_layout={card.config.get('epa_layout')}, "
        f"{card.n_parameters:,} parameters, classes {', '.join(card.class_names)})"
    )
    return 0
