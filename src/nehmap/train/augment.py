"""Patch extraction with on-the-fly augmentation, as MONAI dictionary transforms.

A sample is a dict ``{"image": (C, X, Y, Z) volume, "label": (X, Y, Z) target,
"start": patch start corner}`` holding the whole preprocessed case; the pipeline
returns ``{"image": (C, *patch) float32 tensor, "label": (1, *patch) float32 tensor}``.

Transforms, in order, each applied with its own probability (see
:class:`~nehmap.train.augment_config.AugmentConfig` for the defaults, nnU-Net's where it has
them):

1. :class:`RandPatchd`: cuts the patch out of the volume, rotated about the three axes
   (uniform in +-``rotation_deg``) and/or zoomed isotropically (factor in
   ``scale_range``; > 1 enlarges structures) about the patch centre. The rotated patch
   is sampled from the surrounding volume (not from a zero-padded patch), in one
   trilinear resampling for the image and nearest-neighbour for the labels.
2. domain randomisation (:mod:`nehmap.train.randomise`): random per-label contrasts
   (tissue targets only), a bias field, thick slices resampled back, Rician noise;
3. Gaussian noise, Gaussian blur, intensity scaling (per channel), intensity shift
   (per channel), gamma (statistics kept) — MONAI's, on the image only;
4. modality dropout (one channel set to 0);
5. mirroring along each spatial axis.

The pipeline's randomness comes only from the MONAI transforms' random states, which
the caller sets per sample with ``pipeline.set_random_state(seed)`` (see
:mod:`nehmap.train.seeding`), so a sample is a pure function of its seed.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - torch convention
from monai.transforms import (
    Compose,
    MapTransform,
    RandAdjustContrastd,
    RandFlipd,
    RandGaussianNoised,
    RandGaussianSmoothd,
    Randomizable,
    RandScaleIntensityd,
    RandShiftIntensityd,
)

from nehmap.train.augment_config import AugmentConfig
from nehmap.train.randomise import (
    RandBiasFieldd,
    RandLabelContrastd,
    RandModalityDropoutd,
    RandRicianNoised,
    RandThickSlicesd,
)
from nehmap.train.sampling import extract


def rotation_matrix(angles: Sequence[float]) -> np.ndarray:
    """Rotation (3, 3) about array axes 0, 1 and 2 by ``angles`` (radians), in that order."""
    a, b, c = (float(x) for x in angles)
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


class RandPatchd(Randomizable, MapTransform):
    """Cut a patch out of a whole volume, with a random rotation and isotropic zoom.

    Parameters
    ----------
    patch_size : 3 ints
        Output patch size, voxels.
    rotation_prob : float
        Probability of rotating (about all three axes).
    rotation_deg : float
        Largest angle about each axis, degrees.
    scale_prob : float
        Probability of zooming.
    scale_range : (float, float)
        Zoom factor range; the patch shows a region ``patch / zoom`` voxels wide.
    image_key, label_key, start_key : str
        Keys of the image volume (C, X, Y, Z), the label volume (X, Y, Z) and the start
        corner (3 ints) in the sample dict.
    """

    def __init__(
        self,
        patch_size: Sequence[int],
        rotation_prob: float = 0.0,
        rotation_deg: float = 0.0,
        scale_prob: float = 0.0,
        scale_range: tuple[float, float] = (1.0, 1.0),
        image_key: str = "image",
        label_key: str = "label",
        start_key: str = "start",
    ) -> None:
        MapTransform.__init__(self, [image_key, label_key])
        self.patch = tuple(int(p) for p in patch_size)
        self.rotation_prob = float(rotation_prob)
        self.rotation_rad = math.radians(float(rotation_deg))
        self.scale_prob = float(scale_prob)
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))
        self.image_key, self.label_key, self.start_key = image_key, label_key, start_key
        self._angles: np.ndarray | None = None
        self._zoom = 1.0
        axes = [torch.arange(p, dtype=torch.float64) - (p - 1) / 2.0 for p in self.patch]
        self._offsets = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)  # (*patch, 3)

    def randomize(self, data: Any = None) -> None:
        """Draw whether and how much to rotate and zoom (always four draws)."""
        rotate = self.R.random_sample() < self.rotation_prob
        angles = self.R.uniform(-self.rotation_rad, self.rotation_rad, size=3)
        zoom = self.R.random_sample() < self.scale_prob
        factor = self.R.uniform(*self.scale_range)
        self._angles = angles if rotate and self.rotation_rad > 0 else None
        self._zoom = float(factor) if zoom else 1.0

    def matrix(self) -> np.ndarray | None:
        """The drawn map from output offsets to input offsets (3, 3), or None (identity)."""
        if self._angles is None and self._zoom == 1.0:
            return None
        rot = rotation_matrix(self._angles) if self._angles is not None else np.eye(3)
        return rot / self._zoom

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        self.randomize()
        d = dict(data)
        start = np.asarray(d.pop(self.start_key), dtype=np.int64)
        image, label = d[self.image_key], d[self.label_key]
        m = self.matrix()
        if m is None:
            d[self.image_key] = torch.from_numpy(extract(image, start, self.patch))
            d[self.label_key] = torch.from_numpy(
                extract(label, start, self.patch)[None].astype(np.float32)
            )
            return d
        patch = np.asarray(self.patch, dtype=np.float64)
        centre = start + (patch - 1) / 2.0
        half = np.abs(m) @ ((patch - 1) / 2.0)
        lo = np.floor(centre - half).astype(np.int64) - 1
        hi = np.ceil(centre + half).astype(np.int64) + 2
        size = hi - lo
        region = torch.from_numpy(extract(image, lo, size))[None]
        labels = torch.from_numpy(extract(label, lo, size).astype(np.float32))[None, None]
        coords = self._offsets @ torch.from_numpy(m.T) + torch.from_numpy(centre - lo)
        grid = 2.0 * coords / torch.from_numpy((size - 1).astype(np.float64)) - 1.0
        grid = grid.flip(-1)[None].to(torch.float32)  # grid_sample wants (z, y, x) order
        d[self.image_key] = F.grid_sample(region, grid, "bilinear", "zeros", align_corners=True)[0]
        d[self.label_key] = F.grid_sample(labels, grid, "nearest", "zeros", align_corners=True)[0]
        return d


def build_pipeline(
    patch_size: Sequence[int],
    aug: AugmentConfig | None,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    tissue_labels: bool = True,
) -> Compose:
    """The per-sample transform: patch extraction plus augmentation (None: none).

    Parameters
    ----------
    patch_size : 3 ints
        Patch size, voxels.
    aug : AugmentConfig or None
        Augmentation settings; None extracts plain patches.
    spacing : 3 floats
        Voxel size of the prepared cases, mm (sets the thick-slice width in voxels).
    tissue_labels : bool
        Whether the labels are tissue classes (per-label contrasts are drawn only then;
        a consensus target's background holds every tissue).

    Returns
    -------
    monai.transforms.Compose
        Call ``set_random_state(seed)`` before each sample.
    """
    if aug is None:
        return Compose([RandPatchd(patch_size)])
    sigma = aug.blur_sigma
    transforms: list = [
        RandPatchd(
            patch_size, aug.rotation_prob, aug.rotation_deg, aug.scale_prob, aug.scale_range
        ),
    ]
    if tissue_labels:
        transforms.append(
            RandLabelContrastd(
                aug.label_contrast_prob, aug.label_contrast_shift, aug.label_contrast_scale
            )
        )
    transforms += [
        RandBiasFieldd(aug.bias_prob, aug.bias_strength),
        RandThickSlicesd(aug.thick_slice_prob, aug.thick_slice_mm, spacing),
        RandRicianNoised(aug.rician_prob, aug.rician_snr),
        RandGaussianNoised("image", prob=aug.noise_prob, std=aug.noise_std),
        RandGaussianSmoothd(
            "image", sigma_x=sigma, sigma_y=sigma, sigma_z=sigma, prob=aug.blur_prob
        ),
        RandScaleIntensityd(
            "image", factors=aug.intensity_scale, prob=aug.intensity_scale_prob, channel_wise=True
        ),
        RandShiftIntensityd(
            "image", offsets=aug.intensity_shift, prob=aug.intensity_shift_prob, channel_wise=True
        ),
        RandAdjustContrastd("image", prob=aug.gamma_prob, gamma=aug.gamma_range, retain_stats=True),
    ]
    transforms.append(RandModalityDropoutd(aug.dropout_prob))
    transforms += [
        RandFlipd(["image", "label"], prob=aug.flip_prob, spatial_axis=axis) for axis in range(3)
    ]
    return Compose(transforms)


def as_plain_tensor(x: Any) -> torch.Tensor:
    """A MONAI MetaTensor (or array) as a plain, contiguous torch tensor."""
    if hasattr(x, "as_tensor"):
        x = x.as_tensor()
    return torch.as_tensor(x).contiguous()
