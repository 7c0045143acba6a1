"""Writing cases as a manifest (:class:`ManifestWriter`) or in a public layout (:class:`LayoutWriter`).

A manifest output keeps nehmap's labels (NEH included) and any case IDs; a layout
output uses the file names of :mod:`nehmap.io.writers` and converts the labels to the
layout's scheme. Both are written by :func:`nehmap.io.nnunet.import_nnunet`.
"""

from __future__ import annotations

import csv
import io
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nehmap.errors import CaseError, NehmapInputError
from nehmap.io.atomic import write_text_atomic
from nehmap.io.image import image_suffix
from nehmap.io.layouts import discover
from nehmap.io.modalities import LABEL, MODALITIES
from nehmap.io.nnunet_json import FILE_ENDING
from nehmap.io.output_dataset import DatasetWriter
from nehmap.io.writers import case_paths, check_case_id, get_layout
from nehmap.labels import NEH, from_nehmap

# layouts of nehmap.io.writers -> the layout nehmap.io.discover reads them as
_DISCOVER_LAYOUT = {"brats2018": "brats2021", "brats2020": "brats2021"}

MANIFEST_NAME = "manifest.csv"
"""File name of the manifest :class:`ManifestWriter` writes."""

MANIFEST_LABEL_TAG = "nehmap-labels"
"""Tag of the label files a manifest output holds (``<case>_nehmap-labels.nii.gz``)."""


@dataclass
class ManifestWriter(DatasetWriter):
    """Writes cases as ``root/<case>/<case>_<modality>`` plus ``root/manifest.csv``.

    The manifest lists every file (paths relative to it) with ``label_scheme`` nehmap,
    so NEH survives. Read it back with ``nehmap.io.discover(root / "manifest.csv")``.
    """

    rows: list[dict[str, str]] = field(default_factory=list)

    def _plan(
        self, case_id: str, images: Mapping[str, Path], labels: np.ndarray | None
    ) -> tuple[dict[str, Path], Path, np.ndarray | None]:
        check_case_id(case_id)
        folder = self.root / case_id
        paths = {
            key: folder / f"{case_id}_{key}{image_suffix(Path(images[key])) or FILE_ENDING}"
            for key in images
        }
        return paths, folder / f"{case_id}_{MANIFEST_LABEL_TAG}{FILE_ENDING}", labels

    def _record(self, case_id: str, written: Mapping[str, Path]) -> None:
        for key, path in written.items():
            self.rows.append(
                {
                    "case": case_id,
                    "timepoint": "",
                    "modality": key,
                    "path": path.relative_to(self.root).as_posix(),
                    "label_scheme": "nehmap",
                }
            )

    def finish(self) -> Path:
        """Write ``manifest.csv`` (rows sorted by case, then modality); returns its path."""
        order = {key: i for i, key in enumerate((*MODALITIES, LABEL))}
        rows = sorted(self.rows, key=lambda r: (r["case"], order.get(r["modality"], 99)))
        buffer = io.StringIO()
        writer = csv.DictWriter(
            buffer, fieldnames=["case", "timepoint", "modality", "path", "label_scheme"]
        )
        writer.writeheader()
        writer.writerows(rows)
        return write_text_atomic(self.root / MANIFEST_NAME, buffer.getvalue())


_RHUH_ID = re.compile(r"^(?P<subject>.+)_(?P<tp>[0-9])$")


@dataclass
class LayoutWriter(DatasetWriter):
    """Writes cases in a public collection's layout (naming of :mod:`nehmap.io.writers`).

    Labels are converted to the layout's scheme. None of those schemes has an NEH label:
    a case holding NEH is refused unless ``merge_neh`` is True, in which case NEH is
    written where that release puts non-enhancing tumour: the necrotic / non-enhancing
    core label (ET, TC and WT preserved; only the NC/NEH distinction is lost), or edema
    in ``brats2021`` (ET and WT preserved; BraTS 2021's core excludes it).
    """

    layout: str = "brats2021"
    merge_neh: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        spec = get_layout(self.layout)
        if spec.name == "nnunet":
            raise ValueError("Use NnunetWriter for the nnunet layout.")
        self.layout = spec.name

    def paths(self, case_id: str, root: Path | None = None) -> dict[str, Path]:
        """Where a case's files go (``root`` defaults to the writer's)."""
        base = self.root if root is None else root
        if self.layout == "rhuh":
            m = _RHUH_ID.match(case_id)
            if m is None:
                raise ValueError(
                    f"Case {case_id!r} cannot be written in the rhuh layout: its ID must end in "
                    "_<time point> (e.g. RHUH-0001_0). Use --layout manifest."
                )
            return case_paths(base, "rhuh", m.group("subject"), timepoint=int(m.group("tp")))
        return case_paths(base, self.layout, case_id)

    def check_names(self, cases: Mapping[str, bool]) -> None:
        """Check, before writing, that :func:`nehmap.io.discover` reads the planned file
        names back as the same cases (empty placeholder files in a temporary folder).

        Parameters
        ----------
        cases : mapping
            Case id -> whether it has a label map.

        Raises
        ------
        NehmapInputError
            Naming the cases whose IDs the layout cannot hold.
        """
        expected = {}
        with tempfile.TemporaryDirectory(prefix="nehmap-names-") as tmp:
            root = Path(tmp)
            for case_id, labelled in cases.items():
                try:
                    paths = self.paths(case_id, root)
                except ValueError as exc:
                    raise NehmapInputError(None, str(exc)) from None
                keys = [*MODALITIES, LABEL] if labelled else list(MODALITIES)
                expected[case_id] = set(keys)
                for key in keys:
                    paths[key].parent.mkdir(parents=True, exist_ok=True)
                    paths[key].touch()
            try:
                found = discover(root, layout=_DISCOVER_LAYOUT.get(self.layout, self.layout))
                got = {c.case_id: set(c.files) for c in found}
            except NehmapInputError:
                got = {}
        bad = sorted(cid for cid, keys in expected.items() if got.get(cid) != keys)
        if bad:
            shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
            raise NehmapInputError(
                None,
                f"the {self.layout} layout cannot hold the case IDs {shown}: nehmap would not "
                "read the written files back as the same cases.",
                "Use --layout manifest (any IDs) or rename the cases.",
            )

    def _plan(
        self, case_id: str, images: Mapping[str, Path], labels: np.ndarray | None
    ) -> tuple[dict[str, Path], Path, np.ndarray | None]:
        """Labels are nehmap labels; they are stored in the layout's scheme."""
        spec = get_layout(self.layout)
        if labels is not None and not self.merge_neh and np.any(labels == NEH):
            raise CaseError(
                case_id,
                None,
                f"holds NEH voxels, which the {self.layout} label scheme "
                f"({spec.label_scheme}) cannot represent.",
                "Use --layout manifest to keep NEH, or pass --merge-neh to write NEH where "
                "the scheme puts non-enhancing tumour (core label; edema in BraTS 2021).",
            )
        paths = self.paths(case_id)
        if labels is None:
            return paths, paths[LABEL], None
        return (
            paths,
            paths[LABEL],
            from_nehmap(np.asarray(labels, dtype=np.uint8), spec.label_scheme),
        )

    def finish(self) -> None:
        """Nothing to finish (the layouts have no index file)."""
