"""Domain randomisation: transforms that make a patch look like another scanner's.

Each is a MONAI dictionary transform drawing from its own random state (set with
``set_random_state``), applied to the patch after it is cut out (channels first,
``(C, X, Y, Z)`` image, ``(1, X, Y, Z)`` labels):

* :class:`RandLabelContrastd`: per label and per channel, shift the label's mean by a
  random offset and stretch its spread, with soft edges — contrasts drawn at random
  instead of the generator's fixed tables. NEH (3) follows edema (2) with a quarter of
  the amplitude, so the NEH/edema contrast is perturbed but not scrambled.
* :class:`RandBiasFieldd`: a multiplicative smooth (cubic) bias field of controlled
  strength on the magnitude above the channel's floor.
* :class:`RandRicianNoised`: Rician noise at a signal-to-noise ratio drawn in a range.
* :class:`RandThickSlicesd`: resolution loss: slabs ``thickness`` mm thick along one
  random axis are averaged (an exact box profile) and linearly resampled back.
* :class:`RandModalityDropoutd`: one channel replaced by zeros, at a low probability.

All of them leave the voxels outside the brain (0 in every channel after nehmap's
normalisation) at 0. The zero-signal level ("floor") of a z-scored channel is taken at
:data:`ZERO_SIGNAL_Z` = -2.5 SD, or at the darkest brain voxel of the patch if darker.

Why nehmap writes these rather than using MONAI's ``RandRicianNoise`` and
``RandBiasField``: nehmap's patches are z-scored per modality, so they hold negative
values. A bias field or Rician noise acts on a non-negative magnitude; MONAI's
transforms apply them to the raw values (multiplying a negative value by the field,
folding negative values to positive). Here both act on ``x - floor``, a magnitude
image again. MONAI's bias field
also draws all its Legendre coefficients from one non-negative range, so its strength
(up to the sum of 19 coefficients) is not what the range says; here the largest
``|log bias|`` is the drawn strength. The existing MONAI transforms (blur, gamma,
flips, intensity scale/shift) are kept in :mod:`nehmap.train.augment`. MONAI has no
per-label contrast, thick-slice or modality-dropout transform (TorchIO's
``RandomAnisotropy`` resamples with a nearest/linear kernel rather than averaging the
slab, and TorchIO is not a dependency).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - torch convention
from monai.transforms import MapTransform, Randomizable

NEH_LABEL, EDEMA_LABEL = 3, 2
ZERO_SIGNAL_Z = -2.5
"""Where zero MR signal is taken to lie in a z-scored channel (SDs below the brain mean)."""
_TIED_FRACTION = 0.25


def _tensor(x: Any) -> torch.Tensor:
    if hasattr(x, "as_tensor"):
        x = x.as_tensor()
    return torch.as_tensor(x)


def _brain(image: torch.Tensor) -> torch.Tensor:
    """Voxels inside the brain: nehmap's normalisation sets every channel to 0 outside."""
    return (image != 0).any(dim=0, keepdim=True)


def _floor(image: torch.Tensor, brain: torch.Tensor, zero_signal: float) -> torch.Tensor:
    """Per-channel zero-signal level (C, 1, 1, 1): ``zero_signal`` or the darkest brain voxel."""
    values = torch.where(brain, image, torch.inf).reshape(image.shape[0], -1)
    darkest = values.amin(dim=1).clamp(max=zero_signal)
    darkest = torch.where(torch.isfinite(darkest), darkest, torch.full_like(darkest, zero_signal))
    return darkest.reshape(-1, 1, 1, 1)


