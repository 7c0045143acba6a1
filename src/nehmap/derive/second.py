"""Where each case's second segmentation is (``nehmap derive-neh --second``)."""

from __future__ import annotations

import re
from pathlib import Path

from nehmap.errors import CaseError, NehmapInputError
from nehmap.io.image import image_suffix, strip_image_suffix
from nehmap.io.layouts import Collection, discover
from nehmap.io.modalities import LABEL
from nehmap.labels import LabelScheme, get_scheme


class SecondSegmentations:
    """Finds each case's second segmentation.

    ``root`` may be:

    - a folder of label maps named ``<case>.nii.gz`` or ``<case>_seg*.nii.gz`` /
      ``<case>-seg*`` (any image suffix), directly inside it or in subfolders up to
      three levels deep (e.g. ``nehmap segment`` outputs ``<case>/<case>_seg-<model>``
      or a BraTS-style collection); or
    - a collection :func:`nehmap.io.discover` reads (a manifest CSV, an nnU-Net dataset,
      or a folder in a public layout whose cases have label files); each case's scheme
      then comes from the collection.

    Parameters
    ----------
    root : path
        Folder, collection or manifest.
    scheme : str, optional
        Label scheme of the second segmentations. Overrides the collection's; for a
        folder of label maps the default is ``brats2021``.
    pattern : str, optional
        File name relative to ``root`` with ``{case}`` for the case id (e.g.
        ``"{case}/{case}_seg-unetrpp.nii.gz"``), when the automatic search is ambiguous.
    """

    DEFAULT_SCHEME = "brats2021"
    _MAX_DEPTH = 3

    def __init__(
        self, root: str | Path, *, scheme: str | None = None, pattern: str | None = None
    ) -> None:
        self.root = Path(root)
        if not self.root.exists():
            raise NehmapInputError(self.root, "does not exist.", "Check the --second path.")
        self.scheme = get_scheme(scheme) if scheme else None
        self.pattern = pattern
        if pattern is not None and "{case}" not in pattern:
            raise ValueError(f"--second-pattern {pattern!r} must contain {{case}}.")
        self.collection: Collection | None = None
        self._files: list[Path] = []
        if pattern is None:
            self.collection = self._as_collection()
            if self.collection is None:
                self._files = self._label_files()

    def _as_collection(self) -> Collection | None:
        if self.root.is_file() or (self.root / "dataset.json").is_file():
            return discover(self.root)
        try:
            collection = discover(self.root)
        except NehmapInputError:
            return None
        if any(LABEL in c.files for c in collection):
            return collection
        return None

    def _label_files(self) -> list[Path]:
        found: list[Path] = []
        stack = [(self.root, 0)]
        while stack:
            folder, depth = stack.pop()
            for entry in sorted(folder.iterdir()):
                if entry.name.startswith("."):
                    continue
                if entry.is_dir():
                    if depth < self._MAX_DEPTH:
                        stack.append((entry, depth + 1))
                elif image_suffix(entry.name) is not None:
                    found.append(entry)
        return sorted(found)

    def describe(self) -> str:
        """One line saying where second segmentations are looked for."""
        if self.pattern is not None:
            return f"{self.root / self.pattern}"
        if self.collection is not None:
            return f"{self.root} ({self.collection.layout} collection)"
        return f"{self.root} (label maps named <case>.nii.gz or <case>_seg*)"

    def scheme_for(self, case_id: str) -> str:
        """Name of the label scheme ``case_id``'s second segmentation is read in."""
        if self.scheme is not None:
            return self.scheme.name
        if self.collection is not None:
            files = next((c for c in self.collection if c.case_id == case_id), None)
            if files is not None and files.label_scheme:
                return get_scheme(files.label_scheme).name
        return get_scheme(self.DEFAULT_SCHEME).name

    def find(self, case_id: str) -> tuple[Path, LabelScheme]:
        """The second segmentation of ``case_id`` and its label scheme.

        Raises
        ------
        CaseError
            When there is none, or (folder search) several candidates.
        """
        default = self.scheme or get_scheme(self.DEFAULT_SCHEME)
        if self.pattern is not None:
            path = self.root / self.pattern.replace("{case}", case_id)
            if not path.is_file():
                raise CaseError(
                    case_id,
                    path,
                    "has no second segmentation at this path (from --second-pattern).",
                    "Add the file, fix the pattern, or leave the case out of the reference.",
                )
            return path, default
        if self.collection is not None:
            files = next((c for c in self.collection if c.case_id == case_id), None)
            if files is None or LABEL not in files.files:
                raise CaseError(
                    case_id,
                    self.root,
                    f"has no second segmentation in {self.describe()}.",
                    "Add the case's label map to SECOND, or remove the case from the reference.",
                )
            scheme = self.scheme or get_scheme(files.label_scheme or self.DEFAULT_SCHEME)
            return files.files[LABEL], scheme
        pattern = re.compile(rf"^{re.escape(case_id)}([_-]seg.*)?$", re.IGNORECASE)
        matches = [p for p in self._files if pattern.match(strip_image_suffix(p.name))]
        if not matches:
            raise CaseError(
                case_id,
                self.root,
                f"has no second segmentation in {self.describe()}.",
                f"Add {case_id}.nii.gz (or {case_id}_seg.nii.gz) to SECOND, or remove the case "
                "from the reference.",
            )
        if len(matches) > 1:
            names = ", ".join(str(p.relative_to(self.root)) for p in matches[:4])
            raise CaseError(
                case_id,
                self.root,
                f"has several possible second segmentations ({names}).",
                "Choose one with --second-pattern, e.g. '{case}/{case}_seg-unetrpp.nii.gz'.",
            )
        return matches[0], default
