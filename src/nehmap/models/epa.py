"""UNETR++'s efficient paired attention (EPA) and the transformer block built on it.

EPA (Shaker et al., 2022) on N tokens of C channels with h heads of width d = C / h:
one bias-free Linear gives a shared query and key and two values; a channel branch
attends d x d per head, a spatial branch attends N x P per head after a learned
N x P projection of the key and its value (linear in N). The two are summed.

``layout`` fixes how the spatial branch's ``(B, h, N, d)`` result becomes ``(B, N, C)``:

* ``"clean"`` (nehmap's default): the heads are concatenated per token,
  ``out[b, n, i*d + j] = x_s[b, i, n, j]``;
* ``"reference"``: as the reference implementation (github.com/Amshaker/unetr_plus_plus)
  does, permute to ``(B, d, h, N)`` and read that memory as ``(B, N, C)``. Token n of
  the result then holds values of other tokens and channels. Networks trained with it,
  such as the public UNETR++ checkpoints, give their outputs only with this layout.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from nehmap.models.blocks import ResidualBlock

__all__ = ["EPA_LAYOUTS", "EfficientPairedAttention", "TransformerBlock"]

EPA_LAYOUTS: tuple[str, ...] = ("clean", "reference")
"""Ways to lay out the EPA spatial branch's output (see the module docstring)."""


class EfficientPairedAttention(nn.Module):
    """Efficient paired attention: channel and spatial attention with a shared q/k.

    Parameters
    ----------
    n_tokens : int
        Number of tokens N (voxels of the stage's grid); the spatial projection has N rows.
    channels : int
        Token width C (divisible by ``num_heads``).
    proj_size : int
        P, the number of projected tokens of the spatial branch.
    num_heads : int
        Number of heads h (head width d = C / h).
    attn_dropout : float
        Dropout on both attention matrices.
    layout : str
        ``"clean"`` or ``"reference"``: how the spatial branch's heads become
        ``(B, N, C)`` (see the module docstring).

    Shapes
    ------
    ``(B, N, C) -> (B, N, C)``. With ``return_attention=True`` also the channel
    attention ``(B, h, d, d)`` and the spatial attention ``(B, h, N, P)``.
    """

    def __init__(
        self,
        n_tokens: int,
        channels: int,
        proj_size: int,
        num_heads: int = 4,
        attn_dropout: float = 0.1,
        layout: str = "clean",
    ) -> None:
        super().__init__()
        if layout not in EPA_LAYOUTS:
            raise ValueError(f"Unknown EPA layout {layout!r}: use one of {', '.join(EPA_LAYOUTS)}.")
        if channels % num_heads:
            raise ValueError(f"channels ({channels}) must be divisible by num_heads ({num_heads}).")
        self.n_tokens = n_tokens
        self.num_heads = num_heads
        self.layout = layout
        self.qkvv = nn.Linear(channels, 4 * channels, bias=False)
        bound = 1.0 / math.sqrt(proj_size)
        self.projection = nn.Parameter(torch.empty(n_tokens, proj_size).uniform_(-bound, bound))
        self.temperature_channel = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.temperature_spatial = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.dropout_channel = nn.Dropout(attn_dropout)
        self.dropout_spatial = nn.Dropout(attn_dropout)

    def forward(
        self, x: torch.Tensor, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Attend; ``(B, N, C) -> (B, N, C)`` (plus the two attention maps if asked)."""
        b, n, c = x.shape
        if n != self.n_tokens:
            raise ValueError(f"EPA built for {self.n_tokens} tokens got {n}.")
        h = self.num_heads
        # (B, N, 4C) -> 4 x (B, h, d, N)
        q, k, v_c, v_s = self.qkvv(x).reshape(b, n, 4, h, c // h).permute(2, 0, 3, 4, 1)
        k_proj = torch.matmul(k, self.projection)  # (B, h, d, P)
        v_proj = torch.matmul(v_s, self.projection)  # (B, h, d, P)
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)

        attn_c = (q @ k.transpose(-2, -1) * self.temperature_channel).softmax(dim=-1)
        x_c = self.dropout_channel(attn_c) @ v_c  # (B, h, d, N)

        attn_s = (q.transpose(-2, -1) @ k_proj * self.temperature_spatial).softmax(dim=-1)
        x_s = self.dropout_spatial(attn_s) @ v_proj.transpose(-2, -1)  # (B, h, N, d)

        if self.layout == "reference":  # (B, d, h, N) memory read as (B, N, C)
            x_s = x_s.permute(0, 3, 1, 2).reshape(b, n, c)
        else:  # heads concatenated per token
            x_s = x_s.transpose(1, 2).reshape(b, n, c)
        out = x_c.permute(0, 3, 1, 2).reshape(b, n, c) + x_s
        return (out, attn_c, attn_s) if return_attention else out


class TransformerBlock(nn.Module):
    """UNETR++ transformer block on a volume: EPA with layer scale, then a conv block.

    Parameters
    ----------
    grid : tuple of 3 ints
        Spatial size (D, H, W) of the volumes it takes; N = D * H * W tokens.
    channels : int
        Channels C.
    proj_size : int
        Spatial projection size P of the EPA.
    num_heads : int
        EPA heads.
    attn_dropout : float
        EPA attention dropout.
    conv_dropout : float
        Dropout3d before the final 1x1x1 convolution.
    epa_layout : str
        EPA spatial-branch layout, ``"clean"`` or ``"reference"``.

    Shapes
    ------
    ``(B, C, D, H, W) -> (B, C, D, H, W)``.
    """

    def __init__(
        self,
        grid: tuple[int, int, int],
        channels: int,
        proj_size: int,
        num_heads: int = 4,
        attn_dropout: float = 0.1,
        conv_dropout: float = 0.1,
        epa_layout: str = "clean",
    ) -> None:
        super().__init__()
        n_tokens = math.prod(grid)
        self.norm = nn.LayerNorm(channels)
        self.gamma = nn.Parameter(torch.full((channels,), 1e-6))
        self.pos_embed = nn.Parameter(torch.zeros(1, n_tokens, channels))
        self.attention = EfficientPairedAttention(
            n_tokens, channels, proj_size, num_heads, attn_dropout, epa_layout
        )
        self.conv_block = ResidualBlock(channels, channels, norm="batch")
        self.conv_out = nn.Sequential(nn.Dropout3d(conv_dropout), nn.Conv3d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block; ``(B, C, D, H, W) -> (B, C, D, H, W)``."""
        b, c = x.shape[:2]
        tokens = x.flatten(2).transpose(1, 2) + self.pos_embed  # (B, N, C)
        tokens = tokens + self.gamma * self.attention(self.norm(tokens))
        vol = tokens.transpose(1, 2).reshape(x.shape)
        return vol + self.conv_out(self.conv_block(vol))
