r"""Registration of a pre-operative scan onto a later scan of the same patient, with ANTsPy.

The pre-operative scan is the *moving* image, the later scan (the recurrence) the *fixed*
one: the result maps every point of the fixed scan to the point of the moving scan it
shows, so that pre-operative masks can be pulled onto the recurrence grid with
:func:`warp_labels` (nearest-label, ``genericLabel`` interpolation) and images with
:func:`warp_image` (linear).

Geometry
--------
nehmap holds volumes as canonical RAS+ arrays with a voxel-to-world affine in RAS mm
(see :mod:`nehmap.io.image`). ITK, and so ANTs, works in LPS world coordinates:
:func:`to_ants` builds the ANTs image from the array and the affine with
``LPS = diag(-1, -1, 1) @ RAS``, so origin, spacing and direction (obliquity included)
describe the same physical space. Transforms are therefore physical: a shift of +5 mm
towards the patient's right in nehmap's terms is a shift of -5 mm along ITK's x axis.
:meth:`Registration.affine_ras` and :meth:`Registration.map_points` convert back to RAS.

Presets
-------
``"full"``
    ANTsPy's ``type_of_transform="SyN"`` with its default parameters: centre-of-mass
    start, affine (Mattes MI, 32 bins, 20 % random sampling, 2100x1200x1200x0
    iterations at shrink factors 4x2x2x1), then SyN[0.2, 3, 0] with dense Mattes MI at
    shrink factors 4x2x1 and 40x20x0 iterations. The metric masks are used in the SyN
    stage only (ANTsPy's default).
``"quick"`` (default)
    nehmap's own schedule, :data:`QUICK_SCHEDULE`: centre-of-mass start; affine at
    shrink factors 4x2 (smoothing 2 and 1 mm), Mattes MI (32 bins) on a 25 % regular
    sample, at most 100x50 iterations, without masks (as ANTsPy's SyN); then
    SyN[0.2, 5, 2] with dense, masked Mattes MI at shrink factors 4x2 (smoothing 2 and
    1 mm) and 40x10 iterations. There is no full-resolution level: the field is
    estimated on a 2 mm grid, which a 4 mm thick NEH layer does not need to be finer
    than, and the total-field smoothing (2 voxels) keeps noise and bias differences
    from folding it. On a synthetic 1 mm pair with 2 threads it took 15 s (31
    CPU-seconds) against 30 s (55) for ``"full"`` on the same cropped grids and 48 s
    (89) for ANTsPy's SyN on the uncropped grids, with a warped-NEH Dice of 0.845
    against 0.840 and 0.843 (``benchmarks/bench_registration.py``).
``"affine"``
    The quick preset's affine stage alone (a 12-parameter transform); for tests and for
    pairs that only need a global alignment.

Before registering, both volumes are cropped to the bounding box of their brain (plus
``crop_margin_mm``), which keeps physical coordinates and saves about half of the
voxels of a BraTS grid; results are always returned on the full fixed grid.

Masks
-----
``fixed_mask`` and ``moving_mask`` restrict the similarity metric (ANTs metric masks):
typically the brain without the lesion and the resection cavity, so that tissue that
exists in one scan only does not pull the deformation. See
:func:`nehmap.validate.recurrence.registration_masks`.

Quality
-------
:class:`RegistrationQuality` reports the Dice of the fixed brain mask and the moving
brain mask warped onto it, and the minimum and maximum Jacobian determinant of the whole
transform inside the fixed brain (the SyN field's determinant times the affine's).
``flag`` is set when the brain Dice is below ``min_brain_dice`` (default 0.9) or the
Jacobian minimum is at or below ``min_jacobian`` (default 0: folding).

Threads: ANTs reads ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS``; :func:`register` sets it
for the call (image conversion included) and restores the previous value afterwards.
ITK reads the variable when it first needs threads in a process and keeps that value,
so within one process use the same ``threads`` for every call (the command does).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = [
    "PRESETS",
    "QUICK_SCHEDULE",
    "Registration",
    "RegistrationError",
    "RegistrationQuality",
    "Schedule",
    "brain_dice",
    "itk_threads",
    "register",
    "to_ants",
    "warp_image",
    "warp_labels",
]

Preset = Literal["quick", "full", "affine"]
PRESETS: tuple[str, ...] = ("quick", "full", "affine")
"""Names of the registration presets (see the module documentation)."""

_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])  # RAS <-> LPS, its own inverse
_THREADS_ENV = "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"


class RegistrationError(RuntimeError):
    """A registration could not be computed (bad input, or ANTs failed)."""


@dataclass(frozen=True)
class Schedule:
    """A two-stage (affine, then optionally SyN) multi-resolution schedule.

    Attributes
    ----------
    affine_iterations, affine_shrink, affine_sigmas : tuple of int
        Iterations, shrink factors and Gaussian smoothing (voxels) per affine level.
    affine_sampling : float
        Share of the voxels sampled (regularly, with random jitter) by the affine metric.
    syn_iterations, syn_shrink, syn_sigmas : tuple of int
        The same for the SyN stage; empty for an affine-only schedule.
    syn_metric : str
        ``"Mattes"`` (mutual information) or ``"CC"`` (neighbourhood cross-correlation).
    syn_metric_parameter : int
        Histogram bins for Mattes, neighbourhood radius (voxels) for CC.
    gradient_step, update_sigma, total_sigma : float
        SyN's gradient step and the smoothing (voxels) of its update and total fields.
    bins : int
        Histogram bins of the affine metric.
    convergence_threshold : float
        Relative change of the metric below which a level stops early.
    convergence_window : int
        Iterations over which that change is measured.
    mask_affine : bool
        Whether the metric masks apply to the affine stage too (they always apply to the
        SyN stage).

    Notes
    -----
    Shrink factors and sigmas are written for 1 mm voxels and adapted to coarser grids
    (see :func:`_levels`), so a test on a 3 mm grid runs the same physical schedule.
    """

    affine_iterations: tuple[int, ...] = (100, 50)
    affine_shrink: tuple[int, ...] = (4, 2)
    affine_sigmas: tuple[float, ...] = (2, 1)
    affine_sampling: float = 0.25
    syn_iterations: tuple[int, ...] = (40, 10)
    syn_shrink: tuple[int, ...] = (4, 2)
    syn_sigmas: tuple[float, ...] = (2, 1)
    syn_metric: str = "Mattes"
    syn_metric_parameter: int = 32
    gradient_step: float = 0.2
    update_sigma: float = 5.0
    total_sigma: float = 2.0
    bins: int = 32
    convergence_threshold: float = 1e-6
    convergence_window: int = 10
    mask_affine: bool = False

    def __post_init__(self) -> None:
        if not (len(self.affine_iterations) == len(self.affine_shrink) == len(self.affine_sigmas)):
            raise ValueError("affine_iterations, affine_shrink and affine_sigmas differ in length")
        if not len(self.syn_iterations) == len(self.syn_shrink) == len(self.syn_sigmas):
            raise ValueError("syn_iterations, syn_shrink and syn_sigmas differ in length")
        if not 0.0 < self.affine_sampling <= 1.0:
            raise ValueError(f"affine_sampling must lie in (0, 1], got {self.affine_sampling}")
        if self.syn_metric not in ("Mattes", "CC", "MI"):
            raise ValueError(f"syn_metric must be 'Mattes' or 'CC', got {self.syn_metric!r}")

    @property
    def deformable(self) -> bool:
        """Whether the schedule has a SyN stage."""
        return bool(self.syn_iterations)

    def as_dict(self) -> dict[str, Any]:
        """The schedule as plain JSON types."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}


