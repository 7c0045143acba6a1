"""Segmenting a case with several networks, fusing their NEH probabilities, writing the outputs.

Loading the checkpoints (:func:`load_models`), the per-model steps and the fusion
(:func:`segment`), and the case's output files with their JSON record and colour tables
for 3D Slicer and ITK-SNAP (:func:`write_segmentation`).

For each model (a checkpoint with its model card):

1. stack the modalities in the card's channel order;
2. crop to the brain's bounding box (non-zero voxels of any modality);
3. z-score each modality inside the brain;
4. resample to the card's training spacing (trilinear; skipped when equal);
5. sliding-window inference with Gaussian weighting and 50 % overlap (optional
   test-time mirroring);
6. resample the class probabilities back to the case's grid (linear, renormalised),
   set everything outside the brain to background, and take labels by argmax.

The models whose card uses nehmap's 4+1 labels are then fused (:mod:`nehmap.fusion`):
the mean of their NEH probabilities (or, with ``fusion="staple"``, STAPLE of their NEH
masks), Gaussian-smoothed with sigma = 1.5 mm, thresholded at 0.5, with a two-level map
and the models' disagreement. A consensus-family model
(``label_scheme = "neh-consensus"``: background, low-, high-probability NEH) is not part
of the mean; its own two-level map is returned beside the fused one, as in the paper.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import nn

from nehmap._version import __version__
from nehmap.errors import NehmapInputError
from nehmap.fusion import DEFAULT_LOW, DEFAULT_SIGMA_MM, DEFAULT_THRESHOLD, Consensus, fuse_neh
from nehmap.infer import select_device, sliding_window_probabilities
from nehmap.io.case import Case
from nehmap.labels import LABEL_COLOURS, LABEL_DESCRIPTIONS, NEH
from nehmap.preprocess import (
    brain_crop,
    labels_from_probabilities,
    predict_at_spacing,
    probabilities_in_brain,
    zscore_in_mask,
)
from nehmap.segment_settings import settings_differences, settings_record  # noqa: F401

DEFAULT_MODELS: tuple[str, ...] = ("paunet", "unetrpp")
"""Shipped models used when none are named."""

CONSENSUS_SCHEME = "neh-consensus"


def models_dir() -> Path:
    """Folder of the shipped weights: ``$NEHMAP_MODELS_DIR`` or the repository's ``models/``."""
    env = os.environ.get("NEHMAP_MODELS_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "models"


@dataclass
class LoadedModel:
    """A network ready for inference, with its card.

    Attributes
    ----------
    name : str
        Short name used in output file names (``paunet``, ``unetrpp``...).
    network : nn.Module
        The torch module in eval mode on ``device``.
    card : object
        Its :class:`nehmap.models.card.ModelCard`.
    source : Path | None
        The checkpoint path.
    """

    name: str
    network: nn.Module
    card: object
    source: Path | None = None

    @property
    def is_consensus(self) -> bool:
        """Whether the model predicts two-level consensus maps (its card's label scheme)."""
        return getattr(self.card, "label_scheme", "nehmap") == CONSENSUS_SCHEME


def resolve_checkpoint(name_or_path: str) -> Path:
    """A model name (looked up in :func:`models_dir`) or a checkpoint path -> checkpoint path."""
    candidate = Path(name_or_path)
    for p in (candidate, candidate.with_suffix(".json"), models_dir() / f"{name_or_path}.json"):
        if p.is_file():
            return p
    known = sorted(p.stem for p in models_dir().glob("*.json")) if models_dir().is_dir() else []
    raise NehmapInputError(
        candidate,
        "is neither a checkpoint file nor the name of a shipped model.",
        f"Shipped models in {models_dir()}: {', '.join(known) or 'none'}; or give the path of "
        "a checkpoint (.json model card beside its .safetensors weights).",
    )


RUN_CHECKPOINTS = ("best", "latest")
"""Checkpoint names of a training run folder (``nehmap train``)."""


def _repeated(names: Sequence[str]) -> list[str]:
    """The names that occur more than once, sorted."""
    return sorted({n for n in names if names.count(n) > 1})


def model_output_names(models: Sequence[str]) -> list[str]:
    """The names under which models write their maps (``<case>_seg-<name>.nii.gz``).

    One name per entry of ``models`` (shipped names or checkpoint paths): a shipped name
    stays as it is; a checkpoint path gives its file name without suffix, with its
    folder's name in front for a training run's ``best``/``latest`` checkpoint or when two
    file names coincide (``runs/paunet/best`` -> ``paunet-best``).

    Raises
    ------
    NehmapInputError
        When two entries would still write under the same name.
    """
    stems = [Path(m).name.removesuffix(".json").removesuffix(".safetensors") for m in models]
    names = []
    for model, stem in zip(models, stems, strict=True):
        folder = Path(model).parent.name
        clash = stem in RUN_CHECKPOINTS or stems.count(stem) > 1
        names.append(f"{folder}-{stem}" if folder and clash else stem)
    repeated = _repeated(names)
    if repeated:
        raise NehmapInputError(
            None,
            f"the models {', '.join(models)} would write their maps under the same name "
            f"({', '.join(repeated)}), so one would replace the other.",
            "Give each model once, and checkpoints of distinct file or folder names.",
        )
    return names


def load_models(names: Sequence[str] | None = None, device: str | None = None) -> list[LoadedModel]:
    """Load models by shipped name or checkpoint path (default: :data:`DEFAULT_MODELS`),
    named by :func:`model_output_names`."""
    from nehmap.models.checkpoint import load_checkpoint

    specs = list(names or DEFAULT_MODELS)
    short_names = model_output_names(specs)
    dev = select_device(device)
    loaded = []
    for spec, short in zip(specs, short_names, strict=True):
        path = resolve_checkpoint(spec)
        network, card = load_checkpoint(path, device=dev)
        loaded.append(LoadedModel(short, network, card, path))
    return loaded


def predict_probabilities(
    case: Case,
    model: LoadedModel,
    *,
    mirror: bool = False,
    overlap: float = 0.5,
    batch_size: int = 2,
    device: str | None = None,
    progress: bool = False,
) -> np.ndarray:
    """One model's class probabilities on the case's grid.

    Returns
    -------
    np.ndarray
        float32 array (K, X, Y, Z), K = the card's classes, canonical RAS+ like the case.
    """
    card = model.card
    card.check_input(list(card.modalities), case.spacing)  # type: ignore[attr-defined]
    stack = case.stack(card.modalities)  # type: ignore[attr-defined]
    brain = case.brain_mask()
    crop = brain_crop(brain)
    block = zscore_in_mask(
        stack[(slice(None), *crop.slices)], brain[crop.slices], list(card.modalities)
    )  # type: ignore[attr-defined]
    target = tuple(float(s) for s in card.spacing_mm)  # type: ignore[attr-defined]
    dev = select_device(device)

    def predict(work: np.ndarray) -> np.ndarray:
        return sliding_window_probabilities(
            model.network,
            work,
            tuple(card.patch_size),  # type: ignore[attr-defined]
            overlap=overlap,
            batch_size=batch_size,
            device=dev,
            mirror_axes=(0, 1, 2) if mirror else (),
            progress=progress,
            desc=model.name,
        )

    probs = predict_at_spacing(block, case.spacing, target, predict)
    return probabilities_in_brain(probs, crop, brain)


def neh_probability(probs: np.ndarray, class_labels: Sequence[int | None]) -> np.ndarray:
    """Sum of the channels whose nehmap label is NEH (float32, (X, Y, Z))."""
    idx = [i for i, lab in enumerate(class_labels) if lab == NEH]
    if not idx:
        raise ValueError(f"No output class maps to NEH (class labels {list(class_labels)}).")
    return probs[idx].sum(axis=0).astype(np.float32)


@dataclass
class Segmentation:
    """Everything :func:`segment` computes for one case (arrays canonical RAS+).

    Attributes
    ----------
    case_id : str
        The case.
    spacing : tuple[float, float, float]
        Voxel size in mm per axis.
    labels : dict[str, np.ndarray]
        Model name -> nehmap label map (uint8); for a consensus-family model its
        two-level map (0 background, 1 low, 2 high).
    probabilities : dict[str, np.ndarray]
        Model name -> class probabilities (K, X, Y, Z).
    neh : dict[str, np.ndarray]
        Model name -> NEH probability of the models that join the fusion.
    consensus : Consensus | None
        The fused NEH maps, or None when no 4-label model ran.
    parameters : dict
        The settings used.
    """

    case_id: str
    spacing: tuple[float, float, float]
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    probabilities: dict[str, np.ndarray] = field(default_factory=dict)
    neh: dict[str, np.ndarray] = field(default_factory=dict)
    consensus: Consensus | None = None
    parameters: dict = field(default_factory=dict)
    schemes: dict[str, str] = field(default_factory=dict)


def segment(
    case: Case,
    models: Sequence[LoadedModel | str] | None = None,
    *,
    device: str | None = None,
    mirror: bool = False,
    overlap: float = 0.5,
    batch_size: int = 2,
    external: Mapping[str, np.ndarray] | None = None,
    weights: Sequence[float] | None = None,
    sigma_mm: float = DEFAULT_SIGMA_MM,
    threshold: float = DEFAULT_THRESHOLD,
    low: float = DEFAULT_LOW,
    fusion: str = "mean",
    progress: bool = False,
) -> Segmentation:
    """Segment a case with each model and fuse the NEH probabilities.

    Parameters
    ----------
    case : Case
        A loaded case (:func:`nehmap.io.load_case`).
    models : Sequence[LoadedModel | str] | None
        Loaded models, or shipped names / checkpoint paths (default: paunet,
        unetrpp).
    device : str | None
        ``cuda``, ``mps``, ``cpu``; automatic when None.
    mirror : bool
        Test-time mirroring over the three axes.
    overlap : float
        Sliding-window overlap.
    batch_size : int
        Windows per forward pass.
    external : Mapping[str, np.ndarray] | None
        Extra models' probabilities (name -> (5, X, Y, Z) over nehmap labels 0-4,
        see :mod:`nehmap.io.external`) joining the fusion.
    weights : Sequence[float] | None
        Per-model weights of the consensus mean (models first, then externals).
    sigma_mm, threshold, low : float
        Fusion parameters (:func:`nehmap.fusion.fuse_neh`).
    fusion : str
        ``"mean"`` of the NEH probabilities (the paper) or ``"staple"`` of the
        models' NEH masks (label map == NEH), before the same smoothing and threshold.
    progress : bool
        Show progress bars over the models' sliding windows (on stderr).

    Returns
    -------
    Segmentation
        :class:`Segmentation`.
    """
    loaded = [m if isinstance(m, LoadedModel) else None for m in (models or DEFAULT_MODELS)]
    if any(m is None for m in loaded):
        names = [m for m in (models or DEFAULT_MODELS) if not isinstance(m, LoadedModel)]
        fresh = iter(load_models(names, device))
        loaded = [m if m is not None else next(fresh) for m in loaded]
    repeated = _repeated([m.name for m in loaded if m is not None] + list(external or {}))
    if repeated:
        raise ValueError(
            f"Two models are named {', '.join(repeated)}: their maps would replace each "
            "other. Give every model and external map its own name."
        )
    result = Segmentation(case.case_id, case.spacing)
    for model in loaded:
        assert model is not None
        probs = predict_probabilities(
            case,
            model,
            mirror=mirror,
            overlap=overlap,
            batch_size=batch_size,
            device=device,
            progress=progress,
        )
        result.probabilities[model.name] = probs
        result.schemes[model.name] = CONSENSUS_SCHEME if model.is_consensus else "nehmap"
        if model.is_consensus:
            result.labels[model.name] = np.argmax(probs, axis=0).astype(np.uint8)
        else:
            labels = list(model.card.class_labels)  # type: ignore[attr-defined]
            result.labels[model.name] = labels_from_probabilities(probs, labels)
            result.neh[model.name] = neh_probability(probs, labels)
    for name, probs in (external or {}).items():
        result.probabilities[name] = probs
        result.schemes[name] = "nehmap"
        result.labels[name] = labels_from_probabilities(probs, range(probs.shape[0]))
        result.neh[name] = probs[NEH].astype(np.float32)
    if result.neh:
        result.consensus = fuse_neh(
            list(result.neh.values()),
            case.spacing,
            weights=weights,
            sigma_mm=sigma_mm,
            threshold=threshold,
            low=low,
            fusion=fusion,
            masks=[result.labels[name] == NEH for name in result.neh],
        )
    result.parameters = {
        "models": {m.name: str(m.source) for m in loaded if m is not None},
        "fused": list(result.neh),
        **settings_record(
            [m for m in loaded if m is not None],
            list(external or {}),
            weights=weights,
            sigma_mm=sigma_mm,
            threshold=threshold,
            low=low,
            mirror=mirror,
            overlap=overlap,
            fusion=fusion,
        ),
    }
    return result


# ----------------------------------------------------------------------------- writing


def output_paths(out_dir: Path, case_id: str, model_names: Sequence[str]) -> dict[str, Path]:
    """The files :func:`write_segmentation` writes for a case, by key."""
    folder = out_dir / case_id
    paths = {f"seg-{m}": folder / f"{case_id}_seg-{m}.nii.gz" for m in model_names}
    for key in ("neh-prob", "neh-mask", "neh-levels", "neh-uncertainty"):
        paths[key] = folder / f"{case_id}_{key}.nii.gz"
    paths["record"] = folder / f"{case_id}_nehmap.json"
    return paths


def slicer_colour_table() -> str:
    """nehmap's labels as a 3D Slicer colour table (``.ctbl``)."""
    lines = ["# nehmap labels: value name R G B A", "0 background 0 0 0 0"]
    for value, rgb in LABEL_COLOURS.items():
        name = LABEL_DESCRIPTIONS[value].replace(" ", "_")
        lines.append(f"{value} {name} {rgb[0]} {rgb[1]} {rgb[2]} 255")
    return "\n".join(lines) + "\n"


def itksnap_label_file() -> str:
    """nehmap's labels as an ITK-SNAP label description file."""
    lines = ['0 0 0 0 0 0 0 "Clear Label"']
    for value, rgb in LABEL_COLOURS.items():
        lines.append(f'{value} {rgb[0]} {rgb[1]} {rgb[2]} 1 1 1 "{LABEL_DESCRIPTIONS[value]}"')
    return "\n".join(lines) + "\n"


def write_segmentation(
    result: Segmentation,
    case: Case,
    out_dir: str | Path,
    *,
    save_probabilities: bool = False,
    extra_record: Mapping | None = None,
) -> dict[str, Path]:
    """Write a case's maps on its original grid into ``out_dir/<case>/``.

    The JSON record is written last: its presence marks the case as complete.
    """
    from nehmap.io import write_image, write_text_atomic
    from nehmap.io.atomic import check_not_input

    out = Path(out_dir)
    paths = output_paths(out, case.case_id, list(result.labels))
    for p in paths.values():
        check_not_input(p, case.inputs)
    desc = f"nehmap {__version__}"
    for name, labels in result.labels.items():
        write_image(
            labels,
            case.grid,
            paths[f"seg-{name}"],
            dtype=np.uint8,
            inputs=case.inputs,
            description=f"{desc} {name} labels",
        )
    if result.consensus is not None:
        c = result.consensus
        for key, arr, dtype in (
            ("neh-prob", c.probability, np.float32),
            ("neh-mask", c.mask, np.uint8),
            ("neh-levels", c.levels, np.uint8),
            ("neh-uncertainty", c.uncertainty, np.float32),
        ):
            write_image(
                arr,
                case.grid,
                paths[key],
                dtype=dtype,
                inputs=case.inputs,
                description=f"{desc} {key}",
            )
    else:
        for key in ("neh-prob", "neh-mask", "neh-levels", "neh-uncertainty"):
            paths.pop(key)
    if save_probabilities:
        for name, probs in result.probabilities.items():
            p = paths["record"].with_name(f"{case.case_id}_probs-{name}.nii.gz")
            write_image(
                np.moveaxis(probs, 0, -1), case.grid, p, dtype=np.float32, inputs=case.inputs
            )
            paths[f"probs-{name}"] = p
    folder = paths["record"].parent
    write_text_atomic(folder / "nehmap-labels.ctbl", slicer_colour_table())
    write_text_atomic(folder / "nehmap-labels.itksnap.txt", itksnap_label_file())
    record = {
        "case": case.case_id,
        "inputs": {k: str(v) for k, v in case.files.files.items()},
        "grid": {
            "shape": list(case.grid.shape),
            "affine": case.grid.affine.tolist(),
            "orientation": case.grid.orientation,
        },
        "outputs": {k: p.name for k, p in paths.items() if k != "record"},
        "parameters": result.parameters,
        "label_schemes": result.schemes,
        "versions": software_versions(),
        **(dict(extra_record) if extra_record else {}),
    }
    write_text_atomic(paths["record"], json.dumps(record, indent=2))
    return paths


def software_versions() -> dict[str, str]:
    """Versions of nehmap and the libraries its results depend on."""
    import platform

    import nibabel
    import scipy
    import torch

    return {
        "nehmap": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "nibabel": nibabel.__version__,
        "torch": torch.__version__,
    }


def is_complete(out_dir: str | Path, case_id: str) -> bool:
    """True when a case's record exists (it is written last)."""
    return (Path(out_dir) / case_id / f"{case_id}_nehmap.json").is_file()
