"""H3 for one patient: register the two scans, extract pNEH and ETRL, compare with chance.

:func:`analyse_pair` registers the pre-operative scan onto the recurrence scan
(:func:`nehmap.validate.registration.register`, metric masks from
:func:`~nehmap.validate.recurrence_masks.registration_masks`), pulls pNEH and the
pre-operative core onto the recurrence grid
(:func:`~nehmap.validate.recurrence_masks.warp_preop_masks`), and measures pNEH against
the recurrence ET under each chance model
(:func:`nehmap.validate.chance.chance_comparison`). :class:`PairResult` holds the
outcome: one row per metric and chance model, the warped masks, the registration's
quality and the matched controls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from nehmap.labels import ET
from nehmap.validate.chance import Chance, chance_comparison
from nehmap.validate.recurrence_masks import (
    MaskExclude,
    Scan,
    chance_domain,
    etrl_mask,
    registration_masks,
    warp_preop_masks,
)
from nehmap.validate.recurrence_metrics import CaseExcluded
from nehmap.validate.registration import (
    Preset,
    Registration,
    RegistrationQuality,
    register,
)

__all__ = ["PairResult", "analyse_pair"]


@dataclass
class PairResult:
    """Outcome of :func:`analyse_pair`.

    Attributes
    ----------
    metrics : pandas.DataFrame
        One row per metric (see :func:`chance_comparison`) plus the volumes.
    pneh : numpy.ndarray of bool, shape of the recurrence grid
        The warped pre-operative NEH.
    core : numpy.ndarray of bool
        The warped pre-operative ET + NC (the resection target).
    quality : RegistrationQuality
    registration_seconds : float
    controls : list of numpy.ndarray of int
        Flat indices (recurrence grid) of the matched placements, least overlapping pNEH
        first, when ``matched`` ran.
    """

    metrics: pd.DataFrame
    pneh: np.ndarray
    core: np.ndarray
    quality: RegistrationQuality
    registration_seconds: float
    controls: list[np.ndarray] = field(default_factory=list)


def analyse_pair(
    preop: Scan,
    recurrence: Scan,
    *,
    modalities: Sequence[str] = ("t1",),
    preset: Preset = "quick",
    threads: int | None = 2,
    null_n: int = 500,
    seed: int = 0,
    chance: Chance | Sequence[str] = ("matched", "brain"),
    within_mm: float = 5.0,
    mask_exclude: MaskExclude = "tumour",
    min_brain_dice: float = 0.9,
    min_jacobian: float = 0.0,
    transforms_dir: str | Path | None = None,
    register_fn: Callable[..., Registration] = register,
) -> PairResult:
    """Register one patient's scans and compare pNEH with the recurrence ET.

    Parameters
    ----------
    preop, recurrence : Scan
        The patient's pre-operative scan (moving, with its NEH) and scan at first
        recurrence (fixed, with its ET).
    modalities : sequence of str, default ("t1",)
        Images registered (several: multi-channel SyN metric).
    preset, threads, min_brain_dice, min_jacobian
        Passed to :func:`nehmap.validate.registration.register`.
    null_n, seed, within_mm
        Passed to :func:`chance_comparison`.
    chance : str or sequence of str, default ("matched", "brain")
        Chance model(s), each giving one row per metric. ``matched`` places pNEH in the
        recurrence brain without the warped core, the recurrence necrosis and the T1-dark
        CSF (:func:`nehmap.validate.chance.dark_csf`).
    mask_exclude : {"tumour", "core"}
        See :func:`registration_masks`.
    transforms_dir : path, optional
        Keep the transforms there (:meth:`Registration.save`).
    register_fn : callable
        The registration function (replaceable for tests).

    Returns
    -------
    PairResult

    Raises
    ------
    CaseExcluded
        No ET at recurrence, no NEH before surgery, or pNEH outside the brain after
        warping (checked before registering where possible).
    RegistrationError
        When the registration fails.
    """
    if not np.any(recurrence.labels == ET):
        raise CaseExcluded("no enhancing tumour (ET) in the recurrence segmentation")
    if not np.any(preop.neh_mask):
        raise CaseExcluded("no NEH in the pre-operative segmentation")
    missing = [m for m in modalities if m not in preop.images or m not in recurrence.images]
    if missing:
        raise ValueError(f"modalities {missing} not loaded for registration")
    fixed_mask, moving_mask = registration_masks(preop, recurrence, mask_exclude)
    reg = register_fn(
        [recurrence.images[m] for m in modalities],
        [preop.images[m] for m in modalities],
        recurrence.affine,
        preop.affine,
        fixed_mask=fixed_mask,
        moving_mask=moving_mask,
        fixed_brain=recurrence.mask,
        moving_brain=preop.mask,
        preset=preset,
        threads=threads,
        seed=seed,
        min_brain_dice=min_brain_dice,
        min_jacobian=min_jacobian,
    )
    with reg:
        if transforms_dir is not None:
            reg.save(transforms_dir)
        pneh, core = warp_preop_masks(reg, preop, recurrence)
        quality = reg.quality
        seconds = reg.seconds
    assert quality is not None
    etrl = etrl_mask(recurrence)
    sp = recurrence.spacing
    models = (chance,) if isinstance(chance, str) else tuple(chance)
    ref = core if core.any() else pneh
    centre = np.argwhere(ref).mean(axis=0) * np.asarray(sp)
    domain = chance_domain(recurrence, core, pneh)
    controls: list[np.ndarray] = []
    tables = [
        chance_comparison(
            pneh,
            etrl,
            recurrence.mask,
            sp,
            n=null_n,
            seed=seed,
            chance=model,  # type: ignore[arg-type]
            centre_mm=centre,
            core=core if core.any() else None,
            domain=domain,
            within_mm=within_mm,
            controls_out=controls if model == "matched" else None,
        )
        for model in models
    ]
    table = pd.concat(tables, ignore_index=True)
    voxel = float(np.prod(sp))
    table["pneh_volume_mm3"] = float(pneh.sum()) * voxel
    table["etrl_volume_mm3"] = float(etrl.sum()) * voxel
    return PairResult(table, pneh, core, quality, seconds, controls)
