"""The interface every nehmap segmentation network implements.

A network maps ``(B, in_channels, D, H, W)`` to logits ``(B, n_classes, D, H, W)`` in
eval mode. In training mode with deep supervision enabled it returns a list of logits,
full resolution first, then the coarser outputs in decreasing resolution; output ``i``
is ``deep_supervision_scales[i]`` times coarser than the input along every axis and its
loss is weighted by ``deep_supervision_weights[i]`` (the weights sum to 1).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn


def as_triple(value: int | Sequence[int], what: str) -> tuple[int, int, int]:
    """``value`` as three positive ints (one int is repeated on the three axes).

    Raises
    ------
    ValueError
        If ``value`` is not one or three positive integers.
    """
    if isinstance(value, int | float):
        items = [value] * 3
    else:
        items = list(value)
    if len(items) != 3 or any(int(v) != v or int(v) < 1 for v in items):
        raise ValueError(f"{what} must be one or three positive integers, got {value!r}.")
    return (int(items[0]), int(items[1]), int(items[2]))


def jsonable(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(config))


class SegmentationNetwork(nn.Module):
    """Base class of nehmap's networks: configuration and output conventions.

    Attributes
    ----------
    config : dict
        The constructor arguments, JSON-serialisable; ``type(self)(**config)`` rebuilds
        the same architecture. Model cards store it.
    in_channels : int
        Input channels (4: t1, t1c, t2, flair).
    n_classes : int
        Output channels (classes) of the logits.
    patch_size : tuple of int
        Spatial size of the training patches and of the sliding-window inference
        windows. Some networks accept only this size (see :meth:`check_input`).
    deep_supervision : bool
        Whether training-mode calls return the list of multi-resolution logits.
    deep_supervision_weights : tuple of float
        Loss weight of each output of the list (sum 1, full resolution first).
    deep_supervision_scales : tuple of int
        Down-sampling factor of each output of the list relative to the input.
    """

    config: dict[str, Any]
    in_channels: int
    n_classes: int
    patch_size: tuple[int, int, int]
    deep_supervision: bool
    deep_supervision_weights: tuple[float, ...]
    deep_supervision_scales: tuple[int, ...]

    def n_parameters(self, trainable_only: bool = False) -> int:
        """Number of parameters (all, or only those with ``requires_grad``)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def check_input(self, x: torch.Tensor) -> None:
        """Check that ``x`` is ``(B, in_channels, D, H, W)``.

        Raises
        ------
        ValueError
            Naming the expected and the given shape.
        """
        if x.ndim != 5:
            raise ValueError(
                f"{type(self).__name__} expects a 5D input (B, C, D, H, W), "
                f"got shape {tuple(x.shape)}."
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} expects {self.in_channels} input channels, "
                f"got {x.shape[1]} (input shape {tuple(x.shape)})."
            )

    def no_weight_decay(self) -> set[str]:
        """Names of parameters that should be excluded from weight decay."""
        return set()
