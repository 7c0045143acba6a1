"""A small segmented case on disk, as ``nehmap segment`` writes it, for the viewer tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from conftest import save

SHAPE = (48, 56, 40)


def brain_and_tumour(shape: tuple[int, int, int] = SHAPE) -> tuple[np.ndarray, np.ndarray]:
    """A brain ellipsoid (bool) and a five-label tumour inside it (uint8)."""
    x, y, z = np.meshgrid(*(np.arange(s, dtype=float) for s in shape), indexing="ij")
    c = [s / 2 for s in shape]
    brain = ((x - c[0]) / (shape[0] / 2 - 3)) ** 2 + ((y - c[1]) / (shape[1] / 2 - 3)) ** 2
    brain = brain + ((z - c[2]) / (shape[2] / 2 - 3)) ** 2 < 1
    r = np.sqrt((x - c[0] - 6) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2)
    labels = np.zeros(shape, dtype=np.uint8)
    labels[r < 12] = 2
    labels[(r < 9) & (x > c[0] + 6)] = 3
    labels[r < 6] = 4
    labels[r < 3] = 1
    return brain, labels


def write_case(root: Path, case: str = "CASE-01", *, rcbv: bool = True) -> Path:
    """Write ``root/<case>/`` (segment outputs) and ``root/images/`` (inputs); return the folder."""
    rng = np.random.default_rng(1)
    brain, labels = brain_and_tumour()
    other = np.roll(labels, 2, axis=1)
    images = {}
    for i, name in enumerate(("t1c", "flair", "rcbv") if rcbv else ("t1c", "flair")):
        data = brain * (300 + 100 * i + 40 * rng.standard_normal(SHAPE)) + 400 * (labels == 4 - i)
        images[name] = save(root / "images" / f"{case}_{name}.nii.gz", data.astype(np.float32))
    folder = root / case
    save(folder / f"{case}_seg-paunet.nii.gz", labels)
    save(folder / f"{case}_seg-unetrpp.nii.gz", other)
    probability = ((labels == 3) * 0.55 + (other == 3) * 0.45).astype(np.float32)
    save(folder / f"{case}_neh-prob.nii.gz", probability)
    levels = np.where(probability >= 0.5, 2, np.where(probability >= 0.2, 1, 0)).astype(np.uint8)
    save(folder / f"{case}_neh-levels.nii.gz", levels)
    uncertainty = (probability * (1 - probability) * 4).astype(np.float32)
    save(folder / f"{case}_neh-uncertainty.nii.gz", uncertainty)
    record = {
        "case": case,
        "inputs": {k: str(v) for k, v in images.items()},
        "parameters": {"threshold": 0.5},
        "label_schemes": {"paunet": "nehmap", "unetrpp": "nehmap"},
    }
    (folder / f"{case}_nehmap.json").write_text(json.dumps(record))
    return folder
