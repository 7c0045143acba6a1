"""PAUNet: a 3D U-Net with residual encoder stages, filtered (attention-gated) skip
connections and a high-resolution decoding branch.

Layout (``n_stages = S``; features ``f_i = min(base_features * 2^i, max_features)``)::

    input (B, C_in, D, H, W)
      |-- encoder stage 0: residual blocks C_in -> f_0, full resolution ---------- skip 0
      |-- encoder stage i: residual blocks, the first with stride 2, f_i, 1/2^i -- skip i
      '-- stage S-1 is the bottleneck
    decoder level i (from S-2 down to 0):
      up = transposed conv (k2 s2) of the level below, f_{i+1} -> f_i
      skip i filtered by an attention gate whose gating signal is the level below
      residual blocks on concat(filtered skip, up): 2 f_i -> f_i
    high-resolution branch: residual blocks on the raw input, C_in -> f_hr, full
      resolution, never down-sampled, so thin structures (NEH is a rim a few mm thick)
      reach the output undiluted
    fusion: 3x3x3 conv on concat(decoder level 0, high-resolution branch) -> f_0
    output: 1x1x1 conv -> n_classes logits (B, n_classes, D, H, W)

Deep supervision (training mode): ``[full, 1/2, 1/4, ...]`` resolution logits from the
fused output and decoder levels 1, 2, ...; weights halve from level to level and sum to
1 (3 outputs: 4/7, 2/7, 1/7).

The network is fully convolutional: it accepts any spatial size that is a multiple of
``2^(S-1)``; ``patch_size`` is the training patch and the default inference window.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from nehmap.models.base import SegmentationNetwork, as_triple
from nehmap.models.blocks import (
    NORMS,
    AttentionGate,
    ConvNormAct,
    OutputHead,
    ResidualBlock,
    halving_weights,
)
from nehmap.models.registry import TISSUE_CLASSES, register

PAUNET_PRESETS: dict[str, dict[str, Any]] = {
    "demo": {
        "base_features": 8,
        "n_stages": 4,
        "blocks_per_stage": 1,
        "decoder_blocks": 1,
        "max_features": 64,
        "highres_features": 4,
        "patch_size": 64,
    },
    "paper": {
        "base_features": 32,
        "n_stages": 5,
        "blocks_per_stage": (1, 2, 2, 2, 2),
        "decoder_blocks": 1,
        "max_features": 320,
        "highres_features": 16,
        "patch_size": 128,
    },
}
"""Presets: ``demo`` trains on a CPU at 64^3, ``paper`` is the GPU configuration (128^3)."""


def _per_stage(value: int | Sequence[int], n: int, what: str) -> tuple[int, ...]:
    items = [int(value)] * n if isinstance(value, int) else [int(v) for v in value]
    if len(items) != n or any(v < 1 for v in items):
        raise ValueError(f"{what} must be one positive int or {n} of them, got {value!r}.")
    return tuple(items)


@register(
    "paunet",
    description="3D residual U-Net, attention-gated skips, high-resolution branch",
    presets=PAUNET_PRESETS,
    class_names=TISSUE_CLASSES,
)
class PAUNet(SegmentationNetwork):
    """PAUNet segmentation network (see the module docstring for the layout).

    Parameters
    ----------
    in_channels : int
        Input channels (4: t1, t1c, t2, flair).
    n_classes : int
        Output classes (5: background, NC, ED, NEH, ET).
    base_features : int
        Features of the first stage; doubled at each stage up to ``max_features``.
    n_stages : int
        Encoder stages including the bottleneck (>= 2); the input is down-sampled
        ``n_stages - 1`` times.
    blocks_per_stage : int or sequence of int
        Residual blocks per encoder stage (one value or one per stage).
    decoder_blocks : int
        Residual blocks per decoder level.
    max_features : int
        Upper bound on the feature count of any stage.
    highres_features : int, optional
        Width of the high-resolution branch; default ``max(base_features // 2, 4)``;
        0 disables the branch.
    highres_blocks : int
        Residual blocks in the high-resolution branch.
    attention_gates : bool
        Filter skip connections with attention gates (False: plain concatenation).
    norm : str
        ``"instance"`` (default), ``"batch"`` or ``"group"``.
    deep_supervision : bool
        Return multi-resolution logits in training mode.
    n_outputs : int
        Number of deep-supervision outputs including the full-resolution one (at most
        ``n_stages - 1``).
    patch_size : int or sequence of 3 ints
        Training patch / inference window; must be a multiple of ``2^(n_stages-1)``.

    Shapes
    ------
    ``(B, in_channels, D, H, W) -> (B, n_classes, D, H, W)``; in training mode with deep
    supervision a list whose item ``i`` is ``(B, n_classes, D/2^i, H/2^i, W/2^i)``.
    """

    def __init__(
        self,
        in_channels: int = 4,
        n_classes: int = 5,
        base_features: int = 32,
        n_stages: int = 5,
        blocks_per_stage: int | Sequence[int] = 2,
        decoder_blocks: int = 1,
        max_features: int = 320,
        highres_features: int | None = None,
        highres_blocks: int = 1,
        attention_gates: bool = True,
        norm: str = "instance",
        deep_supervision: bool = True,
        n_outputs: int = 3,
        patch_size: int | Sequence[int] = 128,
    ) -> None:
        super().__init__()
        if n_stages < 2:
            raise ValueError(f"n_stages must be at least 2, got {n_stages}.")
        if norm.lower() not in NORMS:
            raise ValueError(f"Unknown normalisation {norm!r}: use one of {', '.join(NORMS)}.")
        if in_channels < 1 or n_classes < 1 or base_features < 1 or decoder_blocks < 1:
            raise ValueError("in_channels, n_classes, base_features, decoder_blocks must be >= 1.")
        blocks = _per_stage(blocks_per_stage, n_stages, "blocks_per_stage")
        hr = max(base_features // 2, 4) if highres_features is None else int(highres_features)
        if hr < 0 or highres_blocks < 1:
            raise ValueError("highres_features must be >= 0 and highres_blocks >= 1.")
        patch = as_triple(patch_size, "patch_size")
        self.divisor = 2 ** (n_stages - 1)
        if any(p % self.divisor for p in patch):
            raise ValueError(
                f"patch_size {patch} must be a multiple of {self.divisor} "
                f"(2^(n_stages-1) with n_stages={n_stages})."
            )
        n_out = max(1, min(int(n_outputs), n_stages - 1))

        self.config = {
            "in_channels": in_channels,
            "n_classes": n_classes,
            "base_features": base_features,
            "n_stages": n_stages,
            "blocks_per_stage": list(blocks),
            "decoder_blocks": decoder_blocks,
            "max_features": max_features,
            "highres_features": hr,
            "highres_blocks": highres_blocks,
            "attention_gates": attention_gates,
            "norm": norm,
            "deep_supervision": deep_supervision,
            "n_outputs": n_out,
            "patch_size": list(patch),
        }
        self.in_channels = in_channels
        self.n_classes = n_classes
        self.patch_size = patch
        self.deep_supervision = deep_supervision
        self.deep_supervision_weights = halving_weights(n_out)
        self.deep_supervision_scales = tuple(2**i for i in range(n_out))
        feats = [min(base_features * 2**i, max_features) for i in range(n_stages)]
        self.features = tuple(feats)

        self.encoder = nn.ModuleList()
        for i in range(n_stages):
            c_in = in_channels if i == 0 else feats[i - 1]
            stage = [ResidualBlock(c_in, feats[i], stride=1 if i == 0 else 2, norm=norm)]
            stage += [ResidualBlock(feats[i], feats[i], norm=norm) for _ in range(blocks[i] - 1)]
            self.encoder.append(nn.Sequential(*stage))

        self.upsample = nn.ModuleList()
        self.gates = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for i in range(n_stages - 1):
            self.upsample.append(
                nn.ConvTranspose3d(feats[i + 1], feats[i], kernel_size=2, stride=2, bias=False)
            )
            self.gates.append(
                AttentionGate(feats[i], feats[i + 1]) if attention_gates else nn.Identity()
            )
            level = [ResidualBlock(2 * feats[i], feats[i], norm=norm)]
            level += [
                ResidualBlock(feats[i], feats[i], norm=norm) for _ in range(decoder_blocks - 1)
            ]
            self.decoder.append(nn.Sequential(*level))

        self.highres: nn.Module | None = None
        self.fuse: nn.Module | None = None
        if hr > 0:
            branch = [ResidualBlock(in_channels, hr, norm=norm)]
            branch += [ResidualBlock(hr, hr, norm=norm) for _ in range(highres_blocks - 1)]
            self.highres = nn.Sequential(*branch)
            self.fuse = ConvNormAct(feats[0] + hr, feats[0], kernel_size=3, norm=norm)

        self.head = OutputHead(feats[0], n_classes)
        self.aux_heads = nn.ModuleList(
            OutputHead(feats[i], n_classes) for i in range(1, n_out) if deep_supervision
        )

    def check_input(self, x: torch.Tensor) -> None:
        """Check the input shape; spatial sizes must be multiples of ``2^(n_stages-1)``.

        Raises
        ------
        ValueError
            Naming the given shape and the required multiple.
        """
        super().check_input(x)
        bad = [s for s in x.shape[2:] if s % self.divisor]
        if bad:
            raise ValueError(
                f"PAUNet with {len(self.encoder)} stages needs spatial sizes that are multiples "
                f"of {self.divisor}, got {tuple(x.shape[2:])}. Pad the input or use "
                f"sliding-window inference with the model's patch size {self.patch_size}."
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Logits ``(B, n_classes, D, H, W)`` (a list in training with deep supervision)."""
        self.check_input(x)
        skips = []
        h = x
        for stage in self.encoder:
            h = stage(h)
            skips.append(h)
        decoded: list[torch.Tensor] = [h] * len(self.decoder)
        for i in reversed(range(len(self.decoder))):
            up = self.upsample[i](h)
            skip = (
                self.gates[i](skips[i], h) if isinstance(self.gates[i], AttentionGate) else skips[i]
            )
            h = self.decoder[i](torch.cat([skip, up], dim=1))
            decoded[i] = h
        if self.highres is not None and self.fuse is not None:
            h = self.fuse(torch.cat([h, self.highres(x)], dim=1))
        logits = self.head(h)
        if not (self.training and self.deep_supervision):
            return logits
        return [logits] + [head(decoded[i + 1]) for i, head in enumerate(self.aux_heads)]