QUICK_SCHEDULE = Schedule()
"""The ``"quick"`` preset (see the module documentation)."""

AFFINE_SCHEDULE = Schedule(syn_iterations=(), syn_shrink=(), syn_sigmas=())
"""The ``"affine"`` preset: the quick preset's affine stage alone."""


@dataclass(frozen=True)
class RegistrationQuality:
    """How plausible a registration looks.

    Attributes
    ----------
    brain_dice : float
        Dice of the fixed brain mask and the warped moving brain mask, in [0, 1].
    jacobian_min, jacobian_max : float
        Extremes of the Jacobian determinant of the fixed-to-moving transform inside the
        fixed brain (1: no volume change, <= 0: folding).
    flag : bool
        True when the registration looks wrong (see ``reasons``).
    reasons : tuple of str
        Why it was flagged (empty when not).
    """

    brain_dice: float
    jacobian_min: float
    jacobian_max: float
    flag: bool
    reasons: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Plain dictionary (``reasons`` joined with ``"; "``)."""
        return {
            "brain_dice": self.brain_dice,
            "jacobian_min": self.jacobian_min,
            "jacobian_max": self.jacobian_max,
            "registration_flag": self.flag,
            "registration_flag_reason": "; ".join(self.reasons),
        }


@dataclass(eq=False)
class Registration:
    """A computed fixed <- moving registration; the transforms live in :attr:`folder`.

    Use it as a context manager (or call :meth:`close`) to delete the temporary folder;
    :meth:`save` copies the transforms elsewhere first.

    Attributes
    ----------
    fixed_shape, moving_shape : tuple of int
        Canonical array shapes (X, Y, Z) of the two full grids.
    fixed_affine, moving_affine : numpy.ndarray, shape (4, 4)
        Voxel-to-world (RAS, mm) affines of the two full grids.
    forward : list of str
        Transform files mapping fixed points to moving points (ANTs order: the last is
        applied first), used to pull moving data onto the fixed grid.
    inverse : list of str
        Transform files mapping moving points to fixed points; ``inverse_invert`` tells
        which of them are to be inverted (affines).
    inverse_invert : list of bool
    folder : pathlib.Path
        Where the transform files are.
    preset : str
    schedule : dict
        The parameters used.
    seconds : float
        Wall time of the ANTs call (s).
    quality : RegistrationQuality or None
        Filled by :func:`register`.
    """

    fixed_shape: tuple[int, int, int]
    fixed_affine: np.ndarray
    moving_shape: tuple[int, int, int]
    moving_affine: np.ndarray
    forward: list[str]
    inverse: list[str]
    inverse_invert: list[bool]
    folder: Path
    preset: str
    schedule: dict[str, Any] = field(default_factory=dict)
    seconds: float = math.nan
    quality: RegistrationQuality | None = None
    _owns_folder: bool = field(default=True, repr=False)

    # ------------------------------------------------------------------ lifetime
    def __enter__(self) -> Registration:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Delete the temporary transform folder (when this object created it)."""
        if self._owns_folder and self.folder.exists():
            shutil.rmtree(self.folder, ignore_errors=True)

    def save(self, folder: str | Path) -> Path:
        """Copy the transform files and a ``registration.json`` description to ``folder``.

        Returns
        -------
        pathlib.Path
            The JSON file, listing the forward/inverse files (in ANTs order), the
            convention, the preset and the quality.
        """
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        names: dict[str, str] = {}
        for src in dict.fromkeys([*self.forward, *self.inverse]):
            target = out / Path(src).name
            shutil.copy2(src, target)
            names[src] = target.name
        record = {
            "convention": (
                "forward maps fixed (recurrence) world points to moving (pre-operative) "
                "world points; apply with antsApplyTransforms / ants.apply_transforms in "
                "the listed order (the last file is applied first) to pull moving images "
                "onto the fixed grid. ITK/ANTs world coordinates are LPS."
            ),
            "forward": [names[f] for f in self.forward],
            "inverse": [names[f] for f in self.inverse],
            "inverse_invert": self.inverse_invert,
            "affine_ras": self.affine_ras().tolist(),
            "preset": self.preset,
            "schedule": self.schedule,
            "seconds": self.seconds,
            "quality": None if self.quality is None else self.quality.as_dict(),
        }
        from nehmap.io import write_text_atomic

        path = out / "registration.json"
        write_text_atomic(path, json.dumps(record, indent=2))
        return path

    # ------------------------------------------------------------------ geometry
    @property
    def affine_file(self) -> str | None:
        """The affine transform file of :attr:`forward`, if any."""
        for f in self.forward:
            if f.endswith(".mat"):
                return f
        return None

    @property
    def warp_file(self) -> str | None:
        """The displacement-field file of :attr:`forward`, if any (deformable presets)."""
        for f in self.forward:
            if f.endswith((".nii.gz", ".nii")):
                return f
        return None

    def affine_ras(self) -> np.ndarray:
        """The affine part as a 4x4 matrix mapping fixed RAS mm to moving RAS mm.

        Returns
        -------
        numpy.ndarray, shape (4, 4)
            Identity when there is no affine transform.
        """
        if self.affine_file is None:
            return np.eye(4)
        import ants

        tx = ants.read_transform(self.affine_file)
        params = np.asarray(tx.parameters, dtype=float)
        centre = np.asarray(tx.fixed_parameters, dtype=float)
        matrix = params[:9].reshape(3, 3)
        translation = params[9:12]
        lps = np.eye(4)
        lps[:3, :3] = matrix
        lps[:3, 3] = translation + centre - matrix @ centre
        return _LPS @ lps @ _LPS

    def map_points(self, points_ras: np.ndarray) -> np.ndarray:
        """Map fixed-space world points (RAS mm) to the moving space (RAS mm).

        Parameters
        ----------
        points_ras : array_like, shape (N, 3)
            Points in the fixed scan's world coordinates (mm).

        Returns
        -------
        numpy.ndarray, shape (N, 3)
            The corresponding points of the moving scan (mm), through the whole transform
            (affine and displacement field).
        """
        import ants
        import pandas as pd

        pts = np.atleast_2d(np.asarray(points_ras, dtype=float))
        lps = pts * np.array([-1.0, -1.0, 1.0])
        frame = pd.DataFrame(lps, columns=["x", "y", "z"])
        moved = ants.apply_transforms_to_points(3, frame, self.forward)
        return moved[["x", "y", "z"]].to_numpy() * np.array([-1.0, -1.0, 1.0])


