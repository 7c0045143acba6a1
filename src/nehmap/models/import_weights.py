"""Importing UNETR++ weights trained with the reference implementation (nnU-Net v1).

The reference UNETR++ (github.com/Amshaker/unetr_plus_plus) trains inside nnU-Net v1,
which saves ``*.model`` files: a torch pickle of a dict whose ``"state_dict"`` holds the
network's tensors (plus optimiser state and training curves). This module reads such a
file without running any pickled code (``torch.load(weights_only=True)``), renames each
tensor to nehmap's :class:`~nehmap.models.unetrpp.UNETRPP` layout, checks names and
shapes, and writes a nehmap checkpoint (safetensors + model card).

Reference name -> nehmap name (S = 4 stages; ``B`` = a transformer block's suffix)::

    unetr_pp_encoder.downsample_layers.0.0.conv.weight     stem.0.weight
    unetr_pp_encoder.downsample_layers.0.1.{weight,bias}   stem.1.*   (GroupNorm)
    unetr_pp_encoder.downsample_layers.i.0.conv.weight     downsamples.{i-1}.0.weight
    unetr_pp_encoder.downsample_layers.i.1.*               downsamples.{i-1}.1.*
    unetr_pp_encoder.stages.i.j.B                          encoder.i.j.B'
    decoder{l+3}.transp_conv.conv.weight                   upsamples.l.weight
    decoder{l+3}.decoder_block.0.j.B                       decoder.l.j.B'
    decoder2.transp_conv.conv.weight                       final_upsample.weight
    decoder2.decoder_block.0.R                             final_block.R'
    encoder1.R                                             input_block.R'
    out1.conv.conv.*                                       head.*
    out2.conv.conv.*, out3.conv.conv.*                     aux_heads.0.*, aux_heads.1.*

    B: norm.*, gamma, pos_embed -> the same; epa_block.qkvv.weight -> attention.qkvv.weight;
       epa_block.EF -> attention.projection; epa_block.temperature -> .temperature_channel;
       epa_block.temperature2 -> .temperature_spatial; conv51.R -> conv_block.R';
       conv8.1.* -> conv_out.1.*
    R (residual block): convK.conv.weight -> convK.weight (K = 1, 2);
       conv3.conv.weight -> shortcut.0.weight; normK.* -> normK.*; norm3.* -> shortcut.1.*

Every reference tensor has exactly one place. The reference's instance norms (in
``encoder1`` and ``decoder2``) have no affine parameters, nehmap's do: the importer sets
them to weight 1 and bias 0, which makes the two compute the same thing. Everything
else that decides the outputs is the same in both for the tumour configuration
(GroupNorm groups, leaky ReLU 0.01, positional embeddings in every transformer block,
deep-supervision heads on decoder levels 0 and 1), except the EPA spatial-branch
layout: imported networks get ``epa_layout="reference"``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nehmap.io.nnunet_v1 import WeightsImportError, read_nnunet_v1_state_dict
from nehmap.models.card import ModelCard

__all__ = [
    "IMPORTABLE_ARCHITECTURES",
    "WeightsImportError",
    "convert_reference_state",
    "identity_norms",
    "import_unetrpp_weights",
    "read_nnunet_v1_state_dict",
    "reference_key_map",
]

IMPORTABLE_ARCHITECTURES: tuple[str, ...] = ("unetrpp", "unetrpp-consensus")
"""Architectures whose reference key layout :func:`reference_key_map` knows."""

_BLOCK_NAMES: tuple[tuple[str, str], ...] = (
    ("epa_block.qkvv.weight", "attention.qkvv.weight"),
    ("epa_block.EF", "attention.projection"),
    ("epa_block.temperature2", "attention.temperature_spatial"),
    ("epa_block.temperature", "attention.temperature_channel"),
    ("conv8.1.", "conv_out.1."),
    ("conv51.", "conv_block."),
)
_RESIDUAL_NAMES: tuple[tuple[str, str], ...] = (
    ("conv1.conv.", "conv1."),
    ("conv2.conv.", "conv2."),
    ("conv3.conv.", "shortcut.0."),
    ("norm3.", "shortcut.1."),
)


def _back(suffix: str, table: Sequence[tuple[str, str]]) -> str:
    """Translate a nehmap name suffix to the reference's by the first matching prefix."""
    for old, new in table:
        if suffix.startswith(new):
            return old + suffix[len(new) :]
    return suffix


def _block_to_reference(suffix: str) -> str:
    """nehmap transformer-block suffix -> the reference's (``attention.projection`` ->
    ``epa_block.EF``, ``conv_block.conv1.weight`` -> ``conv51.conv1.conv.weight``)."""
    if suffix.startswith("conv_block."):
        return "conv51." + _back(suffix[len("conv_block.") :], _RESIDUAL_NAMES)
    return _back(suffix, _BLOCK_NAMES)


