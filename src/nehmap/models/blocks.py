"""Convolutional building blocks shared by nehmap's networks.

All blocks work on 3D volumes laid out as ``(B, C, D, H, W)`` and are written in plain
PyTorch, so that the networks need nothing beyond ``torch`` at inference time.

Contents
--------
``make_norm``
    Normalisation layer by name (``"instance"``, ``"batch"``, ``"group"``).
``ConvNormAct``
    Convolution, normalisation, leaky ReLU.
``ResidualBlock``
    Two 3x3x3 convolutions with a residual connection (1x1x1 projection when the
    channel count or the stride changes), as nnU-Net's and UNETR++'s residual blocks.
``AttentionGate``
    Additive attention gate (Attention U-Net) that filters skip connections.
``OutputHead``
    1x1x1 convolution to class logits.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

NORMS: tuple[str, ...] = ("instance", "batch", "group")
"""Normalisation names accepted by :func:`make_norm`."""

LEAKY_SLOPE = 0.01
"""Negative slope of every leaky ReLU in nehmap's networks."""


def make_norm(name: str, channels: int, groups: int | None = None) -> nn.Module:
    """Normalisation layer for ``channels`` feature maps.

    Parameters
    ----------
    name : str
        ``"instance"`` (InstanceNorm3d with affine parameters), ``"batch"``
        (BatchNorm3d) or ``"group"`` (GroupNorm).
    channels : int
        Number of channels C of the ``(B, C, D, H, W)`` input.
    groups : int, optional
        Number of groups for ``"group"``; defaults to ``min(8, C)`` reduced to a divisor
        of C. Ignored by the other norms.

    Returns
    -------
    torch.nn.Module

    Raises
    ------
    ValueError
        If ``name`` is not one of :data:`NORMS`.
    """
    key = name.lower()
    if key == "instance":
        return nn.InstanceNorm3d(channels, affine=True)
    if key == "batch":
        return nn.BatchNorm3d(channels)
    if key == "group":
        g = math.gcd(channels, groups if groups is not None else min(8, channels))
        return nn.GroupNorm(max(g, 1), channels)
    raise ValueError(f"Unknown normalisation {name!r}: use one of {', '.join(NORMS)}.")