# ---------------------------------------------------------------------------- helpers


def to_ants(array: np.ndarray, affine: np.ndarray, dtype: type = np.float32) -> Any:
    """An ANTs image of a canonical nehmap array, in the right physical space.

    Parameters
    ----------
    array : numpy.ndarray, shape (X, Y, Z)
        Voxel values.
    affine : numpy.ndarray, shape (4, 4)
        Voxel-to-world affine, RAS mm (nehmap's convention).
    dtype : numpy dtype, default float32
        Pixel type of the ANTs image: float32 for images, uint8 for masks (ANTs reads
        metric masks as unsigned char images).

    Returns
    -------
    ants.ANTsImage
        Same voxels; origin, spacing and direction in ITK's LPS world.
    """
    import ants

    arr = np.asarray(array)
    if arr.ndim != 3:
        raise ValueError(f"expected a 3-D array, got shape {arr.shape}")
    lps = _LPS @ np.asarray(affine, dtype=float)
    spacing = np.sqrt((lps[:3, :3] ** 2).sum(axis=0))
    if np.any(spacing <= 0) or not np.all(np.isfinite(lps)):
        raise ValueError(f"invalid affine (spacing {spacing.tolist()})")
    direction = lps[:3, :3] / spacing[None, :]
    return ants.from_numpy(
        np.ascontiguousarray(arr, dtype=dtype),
        origin=tuple(float(v) for v in lps[:3, 3]),
        spacing=tuple(float(v) for v in spacing),
        direction=direction,
    )


