"""The ``nehmap`` command: the table of subcommands, the parser and the entry point.

Each subcommand lives in its own module (see :data:`COMMANDS`), whose heavy imports wait
inside its ``run`` so that ``nehmap --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from nehmap._version import __version__

# name -> module defining HELP, add_arguments(parser) and run(args)
COMMANDS: dict[str, str] = {
    "demo": "nehmap.commands.demo",
    "study": "nehmap.commands.study",
    "cases": "nehmap.commands.cases",
    "segment": "nehmap.commands.segment",
    "evaluate": "nehmap.commands.evaluate",
    "validate": "nehmap.commands.validate",
    "train": "nehmap.commands.train",
    "synth": "nehmap.commands.synth",
    "models": "nehmap.models.command",
    "derive-neh": "nehmap.commands.derive_neh",
    "consensus-dataset": "nehmap.commands.consensus_dataset",
    "export-nnunet": "nehmap.commands.export_nnunet",
    "import-nnunet": "nehmap.commands.import_nnunet",
    "import-weights": "nehmap.commands.import_weights",
    "view": "nehmap.commands.view",
}


def version_text() -> str:
    """nehmap's version, those of torch, MONAI and ANTsPy, and the device found."""
    from importlib.metadata import PackageNotFoundError, version

    lines = [f"nehmap {__version__}"]
    for label, dist in (("torch", "torch"), ("MONAI", "monai"), ("ANTsPy", "antspyx")):
        try:
            lines.append(f"{label} {version(dist)}")
        except PackageNotFoundError:
            lines.append(f"{label} not installed")
    try:
        import torch

        if torch.cuda.is_available():
            device = f"cuda ({torch.cuda.get_device_name(0)})"
        elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            device = "mps"
        else:
            device = "cpu"
    except ImportError:
        device = "unknown (torch is not installed)"
    lines.append(f"device {device}")
    return "\n".join(lines)


class _VersionAction(argparse.Action):
    """``--version``: print :func:`version_text` and exit 0."""

    def __init__(self, option_strings, dest, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(version_text())
        parser.exit(0)


def build_parser() -> argparse.ArgumentParser:
    """The ``nehmap`` parser, one subcommand per module of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="nehmap",
        description="Probability maps of the non-enhancing hypercellular tumour (NEH) from "
        "brain-tumour MRI, and their validation against perfusion and recurrence.",
    )
    parser.add_argument(
        "--version",
        action=_VersionAction,
        help="print the versions of nehmap, torch, MONAI and ANTsPy and the device found",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        help_text = getattr(module, "HELP", None) or (module.__doc__ or "").strip().split("\n")[0]
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``nehmap`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code.

    0 all done, 1 some cases failed, 2 nothing could start (docs/conventions.md).
    """
    for stream in (sys.stdout, sys.stderr):
        # file names that are not UTF-8 must never crash a message about them
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    from nehmap.errors import OutputError

    try:
        return int(args._run(args) or 0)
    except OutputError as exc:  # output folder in use, not writable, or full
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
