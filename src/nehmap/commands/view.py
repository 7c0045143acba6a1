"""``nehmap view CASE_DIR``: an interactive 3D viewer of one segmented case, as one HTML file."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the viewer modules load lazily, when a page is written
    from nehmap.report.viewer import ViewerCase

HELP = "write an interactive 3D viewer (one offline HTML file) of a segmented case"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nehmap.commands import options

    parser.add_argument(
        "case_dir", help="a case folder written by nehmap segment (OUT/CASE, with CASE_nehmap.json)"
    )
    options.add_out(
        parser, "the HTML file to write (default: CASE_DIR/CASE_viewer.html)", required=False
    )
    parser.add_argument(
        "--images",
        action="append",
        default=[],
        metavar="MODALITY=PATH",
        help="an input image to show, e.g. t1c=/data/c1/c1_t1c.nii.gz (repeat for flair, "
        "rcbv); replaces the path the segment record names, e.g. when the images moved",
    )
    parser.add_argument(
        "--threshold", type=float, help="NEH threshold the viewer opens with (default: segment's)"
    )
    options.add_overwrite(parser, "replace an existing HTML file")
    options.add_quiet(parser)


def _parse_images(specs: list[str]) -> dict[str, str]:
    from nehmap.io.modalities import normalise_modality

    images = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        modality = normalise_modality(name) if sep else None
        if not (modality and path):
            raise ValueError(
                f"--images {spec!r}: expected MODALITY=PATH with MODALITY one of t1c, flair, "
                "rcbv, t1, t2."
            )
        images[modality] = path
    return images


def write_case_viewer(
    folder: str | Path,
    out: str | Path | None = None,
    *,
    images: Mapping[str, str | Path] | None = None,
    threshold: float | None = None,
    overwrite: bool = False,
) -> tuple[Path, ViewerCase, int]:
    """Write the standalone viewer of the segmented case in ``folder``.

    Parameters
    ----------
    folder : str | Path
        A case folder written by ``nehmap segment`` (``OUT/CASE``).
    out : str | Path | None
        The HTML file (default ``folder/CASE_viewer.html``).
    images : Mapping[str, str | Path] | None
        Modality -> image path, replacing the paths the segment record names.
    threshold : float | None
        NEH threshold the viewer opens with (default: the segment run's).
    overwrite : bool
        Replace an existing HTML file.

    Returns
    -------
    tuple[Path, ViewerCase, int]
        (path written, the viewer case, size in bytes).

    Raises
    ------
    NehmapInputError
        The folder holds no segment output (names what is missing).
    FileExistsError
        ``out`` exists and ``overwrite`` is false.
    """
    from nehmap.io import write_text_atomic
    from nehmap.report.viewer_cases import segment_case
    from nehmap.report.viewer_page import standalone_page

    folder = Path(folder)
    case = segment_case(folder, images=images or {}, threshold=threshold, strict=True)
    out = Path(out) if out else folder / f"{case.case_id}_viewer.html"
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; use --overwrite to replace it, or -o.")
    case.title = f"nehmap segment output in {folder}"
    text = standalone_page([case], f"{case.case_id}: nehmap viewer")
    write_text_atomic(out, text)
    return out, case, len(text)


def run(args: argparse.Namespace) -> int:
    from nehmap.commands.options import EXIT_NOTHING_STARTED, EXIT_OK
    from nehmap.errors import NehmapInputError

    try:
        images = {k: Path(v) for k, v in _parse_images(args.images).items()}
        out, case, size = write_case_viewer(
            args.case_dir,
            args.out,
            images=images,
            threshold=args.threshold,
            overwrite=args.overwrite,
        )
    except (NehmapInputError, ValueError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NOTHING_STARTED
    if not args.quiet:
        for note in case.notes:
            print(f"note: {note}", file=sys.stderr)
        names = ", ".join(layer.name for layer in case.layers)
        print(f"viewer of {case.case_id} ({names}) written to {out} ({size / 2**20:.1f} MB)")
    return EXIT_OK
