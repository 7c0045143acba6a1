"""Checkpoints: safetensors weights plus a JSON model card, written atomically.

A checkpoint called ``models/paunet-neh`` is two files::

    models/paunet-neh.safetensors   the weights (state dict), safetensors format
    models/paunet-neh.json          the model card (:class:`~nehmap.models.card.ModelCard`)

Loading reads the card, builds the network it names, checks the weights file against
the card's sha256 and the network's parameter names and shapes, and loads the tensors.
Nothing is ever unpickled: safetensors holds raw tensors and a JSON header only.

Saving writes both files to hidden temporary files in the target folder, flushes them
to disk, then renames them over the targets (weights first, then the card). If
anything fails, the temporary files are removed and the previous checkpoint of that
name stays as it was (the previous weights are restored if the card cannot be put in
place). A crash between the two renames leaves new weights beside the old card; loading
then reports the sha256 mismatch instead of loading the wrong weights.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from nehmap._version import __version__
from nehmap.errors import NehmapInputError
from nehmap.io.atomic import fsync_dir, sha256_file, temporary_sibling
from nehmap.models.base import jsonable
from nehmap.models.card import ModelCard, ModelCardError
from nehmap.models.registry import UnknownModelError, available_models, create_model

WEIGHTS_SUFFIX = ".safetensors"
CARD_SUFFIX = ".json"
CHECKPOINT_FORMAT = "nehmap-checkpoint"
"""Value of the ``format`` entry of the safetensors metadata."""

_LISTED = 8  # names shown per kind of difference in error messages


class CheckpointError(NehmapInputError):
    """A checkpoint cannot be loaded or saved: missing file, mismatched weights, ..."""


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """The weights and card files of the checkpoint ``path``.

    ``path`` may be the checkpoint's name without suffix (``models/paunet-neh``), its
    ``.safetensors`` file or its ``.json`` card.

    Returns
    -------
    (Path, Path)
        ``(weights, card)``, e.g. ``models/paunet-neh.safetensors`` and
        ``models/paunet-neh.json``.
    """
    p = Path(path)
    if p.suffix in (WEIGHTS_SUFFIX, CARD_SUFFIX):
        p = p.with_suffix("")
    return p.with_name(p.name + WEIGHTS_SUFFIX), p.with_name(p.name + CARD_SUFFIX)


def read_card(path: str | Path) -> ModelCard:
    """Read and validate the model card of the checkpoint ``path`` (no weights loaded).

    Raises
    ------
    CheckpointError
        If the card file does not exist or cannot be read.
    ModelCardError
        If the card is invalid (the message names the file).
    """
    _, card_path = checkpoint_paths(path)
    if not card_path.is_file():
        raise CheckpointError(
            card_path,
            "model card not found.",
            f"A checkpoint is a {WEIGHTS_SUFFIX} weights file plus a {CARD_SUFFIX} card of "
            "the same name.",
        )
    try:
        text = card_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(card_path, f"cannot read the model card: {exc}.") from None
    return ModelCard.from_json(text, card_path)


def _build(card: ModelCard, card_path: Path | None, meta: bool = False) -> nn.Module:
    """The network a card describes (on the meta device if ``meta``)."""
    try:
        with torch.device("meta") if meta else contextlib.nullcontext():
            return create_model(card.architecture, **card.config)
    except UnknownModelError:
        raise CheckpointError(
            card_path,
            f"unknown architecture {card.architecture!r} in the model card.",
            f"Known architectures: {', '.join(available_models())}.",
        ) from None
    except (TypeError, ValueError) as exc:
        raise CheckpointError(
            card_path,
            f"the card's config cannot build a {card.architecture!r} network: {exc}",
        ) from None


def state_differences(expected: dict[str, torch.Tensor], found: dict[str, Any]) -> list[str]:
    """Human-readable differences between two state dicts (tensor names and shapes)."""

    def listing(items: list[str]) -> str:
        more = f", ... ({len(items) - _LISTED} more)" if len(items) > _LISTED else ""
        return ", ".join(items[:_LISTED]) + more

    problems = []
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    shapes = [
        f"{k} is {tuple(found[k].shape)} in the file, {tuple(expected[k].shape)} in the network"
        for k in sorted(set(expected) & set(found))
        if tuple(found[k].shape) != tuple(expected[k].shape)
    ]
    if missing:
        problems.append(f"{len(missing)} missing tensor(s): {listing(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensor(s): {listing(unexpected)}")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatch(es): {listing(shapes)}")
    return problems


def _state_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict as contiguous CPU tensors without shared storage."""
    tensors: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for key, value in model.state_dict().items():
        t = value.detach().to("cpu").contiguous()
        ptr = t.untyped_storage().data_ptr()
        if ptr in seen:
            t = t.clone()
        seen.add(ptr)
        tensors[key] = t
    return tensors


