"""Preprocessing of the training cases, once per case, and the cache that keeps them.

Each case goes through the same steps as at inference (:mod:`nehmap.segmentation`), so a
trained network sees at inference what it saw in training:

1. the four modalities stacked in the card's order (t1, t1c, t2, flair);
2. cropped to the brain's bounding box (voxels where any modality is non-zero);
3. z-scored per modality inside the brain, 0 outside;
4. resampled to the target spacing (mm): images trilinearly, the target map by nearest
   neighbour (skipped when the case is already at that spacing, within 1e-3 mm).

The result is a :class:`PreparedCase`: image (C, X, Y, Z) float32, target (X, Y, Z)
uint8, and the voxel coordinates of the tumour and NEH (up to
:data:`MAX_LOCATIONS` of each, a fixed subsample) for foreground patch sampling.

Cache: in memory, or as ``.npy`` files under ``RUN/cache`` that are memory-mapped, so
patches are read from disk without loading whole volumes (for collections larger than
memory, and shared between the processes of a multi-GPU run). A cached case is reused
when its source files (size, modification time), the spacing and the target are
unchanged; its ``.json`` record is written last, so a case interrupted while being
written is prepared again.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nehmap.bars import case_bar
from nehmap.io import CaseFiles, check_case_headers
from nehmap.io.atomic import temporary_sibling, write_text_atomic
from nehmap.io.modalities import MODALITIES
from nehmap.preprocess import brain_crop, resample_channels, resampled_shape, zscore_in_mask
from nehmap.train.targets import TargetSpec

MAX_LOCATIONS = 10_000
"""Largest number of stored foreground (and focus) voxel coordinates per case."""

MEMORY_CACHE_LIMIT = 4 * 1024**3
"""Estimated size (bytes) above which ``cache = "auto"`` keeps cases on disk."""

CACHE_FORMAT = 1

Spacing = tuple[float, float, float]


@dataclass
class PreparedCase:
    """A preprocessed training case.

    Attributes
    ----------
    case_id : str
        The case's id in its collection.
    image : numpy.ndarray
        (C, X, Y, Z) float32, z-scored, at ``spacing`` (may be memory-mapped).
    target : numpy.ndarray
        (X, Y, Z) uint8 class indices (may be memory-mapped).
    foreground : numpy.ndarray
        (N, 3) int32 voxel coordinates of tumour voxels (a fixed subsample).
    focus : numpy.ndarray
        (M, 3) int32 voxel coordinates of NEH voxels (a fixed subsample).
    spacing : tuple of float
        Voxel size, mm per axis.
    """

    case_id: str
    image: np.ndarray
    target: np.ndarray
    foreground: np.ndarray
    focus: np.ndarray
    spacing: Spacing

    @property
    def shape(self) -> tuple[int, int, int]:
        """Spatial shape (X, Y, Z), voxels."""
        return tuple(int(s) for s in self.target.shape)  # type: ignore[return-value]

    @property
    def nbytes(self) -> int:
        """Memory (bytes) held by the case's image and target arrays."""
        return int(self.image.nbytes + self.target.nbytes)


def _locations(mask: np.ndarray, key: str) -> np.ndarray:
    """Coordinates (N, 3) int32 of ``mask``'s voxels, a fixed subsample of at most
    :data:`MAX_LOCATIONS` (seeded by ``key``, so the same case gives the same set)."""
    coords = np.argwhere(mask).astype(np.int32)
    if len(coords) > MAX_LOCATIONS:
        rng = np.random.default_rng(zlib.crc32(key.encode()))
        keep = np.sort(rng.choice(len(coords), MAX_LOCATIONS, replace=False))
        coords = coords[keep]
    return np.ascontiguousarray(coords)


def preprocess(
    files: CaseFiles,
    target: TargetSpec,
    spacing: Spacing,
    modalities: Sequence[str] = MODALITIES,
) -> PreparedCase:
    """Read and preprocess one case (see the module docstring for the steps).

    Parameters
    ----------
    files : CaseFiles
        The case, from :func:`nehmap.io.discover`.
    target : TargetSpec
        Which label map to read and which classes are foreground.
    spacing : tuple of 3 float
        Target voxel spacing, mm per axis.
    modalities : sequence of str
        Channel order.

    Raises
    ------
    nehmap.errors.CaseError
        Naming the case and the problem (missing labels, bad label values, ...).
    """
    from nehmap.errors import CaseError

    case, labels = target.load(files)
    stack = case.stack(modalities)
    brain = case.brain_mask()
    crop = brain_crop(brain)
    try:
        image = zscore_in_mask(
            stack[(slice(None), *crop.slices)], brain[crop.slices], list(modalities)
        )
    except ValueError as exc:
        raise CaseError(case.case_id, None, str(exc)) from exc
    labels = labels[crop.slices]
    if not np.allclose(case.spacing, spacing, rtol=0, atol=1e-3):
        shape = resampled_shape(crop.shape, case.spacing, spacing)
        image = resample_channels(image, shape)
        labels = resample_channels(labels[None].astype(np.float32), shape, mode="nearest")[0]
    labels = np.rint(labels).astype(np.uint8)
    fg = np.isin(labels, target.foreground)
    focus = np.isin(labels, target.focus)
    return PreparedCase(
        case.case_id,
        np.ascontiguousarray(image, dtype=np.float32),
        np.ascontiguousarray(labels),
        _locations(fg, case.case_id + "/fg"),
        _locations(focus, case.case_id + "/focus"),
        (float(spacing[0]), float(spacing[1]), float(spacing[2])),
    )


