r"""The ANTs schedules of :func:`nehmap.validate.registration.register`: presets and arguments.

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

A :class:`Schedule` is written for 1 mm voxels; :func:`schedule_args` turns it into the
``antsRegistration`` command line of a grid of any voxel size, and
:func:`collect_outputs` lists the transform files that command wrote.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from nehmap.validate.registration_ants import RegistrationError

__all__ = [
    "AFFINE_SCHEDULE",
    "PRESETS",
    "QUICK_SCHEDULE",
    "Preset",
    "Schedule",
    "collect_outputs",
    "mask_option",
    "resolve_preset",
    "schedule_args",
    "schedule_levels",
]

Preset = Literal["quick", "full", "affine"]
PRESETS: tuple[str, ...] = get_args(Preset)
"""Names of the registration presets (see the module documentation)."""


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
    (see :func:`schedule_levels`), so a test on a 3 mm grid runs the same physical schedule.
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


def resolve_preset(preset: Preset | Schedule) -> tuple[Schedule | None, str]:
    """The schedule of a preset name (None for ``"full"``, ANTsPy's SyN) and its name.

    A :class:`Schedule` passes through under the name ``"custom"``.

    Raises
    ------
    ValueError
        For an unknown preset name.
    """
    if isinstance(preset, Schedule):
        return preset, "custom"
    if preset == "quick":
        return QUICK_SCHEDULE, "quick"
    if preset == "affine":
        return AFFINE_SCHEDULE, "affine"
    if preset == "full":
        return None, "full"
    raise ValueError(f"unknown preset {preset!r}; use one of {', '.join(PRESETS)}")


def mask_option(fixed_ptr: str | None, moving_ptr: str | None) -> str:
    """The ``--masks`` value of antsRegistration: ``[fixed,moving]``, ``NA`` for no mask."""
    return f"[{fixed_ptr or 'NA'},{moving_ptr or 'NA'}]"


def _x(values: Sequence[float]) -> str:
    return "x".join(f"{v:g}" for v in values)


def ants_seed(seed: int) -> int:
    """The ``--random-seed`` handed to ANTs for nehmap's ``seed`` (0 or more).

    antsRegistration reads a seed of 0 as "no seed" and then seeds its metric sampling
    from the clock, so seed 0 gave a different registration on every run. nehmap's
    seeds map one to one onto 1 .. 2**31 - 1 (a C int) instead.
    """
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"seed must be 0 or more, got {seed}")
    return seed % (2**31 - 1) + 1


def schedule_args(
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

    affine_levels = schedule_levels(
        schedule.affine_iterations, schedule.affine_shrink, schedule.affine_sigmas, voxel_mm
    )
    syn_levels = schedule_levels(
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
        "--random-seed", str(ants_seed(seed)),
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


def schedule_levels(
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


def collect_outputs(prefix: str) -> tuple[list[str], list[str], list[bool]]:
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
