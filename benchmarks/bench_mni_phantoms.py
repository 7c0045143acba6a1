"""The shipped models on phantoms that nehmap's own generator did not make.

``nehmap synth`` made the training data, so scoring the models on more of its phantoms
tells little about tumours it never draws. This script builds its phantoms from scratch,
without ``nehmap.synth``: MNI152 anatomy (the 1 mm template and its grey- and
white-matter maps, which nilearn ships), tumour shapes and compartments from distance
fields, its own contrast table (from the paper's section on Table 3: NEH darker than
edema on FLAIR and T1, brighter on T1c, about equal on T2), partial volume, a bias
field and noise. Families:

* ``ellipsoidal``: one ellipsoid;
* ``irregular``: an ellipsoid whose boundary is thresholded smoothed noise;
* ``multifocal``: two or three foci, 15-30 mm apart;
* ``small``: one ellipsoid of 4-7 mm radius (a few ml in all);
* ``cortical``: an ellipsoid centred 8-15 mm under the brain surface.

Compartments (nehmap labels): necrosis inside the tumour eroded by a 2-4 mm enhancing
rim; NEH a 3-5 mm layer (thickness varying with a smooth field) over 50-100 % of the
rim; edema out to 8-20 mm beyond NEH, in white matter more than grey. Each case draws its
own contrasts (every tissue's signal +-8 %, the NEH-edema difference scaled by 0.6-1.4)
and noise (SD 2-5 % of white matter's T1). Each case is written as a BraTS 2021 folder (files
only, no label map) at ``--spacing`` 1 or 2 mm, in RAS or, with ``--orientation LPS``,
with the first two array axes reversed and the affine to match; the truth goes to a
separate folder. ``nehmap segment`` then runs on the folder as a user would, and each
model's label map and the fused NEH mask are read back from the files and scored
(Dice of WT = labels 1-4, TC = 1, 3, 4, ET = 4, NEH = 3) after bringing both to
canonical orientation with nibabel.

Usage::

    python benchmarks/bench_mni_phantoms.py --n 2 --spacing 1
    python benchmarks/bench_mni_phantoms.py --n 2 --spacing 2 --orientation LPS
    python benchmarks/bench_mni_phantoms.py --models build/weights/runs/paunet-finetune/best \\
        build/weights/runs/unetrpp-finetune/best
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from nilearn import datasets
from scipy import ndimage as ndi

FAMILIES = ("ellipsoidal", "irregular", "multifocal", "small", "cortical")
MODALITIES = ("t1", "t1ce", "t2", "flair")
# Relative signal per tissue and modality (white matter's T1 = 1). Tumour rows follow the
# paper's description: NEH below edema on FLAIR and T1, above it on T1c, equal on T2.
CONTRAST = {
    #          t1    t1ce   t2    flair
    "wm": (1.00, 1.00, 0.45, 0.55),
    "gm": (0.72, 0.74, 0.62, 0.70),
    "csf": (0.25, 0.25, 1.30, 0.12),
    "edema": (0.62, 0.64, 1.10, 1.15),
    "neh": (0.54, 0.78, 1.08, 1.00),
    "et": (0.64, 1.45, 0.85, 0.95),
    "nc": (0.30, 0.32, 1.35, 0.55),
}
REGIONS = {"WT": (1, 2, 3, 4), "TC": (1, 3, 4), "ET": (4,), "NEH": (3,)}


def anatomy() -> dict[str, np.ndarray]:
    """MNI152 at 1 mm: brain mask, grey- and white-matter probability, affine, and where
    tumour centres may go (``inner``: 25 mm inside the brain; ``depth``: mm to its edge)."""
    brain = np.asarray(datasets.load_mni152_brain_mask(resolution=1).dataobj) > 0
    gm_img = datasets.load_mni152_gm_template(resolution=1)
    gm = np.asarray(gm_img.dataobj, dtype=np.float32)
    wm = np.asarray(datasets.load_mni152_wm_template(resolution=1).dataobj, dtype=np.float32)
    return {
        "brain": brain,
        "gm": gm * brain,
        "wm": wm * brain,
        "affine": gm_img.affine,
        "inner": ndi.binary_erosion(brain, iterations=25),
        "depth": ndi.distance_transform_edt(brain),
    }


def smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    field = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return field / (field.std() + 1e-6)


def bias_field(rng: np.random.Generator, shape: tuple[int, ...], strength: float) -> np.ndarray:
    """A smooth multiplicative field: exp of a random quadratic whose largest |value| is
    ``strength`` over the volume."""
    axes = [np.linspace(-1, 1, n, dtype=np.float32) for n in shape]
    x, y, z = np.meshgrid(*axes, indexing="ij", sparse=True)
    terms = (x, y, z, x * y, x * z, y * z, x * x, y * y, z * z)
    field = sum(rng.normal() * t for t in terms)
    field = field - field.mean()
    return np.exp(strength * field / np.abs(field).max()).astype(np.float32)


def tumour_shape(family: str, rng: np.random.Generator, mni: dict[str, np.ndarray]) -> np.ndarray:
    """The enhancing tumour's outer shape (bool)."""
    brain = mni["brain"]
    shape = brain.shape
    grid = [g.astype(np.float32) for g in np.ogrid[tuple(slice(0, n) for n in shape)]]
    if family == "cortical":
        candidates = np.argwhere((mni["depth"] >= 8) & (mni["depth"] <= 15))
    else:
        candidates = np.argwhere(mni["inner"])
    n_foci = int(rng.integers(2, 4)) if family == "multifocal" else 1
    centres = [candidates[rng.integers(len(candidates))].astype(np.float32)]
    for _ in range(10_000):
        if len(centres) == n_foci:
            break
        c = candidates[rng.integers(len(candidates))].astype(np.float32)
        if 15 <= min(np.linalg.norm(c - d) for d in centres) <= 30:
            centres.append(c)
    out = np.zeros(shape, bool)
    for centre in centres:
        if family == "small":
            radii = rng.uniform(4, 7, 3)
        elif family == "multifocal":
            radii = rng.uniform(6, 11, 3)
        else:
            radii = rng.uniform(10, 20, 3)
        level = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True))
        if family == "irregular":
            level = level - 0.6 * smooth_noise(rng, shape, 3.0)
        out |= level <= 1.0
    return out & brain


