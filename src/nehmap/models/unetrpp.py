"""UNETR++: a hierarchical encoder of efficient paired-attention (EPA) transformer blocks
with a convolutional stem and a transformer decoder (Shaker et al., 2022).

Layout (``S = len(feature_sizes)`` stages; reference tumour configuration in brackets)::

    input (B, C_in, *patch)                                         [4 x 128^3]
      stem: conv kernel = stride = ``stem_stride``, GroupNorm  -> f_0 at patch/stem
                                                                     [32 x 32^3]
      stage 0: ``depths[0]`` transformer blocks on N_0 tokens        [3 blocks, 32^3 tokens]
      stage i: conv k2 s2 + GroupNorm (f_{i-1} -> f_i), ``depths[i]`` blocks
                                                                     [64 x 16^3, 128 x 8^3,
                                                                      256 x 4^3]
    decoder level i = S-2 ... 0: transposed conv k2 s2 (f_{i+1} -> f_i), add the encoder
      output of stage i, ``decoder_depths[i]`` transformer blocks
    full resolution: transposed conv (kernel = stride = stem) f_0 -> f_hr, plus a
      residual conv block on the raw input (C_in -> f_hr, instance norm), then a
      residual block f_hr -> f_hr and a 1x1x1 conv to the logits       [16 channels]

Transformer block (on a volume ``(B, C, D, H, W)`` seen as N = D*H*W tokens)::

    t = tokens + positional embedding (learned, zero-initialised, N x C)
    t = t + gamma * EPA(LayerNorm(t))            gamma per channel, initialised 1e-6
    v = t as a volume;  out = v + Conv1x1(Dropout3d(0.1)(ResBlock_BN(v)))

EPA (efficient paired attention), C channels, h heads of width d = C / h:

* one bias-free Linear C -> 4C gives the shared query q, shared key k, the channel
  branch's value v_c and the spatial branch's value v_s;
* channel branch: q, k L2-normalised along the tokens; ``softmax(q k^T * t1)`` is a
  d x d matrix per head, applied to v_c;
* spatial branch: one learned N x P matrix projects k (not normalised) and v_s from N
  tokens to P; ``softmax(q_n^T k_p * t2)`` is N x P per head, times ``v_p^T`` gives
  N x d. Cost and memory are linear in N;
* the temperatures t1, t2 are learned per head (initialised 1, excluded from weight
  decay, see :meth:`UNETRPP.no_weight_decay`); attention dropout 0.1; the two branches
  are summed.

``epa_layout`` says how the spatial branch's ``(B, h, N, d)`` output becomes
``(B, N, C)``. ``"clean"`` (nehmap's default) concatenates the heads per token. The
reference implementation (``"reference"``) permutes it to ``(B, d, h, N)`` and
reshapes that memory to ``(B, N, C)``, which mixes tokens and channels; networks
trained there (the public UNETR++ checkpoints) need it to give their outputs. The two
layouts have the same parameters; only this reshape differs.

The projection matrices and positional embeddings have N rows, so the weights are tied
to ``patch_size``: the network refuses inputs of any other spatial size (use
sliding-window inference with ``model.patch_size``).

Deep supervision (training mode): logits at full resolution, at decoder level 0
(1/stem) and at decoder level 1 (1/(2 stem)), weights 4/7, 2/7, 1/7 (halving for
other ``n_outputs``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from nehmap.models.base import SegmentationNetwork, as_triple
from nehmap.models.blocks import NORMS, OutputHead, ResidualBlock, halving_weights
from nehmap.models.epa import EPA_LAYOUTS, EfficientPairedAttention, TransformerBlock  # noqa: F401
from nehmap.models.registry import CONSENSUS_CLASSES, TISSUE_CLASSES, register


def unetrpp_reference_config(n_classes: int = 5, epa_layout: str = "clean") -> dict[str, Any]:
    """Constructor arguments of the UNETR++ tumour configuration (about 42.6 M parameters).

    Input 4 x 128^3, stem kernel/stride 4, features 32/64/128/256, 3 transformer blocks
    per stage and decoder level, 4 heads, projection sizes 64/64/64/32, 16 features at
    full resolution. The original has 4 outputs (background + 3 BraTS regions); nehmap's
    default is 5 (background, NC, ED, NEH, ET). ``epa_layout="reference"`` gives the
    reference implementation's EPA reshape (for its checkpoints); nehmap's default is
    ``"clean"``.
    """
    return {
        "in_channels": 4,
        "n_classes": n_classes,
        "patch_size": [128, 128, 128],
        "stem_stride": 4,
        "feature_sizes": [32, 64, 128, 256],
        "depths": [3, 3, 3, 3],
        "decoder_depths": [3, 3, 3],
        "num_heads": 4,
        "proj_sizes": [64, 64, 64, 32],
        "decoder_proj_sizes": [64, 64, 64],
        "highres_features": 16,
        "attn_dropout": 0.1,
        "conv_dropout": 0.1,
        "epa_layout": epa_layout,
    }


UNETRPP_PRESETS: dict[str, dict[str, Any]] = {
    "demo": {
        "patch_size": [64, 64, 64],
        "stem_stride": 4,
        "feature_sizes": [16, 32, 64, 128],
        "depths": [1, 1, 1, 1],
        "decoder_depths": [1, 1, 1],
        "num_heads": 4,
        "proj_sizes": [32, 32, 32, 8],
        "decoder_proj_sizes": [32, 32, 32],
        "highres_features": 8,
    },
    "paper": {k: v for k, v in unetrpp_reference_config().items() if k != "n_classes"},
    "reference": {
        k: v
        for k, v in unetrpp_reference_config(epa_layout="reference").items()
        if k != "n_classes"
    },
}
"""Presets: ``demo`` trains on a CPU at 64^3; ``paper`` is the tumour configuration with
nehmap's clean EPA layout; ``reference`` is the same with the reference implementation's
EPA layout, for its checkpoints (``nehmap import-weights``)."""


def _per_stage(value: int | Sequence[int], n: int, what: str, minimum: int = 1) -> list[int]:
    items = [int(value)] * n if isinstance(value, int) else [int(v) for v in value]
    if len(items) != n or any(v < minimum for v in items):
        raise ValueError(f"{what} must be one int >= {minimum} or {n} of them, got {value!r}.")
    return items


class UNETRPP(SegmentationNetwork):
    """UNETR++ segmentation network (see the module docstring for the layout).

    Parameters
    ----------
    patch_size : int or sequence of 3 ints
        Required. The only spatial input size accepted; a multiple of
        ``stem_stride * 2^(S-1)``.
    in_channels : int
        Input channels (4: t1, t1c, t2, flair).
    n_classes : int
        Output classes (5: background, NC, ED, NEH, ET).
    stem_stride : int
        Kernel size and stride of the stem convolution (4: 128^3 -> 32^3 tokens).
    feature_sizes : sequence of int
        Channels of the S encoder stages.
    depths : int or sequence of int
        Transformer blocks per encoder stage.
    decoder_depths : int or sequence of int, optional
        Transformer blocks per decoder level (S - 1 values, level 0 first); default
        ``depths[:-1]``.
    num_heads : int
        EPA heads in every block.
    proj_sizes : int or sequence of int
        EPA spatial projection size P per encoder stage (at most the stage's tokens).
    decoder_proj_sizes : int or sequence of int, optional
        P per decoder level; default ``proj_sizes[:-1]``.
    highres_features : int, optional
        Channels of the full-resolution path; default ``feature_sizes[0] // 2``.
    attn_dropout : float
        Dropout on the attention matrices.
    conv_dropout : float
        Dropout3d in the transformer blocks' convolutional part.
    norm : str
        Normalisation of the full-resolution residual blocks (``"instance"``).
    deep_supervision : bool
        Return multi-resolution logits in training mode.
    n_outputs : int
        Deep-supervision outputs including the full-resolution one (1 to S).
    epa_layout : str
        ``"clean"`` (default: heads concatenated) or ``"reference"`` (the reference
        implementation's reshape, needed by its checkpoints; see the module docstring).

    Shapes
    ------
    ``(B, in_channels, *patch_size) -> (B, n_classes, *patch_size)``; in training mode
    with deep supervision a list ``[full, 1/stem, 1/(2 stem), ...]``.
    """

    def __init__(
        self,
        patch_size: int | Sequence[int],
        in_channels: int = 4,
        n_classes: int = 5,
        stem_stride: int = 4,
        feature_sizes: Sequence[int] = (32, 64, 128, 256),
        depths: int | Sequence[int] = 3,
        decoder_depths: int | Sequence[int] | None = None,
        num_heads: int = 4,
        proj_sizes: int | Sequence[int] = (64, 64, 64, 32),
        decoder_proj_sizes: int | Sequence[int] | None = None,
        highres_features: int | None = None,
        attn_dropout: float = 0.1,
        conv_dropout: float = 0.1,
        norm: str = "instance",
        deep_supervision: bool = True,
        n_outputs: int = 3,
        epa_layout: str = "clean",
    ) -> None:
        super().__init__()
        feats = [int(f) for f in feature_sizes]
        n_stages = len(feats)
        if n_stages < 2 or any(f < 1 or f % num_heads for f in feats):
            raise ValueError(
                f"feature_sizes must hold at least 2 sizes divisible by num_heads ({num_heads}), "
                f"got {list(feature_sizes)}."
            )
        if norm.lower() not in NORMS:
            raise ValueError(f"Unknown normalisation {norm!r}: use one of {', '.join(NORMS)}.")
        if epa_layout not in EPA_LAYOUTS:
            raise ValueError(
                f"Unknown epa_layout {epa_layout!r}: use one of {', '.join(EPA_LAYOUTS)}."
            )
        if not (0.0 <= attn_dropout <= 1.0 and 0.0 <= conv_dropout <= 1.0):
            raise ValueError("dropout rates must be between 0 and 1.")
        patch = as_triple(patch_size, "patch_size")
        divisor = stem_stride * 2 ** (n_stages - 1)
        if stem_stride < 1 or any(p % divisor for p in patch):
            raise ValueError(
                f"patch_size {patch} must be a multiple of stem_stride * 2^(stages-1) = {divisor}."
            )
        enc_depths = _per_stage(depths, n_stages, "depths")
        dec_depths = _per_stage(
            enc_depths[:-1] if decoder_depths is None else decoder_depths,
            n_stages - 1,
            "decoder_depths",
        )
        enc_proj = _per_stage(proj_sizes, n_stages, "proj_sizes")
        dec_proj = _per_stage(
            enc_proj[:-1] if decoder_proj_sizes is None else decoder_proj_sizes,
            n_stages - 1,
            "decoder_proj_sizes",
        )
        grids = [tuple(p // (stem_stride * 2**i) for p in patch) for i in range(n_stages)]
        tokens = [math.prod(g) for g in grids]
        for where, sizes in (("proj_sizes", enc_proj), ("decoder_proj_sizes", dec_proj)):
            for i, p in enumerate(sizes):
                if p > tokens[i]:
                    raise ValueError(
                        f"{where}[{i}] = {p} exceeds the {tokens[i]} tokens of stage {i} "
                        f"(grid {grids[i]}); use at most {tokens[i]}."
                    )
        hr = feats[0] // 2 if highres_features is None else int(highres_features)
        if hr < 1:
            raise ValueError(f"highres_features must be >= 1, got {hr}.")
        n_out = max(1, min(int(n_outputs), n_stages))

        self.config = {
            "patch_size": list(patch),
            "in_channels": in_channels,
            "n_classes": n_classes,
            "stem_stride": stem_stride,
            "feature_sizes": feats,
            "depths": enc_depths,
            "decoder_depths": dec_depths,
            "num_heads": num_heads,
            "proj_sizes": enc_proj,
            "decoder_proj_sizes": dec_proj,
            "highres_features": hr,
            "attn_dropout": attn_dropout,
            "conv_dropout": conv_dropout,
            "norm": norm,
            "deep_supervision": deep_supervision,
            "n_outputs": n_out,
            "epa_layout": epa_layout,
        }
        self.in_channels = in_channels
        self.n_classes = n_classes
        self.patch_size = patch
        self.grids = grids
        self.deep_supervision = deep_supervision
        self.deep_supervision_weights = halving_weights(n_out)
        self.deep_supervision_scales = (1,) + tuple(stem_stride * 2**i for i in range(n_out - 1))

        def blocks(grid: tuple[int, ...], c: int, p: int, depth: int) -> nn.Sequential:
            return nn.Sequential(
                *(
                    TransformerBlock(grid, c, p, num_heads, attn_dropout, conv_dropout, epa_layout)  # type: ignore[arg-type]
                    for _ in range(depth)
                )
            )

        self.stem = nn.Sequential(
            nn.Conv3d(in_channels, feats[0], stem_stride, stride=stem_stride, bias=False),
            nn.GroupNorm(math.gcd(in_channels, feats[0]), feats[0]),
        )
        self.downsamples = nn.ModuleList(
            nn.Sequential(
                nn.Conv3d(feats[i - 1], feats[i], 2, stride=2, bias=False),
                nn.GroupNorm(math.gcd(feats[i - 1], feats[i]), feats[i]),
            )
            for i in range(1, n_stages)
        )
        self.encoder = nn.ModuleList(
            blocks(grids[i], feats[i], enc_proj[i], enc_depths[i]) for i in range(n_stages)
        )
        self.upsamples = nn.ModuleList(
            nn.ConvTranspose3d(feats[i + 1], feats[i], 2, stride=2, bias=False)
            for i in range(n_stages - 1)
        )
        self.decoder = nn.ModuleList(
            blocks(grids[i], feats[i], dec_proj[i], dec_depths[i]) for i in range(n_stages - 1)
        )
        self.input_block = ResidualBlock(in_channels, hr, norm=norm)
        self.final_upsample = nn.ConvTranspose3d(
            feats[0], hr, stem_stride, stride=stem_stride, bias=False
        )
        self.final_block = ResidualBlock(hr, hr, norm=norm)
        self.head = OutputHead(hr, n_classes)
        self.aux_heads = nn.ModuleList(
            OutputHead(feats[i], n_classes) for i in range(n_out - 1) if deep_supervision
        )
        self.apply(_init_weights)

    def check_input(self, x: torch.Tensor) -> None:
        """Check that ``x`` is ``(B, in_channels, *patch_size)``.

        Raises
        ------
        ValueError
            Naming the expected and the given size, and saying that larger volumes go
            through sliding-window inference with the model's patch size.
        """
        super().check_input(x)
        size = tuple(int(s) for s in x.shape[2:])
        if size != self.patch_size:
            raise ValueError(
                f"UNETR++ takes inputs of exactly its patch size {self.patch_size}, got "
                f"spatial size {size} (input shape {tuple(x.shape)}). Its spatial "
                "projections and positional embeddings are tied to the patch size: use "
                f"sliding-window inference with the model's patch size {self.patch_size} "
                "(padding volumes smaller than the patch)."
            )

    def no_weight_decay(self) -> set[str]:
        """Names of the EPA temperatures (learned per head, not decayed)."""
        return {n for n, _ in self.named_parameters() if ".temperature_" in n}

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Logits ``(B, n_classes, *patch)`` (a list in training with deep supervision)."""
        self.check_input(x)
        h = self.encoder[0](self.stem(x))
        skips = [h]
        for down, stage in zip(self.downsamples, self.encoder[1:], strict=True):
            h = stage(down(h))
            skips.append(h)
        decoded: list[torch.Tensor] = [h] * len(self.decoder)
        for i in reversed(range(len(self.decoder))):
            h = self.decoder[i](self.upsamples[i](h) + skips[i])
            decoded[i] = h
        full = self.final_block(self.final_upsample(h) + self.input_block(x))
        logits = self.head(full)
        if not (self.training and self.deep_supervision):
            return logits
        return [logits] + [head(decoded[i]) for i, head in enumerate(self.aux_heads)]


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


register(
    "unetrpp",
    description="UNETR++: EPA transformer encoder/decoder, full-resolution conv skip",
    presets=UNETRPP_PRESETS,
    class_names=TISSUE_CLASSES,
)(UNETRPP)


@register(
    "unetrpp-consensus",
    description="UNETR++ for the two-level NEH consensus map (background, low, high)",
    presets=UNETRPP_PRESETS,
    class_names=CONSENSUS_CLASSES,
    class_labels=(0, 3, 3),
    label_scheme="neh-consensus",
)
def unetrpp_consensus(**kwargs: Any) -> UNETRPP:
    """UNETR++ with three outputs: background, low-probability NEH, high-probability NEH.

    The output class index equals the value of the two-level consensus map (0, 1, 2)
    of :mod:`nehmap.fusion`. Takes :class:`UNETRPP`'s arguments; ``n_classes`` is 3.
    """
    n_classes = kwargs.setdefault("n_classes", 3)
    if n_classes != 3:
        raise ValueError(
            f"unetrpp-consensus has 3 outputs (background, NEH-low, NEH-high), got "
            f"n_classes={n_classes}; use 'unetrpp' for other class sets."
        )
    return UNETRPP(**kwargs)