def _box_blur(volume: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over a ``2 radius + 1`` cube (within the volume) of each channel of (C, X, Y, Z).

    Separable: a running mean of ``2 radius + 1`` voxels along each axis in turn, over the
    voxels that exist at the edges (as ``avg_pool3d(..., count_include_pad=False)``).
    """
    if radius <= 0:
        return volume
    out = volume
    for axis in (1, 2, 3):
        n = out.shape[axis]
        total = out.clone()
        count = torch.ones(n, dtype=out.dtype)
        for shift in range(1, min(radius, n - 1) + 1):
            total.narrow(axis, shift, n - shift).add_(out.narrow(axis, 0, n - shift))
            total.narrow(axis, 0, n - shift).add_(out.narrow(axis, shift, n - shift))
            count[shift:] += 1
            count[: n - shift] += 1
        shape = [1, 1, 1, 1]
        shape[axis] = n
        out = total / count.reshape(shape)
    return out


class RandLabelContrastd(Randomizable, MapTransform):
    """Random per-label, per-channel contrast.

    In label ``k`` of channel ``c`` (mean ``m``), ``x -> x + s*(x - m)*w + d*w``: ``d``
    uniform in +-``shift`` (image units: z-scores), ``s`` uniform in +-``scale``, ``w`` the
    label's indicator averaged over a ``2 edge_voxels + 1`` cube (weights summing to 1,
    so the change is soft across a label boundary; 0: hard edges). NEH's
    offset is edema's plus a quarter-amplitude draw. The draws are kept in
    :attr:`offsets` and :attr:`scales` ((C, K) arrays, K = largest label + 1).
    """

    def __init__(
        self,
        prob: float,
        shift: float,
        scale: float,
        edge_voxels: int = 1,
        image_key: str = "image",
        label_key: str = "label",
    ) -> None:
        MapTransform.__init__(self, [image_key, label_key])
        self.prob, self.shift, self.scale = float(prob), float(shift), float(scale)
        self.edge_voxels = int(edge_voxels)
        self.image_key, self.label_key = image_key, label_key
        self.offsets: np.ndarray | None = None
        self.scales: np.ndarray | None = None

    def randomize(self, data: Any = None) -> None:
        """Draw this call's shifts and scales; ``data`` is ``(channels, n_labels)``."""
        channels, n_labels = data
        do = self.R.random_sample() < self.prob
        offsets = self.R.uniform(-self.shift, self.shift, size=(channels, n_labels))
        scales = self.R.uniform(-self.scale, self.scale, size=(channels, n_labels))
        if n_labels > NEH_LABEL:
            tied = self.R.uniform(-1.0, 1.0, size=channels) * _TIED_FRACTION * self.shift
            offsets[:, NEH_LABEL] = offsets[:, EDEMA_LABEL] + tied
        self.offsets = offsets if do else None
        self.scales = scales if do else None

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        image = _tensor(d[self.image_key]).to(torch.float32)
        labels = torch.round(_tensor(d[self.label_key])[0]).to(torch.int64).clamp(min=0)
        n_labels = int(labels.max()) + 1 if labels.numel() else 1
        self.randomize((image.shape[0], n_labels))
        if self.offsets is None or self.scales is None:
            return d
        flat = labels.reshape(-1)
        counts = torch.bincount(flat, minlength=n_labels).to(torch.float64)
        means = torch.stack(
            [
                torch.bincount(flat, weights=c.reshape(-1).double(), minlength=n_labels)
                for c in image
            ]
        ) / counts.clamp(min=1)
        scales = torch.from_numpy(self.scales)
        shifts = torch.from_numpy(self.offsets) - scales * means
        onehot = (labels[None] == torch.arange(n_labels).reshape(-1, 1, 1, 1)).float()
        weights = _box_blur(onehot, self.edge_voxels)
        # sum over labels of w_k (s_ck (x - m_ck) + d_ck) = x * A_c + B_c
        flat_weights = weights.reshape(n_labels, -1)
        a = (scales.float() @ flat_weights).reshape(image.shape)
        b = (shifts.float() @ flat_weights).reshape(image.shape)
        out = image + image * a + b
        d[self.image_key] = torch.where(_brain(image), out, image)
        return d


