r"""Registration of a pre-operative scan onto a later scan of the same patient, with ANTsPy.

The pre-operative scan is the *moving* image, the later scan (the recurrence) the *fixed*
one: the result maps every point of the fixed scan to the point of the moving scan it
shows, so that pre-operative masks can be pulled onto the recurrence grid with
:func:`warp_labels` (nearest-label, ``genericLabel`` interpolation) and images with
:func:`warp_image` (linear).

This module holds :func:`register`, which runs one registration; the pieces it puts
together live beside it and are re-exported here:

=====================================================  =======================================
module                                                 holds
=====================================================  =======================================
:mod:`~nehmap.validate.registration_ants`              arrays as ANTs images (RAS/LPS), ITK
                                                       threads, :class:`RegistrationError`
:mod:`~nehmap.validate.registration_schedule`          the presets (``quick``, ``full``,
                                                       ``affine``) and their ANTs arguments
:mod:`~nehmap.validate.registration_transform`         :class:`Registration` (the transform
                                                       files) and :class:`RegistrationQuality`
:mod:`~nehmap.validate.registration_warp`              :func:`warp_labels`, :func:`warp_image`
:mod:`~nehmap.validate.registration_quality`           input checks, the brain crop, brain
                                                       Dice and Jacobian (:func:`assess`)
=====================================================  =======================================

Geometry: transforms are physical; nehmap's RAS arrays and affines become ANTs images in
ITK's LPS world (:func:`to_ants`), and :meth:`Registration.affine_ras` and
:meth:`Registration.map_points` convert back to RAS.

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

Repeatability: the same inputs and ``seed`` give the same transform, in any process,
with ``threads=1``. ANTs takes a seed of 0 as "seed from the clock", so nehmap hands it
``seed + 1`` (:func:`~nehmap.validate.registration_schedule.ants_seed`). With more threads
ANTs' Mattes metric adds its per-thread sums in a varying order, and a few boundary
voxels of the warped masks can differ between runs (about 10 of 10^6 on a 1 mm pair).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nehmap.validate.registration_ants import (
    RegistrationError,
    ants_pointer,
    itk_threads,
    to_ants,
    voxel_sizes,
)
from nehmap.validate.registration_quality import (
    assess,
    brain_dice,
    check_channels,
    check_mask,
    crop_box,
    quality_columns,
)
from nehmap.validate.registration_schedule import (
    AFFINE_SCHEDULE,
    PRESETS,
    QUICK_SCHEDULE,
    Preset,
    Schedule,
    ants_seed,
    collect_outputs,
    mask_option,
    resolve_preset,
    schedule_args,
)
from nehmap.validate.registration_transform import Registration, RegistrationQuality
from nehmap.validate.registration_warp import warp_image, warp_labels

__all__ = [
    "AFFINE_SCHEDULE",
    "PRESETS",
    "QUICK_SCHEDULE",
    "Preset",
    "Registration",
    "RegistrationError",
    "RegistrationQuality",
    "Schedule",
    "assess",
    "brain_dice",
    "itk_threads",
    "quality_columns",
    "register",
    "to_ants",
    "warp_image",
    "warp_labels",
]


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
        Seed of ANTs' metric sampling (:func:`ants_seed`). Same inputs and seed give
        the same result with ``threads=1``; with more threads ANTs' Mattes metric sums
        in a varying order and a few boundary voxels can differ between runs.
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
    schedule, preset_name = resolve_preset(preset)
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

    f_chans = check_channels(fixed, "fixed image")
    m_chans = check_channels(moving, "moving image")
    f_shape, m_shape = f_chans[0].shape, m_chans[0].shape
    f_mask = check_mask(fixed_mask, f_shape, "fixed_mask")
    m_mask = check_mask(moving_mask, m_shape, "moving_mask")
    f_brain = check_mask(fixed_brain, f_shape, "fixed_brain")
    m_brain = check_mask(moving_brain, m_shape, "moving_brain")
    if f_brain is None:
        f_brain = np.logical_or.reduce([c != 0 for c in f_chans])
    if m_brain is None:
        m_brain = np.logical_or.reduce([c != 0 for c in m_chans])
    fixed_affine = np.asarray(fixed_affine, dtype=float)
    moving_affine = np.asarray(moving_affine, dtype=float)

    f_box, f_aff = crop_box(f_brain, fixed_affine, crop_margin_mm)
    m_box, m_aff = crop_box(m_brain, moving_affine, crop_margin_mm)
    f_imgs = [to_ants(c[f_box], f_aff) for c in f_chans]
    m_imgs = [to_ants(c[m_box], m_aff) for c in m_chans]
    f_mask_img = None if f_mask is None else to_ants(f_mask[f_box], f_aff, np.uint8)
    m_mask_img = None if m_mask is None else to_ants(m_mask[m_box], m_aff, np.uint8)

    folder = Path(tempfile.mkdtemp(prefix="nehmap-reg-", dir=workdir))
    prefix = str(folder / "tx_")
    start = time.perf_counter()
    try:
        if schedule is None:
            # ANTsPy's SyN with its defaults; it takes its seed from ants.config
            previous_seed = ants.config._random_seed
            ants.config._random_seed = ants_seed(seed)
            try:
                ants.registration(
                    f_imgs[0],
                    m_imgs[0],
                    type_of_transform="SyN",
                    outprefix=prefix,
                    mask=f_mask_img,
                    moving_mask=m_mask_img,
                )
            finally:
                ants.config._random_seed = previous_seed
            used: dict[str, Any] = {"type_of_transform": "SyN", "defaults": "ANTsPy"}
        else:
            masks = mask_option(
                None if f_mask_img is None else ants_pointer(f_mask_img),
                None if m_mask_img is None else ants_pointer(m_mask_img),
            )
            args = schedule_args(
                schedule,
                [ants_pointer(i) for i in f_imgs],
                [ants_pointer(i) for i in m_imgs],
                masks,
                prefix,
                seed,
                voxel_mm=float(min(voxel_sizes(fixed_affine))),
            )
            status = ants.registration(args, None)
            if status != 0:
                raise RegistrationError(f"antsRegistration returned {status}")
            used = schedule.as_dict()
        forward, inverse, invert = collect_outputs(prefix)
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
