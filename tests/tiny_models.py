"""Tiny untrained checkpoints of the three networks, for tests and scripts.

PAUNet, UNETR++ and the consensus UNETR++, seeded and untrained, saved with model cards:
:func:`write_tiny_study_models` at 4 mm (a study of a few 4 mm phantoms segments in
seconds), :func:`write_tiny_models` at any patch size, stem stride and spacing (the
test suite's 2 mm checkpoints).
"""

from __future__ import annotations

from pathlib import Path

TINY_STUDY_MODELS = ("tiny-paunet", "tiny-unetrpp", "tiny-consensus")


def write_tiny_models(
    folder: Path,
    *,
    patch: int,
    stem_stride: int,
    spacing_mm: float,
    training_data: str = "untrained test network",
) -> list[str]:
    """Save the three tiny networks (seed 0, untrained) under ``folder``; their names.

    ``patch`` is the cubic patch size (voxels), ``stem_stride`` UNETR++'s first
    downsampling, ``spacing_mm`` the spacing written in the cards.
    """
    import torch

    from nehmap.models import create_model
    from nehmap.models.card import ModelCard
    from nehmap.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    small = {
        "preset": "demo",
        "patch_size": [patch] * 3,
        "stem_stride": stem_stride,
        "proj_sizes": [8, 8, 8, 1],
        "decoder_proj_sizes": [8, 8, 8],
    }
    specs = {
        "tiny-paunet": ("paunet", {"preset": "demo", "patch_size": patch, "n_stages": 3}),
        "tiny-unetrpp": ("unetrpp", small),
        "tiny-consensus": ("unetrpp-consensus", small),
    }
    for name, (arch, kwargs) in specs.items():
        model = create_model(arch, **kwargs)
        card = ModelCard.for_model(
            model, name=name, spacing_mm=[spacing_mm] * 3, training_data=training_data
        )
        save_checkpoint(model, card, folder / name)
    return list(specs)


def write_tiny_study_models(
    folder: Path, training_data: str = "untrained test network"
) -> list[str]:
    """The three tiny networks for a study of 4 mm phantoms (patch 32, stride 4, 4 mm)."""
    return write_tiny_models(
        folder, patch=32, stem_stride=4, spacing_mm=4.0, training_data=training_data
    )
