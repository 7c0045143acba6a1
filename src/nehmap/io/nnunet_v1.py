"""Reading nnU-Net v1 checkpoint files (``*.model``) without running pickled code.

nnU-Net v1 saves ``torch.save({"epoch": ..., "state_dict": ..., "optimizer_state_dict":
..., "plot_stuff": ..., "best_stuff": ...})``. Only the ``state_dict`` is needed. The file
is a pickle, so it is read with ``torch.load(weights_only=True)``: tensors, containers,
plain numbers, and numpy scalars and dtypes (the training curves are numpy floats);
any other object in the file refuses the load instead of running its code.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from nehmap.errors import NehmapInputError


class WeightsImportError(NehmapInputError):
    """A checkpoint file cannot be imported (unreadable, or not this architecture)."""


def read_nnunet_v1_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The ``state_dict`` of an nnU-Net v1 checkpoint (``*.model``), without running code.

    The file is read with ``torch.load(weights_only=True)``: tensors, containers and
    plain numbers only, plus numpy scalars and dtypes (nnU-Net v1 keeps its training
    curves as numpy floats). A leading ``module.`` (saved from DistributedDataParallel)
    is removed from the names.

    Raises
    ------
    WeightsImportError
        Naming the file: missing, not a torch checkpoint, holding other objects, or
        without a ``state_dict`` of tensors.
    """
    p = Path(path)
    if not p.is_file():
        raise WeightsImportError(p, "checkpoint file not found.", "Give the path of a .model file.")
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            data = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError...
        raise WeightsImportError(
            p,
            f"cannot be read as a torch checkpoint of plain tensors and numbers: {exc}",
            "Give an nnU-Net v1 .model file (a torch.save of a dict with 'state_dict').",
        ) from None
    state = data.get("state_dict") if isinstance(data, dict) else None
    if not isinstance(state, Mapping):
        found = sorted(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise WeightsImportError(
            p,
            f"holds no 'state_dict' (found: {found}).",
            "nnU-Net v1 saves the network's weights under 'state_dict' in its .model files.",
        )
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise WeightsImportError(
                p, f"state_dict entry {key!r} is a {type(value).__name__}, not a tensor."
            )
        out[str(key).removeprefix("module.")] = value
    return out


def _numpy_globals() -> list[Any]:
    """numpy scalar and dtype reconstructors, under their numpy 1 and numpy 2 names."""
    import numpy as np

    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar  # type: ignore[no-redef]
    dtypes = {
        type(np.dtype(t)) for t in ("float64", "float32", "float16", "int64", "int32", "bool")
    }
    return [
        scalar,
        (scalar, "numpy.core.multiarray.scalar"),
        (scalar, "numpy._core.multiarray.scalar"),
        np.dtype,
        *dtypes,
    ]