_RULES: tuple[tuple[str, Any], ...] = (
    (r"stem\.0\.weight", lambda m: "unetr_pp_encoder.downsample_layers.0.0.conv.weight"),
    (r"stem\.1\.(.+)", lambda m: f"unetr_pp_encoder.downsample_layers.0.1.{m[1]}"),
    (
        r"downsamples\.(\d+)\.0\.weight",
        lambda m: f"unetr_pp_encoder.downsample_layers.{int(m[1]) + 1}.0.conv.weight",
    ),
    (
        r"downsamples\.(\d+)\.1\.(.+)",
        lambda m: f"unetr_pp_encoder.downsample_layers.{int(m[1]) + 1}.1.{m[2]}",
    ),
    (
        r"encoder\.(\d+)\.(\d+)\.(.+)",
        lambda m: f"unetr_pp_encoder.stages.{m[1]}.{m[2]}.{_block_to_reference(m[3])}",
    ),
    (r"upsamples\.(\d+)\.weight", lambda m: f"decoder{int(m[1]) + 3}.transp_conv.conv.weight"),
    (
        r"decoder\.(\d+)\.(\d+)\.(.+)",
        lambda m: f"decoder{int(m[1]) + 3}.decoder_block.0.{m[2]}.{_block_to_reference(m[3])}",
    ),
    (r"final_upsample\.weight", lambda m: "decoder2.transp_conv.conv.weight"),
    (
        r"final_block\.(.+)",
        lambda m: f"decoder2.decoder_block.0.{_back(m[1], _RESIDUAL_NAMES)}",
    ),
    (r"input_block\.(.+)", lambda m: f"encoder1.{_back(m[1], _RESIDUAL_NAMES)}"),
    (r"head\.(weight|bias)", lambda m: f"out1.conv.conv.{m[1]}"),
    (r"aux_heads\.(\d+)\.(weight|bias)", lambda m: f"out{int(m[1]) + 2}.conv.conv.{m[2]}"),
)


def reference_key_map(model: nn.Module) -> dict[str, str]:
    """Reference tensor name -> nehmap tensor name, for every tensor the reference has,
    in the network's order.

    nehmap's instance-norm affine parameters of the full-resolution residual blocks
    have no reference counterpart and are not in the map (see :func:`identity_norms`).

    Raises
    ------
    ValueError
        If ``model`` is not a 4-stage UNETR++ (the reference has 4 stages), or a tensor
        has no rule (a network this module does not know).
    """
    n_stages = len(getattr(model, "config", {}).get("feature_sizes", ()))
    if n_stages != 4:
        raise ValueError(
            f"the reference UNETR++ has 4 stages; this network has {n_stages}. Import into "
            "a 4-stage configuration (preset 'reference')."
        )
    skip = identity_norms(model)
    mapping: dict[str, str] = {}
    for key in model.state_dict():
        if key in skip:
            continue
        for pattern, build in _RULES:
            m = re.fullmatch(pattern, key)
            if m is not None:
                mapping[build(m)] = key
                break
        else:
            raise ValueError(f"no reference name known for tensor {key!r}.")
    return mapping


def identity_norms(model: nn.Module) -> set[str]:
    """nehmap's tensors that the reference lacks: the affine weight and bias of the
    instance norms of ``input_block`` and ``final_block`` (set to 1 and 0 on import)."""
    names = set()
    for prefix in ("input_block", "final_block"):
        block = getattr(model, prefix)
        for name, module in block.named_modules():
            if isinstance(module, nn.InstanceNorm3d) and module.affine:
                names |= {f"{prefix}.{name}.weight", f"{prefix}.{name}.bias"}
    return names


