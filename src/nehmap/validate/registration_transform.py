"""A computed registration: its transform files, their geometry and its quality record.

:class:`Registration` holds the ANTs transform files of one fixed <- moving registration
(fixed: the later scan, moving: the pre-operative one), saves them with a JSON record,
and converts the transform back to nehmap's RAS world (:meth:`Registration.affine_ras`,
:meth:`Registration.map_points`). :class:`RegistrationQuality` is what
:func:`nehmap.validate.registration_quality.assess` measured of it.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nehmap.validate.registration_ants import RAS_TO_LPS

__all__ = ["Registration", "RegistrationQuality"]


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
        return RAS_TO_LPS @ lps @ RAS_TO_LPS

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