def median_spacing(cases: Sequence[CaseFiles]) -> Spacing:
    """Median voxel spacing (mm per axis) of the cases, read from the file headers."""
    values = np.array([check_case_headers(c).spacing for c in cases], dtype=np.float64)
    med = np.median(values, axis=0)
    return (float(med[0]), float(med[1]), float(med[2]))


def estimated_bytes(cases: Sequence[CaseFiles], spacing: Spacing, channels: int = 4) -> int:
    """Upper bound of the preprocessed size of the cases (whole volumes, no crop), bytes."""
    total = 0
    for c in cases:
        grid = check_case_headers(c)
        shape = resampled_shape(grid.canonical_shape, grid.spacing, spacing)
        total += int(np.prod(shape)) * (4 * channels + 1)
    return total


# ---------------------------------------------------------------------------- disk cache


def _safe_name(case_id: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", case_id)[:80]
    return f"{stem}-{zlib.crc32(case_id.encode()):08x}"


def _fingerprint(files: CaseFiles, target: TargetSpec, spacing: Spacing) -> dict:
    sources = {}
    for key, path in sorted({**files.extras, **files.files}.items()):
        st = Path(path).stat()
        sources[key] = [str(Path(path).resolve()), st.st_size, st.st_mtime_ns]
    scheme = files.label_scheme
    return {
        "format": CACHE_FORMAT,
        "case_id": files.case_id,
        "target": target.mode,
        "spacing_mm": [round(s, 6) for s in spacing],
        "label_scheme": getattr(scheme, "name", scheme),
        "sources": sources,
    }


def _save_npy(path: Path, array: np.ndarray) -> None:
    tmp = temporary_sibling(path)
    try:
        with open(tmp, "wb") as fh:
            np.save(fh, array)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class DiskCache:
    """Preprocessed cases as ``.npy`` files in a folder (memory-mapped when read).

    Parameters
    ----------
    folder : path
        Where the files go (created when needed).
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def _paths(self, case_id: str) -> dict[str, Path]:
        stem = self.folder / _safe_name(case_id)
        return {
            k: stem.with_name(f"{stem.name}.{k}.npy")
            for k in ("image", "target", "foreground", "focus")
        } | {"record": stem.with_name(f"{stem.name}.json")}

    def load(self, files: CaseFiles, target: TargetSpec, spacing: Spacing) -> PreparedCase | None:
        """The cached case, or None when absent or made from other inputs/settings."""
        paths = self._paths(files.case_id)
        try:
            record = json.loads(paths["record"].read_text(encoding="utf-8"))
            if record.get("fingerprint") != _fingerprint(files, target, spacing):
                return None
            arrays = {
                k: np.load(paths[k], mmap_mode="r" if k in ("image", "target") else None)
                for k in ("image", "target", "foreground", "focus")
            }
        except (OSError, ValueError, json.JSONDecodeError):
            return None
        return PreparedCase(
            files.case_id,
            arrays["image"],
            arrays["target"],
            np.asarray(arrays["foreground"]),
            np.asarray(arrays["focus"]),
            (float(spacing[0]), float(spacing[1]), float(spacing[2])),
        )

    def store(
        self, files: CaseFiles, target: TargetSpec, spacing: Spacing, case: PreparedCase
    ) -> None:
        """Write a prepared case; the ``.json`` record last, marking it complete."""
        self.folder.mkdir(parents=True, exist_ok=True)
        paths = self._paths(files.case_id)
        paths["record"].unlink(missing_ok=True)
        for key in ("image", "target", "foreground", "focus"):
            _save_npy(paths[key], np.asarray(getattr(case, key)))
        record = {"fingerprint": _fingerprint(files, target, spacing), "shape": case.shape}
        write_text_atomic(paths["record"], json.dumps(record, indent=1))


def prepare_cases(
    cases: Sequence[CaseFiles],
    target: TargetSpec,
    spacing: Spacing,
    *,
    cache: DiskCache | None = None,
    share: tuple[int, int] = (0, 1),
    progress: bool = False,
    on_case: Callable[[str], None] | None = None,
) -> list[PreparedCase] | None:
    """Preprocess cases, in memory or through a disk cache.

    Parameters
    ----------
    cases : sequence of CaseFiles
        The cases, in the order wanted.
    target : TargetSpec
        The target classes.
    spacing : tuple of 3 float
        Target spacing, mm.
    cache : DiskCache, optional
        Reuse and fill this cache; without it, everything stays in memory.
    share : (int, int)
        ``(rank, world_size)``: with a cache, this process prepares only the cases
        ``rank, rank + world_size, ...`` and returns None (the caller waits for the
        other processes, then calls again with ``share=(0, 1)`` to load all of them).
    progress : bool
        Show a progress bar.
    on_case : callable, optional
        Called with each case id before it is prepared.

    Returns
    -------
    list of PreparedCase or None
        The cases in order (None for a partial share, see above).
    """
    rank, world = share
    mine = [c for i, c in enumerate(cases) if i % world == rank]
    out: list[PreparedCase] = []
    bar = case_bar(mine, "preprocessing", progress)
    for files in bar:
        if on_case is not None:
            on_case(files.case_id)
        if cache is not None:
            hit = cache.load(files, target, spacing)
            if hit is None:
                cache.store(files, target, spacing, preprocess(files, target, spacing))
                hit = cache.load(files, target, spacing)
                if hit is None:  # pragma: no cover - the files were just written
                    raise OSError(f"cache files of {files.case_id} in {cache.folder} unreadable")
            out.append(hit)
        else:
            out.append(preprocess(files, target, spacing))
    bar.close()
    return out if world == 1 else None