class ConvNormAct(nn.Sequential):
    """``Conv3d -> norm -> LeakyReLU(0.01)``; padding keeps the size (up to the stride).

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input ``(B, C_in, D, H, W)`` and of the output.
    kernel_size : int
        Cubic kernel size (odd).
    stride : int
        Stride; the output has ``ceil(D / stride)`` voxels per axis.
    norm : str
        Normalisation name, see :func:`make_norm`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        norm: str = "instance",
    ) -> None:
        super().__init__(
            nn.Conv3d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=kernel_size // 2,
                bias=False,
            ),
            make_norm(norm, out_channels),
            nn.LeakyReLU(LEAKY_SLOPE, inplace=True),
        )


class ResidualBlock(nn.Module):
    """Residual block: two 3x3x3 convolutions with normalisation and leaky ReLU.

    ``out = act(norm2(conv2(act(norm1(conv1(x))))) + shortcut(x))`` where the shortcut
    is the identity, or a strided 1x1x1 convolution with normalisation when the channel
    count or the stride changes.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input ``(B, C_in, D, H, W)`` and of the output.
    stride : int
        Stride of the first convolution (2 halves each spatial axis).
    norm : str
        Normalisation name, see :func:`make_norm`.
    kernel_size : int
        Cubic kernel size of the two convolutions.

    Shapes
    ------
    input ``(B, C_in, D, H, W)`` -> output ``(B, C_out, D/stride, H/stride, W/stride)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        norm: str = "instance",
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = nn.Conv3d(
            in_channels, out_channels, kernel_size, stride=stride, padding=pad, bias=False
        )
        self.norm1 = make_norm(norm, out_channels)
        self.conv2 = nn.Conv3d(out_channels, out_channels, kernel_size, padding=pad, bias=False)
        self.norm2 = make_norm(norm, out_channels)
        self.act = nn.LeakyReLU(LEAKY_SLOPE, inplace=True)
        self.shortcut: nn.Module
        if in_channels != out_channels or stride != 1:
            self.shortcut = nn.Sequential(
                nn.Conv3d(in_channels, out_channels, 1, stride=stride, bias=False),
                make_norm(norm, out_channels),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block; ``(B, C_in, D, H, W) -> (B, C_out, D', H', W')``."""
        out = self.act(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.act(out + self.shortcut(x))


class AttentionGate(nn.Module):
    """Additive attention gate that filters a skip connection (Attention U-Net).

    The gating signal ``g`` comes from the coarser decoder level; the skip features
    ``x`` from the encoder at twice its resolution. Both are projected to
    ``inter_channels`` by 1x1x1 convolutions (``x`` with stride 2 so that the two grids
    match), summed, passed through ReLU, a 1x1x1 convolution to one channel and a
    sigmoid. The resulting coefficients ``alpha`` in [0, 1] are upsampled trilinearly
    to the skip's grid and multiply the skip features voxel by voxel.

    Parameters
    ----------
    skip_channels : int
        Channels C_x of the skip features ``x``.
    gating_channels : int
        Channels C_g of the gating signal ``g``.
    inter_channels : int, optional
        Width of the intermediate projection; defaults to ``max(C_x // 2, 1)``.

    Shapes
    ------
    ``x``: ``(B, C_x, D, H, W)``; ``g``: ``(B, C_g, D', H', W')`` with ``D' = ceil(D/2)``
    (any size is accepted: ``g`` is resampled to the projected grid of ``x`` if needed).
    Output: gated skip ``(B, C_x, D, H, W)`` and, on request, ``alpha`` ``(B, 1, D, H, W)``.
    """

    def __init__(
        self, skip_channels: int, gating_channels: int, inter_channels: int | None = None
    ) -> None:
        super().__init__()
        inter = inter_channels if inter_channels is not None else max(skip_channels // 2, 1)
        self.theta_x = nn.Conv3d(skip_channels, inter, kernel_size=2, stride=2, bias=False)
        self.phi_g = nn.Conv3d(gating_channels, inter, kernel_size=1, bias=True)
        self.psi = nn.Conv3d(inter, 1, kernel_size=1, bias=True)

    def coefficients(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Attention coefficients in [0, 1], ``(B, 1, D, H, W)`` on the grid of ``x``."""
        theta = self.theta_x(x)
        phi = self.phi_g(g)
        if phi.shape[2:] != theta.shape[2:]:
            phi = F.interpolate(phi, size=theta.shape[2:], mode="trilinear", align_corners=False)
        alpha = torch.sigmoid(self.psi(F.relu(theta + phi)))
        return F.interpolate(alpha, size=x.shape[2:], mode="trilinear", align_corners=False)

    def forward(
        self, x: torch.Tensor, g: torch.Tensor, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Gate ``x`` by ``g``; returns ``x * alpha`` (and ``alpha`` if asked)."""
        alpha = self.coefficients(x, g)
        gated = x * alpha
        return (gated, alpha) if return_attention else gated


class OutputHead(nn.Conv3d):
    """1x1x1 convolution (with bias) from features to class logits.

    Shapes
    ------
    ``(B, C, D, H, W) -> (B, n_classes, D, H, W)``.
    """

    def __init__(self, in_channels: int, n_classes: int) -> None:
        super().__init__(in_channels, n_classes, kernel_size=1, bias=True)


def halving_weights(n: int) -> tuple[float, ...]:
    """Deep-supervision weights ``2^(n-1), ..., 2, 1`` normalised to sum to 1.

    ``halving_weights(3) == (4/7, 2/7, 1/7)``: the full-resolution output counts most.
    """
    raw = [2.0 ** (n - 1 - i) for i in range(n)]
    total = sum(raw)
    return tuple(w / total for w in raw)