def convert_reference_state(
    state: Mapping[str, torch.Tensor], model: nn.Module, path: str | Path | None = None
) -> dict[str, torch.Tensor]:
    """A reference-layout state dict renamed to ``model``'s names, checked, complete.

    Parameters
    ----------
    state : mapping
        Reference tensor name -> tensor (from :func:`read_nnunet_v1_state_dict`).
    model : UNETRPP
        The nehmap network the weights are for (its names and shapes are the target).
    path : path, optional
        The checkpoint file, for error messages.

    Returns
    -------
    dict
        nehmap tensor name -> tensor (the model's dtype), including the identity
        instance-norm parameters; ready for ``model.load_state_dict(strict=True)``.

    Raises
    ------
    WeightsImportError
        At the first reference tensor (in the network's order) that is missing from
        the file or has another shape, naming the tensor and both shapes; or naming the
        first tensor of the file the network has no place for.
    """
    mapping = reference_key_map(model)
    target = model.state_dict()
    hint = (
        "Build the network the checkpoint was trained as: the preset (stages, features, "
        "patch size), one class name per output and one modality per input channel."
    )
    out: dict[str, torch.Tensor] = {}
    for ref, key in mapping.items():
        want = tuple(target[key].shape)
        if ref not in state:
            raise WeightsImportError(
                path,
                f"does not hold tensor {ref!r} of shape {want} (nehmap's {key!r}).",
                hint,
            )
        got = tuple(state[ref].shape)
        if got != want:
            raise WeightsImportError(
                path,
                f"tensor {ref!r} has shape {got} in the file; the network needs {want} "
                f"(nehmap's {key!r}).",
                hint,
            )
        out[key] = state[ref].to(target[key].dtype)
    unexpected = [k for k in state if k not in mapping]
    if unexpected:
        first = unexpected[0]
        raise WeightsImportError(
            path,
            f"tensor {first!r} of shape {tuple(state[first].shape)} has no place in the "
            f"network ({len(unexpected)} such tensor(s)).",
            hint,
        )
    for key in identity_norms(model):
        out[key] = (
            torch.ones_like(target[key])
            if key.endswith("weight")
            else torch.zeros_like(target[key])
        )
    return out


def import_unetrpp_weights(
    checkpoint: str | Path,
    out: str | Path,
    *,
    architecture: str = "unetrpp",
    preset: str = "reference",
    class_names: Sequence[str] | None = None,
    class_labels: Sequence[int | None] | None = None,
    modalities: Sequence[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    **card_fields: Any,
) -> ModelCard:
    """Import a reference UNETR++ checkpoint (nnU-Net v1 ``.model``) as a nehmap checkpoint.

    Parameters
    ----------
    checkpoint : path
        The ``.model`` file.
    out : path
        nehmap checkpoint name (writes ``<out>.safetensors`` and ``<out>.json``).
    architecture : str
        ``"unetrpp"`` or ``"unetrpp-consensus"``.
    preset : str
        Preset of the architecture; ``"reference"`` is the tumour configuration with the
        reference EPA layout.
    class_names, class_labels : sequences, optional
        Output classes in order and their nehmap labels (0-4 or None); default the
        architecture's classes. ``n_classes`` is ``len(class_names)``.
    modalities : sequence of str, optional
        Input channels in order (default t1, t1c, t2, flair); ``in_channels`` follows.
    overrides : mapping, optional
        Further constructor arguments (e.g. ``{"epa_layout": "clean"}``).
    **card_fields
        Other card fields (``spacing_mm``, ``training_data``, ``description``...).

    Returns
    -------
    ModelCard
        The card as written; ``extra["imported_from"]`` names the source file.

    Raises
    ------
    WeightsImportError
        For an unreadable file or tensors that do not fit (see
        :func:`convert_reference_state`); nothing is written then.
    """
    from nehmap.models.card import DEFAULT_MODALITIES
    from nehmap.models.checkpoint import save_checkpoint
    from nehmap.models.registry import create_model, get_spec

    if architecture not in IMPORTABLE_ARCHITECTURES:
        raise WeightsImportError(
            None,
            f"cannot import weights for architecture {architecture!r}.",
            f"Importable: {', '.join(IMPORTABLE_ARCHITECTURES)}.",
        )
    spec = get_spec(architecture)
    names = list(class_names) if class_names is not None else list(spec.class_names)
    if class_labels is not None:
        labels = list(class_labels)
    elif class_names is None:
        labels = list(spec.class_labels)
    else:
        raise WeightsImportError(
            None,
            "class names given without their nehmap labels.",
            "Give one nehmap label (0-4, or null) per class name.",
        )
    mods = list(modalities) if modalities is not None else list(DEFAULT_MODALITIES)
    args = {"n_classes": len(names), "in_channels": len(mods), **dict(overrides or {})}
    state = read_nnunet_v1_state_dict(checkpoint)
    model = create_model(architecture, preset=preset, **args)
    model.load_state_dict(convert_reference_state(state, model, checkpoint), strict=True)
    model.eval()
    extra = dict(card_fields.pop("extra", {}) or {})
    extra["imported_from"] = {
        "file": str(Path(checkpoint).resolve()),
        "format": "nnU-Net v1 checkpoint of the reference UNETR++ implementation",
        "tensors": len(state),
    }
    card_fields.setdefault("label_scheme", spec.label_scheme if class_names is None else "nehmap")
    card = ModelCard.for_model(
        model,
        name=card_fields.pop("name", Path(out).name),
        class_names=names,
        class_labels=labels,
        modalities=mods,
        extra=extra,
        **card_fields,
    )
    return save_checkpoint(model, card, out)