def phantom(
    family: str, seed: int, mni: dict[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Four images (1 mm, MNI grid) and the nehmap label map of one case."""
    rng = np.random.default_rng(seed)
    brain, gm, wm = mni["brain"], mni["gm"], mni["wm"]
    tumour = tumour_shape(family, rng, mni)
    inside = ndi.distance_transform_edt(tumour)
    outside = ndi.distance_transform_edt(~tumour)
    rim = rng.uniform(2, 4)
    # NEH: 3-5 mm thick where a smooth field is high, covering 50-100 % of the rim
    variation = smooth_noise(rng, brain.shape, 5)
    cover = np.quantile(variation[(outside > 0) & (outside <= 3)], rng.uniform(0.0, 0.5))
    neh_mm = rng.uniform(3, 5) * np.clip(1 + 0.3 * variation, 0.4, 1.6) * (variation >= cover)
    edema_mm = rng.uniform(8, 20)
    labels = np.zeros(brain.shape, np.uint8)
    edema_reach = (outside > 0) & (outside <= neh_mm + edema_mm * (0.4 + 0.6 * wm))
    labels[edema_reach & brain] = 2
    labels[(outside > 0) & (outside <= neh_mm) & brain] = 3
    labels[tumour] = 4
    labels[tumour & (inside > rim)] = 1
    csf = np.clip(1.0 - gm - wm, 0, 1) * brain
    # each case its own contrasts (+-8 % per tissue and modality; NEH keeps its order
    # against edema) and noise
    jitter = {t: np.asarray(v) * rng.uniform(0.92, 1.08, 4) for t, v in CONTRAST.items()}
    gap = np.asarray(CONTRAST["neh"]) - np.asarray(CONTRAST["edema"])
    jitter["neh"] = jitter["edema"] + gap * rng.uniform(0.6, 1.4)
    noise_sd = rng.uniform(0.02, 0.05)
    images = {}
    for m, name in enumerate(MODALITIES):
        value = wm * jitter["wm"][m] + gm * jitter["gm"][m] + csf * jitter["csf"][m]
        for label, tissue in ((2, "edema"), (3, "neh"), (4, "et"), (1, "nc")):
            value = np.where(labels == label, jitter[tissue][m], value)
        value = ndi.gaussian_filter(value.astype(np.float32), 0.7)  # partial volume
        bias = bias_field(rng, brain.shape, 0.15)
        noise = rng.normal(0, noise_sd, brain.shape).astype(np.float32)
        images[name] = np.where(brain, (value * bias + noise) * 1000, 0).astype(np.float32)
    return images, labels


def scaled_affine(affine: np.ndarray, spacing: int) -> np.ndarray:
    """The affine of a grid of ``spacing``-voxel blocks (centres of the blocks)."""
    scaled = affine.copy()
    scaled[:3, :3] = affine[:3, :3] * spacing
    scaled[:3, 3] = affine[:3, :3] @ np.full(3, (spacing - 1) / 2) + affine[:3, 3]
    return scaled


def blocks(volume: np.ndarray, spacing: int) -> np.ndarray:
    """``volume`` as (X, Y, Z, spacing**3) blocks (the edge that does not fit dropped)."""
    crop = tuple(slice(0, n - n % spacing) for n in volume.shape)
    v = volume[crop]
    shape = [n // spacing for n in v.shape]
    b = v.reshape(shape[0], spacing, shape[1], spacing, shape[2], spacing)
    return b.transpose(0, 2, 4, 1, 3, 5).reshape(*shape, -1)


def resample(volume: np.ndarray, spacing: int) -> np.ndarray:
    """Block average to ``spacing`` mm (an acquisition at that resolution)."""
    return volume if spacing == 1 else blocks(volume, spacing).mean(-1).astype(np.float32)


def resample_labels(labels: np.ndarray, spacing: int) -> np.ndarray:
    """Majority label per block (ties to the higher label)."""
    if spacing == 1:
        return labels
    b = blocks(labels, spacing)
    counts = np.stack([(b == k).sum(-1) for k in range(5)], -1)
    return (4 - np.argmax(counts[..., ::-1], -1)).astype(np.uint8)


def to_lps(volume: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same image stored with the first two array axes reversed (LPS+)."""
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[0, 3], flip[1, 3] = volume.shape[0] - 1, volume.shape[1] - 1
    return np.ascontiguousarray(volume[::-1, ::-1, :]), affine @ flip


def canonical(path: Path) -> np.ndarray:
    return np.asarray(nib.as_closest_canonical(nib.load(path)).dataobj)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return float("nan") if total == 0 else 2.0 * int((a & b).sum()) / total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2, help="cases per family (2)")
    parser.add_argument("--spacing", type=int, choices=(1, 2), default=1, help="mm (1)")
    parser.add_argument("--orientation", choices=("RAS", "LPS"), default="RAS")
    parser.add_argument("--families", nargs="*", default=list(FAMILIES))
    parser.add_argument("--models", nargs="*", help="checkpoints (default: the shipped ones)")
    parser.add_argument("--seed", type=int, default=31337)
    parser.add_argument("--workdir", type=Path, help="keep the phantoms and outputs here")
    parser.add_argument("--out", type=Path, help="tidy per-case CSV")
    args = parser.parse_args()
    mni = anatomy()
    affine = mni["affine"]
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        data, truth_dir, seg = work / "data", work / "truth", work / "seg"
        for folder in (data, truth_dir):
            folder.mkdir(parents=True, exist_ok=True)
        cases: dict[str, str] = {}
        start = time.perf_counter()
        for f, family in enumerate(args.families):
            for i in range(args.n):
                case = f"BraTS2021_{90000 + 100 * f + i:05d}"
                images, labels = phantom(family, args.seed + 1000 * f + i, mni)
                (data / case).mkdir(exist_ok=True)
                grid = scaled_affine(affine, args.spacing)
                volumes = {name: resample(image, args.spacing) for name, image in images.items()}
                volumes["truth"] = resample_labels(labels, args.spacing)
                for name, volume in volumes.items():
                    aff = grid
                    if args.orientation == "LPS":
                        volume, aff = to_lps(volume, grid)
                    path = data / case / f"{case}_{name}.nii.gz"
                    if name == "truth":
                        path = truth_dir / f"{case}.nii.gz"
                    nib.save(nib.Nifti1Image(volume, aff), path)
                cases[case] = family
        print(f"{len(cases)} phantoms written in {time.perf_counter() - start:.0f} s", flush=True)
        command = [sys.executable, "-m", "nehmap.cli", "segment", str(data), "-o", str(seg)]
        if args.models:
            command += ["--models", ",".join(args.models)]
        subprocess.run([*command, "--no-progress"], check=True)
        rows = []
        for case, family in cases.items():
            truth = canonical(truth_dir / f"{case}.nii.gz")
            maps = {
                p.name[len(case) + 5 : -7]: p for p in (seg / case).glob(f"{case}_seg-*.nii.gz")
            }
            for model, path in sorted(maps.items()):
                pred = canonical(path)
                # the consensus model's map holds NEH levels: its high level is its NEH
                scored = {"NEH": (2,)} if "consensus" in model else REGIONS
                for region, values in scored.items():
                    ref = np.isin(truth, REGIONS[region])
                    rows.append({"case": case, "family": family, "model": model,
                                 "region": region, "dice": dice(np.isin(pred, values), ref)})  # fmt: skip
            fused = canonical(seg / case / f"{case}_neh-mask.nii.gz") > 0
            rows.append({"case": case, "family": family, "model": "fused", "region": "NEH",
                         "dice": dice(fused, np.isin(truth, (3,)))})  # fmt: skip
    table = pd.DataFrame(rows)
    if args.out:
        table.to_csv(args.out, index=False)
    table["column"] = table.model + " " + table.region
    means = table.pivot_table(index="family", columns="column", values="dice", aggfunc="mean")
    pd.set_option("display.width", 200)
    print(
        f"\nMean Dice, {args.n} phantoms per family, {args.spacing} mm, {args.orientation} "
        f"(phantoms made without nehmap.synth):\n{means.round(2).to_string()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
