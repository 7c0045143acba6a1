"""Writing an output dataset safely: the output folder, placing input images, the writers' base.

:func:`prepare_output` refuses an output folder inside an input folder, or a non-empty
one unless asked to overwrite. :func:`place_file` puts an input image into the output by
hard link when possible (no extra disk space, and the bytes are exactly the input's),
else by symbolic link, else by copy (``link="copy"`` always copies); an image whose file
type differs from the output's is rewritten (same voxels, same grid). Every output is
written atomically and never over an input file. :class:`DatasetWriter` is the base of
the writers of :mod:`nehmap.io.nnunet_write` and :mod:`nehmap.io.layout_writers`.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nehmap.errors import NehmapInputError, OutputError
from nehmap.io.atomic import atomic_path
from nehmap.io.image import Grid, image_suffix, read_image, write_image
from nehmap.io.modalities import LABEL, MODALITIES

LINK_MODES: tuple[str, ...] = ("hard", "symlink", "copy")
"""How input images are placed in an output dataset (see :func:`place_file`)."""


def _entry(path: Path) -> Path:
    """``path`` with its folder resolved but not its last component (links kept)."""
    return path.parent.resolve() / path.name


def _refuse_input(dst: Path, inputs: Iterable[str | Path]) -> None:
    target = _entry(dst)
    for candidate in inputs:
        src = Path(candidate)
        if target in (_entry(src), src.resolve()):
            raise OutputError(
                f"{dst}: refusing to write an output over the input file {candidate}. "
                "Choose an output folder different from the input folder."
            )


def place_file(
    src: str | Path, dst: str | Path, *, link: str = "hard", inputs: Iterable[str | Path] = ()
) -> str:
    """Put the image ``src`` at ``dst`` (atomically), without touching ``src``.

    Parameters
    ----------
    src, dst : path
        Input image and output path.
    link : {"hard", "symlink", "copy"}
        ``"hard"``: hard link, falling back to a symbolic link (absolute), then to a copy;
        ``"symlink"``: symbolic link, falling back to a copy; ``"copy"``: copy.
    inputs : paths
        Files that must never be replaced (``src`` is always one).

    Returns
    -------
    str
        How the file was placed: ``"hard"``, ``"symlink"``, ``"copy"``, ``"kept"`` (``dst``
        already was a hard link to ``src``) or ``"converted"`` (the file types differ, so
        the image was rewritten: same voxels, same grid).
    """
    if link not in LINK_MODES:
        raise ValueError(f"link must be one of {', '.join(LINK_MODES)}, got {link!r}.")
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise NehmapInputError(src, "image file does not exist.", "Check the collection.")
    _refuse_input(dst, [*inputs, src])
    if image_suffix(src) != image_suffix(dst):
        img = read_image(src, dtype=None)
        write_image(img.array, img.grid, dst, inputs=[*inputs, src])
        return "converted"
    if link == "hard" and dst.exists() and not dst.is_symlink() and os.path.samefile(src, dst):
        return "kept"
    order = {"hard": ("hard", "symlink", "copy"), "symlink": ("symlink", "copy")}.get(
        link, ("copy",)
    )
    for mode in order:
        try:
            with atomic_path(dst) as tmp:
                if mode == "hard":
                    os.link(src, tmp)
                elif mode == "symlink":
                    os.symlink(src.resolve(), tmp)
                else:
                    shutil.copy2(src, tmp)
            return mode
        except OSError:
            if mode == "copy":
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def prepare_output(
    root: str | Path, *, sources: Iterable[str | Path] = (), overwrite: bool = False
) -> Path:
    """Check that ``root`` may receive a new dataset; create it.

    Raises
    ------
    OutputError
        When ``root`` is one of the input folders or inside one, or holds files already
        and ``overwrite`` is False.
    """
    out = Path(root)
    resolved = out.resolve()
    for source in sources:
        folder = Path(source).resolve()
        if not folder.is_dir():
            continue
        if resolved == folder or folder in resolved.parents:
            raise OutputError(
                f"{out}: the output folder is inside the input folder {source}. Choose an "
                "output folder outside the input collection."
            )
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder. Choose another output path.")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputError(
            f"{out}: the output folder is not empty. Choose a new folder, or pass --overwrite "
            "to replace the files written there (inputs are never touched)."
        )
    out.mkdir(parents=True, exist_ok=True)
    return out


@dataclass
class DatasetWriter:
    """Base of the writers: where files go, how they were placed, what was written.

    :meth:`add` writes a case the same way for every writer; a writer says where the
    files go and which label values are stored (``_plan``), and may note what was
    written (``_record``).

    Attributes
    ----------
    root : Path
        The output folder.
    link : str
        How images are placed (:data:`LINK_MODES`).
    labelled, unlabelled : list of str
        Case ids written with and without a label map.
    placed : Counter
        How many images were placed each way (:func:`place_file`'s return values).
    """

    root: Path
    link: str = "hard"
    labelled: list[str] = field(default_factory=list)
    unlabelled: list[str] = field(default_factory=list)
    placed: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        if self.link not in LINK_MODES:
            raise ValueError(f"link must be one of {', '.join(LINK_MODES)}, got {self.link!r}.")

    @property
    def cases(self) -> list[str]:
        """Every case written, sorted."""
        return sorted([*self.labelled, *self.unlabelled])

    def _place_images(
        self, images: Mapping[str, Path], paths: Mapping[str, Path], inputs: Sequence[Path]
    ) -> dict[str, Path]:
        missing = [key for key in MODALITIES if key not in images]
        if missing:
            raise ValueError(f"missing images {missing}; give all of {list(MODALITIES)}.")
        written = {}
        for key in MODALITIES:
            self.placed[place_file(images[key], paths[key], link=self.link, inputs=inputs)] += 1
            written[key] = paths[key]
        return written

    def add(
        self,
        case_id: str,
        images: Mapping[str, Path],
        labels: np.ndarray | None,
        grid: Grid,
        *,
        inputs: Sequence[str | Path] = (),
    ) -> dict[str, Path]:
        """Write one case.

        Parameters
        ----------
        case_id : str
            The case identifier (file-name prefix).
        images : mapping
            Modality key -> input image file (t1, t1c, t2, flair).
        labels : ndarray of uint8, shape (X, Y, Z), or None
            Canonical (RAS+) label map (nehmap labels, or levels 0/1/2 for a consensus
            dataset), or None for a case without labels.
        grid : Grid
            The geometry the labels are written on (the case's image grid).
        inputs : paths
            Files that must never be replaced (the images never are).

        Returns
        -------
        dict
            Key -> written path.
        """
        paths, label_path, stored = self._plan(case_id, images, labels)
        protected = [Path(p) for p in (*inputs, *images.values())]
        written = self._place_images(images, paths, protected)
        if stored is not None:
            written[LABEL] = write_image(
                np.asarray(stored, dtype=np.uint8),
                grid,
                label_path,
                dtype=np.uint8,
                inputs=protected,
            )
            self.labelled.append(case_id)
        else:
            self.unlabelled.append(case_id)
        self._record(case_id, written)
        return written

    def _plan(
        self, case_id: str, images: Mapping[str, Path], labels: np.ndarray | None
    ) -> tuple[Mapping[str, Path], Path, np.ndarray | None]:
        """Where a case goes: image key -> path, the label map's path, and the label
        values stored (``labels`` in the output's values; None when there are none).
        Raises when the case cannot be written."""
        raise NotImplementedError

    def _record(self, case_id: str, written: Mapping[str, Path]) -> None:
        """Note what :meth:`add` wrote for a case (nothing by default)."""