class RandBiasFieldd(Randomizable, MapTransform):
    """Multiplicative bias field on ``image - floor``, one per channel.

    ``log b = s * p / max|p|``: ``p`` a cubic polynomial of the patch coordinates (each
    in [-1, 1]) with standard-normal coefficients and no constant term, ``s`` uniform in
    ``[0, strength]``; so ``max |log b|`` over the patch is exactly ``s`` (kept, per
    channel, in :attr:`strengths`).
    """

    def __init__(
        self,
        prob: float,
        strength: float,
        zero_signal: float = ZERO_SIGNAL_Z,
        image_key: str = "image",
    ) -> None:
        MapTransform.__init__(self, [image_key])
        self.prob, self.strength, self.image_key = float(prob), float(strength), image_key
        self.zero_signal = float(zero_signal)
        self.strengths: np.ndarray | None = None
        self._coefficients: np.ndarray | None = None

    def randomize(self, data: Any = None) -> None:
        """Draw this call's field strengths and coefficients; ``data``: number of channels."""
        do = self.R.random_sample() < self.prob
        strengths = self.R.uniform(0.0, self.strength, size=int(data))
        coefficients = self.R.standard_normal((int(data), len(_POWERS)))
        self.strengths = strengths if do else None
        self._coefficients = coefficients if do else None

    def field(self, shape: Sequence[int]) -> torch.Tensor:
        """The drawn log bias, (C, X, Y, Z)."""
        assert self.strengths is not None and self._coefficients is not None
        channels = self._coefficients.shape[0]
        table = torch.zeros((channels, 4, 4, 4), dtype=torch.float32)
        for t, (i, j, k) in enumerate(_POWERS):
            table[:, i, j, k] = torch.from_numpy(self._coefficients[:, t]).float()
        x, y, z = (
            torch.linspace(-1.0, 1.0, int(n))[:, None] ** torch.arange(4.0)[None] for n in shape
        )
        out = torch.einsum("cijk,zk->cijz", table, z)
        out = torch.einsum("cijz,yj->ciyz", out, y)
        out = torch.einsum("ciyz,xi->cxyz", out, x)
        peak = out.reshape(channels, -1).abs().amax(dim=1).clamp(min=1e-12)
        scale = torch.from_numpy(self.strengths).float() / peak
        return out * scale.reshape(-1, 1, 1, 1)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        image = _tensor(d[self.image_key]).to(torch.float32)
        self.randomize(image.shape[0])
        if self.strengths is None:
            return d
        brain = _brain(image)
        floor = _floor(image, brain, self.zero_signal)
        out = floor + (image - floor) * torch.exp(self.field(image.shape[1:]))
        d[self.image_key] = torch.where(brain, out, image)
        return d


_POWERS: tuple[tuple[int, int, int], ...] = tuple(
    (i, j, k) for i in range(4) for j in range(4) for k in range(4) if 0 < i + j + k <= 3
)


class RandRicianNoised(Randomizable, MapTransform):
    """Rician noise at an SNR drawn uniformly in ``snr_range``, per channel.

    With ``m = x - floor`` and ``S`` the mean of ``m`` in the brain (the signal),
    ``sigma = S / snr`` and ``x -> floor + sqrt((m + n1)^2 + n2^2)``,
    ``n1, n2 ~ N(0, sigma^2)``. On a constant image (``m = S`` everywhere) the result has
    standard deviation close to ``sigma`` (the Rician law's, for ``snr`` above ~5).
    """

    def __init__(
        self,
        prob: float,
        snr_range: tuple[float, float],
        zero_signal: float = ZERO_SIGNAL_Z,
        image_key: str = "image",
    ) -> None:
        MapTransform.__init__(self, [image_key])
        self.prob, self.snr_range, self.image_key = float(prob), snr_range, image_key
        self.zero_signal = float(zero_signal)
        self.snr: float | None = None
        self._noise_seed = 0

    def randomize(self, data: Any = None) -> None:
        """Draw this call's signal-to-noise ratio and noise seed (``data`` is not used)."""
        do = self.R.random_sample() < self.prob
        snr = float(self.R.uniform(*self.snr_range))
        self.snr = snr if do else None
        self._noise_seed = int(self.R.randint(2**31 - 1))

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        self.randomize()
        d = dict(data)
        if self.snr is None:
            return d
        image = _tensor(d[self.image_key]).to(torch.float32)
        brain = _brain(image)
        floor = _floor(image, brain, self.zero_signal)
        magnitude = image - floor
        inside = brain.reshape(1, -1).to(torch.float32)
        count = float(inside.sum())
        total = (magnitude.reshape(image.shape[0], -1) * inside).sum(dim=1)
        signal = (total / count if count else torch.ones(image.shape[0])).clamp(min=1e-6)
        sigma = (signal / self.snr).reshape(-1, 1, 1, 1)
        generator = torch.Generator().manual_seed(self._noise_seed)
        n1 = torch.randn(image.shape, generator=generator)
        n2 = torch.randn(image.shape, generator=generator)
        out = floor + torch.sqrt((magnitude + sigma * n1) ** 2 + (sigma * n2) ** 2)
        d[self.image_key] = torch.where(brain, out, image)
        return d