@contextlib.contextmanager
def itk_threads(threads: int | None) -> Iterator[None]:
    """Set ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS`` for the block; restore it afterwards.

    ``None`` leaves the environment alone.
    """
    if threads is None:
        yield
        return
    if int(threads) < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    previous = os.environ.get(_THREADS_ENV)
    os.environ[_THREADS_ENV] = str(int(threads))
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(_THREADS_ENV, None)
        else:
            os.environ[_THREADS_ENV] = previous


def brain_dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two masks (NaN when both are empty)."""
    a_ = np.asarray(a, dtype=bool)
    b_ = np.asarray(b, dtype=bool)
    total = int(a_.sum()) + int(b_.sum())
    if total == 0:
        return math.nan
    return 2.0 * int(np.count_nonzero(a_ & b_)) / total


def _channels(images: np.ndarray | Sequence[np.ndarray], name: str) -> list[np.ndarray]:
    if isinstance(images, np.ndarray) and images.ndim == 3:
        chans = [images]
    elif isinstance(images, np.ndarray) and images.ndim == 4:
        chans = list(images)
    else:
        chans = [np.asarray(c) for c in images]
    if not chans:
        raise RegistrationError(f"{name}: no image given")
    shape = chans[0].shape
    for i, c in enumerate(chans):
        if c.ndim != 3 or c.shape != shape:
            raise RegistrationError(
                f"{name}: channel {i} has shape {c.shape}; every channel must be 3-D of "
                f"shape {shape}"
            )
        if not np.all(np.isfinite(c)):
            raise RegistrationError(f"{name}: channel {i} holds NaN or infinite voxels")
        if not np.any(c):
            raise RegistrationError(
                f"{name}: channel {i} is empty (all zero); check that the scan was read correctly"
            )
    return chans


def _check_mask(mask: np.ndarray | None, shape: tuple[int, ...], name: str) -> np.ndarray | None:
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.shape != shape:
        raise RegistrationError(f"{name} has shape {m.shape}, but the image has {shape}")
    m = m != 0
    if not m.any():
        raise RegistrationError(f"{name} is empty: nothing would be compared")
    return m


def _spacing(affine: np.ndarray) -> np.ndarray:
    return np.sqrt((np.asarray(affine, dtype=float)[:3, :3] ** 2).sum(axis=0))


def _crop_box(
    mask: np.ndarray, affine: np.ndarray, margin_mm: float | None
) -> tuple[tuple[slice, ...], np.ndarray]:
    """Bounding box of ``mask`` plus ``margin_mm``, and the affine of the cropped array."""
    shape = mask.shape
    if margin_mm is None:
        return tuple(slice(0, n) for n in shape), np.asarray(affine, dtype=float)
    spacing = _spacing(affine)
    idx = np.argwhere(mask)
    pad = np.ceil(float(margin_mm) / spacing).astype(int)
    lo = np.maximum(idx.min(axis=0) - pad, 0)
    hi = np.minimum(idx.max(axis=0) + 1 + pad, shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    shifted = np.asarray(affine, dtype=float).copy()
    shifted[:3, 3] = affine[:3, :3] @ lo + affine[:3, 3]
    return box, shifted


def _pointer(image: Any) -> str:
    try:
        from ants.internal import get_pointer_string
    except ImportError:  # older ANTsPy
        from ants.utils import get_pointer_string  # type: ignore[no-redef]
    return get_pointer_string(image)


def _mask_option(fixed_ptr: str | None, moving_ptr: str | None) -> str:
    return f"[{fixed_ptr or 'NA'},{moving_ptr or 'NA'}]"


def _x(values: Sequence[float]) -> str:
    return "x".join(f"{v:g}" for v in values)


def _schedule_args(
    schedule: Schedule,
    fixed: list[str],
    moving: list[str],
    masks: str,
    prefix: str,
    seed: int,
    voxel_mm: float = 1.0,
) -> list[str]:
    """antsRegistration arguments of a :class:`Schedule` (pointers of images given).

    The schedule is written for 1 mm voxels: with ``voxel_mm`` (the fixed scan's
    smallest voxel size) the shrink factors are divided by it (at least 1) and the
    smoothing sigmas are applied in mm, so each level works at the same physical
    resolution on any grid.
    """

    affine_levels = _levels(
        schedule.affine_iterations, schedule.affine_shrink, schedule.affine_sigmas, voxel_mm
    )
    syn_levels = _levels(
        schedule.syn_iterations, schedule.syn_shrink, schedule.syn_sigmas, voxel_mm
    )
    f0, m0 = fixed[0], moving[0]
    window = schedule.convergence_window
    threshold = f"{schedule.convergence_threshold:g}"
    args = [
        "--dimensionality", "3",
        "--float", "1",
        "--collapse-output-transforms", "1",
        "--output", prefix,
        "--interpolation", "Linear",
        "--winsorize-image-intensities", "[0.005,0.995]",
        "--use-histogram-matching", "0",
        "--initial-moving-transform", f"[{f0},{m0},1]",
        "--random-seed", str(int(seed)),
        "--transform", "Affine[0.25]",
        "--metric",
        f"Mattes[{f0},{m0},1,{schedule.bins},Regular,{schedule.affine_sampling:g}]",
        "--convergence", f"[{affine_levels[0]},{threshold},{window}]",
        "--shrink-factors", affine_levels[1],
        "--smoothing-sigmas", affine_levels[2],
        "--masks", masks if schedule.mask_affine else "[NA,NA]",
    ]  # fmt: skip
    if schedule.deformable:
        syn = f"SyN[{schedule.gradient_step:g},{schedule.update_sigma:g},{schedule.total_sigma:g}]"
        args += ["--transform", syn]
        weight = 1.0 / len(fixed)
        for f, m in zip(fixed, moving, strict=True):
            args += [
                "--metric",
                f"{schedule.syn_metric}[{f},{m},{weight:g},{schedule.syn_metric_parameter}]",
            ]
        args += [
            "--convergence", f"[{syn_levels[0]},{threshold},{window}]",
            "--shrink-factors", syn_levels[1],
            "--smoothing-sigmas", syn_levels[2],
            "--masks", masks,
        ]  # fmt: skip
    return args


def _levels(
    iterations: Sequence[int], shrink: Sequence[int], sigmas: Sequence[float], voxel_mm: float
) -> tuple[str, str, str]:
    """Iterations, shrink factors and sigmas (mm) of a 1 mm schedule on ``voxel_mm`` voxels.

    Levels finer than the grid collapse onto it; of several levels that end up at the
    same shrink factor only the first (coarsest) is kept.
    """
    kept: list[tuple[int, int, float]] = []
    for its, factor, sigma in zip(iterations, shrink, sigmas, strict=True):
        eff = max(1, round(factor / voxel_mm))
        if kept and kept[-1][1] == eff:
            continue
        kept.append((int(its), eff, float(sigma)))
    return (
        _x([k[0] for k in kept]),
        _x([k[1] for k in kept]),
        _x([k[2] for k in kept]) + "mm",
    )


def _collect_outputs(prefix: str) -> tuple[list[str], list[str], list[bool]]:
    """Forward and inverse transform lists of a collapsed antsRegistration output."""
    affine = prefix + "0GenericAffine.mat"
    warp = prefix + "1Warp.nii.gz"
    inverse_warp = prefix + "1InverseWarp.nii.gz"
    if not os.path.isfile(affine):
        raise RegistrationError("ANTs wrote no affine transform; the registration did not complete")
    if os.path.isfile(warp):
        if not os.path.isfile(inverse_warp):
            raise RegistrationError("ANTs wrote a warp but no inverse warp")
        return [warp, affine], [affine, inverse_warp], [True, False]
    return [affine], [affine], [True]


# ---------------------------------------------------------------------------- public API


def register(
    fixed: np.ndarray | Sequence[np.ndarray],
    moving: np.ndarray | Sequence[np.ndarray],
    fixed_affine: np.ndarray,
    moving_affine: np.ndarray,
    *,
    fixed_mask: np.ndarray | None = None,
    moving_mask: np.ndarray | None = None,
    fixed_brain: np.ndarray | None = None,
    moving_brain: np.ndarray | None = None,
    preset: Preset | Schedule = "quick",
    threads: int | None = 2,
    seed: int = 0,
    crop_margin_mm: float | None = 10.0,
    min_brain_dice: float = 0.9,
    min_jacobian: float = 0.0,
    workdir: str | Path | None = None,
) -> Registration:
    """Register ``moving`` onto ``fixed`` (both canonical nehmap arrays).

    Parameters
    ----------
    fixed, moving : numpy.ndarray, shape (X, Y, Z), or a sequence of them
        The scans; several channels (e.g. T1 and T2, each of the same shape) are combined
        in the SyN stage with equal weights; the affine stage uses the first one. The
        two scans may be on different grids.
    fixed_affine, moving_affine : numpy.ndarray, shape (4, 4)
        Voxel-to-world affines (RAS mm) of the canonical arrays (``Case.affine``).
    fixed_mask, moving_mask : numpy.ndarray of bool, optional
        Metric masks: where the similarity is evaluated (e.g. brain without lesion).
    fixed_brain, moving_brain : numpy.ndarray of bool, optional
        Brain masks, for cropping and for the quality check; default: the voxels where
        any channel is non-zero (skull-stripped scans).
    preset : {"quick", "full", "affine"} or Schedule, default "quick"
        See the module documentation; a :class:`Schedule` runs a custom schedule.
    threads : int or None, default 2
        ITK threads for the call (None: leave the environment as it is).
    seed : int, default 0
        Seed of ANTs' metric sampling (same inputs, seed and threads: same result).
    crop_margin_mm : float or None, default 10.0
        Margin (mm) around the brains' bounding boxes; None registers the full grids.
    min_brain_dice, min_jacobian : float
        Thresholds of the quality flag.
    workdir : path, optional
        Parent folder of the temporary transform folder (default: the system's).

    Returns
    -------
    Registration
        With the transforms and :attr:`Registration.quality`. Close it (or use ``with``)
        to remove its temporary folder.

    Raises
    ------
    RegistrationError
        For unusable input (empty image, NaN, wrong mask shape) and when ANTs fails.
    ValueError
        For an unknown preset or an invalid ``threads`` value.
    """

    if isinstance(preset, Schedule):
        schedule: Schedule | None = preset
        preset_name = "custom"
    elif preset == "quick":
        schedule, preset_name = QUICK_SCHEDULE, "quick"
    elif preset == "affine":
        schedule, preset_name = AFFINE_SCHEDULE, "affine"
    elif preset == "full":
        schedule, preset_name = None, "full"
    else:
        raise ValueError(f"unknown preset {preset!r}; use one of {', '.join(PRESETS)}")

    with itk_threads(threads):
        return _register(
            fixed,
            moving,
            fixed_affine,
            moving_affine,
            schedule=schedule,
            preset_name=preset_name,
            fixed_mask=fixed_mask,
            moving_mask=moving_mask,
            fixed_brain=fixed_brain,
            moving_brain=moving_brain,
            seed=seed,
            crop_margin_mm=crop_margin_mm,
            min_brain_dice=min_brain_dice,
            min_jacobian=min_jacobian,
            workdir=workdir,
        )


def _register(
    fixed: np.ndarray | Sequence[np.ndarray],
    moving: np.ndarray | Sequence[np.ndarray],
    fixed_affine: np.ndarray,
    moving_affine: np.ndarray,
    *,
    schedule: Schedule | None,
    preset_name: str,
    fixed_mask: np.ndarray | None,
    moving_mask: np.ndarray | None,
    fixed_brain: np.ndarray | None,
    moving_brain: np.ndarray | None,
    seed: int,
    crop_margin_mm: float | None,
    min_brain_dice: float,
    min_jacobian: float,
    workdir: str | Path | None,
) -> Registration:
    """:func:`register` after the preset is resolved (threads already set)."""
    import ants

    f_chans = _channels(fixed, "fixed image")
    m_chans = _channels(moving, "moving image")
    f_shape, m_shape = f_chans[0].shape, m_chans[0].shape
    f_mask = _check_mask(fixed_mask, f_shape, "fixed_mask")
    m_mask = _check_mask(moving_mask, m_shape, "moving_mask")
    f_brain = _check_mask(fixed_brain, f_shape, "fixed_brain")
    m_brain = _check_mask(moving_brain, m_shape, "moving_brain")
    if f_brain is None:
        f_brain = np.logical_or.reduce([c != 0 for c in f_chans])
    if m_brain is None:
        m_brain = np.logical_or.reduce([c != 0 for c in m_chans])
    fixed_affine = np.asarray(fixed_affine, dtype=float)
    moving_affine = np.asarray(moving_affine, dtype=float)

    f_box, f_aff = _crop_box(f_brain, fixed_affine, crop_margin_mm)
    m_box, m_aff = _crop_box(m_brain, moving_affine, crop_margin_mm)
    f_imgs = [to_ants(c[f_box], f_aff) for c in f_chans]
    m_imgs = [to_ants(c[m_box], m_aff) for c in m_chans]
    f_mask_img = None if f_mask is None else to_ants(f_mask[f_box], f_aff, np.uint8)
    m_mask_img = None if m_mask is None else to_ants(m_mask[m_box], m_aff, np.uint8)

    folder = Path(tempfile.mkdtemp(prefix="nehmap-reg-", dir=workdir))
    prefix = str(folder / "tx_")
    start = time.perf_counter()
    try:
        if schedule is None:
            # ANTsPy's SyN with its defaults; it seeds its sampling from ants.config
            ants.registration(
                f_imgs[0],
                m_imgs[0],
                type_of_transform="SyN",
                outprefix=prefix,
                mask=f_mask_img,
                moving_mask=m_mask_img,
            )
            used: dict[str, Any] = {"type_of_transform": "SyN", "defaults": "ANTsPy"}
        else:
            masks = _mask_option(
                None if f_mask_img is None else _pointer(f_mask_img),
                None if m_mask_img is None else _pointer(m_mask_img),
            )
            args = _schedule_args(
                schedule,
                [_pointer(i) for i in f_imgs],
                [_pointer(i) for i in m_imgs],
                masks,
                prefix,
                seed,
                voxel_mm=float(min(_spacing(fixed_affine))),
            )
            status = ants.registration(args, None)
            if status != 0:
                raise RegistrationError(f"antsRegistration returned {status}")
            used = schedule.as_dict()
        forward, inverse, invert = _collect_outputs(prefix)
    except RegistrationError:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    except (RuntimeError, ValueError, OSError) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise RegistrationError(f"ANTs registration failed: {exc}") from exc
    seconds = time.perf_counter() - start
    reg = Registration(
        fixed_shape=tuple(int(s) for s in f_shape),  # type: ignore[arg-type]
        fixed_affine=fixed_affine,
        moving_shape=tuple(int(s) for s in m_shape),  # type: ignore[arg-type]
        moving_affine=moving_affine,
        forward=forward,
        inverse=inverse,
        inverse_invert=invert,
        folder=folder,
        preset=preset_name,
        schedule=used,
        seconds=seconds,
    )
    try:
        reg.quality = assess(
            reg,
            f_brain,
            m_brain,
            jacobian_domain=(f_box, f_aff),
            min_brain_dice=min_brain_dice,
            min_jacobian=min_jacobian,
            threads=None,
        )
    except (RuntimeError, ValueError, OSError) as exc:
        reg.close()
        raise RegistrationError(f"cannot apply the computed transform: {exc}") from exc
    return reg


def assess(
    registration: Registration,
    fixed_brain: np.ndarray,
    moving_brain: np.ndarray,
    *,
    jacobian_domain: tuple[tuple[slice, ...], np.ndarray] | None = None,
    min_brain_dice: float = 0.9,
    min_jacobian: float = 0.0,
    threads: int | None = 2,
) -> RegistrationQuality:
    """Quality of a registration: brain Dice after warping and Jacobian extremes.

    Parameters
    ----------
    registration : Registration
    fixed_brain, moving_brain : numpy.ndarray of bool
        Brain masks on the full fixed and moving grids.
    jacobian_domain : (box, affine), optional
        Sub-box of the fixed grid (and its affine) on which to evaluate the Jacobian;
        default: the whole fixed grid.
    min_brain_dice, min_jacobian : float
        Flag thresholds.
    threads : int or None
        ITK threads.

    Returns
    -------
    RegistrationQuality
    """
    import ants

    with itk_threads(threads):
        warped = warp_labels(registration, moving_brain.astype(np.uint8)) > 0
        dice = brain_dice(warped, fixed_brain)
        det_affine = float(np.linalg.det(registration.affine_ras()[:3, :3]))
        if registration.warp_file is None:
            jmin = jmax = det_affine
        else:
            if jacobian_domain is None:
                box = tuple(slice(0, n) for n in registration.fixed_shape)
                aff = registration.fixed_affine
            else:
                box, aff = jacobian_domain
            domain = to_ants(np.zeros(fixed_brain[box].shape, dtype=np.float32), aff)
            jac = ants.create_jacobian_determinant_image(domain, registration.warp_file)
            if jac.shape != domain.shape:  # the field is on the coarsest grid it needs
                jac = ants.resample_image_to_target(jac, domain, interp_type="linear")
            values = jac.numpy()[fixed_brain[box]] * det_affine
            if values.size == 0 or not np.all(np.isfinite(values)):
                raise RegistrationError("the Jacobian determinant is not finite")
            jmin, jmax = float(values.min()), float(values.max())
    reasons = []
    if not dice >= min_brain_dice:
        reasons.append(f"brain Dice {dice:.3f} < {min_brain_dice:g}")
    if jmin <= min_jacobian:
        reasons.append(f"Jacobian minimum {jmin:.3g} <= {min_jacobian:g}")
    return RegistrationQuality(dice, jmin, jmax, bool(reasons), tuple(reasons))


def _reference(registration: Registration) -> Any:
    return to_ants(np.zeros(registration.fixed_shape, dtype=np.float32), registration.fixed_affine)


def _check_moving(registration: Registration, array: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(array)
    if arr.shape != registration.moving_shape:
        raise ValueError(
            f"{what} has shape {arr.shape}, but the moving scan of this registration has "
            f"{registration.moving_shape}"
        )
    return arr


def warp_labels(registration: Registration, label_map: np.ndarray) -> np.ndarray:
    """Pull a label map (or mask) of the moving scan onto the fixed grid.

    Parameters
    ----------
    registration : Registration
    label_map : numpy.ndarray of int or bool, shape ``registration.moving_shape``
        Integer labels on the moving scan's canonical grid.

    Returns
    -------
    numpy.ndarray, shape ``registration.fixed_shape``
        Labels on the fixed grid (``genericLabel`` interpolation: each label is
        interpolated as its own smooth indicator and the most likely one wins), with
        the input's dtype.
    """
    import ants

    arr = _check_moving(registration, label_map, "label_map")
    if arr.dtype.kind not in "biu":
        raise ValueError(f"label_map must hold integers or booleans, got {arr.dtype}")
    moving = to_ants(arr.astype(np.float32), registration.moving_affine)
    out = ants.apply_transforms(
        _reference(registration),
        moving,
        registration.forward,
        interpolator="genericLabel",
    )
    values = np.rint(out.numpy())
    return values.astype(arr.dtype if arr.dtype != np.bool_ else np.uint8).astype(arr.dtype)


def warp_image(
    registration: Registration, image: np.ndarray, interpolator: str = "linear"
) -> np.ndarray:
    """Pull an image of the moving scan onto the fixed grid.

    Parameters
    ----------
    registration : Registration
    image : numpy.ndarray, shape ``registration.moving_shape``
    interpolator : str, default "linear"
        Any ANTs interpolator (``"linear"``, ``"bSpline"``, ``"nearestNeighbor"``...).

    Returns
    -------
    numpy.ndarray of float32, shape ``registration.fixed_shape``
        0 outside the moving scan's field of view.
    """
    import ants

    arr = _check_moving(registration, image, "image")
    moving = to_ants(arr.astype(np.float32), registration.moving_affine)
    out = ants.apply_transforms(
        _reference(registration), moving, registration.forward, interpolator=interpolator
    )
    return out.numpy().astype(np.float32)


def quality_columns(quality: RegistrationQuality | None) -> Mapping[str, Any]:
    """Columns of a quality record for a tidy table (NaN/None when missing)."""
    if quality is None:
        return {
            "brain_dice": math.nan,
            "jacobian_min": math.nan,
            "jacobian_max": math.nan,
            "registration_flag": None,
            "registration_flag_reason": "",
        }
    return quality.as_dict()
