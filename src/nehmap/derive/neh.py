"""``nehmap derive-neh`` on collections: NEH pseudo-ground truth for every case.

The rule itself works on arrays and lives in :mod:`nehmap.derive.rule` (the paper's
section 1.1: reference BraTS 2017-2020 NCR/NET that a BraTS 2021-style second
segmentation does not call necrosis, then opening and small-component removal). This
module pairs each reference case with its second segmentation
(:class:`~nehmap.derive.second.SecondSegmentations`), tells the rule from the two label
schemes (:func:`~nehmap.derive.rule.choose_rule`), checks the grids, and writes an
nnU-Net dataset or a manifest with the derived 4-label maps, a tidy volume table and a
JSON record.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nehmap.bars import case_bar
from nehmap.derive.rule import (
    DEFAULT_MIN_VOLUME_MM3,
    DEFAULT_OPENING_MM,
    RULE_DESCRIPTIONS,
    RULES,
    STAGES,
    NehStats,
    ball,
    check_min_volume,
    choose_rule,
    derive_neh,
    remove_small_components,
)
from nehmap.derive.second import SecondSegmentations
from nehmap.errors import CaseError, NehmapInputError, OutputError
from nehmap.io.atomic import write_text_atomic
from nehmap.io.case import DEFAULT_GRID_TOLERANCE_MM, check_case_headers
from nehmap.io.label_file import read_label_map
from nehmap.io.layouts import Collection, discover
from nehmap.io.modalities import LABEL, MODALITIES
from nehmap.io.nnunet import (
    DEFAULT_CHANNELS,
    ManifestWriter,
    NnunetWriter,
    check_same_grid,
    dataset_root,
    parse_channels,
    prepare_output,
    tissue_dataset_json,
)

__all__ = [
    "DEFAULT_MIN_VOLUME_MM3",
    "DEFAULT_OPENING_MM",
    "OUTPUT_FORMATS",
    "RULES",
    "STAGES",
    "DeriveReport",
    "NehStats",
    "SecondSegmentations",
    "ball",
    "choose_rule",
    "default_format",
    "derive_dataset",
    "derive_neh",
    "remove_small_components",
    "volume_table",
]

# --------------------------------------------------------------------------- datasets


OUTPUT_FORMATS: tuple[str, ...] = ("nnunet", "manifest")
"""Formats :func:`derive_dataset` writes (see :func:`default_format`)."""

VOLUMES_CSV = "neh_volumes.csv"
"""File name of the tidy per-case volume table."""

RECORD_JSON = "derive-neh.json"
"""File name of the record of the parameters and per-case results."""


def default_format(layout: str) -> str:
    """Output format for an input layout.

    The labels are written in nehmap's convention (with NEH). The public layouts'
    schemes have no NEH label, so their derived datasets are written as nnU-Net
    datasets (``dataset.json`` names the labels, so nehmap and nnU-Net both read them);
    a manifest input gives a manifest (``label_scheme`` nehmap).
    """
    return "manifest" if layout == "manifest" else "nnunet"


@dataclass
class DeriveReport:
    """What :func:`derive_dataset` did.

    Attributes
    ----------
    root : Path
        Output folder.
    output_format : str
        ``nnunet`` or ``manifest``.
    cases : list of str
        Cases written.
    failures : list of (str, str)
        Case id and message of each case not written.
    stats : dict
        Case id -> :class:`NehStats`.
    placed : dict
        How many images were placed each way (hard, symlink, copy, kept, converted).
    index, volumes, record : Path or None
        ``dataset.json`` / ``manifest.csv``, the volume CSV, the JSON record.
    notes : list of str
        Remarks (e.g. files left over from an earlier run).
    """

    root: Path
    output_format: str
    cases: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    stats: dict[str, NehStats] = field(default_factory=dict)
    placed: dict[str, int] = field(default_factory=dict)
    index: Path | None = None
    volumes: Path | None = None
    record: Path | None = None
    notes: list[str] = field(default_factory=list)


def volume_table(stats: Mapping[str, NehStats]):
    """Tidy table (pandas DataFrame) ``case, rule, stage, voxels, volume_mm3``."""
    import pandas as pd

    rows = [row for case_id in sorted(stats) for row in stats[case_id].rows(case_id)]
    return pd.DataFrame(rows, columns=["case", "rule", "stage", "voxels", "volume_mm3"])


def case_rules(col: Collection, sec: SecondSegmentations, rule: str | None) -> dict[str, str]:
    """The derivation rule of every reference case, told from the two label schemes.

    Raises
    ------
    NehmapInputError
        Naming the first reference label file whose scheme does not tell the rule
        (e.g. a BraTS collection whose release cannot be told from its case IDs).
    """
    from nehmap.labels import get_scheme

    rules: dict[str, str] = {}
    for files in col:
        if LABEL not in files.files:
            continue  # reported per case later
        ref_scheme = get_scheme(files.label_scheme or "nehmap").name
        try:
            rules[files.case_id] = choose_rule(ref_scheme, sec.scheme_for(files.case_id), rule)
        except ValueError as exc:
            raise NehmapInputError(files.files[LABEL], str(exc)) from None
    return rules


def derive_dataset(
    reference: Collection | str | Path,
    second: SecondSegmentations | str | Path,
    out: str | Path,
    *,
    opening_mm: float = DEFAULT_OPENING_MM,
    min_volume_mm3: float = DEFAULT_MIN_VOLUME_MM3,
    within_wt: bool = True,
    rule: str | None = None,
    output_format: str | None = None,
    dataset_id: int | None = None,
    name: str | None = None,
    channels: Sequence[str] = DEFAULT_CHANNELS,
    link: str = "hard",
    overwrite: bool = False,
    progress: bool = False,
    grid_tolerance_mm: float = DEFAULT_GRID_TOLERANCE_MM,
) -> DeriveReport:
    """Derive the 4-label (NEH) dataset of a collection; see the module for the rule.

    Parameters
    ----------
    reference : Collection or path
        Cases with their reference segmentations (read in the collection's scheme).
    second : SecondSegmentations or path
        The second segmentations (a path is read with the default scheme, brats2021).
    out : path
        Output folder (with ``dataset_id`` and ``name`` in nnU-Net format:
        ``out/DatasetXXX_Name``).
    opening_mm, min_volume_mm3, within_wt
        See :func:`derive_neh` (mm, mm^3).
    rule : {"paper", "mirrored"}, optional
        Default: told per case from the label schemes (:func:`choose_rule`): ``paper``
        for a BraTS 2017-2020 reference; an error where the schemes do not tell.
    output_format : {"nnunet", "manifest"}, optional
        Default: :func:`default_format` of the reference layout.
    dataset_id, name, channels, link, overwrite, progress, grid_tolerance_mm
        The dataset's naming (nnunet format only), channel order, how images are placed, writing
        into a non-empty folder, the progress bar and the grid tolerance (mm): as for
        :func:`nehmap.io.nnunet.export_nnunet`.

    Returns
    -------
    DeriveReport
        Written cases, failures (a case missing in SECOND, label values outside the
        declared scheme, grids that differ, ...), per-case statistics and file paths.
    """
    col = reference if isinstance(reference, Collection) else discover(reference)
    sec = second if isinstance(second, SecondSegmentations) else SecondSegmentations(second)
    fmt = output_format or default_format(col.layout)
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"output format must be one of {', '.join(OUTPUT_FORMATS)}, got {fmt!r}.")
    if fmt == "manifest" and dataset_id is not None:
        raise ValueError("--dataset-id and --name apply to the nnunet format only.")
    order = parse_channels(channels)
    ball(opening_mm, (1.0, 1.0, 1.0))  # check the parameters before touching the disk
    check_min_volume(min_volume_mm3)
    rules = case_rules(col, sec, rule)
    if not within_wt and "paper" in rules.values():
        raise ValueError(
            "--keep-outside-wt applies to the 'mirrored' rule only: the paper's candidates "
            "are reference NCR/NET voxels, inside the whole tumour."
        )
    root = dataset_root(out, dataset_id, name)
    prepare_output(root, sources=[col.root, sec.root], overwrite=overwrite)
    writer: NnunetWriter | ManifestWriter
    if fmt == "nnunet":
        writer = NnunetWriter(root, link=link, channels=order)
    else:
        writer = ManifestWriter(root, link=link)
    report = DeriveReport(root, fmt)
    for files in case_bar(col.cases, "derive-neh", progress):
        case_id = files.case_id
        try:
            grid = check_case_headers(files, grid_tolerance_mm)
            if LABEL not in files.files:
                raise CaseError(
                    case_id,
                    None,
                    "has no reference segmentation.",
                    "Add the case's label file or remove the case from the reference.",
                )
            ref, ref_image = read_label_map(
                files.files[LABEL], files.label_scheme or "nehmap", case_id=case_id
            )
            ref_grid = ref_image.grid
            check_same_grid(
                case_id,
                ref_grid,
                grid,
                what="reference segmentation",
                reference_what=f"{MODALITIES[0]} image",
                tolerance_mm=grid_tolerance_mm,
            )
            second_path, second_scheme = sec.find(case_id)
            if any(second_path.resolve() == p.resolve() for p in files.paths):
                raise CaseError(
                    case_id,
                    second_path,
                    "the second segmentation is one of the reference case's own files.",
                    "Point --second at the other model's predictions.",
                )
            second_labels, second_image = read_label_map(
                second_path, second_scheme, case_id=case_id
            )
            check_same_grid(
                case_id,
                second_image.grid,
                ref_grid,
                what="second segmentation",
                reference_what="reference segmentation",
                tolerance_mm=grid_tolerance_mm,
            )
            labels, stats = derive_neh(
                ref,
                second_labels,
                grid.spacing,
                opening_mm,
                min_volume_mm3,
                rule=rules[case_id],
                within_wt=within_wt,
            )
            writer.add(
                case_id,
                {key: files.files[key] for key in MODALITIES},
                labels,
                grid,
                inputs=[*files.paths, second_path],
            )
        except (NehmapInputError, OutputError, OSError, ValueError) as exc:
            report.failures.append((case_id, str(exc)))
            continue
        report.cases.append(case_id)
        report.stats[case_id] = stats
    report.placed = dict(writer.placed)
    if isinstance(writer, NnunetWriter):
        meta = tissue_dataset_json(order, len(writer.labelled), name=name or root.name)
        meta["description"] = (
            "NEH pseudo-ground truth derived by nehmap derive-neh from "
            f"{col.root} and {sec.root}. " + meta["description"]
        )
        report.index = writer.finish(meta)
        report.notes.extend(writer.stale_notes())
    else:
        report.index = writer.finish()
    buffer = io.StringIO()
    volume_table(report.stats).to_csv(buffer, index=False)
    report.volumes = write_text_atomic(root / VOLUMES_CSV, buffer.getvalue())
    record = {
        "reference": str(col.root),
        "reference_layout": col.layout,
        "second": sec.describe(),
        "parameters": {
            "opening_mm": opening_mm,
            "min_volume_mm3": min_volume_mm3,
            "within_wt": within_wt,
            "connectivity": "26 (faces, edges and corners)",
            "output_format": fmt,
            "channels": list(order),
            "link": link,
        },
        "rules": {
            name: RULE_DESCRIPTIONS[name]
            + ("" if within_wt or name == "paper" else " or reference background")
            + "; opened with a ball of opening_mm mm, components below min_volume_mm3 removed"
            for name in sorted(set(rules.values()))
        },
        "rule_per_case": dict(sorted(rules.items())),
        "cases": {cid: asdict(s) for cid, s in sorted(report.stats.items())},
        "failures": dict(report.failures),
    }
    report.record = write_text_atomic(root / RECORD_JSON, json.dumps(record, indent=2) + "\n")
    return report