def thick_slices(
    volume: torch.Tensor, axis: int, thickness: float, offset: float = 0.0
) -> torch.Tensor:
    """Average slabs ``thickness`` voxels thick along ``axis`` and resample back.

    The voxel ``i`` covers ``[i, i + 1)`` along ``axis``; slab ``j`` covers
    ``[offset + j t, offset + (j + 1) t)`` (clipped to the volume), its value is the exact
    mean of the signal over it (partial voxels weighted by their overlap) and it sits at
    its centre. Each voxel then takes the linear interpolation of the slab values at its
    centre ``i + 0.5`` (the end slabs' values beyond the first and last centres).

    Parameters
    ----------
    volume : torch.Tensor
        tensor of any shape.
    axis : int
        The axis of the thick slices.
    thickness : float
        Slab thickness in voxels (>= 1).
    offset : float
        Position of the first slab edge, in ``(-thickness, 0]`` voxels.

    Returns
    -------
    torch.Tensor
        A tensor of the same shape and dtype.
    """
    x = volume.movedim(axis, -1)
    if not x.is_floating_point():
        x = x.to(torch.float32)
    n = x.shape[-1]
    t = float(thickness)
    edges = torch.arange(offset, n + t, t, dtype=torch.float64)
    edges = edges.clamp(0.0, float(n))
    edges = torch.unique_consecutive(edges)
    integral = F.pad(torch.cumsum(x, dim=-1), (1, 0))
    a = _integral_at(integral, edges[:-1])
    b = _integral_at(integral, edges[1:])
    widths = edges[1:] - edges[:-1]
    means = (b - a) / widths.to(x.dtype)
    centres = 0.5 * (edges[1:] + edges[:-1])
    positions = torch.arange(n, dtype=torch.float64) + 0.5
    right = torch.searchsorted(centres, positions).clamp(1, centres.numel() - 1)
    left = right - 1
    if centres.numel() == 1:
        out = means[..., :1].expand(*means.shape[:-1], n)
    else:
        c0, c1 = centres[left], centres[right]
        frac = ((positions - c0) / (c1 - c0)).clamp(0.0, 1.0).to(x.dtype)
        out = means[..., left] * (1 - frac) + means[..., right] * frac
    return out.movedim(-1, axis).to(volume.dtype)


def _integral_at(integral: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """The running sum (piecewise linear between voxel edges) at fractional positions."""
    n = integral.shape[-1] - 1
    lo = positions.floor().clamp(0, n - 1).to(torch.int64)
    frac = (positions - lo).to(integral.dtype)
    return integral[..., lo] * (1 - frac) + integral[..., lo + 1] * frac


class RandThickSlicesd(Randomizable, MapTransform):
    """Resolution loss: thick slices (``thickness_mm`` range) along a random axis.

    ``spacing`` is the patch's voxel size (mm); slabs thinner than 1.2 voxels are left
    alone. The drawn axis, thickness (voxels) and offset are kept in :attr:`drawn`.
    """

    def __init__(
        self,
        prob: float,
        thickness_mm: tuple[float, float],
        spacing: Sequence[float] = (1.0, 1.0, 1.0),
        image_key: str = "image",
    ) -> None:
        MapTransform.__init__(self, [image_key])
        self.prob, self.thickness_mm = float(prob), thickness_mm
        self.spacing = tuple(float(s) for s in spacing)
        self.image_key = image_key
        self.drawn: tuple[int, float, float] | None = None

    def randomize(self, data: Any = None) -> None:
        """Draw this call's slab axis, thickness (voxels) and offset (``data`` is not used)."""
        do = self.R.random_sample() < self.prob
        axis = int(self.R.randint(3))
        thickness = float(self.R.uniform(*self.thickness_mm)) / self.spacing[axis]
        offset = -float(self.R.uniform(0.0, thickness))
        self.drawn = (axis, thickness, offset) if do and thickness >= 1.2 else None

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        self.randomize()
        d = dict(data)
        if self.drawn is None:
            return d
        axis, thickness, offset = self.drawn
        image = _tensor(d[self.image_key]).to(torch.float32)
        out = thick_slices(image, axis + 1, thickness, offset)
        d[self.image_key] = torch.where(_brain(image), out, image)
        return d


class RandModalityDropoutd(Randomizable, MapTransform):
    """With probability ``prob``, one channel (drawn uniformly) is set to 0 (its mean)."""

    def __init__(self, prob: float, image_key: str = "image") -> None:
        MapTransform.__init__(self, [image_key])
        self.prob, self.image_key = float(prob), image_key
        self.dropped: int | None = None

    def randomize(self, data: Any = None) -> None:
        """Draw this call's dropped channel; ``data`` is the number of channels."""
        do = self.R.random_sample() < self.prob
        channel = int(self.R.randint(int(data)))
        self.dropped = channel if do else None

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        image = _tensor(d[self.image_key]).to(torch.float32)
        self.randomize(image.shape[0])
        if self.dropped is None or image.shape[0] < 2:
            return d
        out = image.clone()
        out[self.dropped] = 0.0
        d[self.image_key] = out
        return d
