"""Tiny synthetic training collections and tiny networks for the training tests.

A case is a 24^3 volume at 1 mm: a brain ellipsoid (non-zero in all four channels)
holding one tumour of concentric shells — NC core, ET, NEH, ED outermost — whose four
channels are correlated with the labels (T1c bright in ET, T2 bright in NC and ED,
FLAIR bright in ED and NEH, T1 darker in the tumour) plus noise. Collections are
written with nibabel directly, in the nnU-Net layout (labels named so that NEH is
included) or the BraTS 2021 layout (1 NCR, 2 ED, 4 ET).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from nehmap.train import TrainConfig

SHAPE = (24, 24, 24)
NNUNET_LABELS = {"background": 0, "necrosis": 1, "edema": 2, "NEH": 3, "enhancing tumour": 4}
CONSENSUS_LABELS = {"background": 0, "NEH-low": 1, "NEH-high": 2}

# mean intensity per nehmap label (0..4) for t1, t1c, t2, flair
_MEANS = np.array(
    [
        [100.0, 100.0, 80.0, 90.0],  # brain
        [60.0, 70.0, 200.0, 120.0],  # NC
        [90.0, 95.0, 170.0, 190.0],  # ED
        [75.0, 105.0, 140.0, 230.0],  # NEH
        [80.0, 240.0, 120.0, 150.0],  # ET
    ]
)


def synthetic_case(seed: int, shape: tuple[int, int, int] = SHAPE) -> tuple[dict, np.ndarray]:
    """Four channels (t1, t1c, t2, flair) float32 and nehmap labels uint8, (X, Y, Z)."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*(np.arange(s, dtype=float) for s in shape), indexing="ij"))
    mid = (np.array(shape) - 1) / 2
    brain = (((grid - mid[:, None, None, None]) / (mid[:, None, None, None] - 0.5)) ** 2).sum(0)
    brain = brain <= 1.0
    centre = mid + rng.uniform(-3, 3, size=3)
    r = np.sqrt(((grid - centre[:, None, None, None]) ** 2).sum(0))
    scale = rng.uniform(0.85, 1.15)
    labels = np.zeros(shape, dtype=np.uint8)
    for value, radius in ((2, 7.5), (3, 5.5), (4, 3.8), (1, 2.2)):
        labels[r < radius * scale] = value
    labels[~brain] = 0
    images = {}
    for c, name in enumerate(("t1", "t1c", "t2", "flair")):
        data = _MEANS[labels, c] + rng.normal(0, 8, size=shape)
        data[~brain] = 0
        images[name] = data.astype(np.float32)
    return images, labels


def _save(path: Path, data: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))


def write_nnunet(
    root: Path,
    n_cases: int = 3,
    *,
    consensus: bool = False,
    unlabelled: tuple[int, ...] = (),
    label_override: dict[int, np.ndarray] | None = None,
) -> Path:
    """An nnU-Net raw dataset of ``n_cases`` synthetic cases.

    With ``consensus`` the label files hold a two-level map (1 NEH-low: the NEH shell's
    outer half plus a voxel of ED around it, 2 NEH-high: its inner half) and
    ``dataset.json`` declares background, NEH-low, NEH-high.
    """
    for i in range(n_cases):
        cid = f"case{i:03d}"
        images, labels = synthetic_case(100 + i)
        for c, name in enumerate(("t1", "t1c", "t2", "flair")):
            _save(root / "imagesTr" / f"{cid}_{c:04d}.nii.gz", images[name])
        if i in unlabelled:
            continue
        if consensus:
            target = np.zeros_like(labels)
            target[labels == 3] = 2
            target[(labels == 2) & (np.roll(labels, 1, 0) == 3)] = 1
        else:
            target = labels
        if label_override and i in label_override:
            target = label_override[i]
        _save(root / "labelsTr" / f"{cid}.nii.gz", target.astype(np.uint8))
    meta = {
        "channel_names": {"0": "T1", "1": "T1ce", "2": "T2", "3": "FLAIR"},
        "labels": CONSENSUS_LABELS if consensus else NNUNET_LABELS,
        "numTraining": n_cases,
        "file_ending": ".nii.gz",
    }
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def write_brats(root: Path, n_cases: int = 3, bad_label_case: int | None = None) -> Path:
    """A BraTS 2021 collection (1 NCR, 2 ED, 4 ET; NEH folded into NCR as BraTS does)."""
    for i in range(n_cases):
        cid = f"BraTS2021_{i:05d}"
        images, labels = synthetic_case(200 + i)
        seg = labels.copy()
        seg[seg == 3] = 1
        if i == bad_label_case:
            seg[seg == 4] = 3  # 3 is not a BraTS 2021 label
        for token, name in (("t1", "t1"), ("t1ce", "t1c"), ("t2", "t2"), ("flair", "flair")):
            _save(root / cid / f"{cid}_{token}.nii.gz", images[name])
        _save(root / cid / f"{cid}_seg.nii.gz", seg)
    return root


TINY_PAUNET: dict[str, Any] = {
    "base_features": 4,
    "n_stages": 3,
    "max_features": 16,
    "highres_features": 2,
    "patch_size": 16,
}
TINY_UNETRPP: dict[str, Any] = {
    "patch_size": 16,
    "stem_stride": 2,
    "feature_sizes": [8, 16],
    "depths": 1,
    "decoder_depths": [1],
    "num_heads": 2,
    "proj_sizes": [8, 4],
    "decoder_proj_sizes": [8],
    "highres_features": 4,
}


def tiny_config(data: Path, out: Path, model: str = "paunet", **overrides: Any) -> TrainConfig:
    """A run that takes about a second per epoch on a CPU."""
    values: dict[str, Any] = {
        "data": str(data),
        "out": str(out),
        "model": model,
        "preset": "demo",
        "model_kwargs": dict(TINY_PAUNET if model == "paunet" else TINY_UNETRPP),
        "epochs": 2,
        "iterations_per_epoch": 3,
        "batch_size": 2,
        "val_fraction": 0.34,
        "val_patches": 2,
        "progress": False,
        "tensorboard": False,
        "seed": 7,
    }
    values.update(overrides)
    return TrainConfig.from_dict(values)


def test_synthetic_collection_is_read_by_nehmap(tmp_path: Path) -> None:
    from nehmap.io import discover, load_case

    collection = discover(write_nnunet(tmp_path / "nn", 2))
    case = load_case(collection["case000"], require_labels=True)
    assert case.labels is not None and set(np.unique(case.labels)) == {0, 1, 2, 3, 4}
    brats = discover(write_brats(tmp_path / "brats", 1))
    case = load_case(brats.cases[0], require_labels=True)
    assert case.labels is not None and set(np.unique(case.labels)) == {0, 1, 2, 4}
