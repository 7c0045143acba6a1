"""Augmentation settings of a training run: :class:`AugmentConfig` (the ``[augmentation]`` table).

The transforms themselves are in :mod:`nehmap.train.augment` (MONAI pipeline) and
:mod:`nehmap.train.randomise` (domain randomisation).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from nehmap.train.config_file import fail

__all__ = ["DOMAIN_RANDOMISATION_PROBS", "RANGES", "AugmentConfig"]


RANGES: tuple[str, ...] = (
    "scale_range",
    "gamma_range",
    "blur_sigma",
    "rician_snr",
    "thick_slice_mm",
)
"""Augmentation settings that are ``(low, high)`` ranges."""

DOMAIN_RANDOMISATION_PROBS: tuple[str, ...] = (
    "label_contrast_prob",
    "bias_prob",
    "rician_prob",
    "thick_slice_prob",
    "dropout_prob",
)
"""Probabilities of the domain-randomisation transforms (:mod:`nehmap.train.randomise`);
a saved run without them had them off."""


@dataclass
class AugmentConfig:
    """On-the-fly augmentation: each transform is applied to a patch with its probability.

    Attributes
    ----------
    flip_prob : float
        Probability of mirroring, per spatial axis.
    rotation_prob : float
        Probability of a rotation (then about all three axes).
    rotation_deg : float
        Largest rotation angle about each axis, degrees (uniform in +-``rotation_deg``).
    scale_prob : float
        Probability of an isotropic zoom.
    scale_range : (float, float)
        Zoom factor range; > 1 makes structures look larger.
    intensity_scale_prob, intensity_scale : float
        Probability and range of multiplying each channel by ``1 + u``,
        ``u`` uniform in +-``intensity_scale``.
    intensity_shift_prob, intensity_shift : float
        Probability and range of adding ``u`` (z-score units) to each channel.
    gamma_prob : float
        Probability of a gamma transform (intensity statistics kept).
    gamma_range : (float, float)
        Gamma range.
    noise_prob, noise_std : float
        Probability of additive Gaussian noise and the largest noise SD (z-score units).
    blur_prob : float
        Probability of Gaussian smoothing.
    blur_sigma : (float, float)
        Smoothing sigma range, voxels.
    label_contrast_prob : float
        Probability of random per-label contrasts (tissue targets only):
        each label's mean in each channel moves by ``u`` in +-``label_contrast_shift``
        (z-score units) and its spread by a factor ``1 + v``, ``v`` in
        +-``label_contrast_scale``; NEH follows edema with a quarter of the shift.
    label_contrast_shift, label_contrast_scale : float
        See ``label_contrast_prob``.
    bias_prob : float
        Probability of a multiplicative cubic bias field per channel.
    bias_strength : float
        Largest ``|log bias|`` over the patch (each channel draws in [0, this]).
    rician_prob : float
        Probability of Rician noise.
    rician_snr : (float, float)
        Signal-to-noise ratio range (mean signal / noise SD).
    thick_slice_prob : float
        Probability of resolution loss: slabs averaged along one random axis and
        resampled back (thick-slice acquisition).
    thick_slice_mm : (float, float)
        Slab thickness range, mm (1 x 1 x 3 to 1 x 1 x 6 mm acquisitions by default).
    dropout_prob : float
        Probability of replacing one random modality by zeros (its mean).

    Set every ``*_prob`` of the last five to 0 for the pipeline of nehmap 0.x before
    domain randomisation (see docs/synthetic-data.md).
    """

    flip_prob: float = 0.5
    rotation_prob: float = 0.2
    rotation_deg: float = 30.0
    scale_prob: float = 0.2
    scale_range: tuple[float, float] = (0.7, 1.4)
    intensity_scale_prob: float = 0.15
    intensity_scale: float = 0.25
    intensity_shift_prob: float = 0.15
    intensity_shift: float = 0.1
    gamma_prob: float = 0.3
    gamma_range: tuple[float, float] = (0.7, 1.5)
    noise_prob: float = 0.1
    noise_std: float = 0.1
    blur_prob: float = 0.2
    blur_sigma: tuple[float, float] = (0.5, 1.0)
    label_contrast_prob: float = 0.5
    label_contrast_shift: float = 0.3
    label_contrast_scale: float = 0.2
    bias_prob: float = 0.3
    bias_strength: float = 0.3
    rician_prob: float = 0.2
    rician_snr: tuple[float, float] = (8.0, 40.0)
    thick_slice_prob: float = 0.2
    thick_slice_mm: tuple[float, float] = (3.0, 6.0)
    dropout_prob: float = 0.05

    def validate(self, source: str | Path | None = None) -> None:
        """Raise :class:`ConfigError` naming the first invalid setting."""
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_prob") and not 0.0 <= value <= 1.0:
                fail(
                    f"augmentation.{f.name} must be a probability in [0, 1], got {value}.",
                    path=source,
                )
        for name in RANGES:
            lo, hi = getattr(self, name)
            if not (0 < lo <= hi):
                fail(f"augmentation.{name} must be (low, high) with 0 < low <= high.", path=source)
        if not 0 <= self.rotation_deg <= 180:
            fail(
                f"augmentation.rotation_deg must be in [0, 180], got {self.rotation_deg}.",
                path=source,
            )
        for name in ("intensity_scale", "intensity_shift", "noise_std", "label_contrast_shift"):
            if getattr(self, name) < 0:
                fail(f"augmentation.{name} must be >= 0.", path=source)
        for name in ("label_contrast_scale", "bias_strength"):
            if not 0 <= getattr(self, name) < 1:
                fail(f"augmentation.{name} must be in [0, 1).", path=source)