def _write_weights(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    """Write the safetensors file and flush it to disk."""
    save_file(tensors, str(path), metadata=metadata)
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def save_checkpoint(model: nn.Module, card: ModelCard, path: str | Path) -> ModelCard:
    """Save a network's weights (safetensors) and its model card (JSON), atomically.

    Parameters
    ----------
    model : torch.nn.Module
        A network built by :func:`nehmap.models.create_model` (any device).
    card : ModelCard
        Its card, e.g. from :meth:`ModelCard.for_model`. Its architecture and config
        must describe ``model``.
    path : path
        Checkpoint name (``models/paunet-neh``) or its ``.safetensors``/``.json`` file.

    Returns
    -------
    ModelCard
        The card as written: with ``weights_file``, ``weights_sha256``,
        ``n_parameters`` and ``nehmap_version`` filled in.

    Raises
    ------
    ModelCardError
        If the card is invalid or does not describe ``model`` (a network rebuilt from
        the card would have different parameters).
    CheckpointError
        If the path is a folder.
    OSError
        If writing fails; the previous checkpoint of that name is then unchanged.
    """
    weights_path, card_path = checkpoint_paths(path)
    if Path(path).is_dir():
        raise CheckpointError(
            path, "is a folder.", "Give the checkpoint a file name, e.g. models/paunet-neh."
        )
    card.validate(card_path)
    model_config = getattr(model, "config", None)
    if model_config is not None and jsonable(model_config) != jsonable(card.config):
        raise ModelCardError(
            card_path,
            "the card's config does not describe this network "
            f"(card: {card.config}, network: {jsonable(model_config)}).",
            "Build the card with ModelCard.for_model(model, ...).",
        )
    tensors = _state_tensors(model)
    problems = state_differences(_build(card, card_path, meta=True).state_dict(), tensors)
    if problems:
        raise ModelCardError(
            card_path,
            f"a {card.architecture!r} network built from the card would not match this "
            f"network's weights: {'; '.join(problems)}.",
        )

    metadata = {
        "format": CHECKPOINT_FORMAT,
        "architecture": card.architecture,
        "config": json.dumps(card.config, sort_keys=True),
        "nehmap_version": __version__,
    }
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_weights = temporary_sibling(weights_path)
    tmp_card = temporary_sibling(card_path)
    backup: Path | None = None
    try:
        _write_weights(tensors, tmp_weights, metadata)
        final = replace(
            card,
            weights_file=weights_path.name,
            weights_sha256=sha256_file(tmp_weights),
            n_parameters=sum(p.numel() for p in model.parameters()),
            nehmap_version=__version__,
        )
        final.validate(card_path)
        _write_text(tmp_card, final.to_json())
        if weights_path.exists():
            backup = temporary_sibling(weights_path)
            os.link(weights_path, backup)
        os.replace(tmp_weights, weights_path)
        try:
            os.replace(tmp_card, card_path)
        except BaseException:
            if backup is not None:
                os.replace(backup, weights_path)
            else:
                weights_path.unlink(missing_ok=True)
            raise
        fsync_dir(card_path.parent)
    finally:
        for leftover in (tmp_weights, tmp_card, backup):
            if leftover is not None:
                leftover.unlink(missing_ok=True)
    return final


def load_checkpoint(
    path: str | Path, device: str | torch.device = "cpu", verify_sha256: bool = True
) -> tuple[nn.Module, ModelCard]:
    """Load a checkpoint: build the network its card names and load the weights.

    Parameters
    ----------
    path : path
        Checkpoint name (``models/paunet-neh``) or its ``.safetensors``/``.json`` file.
    device : str or torch.device
        Where to put the network.
    verify_sha256 : bool
        Check the weights file against the card's sha256 (recommended).

    Returns
    -------
    (torch.nn.Module, ModelCard)
        The network in eval mode on ``device``, and its card.

    Raises
    ------
    CheckpointError
        Naming the file and the problem: card or weights missing, sha256 mismatch,
        unreadable weights, unknown architecture (listing the known ones), tensors
        missing, unexpected or of the wrong shape.
    ModelCardError
        If the card is invalid.
    """
    card_path = checkpoint_paths(path)[1]
    card = read_card(card_path)
    weights_path = card_path.with_name(card.weights_file or checkpoint_paths(path)[0].name)
    if not weights_path.is_file():
        raise CheckpointError(
            weights_path, "weights file not found.", f"The model card {card_path} refers to it."
        )
    if verify_sha256:
        if not card.weights_sha256:
            raise CheckpointError(
                card_path,
                "the model card has no weights_sha256 to check the weights against.",
                "Save checkpoints with save_checkpoint, or pass verify_sha256=False.",
            )
        found = sha256_file(weights_path)
        if found != card.weights_sha256:
            raise CheckpointError(
                weights_path,
                f"sha256 {found} differs from the {card.weights_sha256} recorded in "
                f"{card_path.name}: the weights were changed, belong to another checkpoint, "
                "or a save was interrupted.",
                "Restore the checkpoint's original files.",
            )
    model = _build(card, card_path)
    try:
        tensors = load_file(str(weights_path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            weights_path, f"cannot read the safetensors weights: {exc}."
        ) from None
    problems = state_differences(model.state_dict(), tensors)
    if problems:
        raise CheckpointError(
            weights_path,
            f"weights do not match the {card.architecture!r} network described by "
            f"{card_path.name}: {'; '.join(problems)}.",
        )
    model.load_state_dict(tensors, strict=True)
    model.to(device)
    model.eval()
    return model, card
