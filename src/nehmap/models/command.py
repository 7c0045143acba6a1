"""``nehmap models``: list the registered networks and their presets."""

from __future__ import annotations

import argparse
import json

HELP = "list the registered networks and their presets, with parameter counts"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``nehmap models``."""
    parser.add_argument("--json", action="store_true", help="print the listing as JSON")
    parser.add_argument(
        "--checkpoint",
        metavar="PATH",
        nargs="*",
        default=[],
        help="also show the model cards of these checkpoints (name, .json or .safetensors)",
    )


def run(args: argparse.Namespace) -> int:
    """Print the table of networks (and checkpoint cards); returns the exit status."""
    import sys

    from nehmap.errors import NehmapInputError
    from nehmap.models.checkpoint import read_card
    from nehmap.models.registry import describe_models

    rows = describe_models()
    cards = []
    status = 0
    for path in args.checkpoint:
        try:
            cards.append((path, read_card(path)))
        except NehmapInputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 2
    if args.json:
        listing = {"networks": rows, "checkpoints": [c.to_dict() for _, c in cards]}
        print(json.dumps(listing, indent=2))
        return status
    header = ("network", "preset", "parameters", "patch", "classes", "description")
    lines = [
        (
            r["name"],
            r["preset"],
            f"{r['n_parameters']:,}",
            "x".join(str(s) for s in r["patch_size"]),
            ",".join(r["class_names"]),
            r["description"],
        )
        for r in rows
    ]
    widths = [max(len(str(c)) for c in col) for col in zip(header, *lines, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths[:-1]) + "  {}"
    print(fmt.format(*header))
    for line in lines:
        print(fmt.format(*line))
    for path, card in cards:
        print(f"\n{path}: {card.name or card.architecture} ({card.architecture})")
        print(f"  classes     {', '.join(card.class_names)}")
        print(f"  inputs      {', '.join(card.modalities)}, {card.normalisation}")
        print(f"  spacing     {' x '.join(f'{s:g}' for s in card.spacing_mm)} mm")
        print(f"  patch       {' x '.join(str(p) for p in card.patch_size)}")
        print(f"  parameters  {card.n_parameters:,}" if card.n_parameters else "  parameters  ?")
        print(f"  trained on  {card.training_data or '(not stated)'}")
        for key, value in card.validation_metrics.items():
            print(f"  {key:<11} {value}")
        print(f"  created     {card.created} with nehmap {card.nehmap_version}")
    return status
