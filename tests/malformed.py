"""Builders of broken input files for the malformed-input suite.

Each builder writes one case of the BraTS 2021 layout (``<folder>/<ID>/<ID>_<token>.nii.gz``)
whose files are good except for one planted problem. The files are made here, byte by
byte where nibabel would refuse to write them, so the tests check nehmap against files
made by someone else's (broken) tools.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

SHAPE = (20, 20, 12)
AFFINE = np.diag([1.0, 1.0, 1.0, 1.0])
TOKENS = {"t1": "t1", "t1c": "t1ce", "t2": "t2", "flair": "flair"}


def brain_volume(seed: int, shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    """A float32 'skull-stripped scan': noise inside a box, zero outside."""
    rng = np.random.default_rng(seed)
    data = np.zeros(shape, np.float32)
    data[3:-3, 3:-3, 2:-2] = rng.uniform(50, 150, size=[s - 6 for s in shape[:2]] + [shape[2] - 4])
    return data


def nifti(
    data: np.ndarray, affine: np.ndarray = AFFINE, header: nib.Nifti1Header | None = None
) -> nib.Nifti1Image:
    img = nib.Nifti1Image(data, affine, header=header)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    return img


def case_path(folder: Path, case_id: str, key: str) -> Path:
    token = TOKENS.get(key, key)
    return folder / case_id / f"{case_id}_{token}.nii.gz"


def write_good_case(folder: Path, case_id: str, seed: int = 0, *, skip: str = "") -> None:
    """Write the four modalities of a good case (except ``skip``)."""
    (folder / case_id).mkdir(parents=True, exist_ok=True)
    for i, key in enumerate(TOKENS):
        if key != skip:
            nib.save(nifti(brain_volume(seed * 10 + i)), str(case_path(folder, case_id, key)))


def _header_bytes(img: nib.Nifti1Image) -> bytes:
    """The 348-byte header plus the 4-byte extension flag of a single-file NIfTI."""
    return img.header.binaryblock + b"\x00\x00\x00\x00"


def _write_nifti_bytes(path: Path, raw: bytes, compress: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(raw, compresslevel=1) if compress else raw)


def _patched_header(mutate: Callable[[nib.Nifti1Header], None]) -> Callable[[Path], None]:
    """A breaker that rewrites the flair header field by field (nibabel would refuse)."""

    def breaker(path: Path) -> None:
        img = nifti(brain_volume(3))
        hdr = img.header.copy()
        hdr.set_data_offset(352)
        mutate(hdr)
        data = np.asarray(img.dataobj, dtype=np.float32).tobytes(order="F")
        _write_nifti_bytes(path, hdr.binaryblock + b"\x00" * 4 + data)

    return breaker


def _set_pixdim(index: int, value: float) -> Callable[[nib.Nifti1Header], None]:
    def mutate(hdr: nib.Nifti1Header) -> None:
        pixdim = hdr["pixdim"].copy()
        pixdim[index] = value
        hdr["pixdim"] = pixdim
        # make the sform agree, so only the voxel size is wrong
        hdr["sform_code"] = 0

    return mutate


def _nan_affine(hdr: nib.Nifti1Header) -> None:
    hdr["qform_code"] = 0
    srow = hdr["srow_x"].copy()
    srow[0] = np.nan
    hdr["srow_x"] = srow


def _singular_affine(hdr: nib.Nifti1Header) -> None:
    hdr["qform_code"] = 0
    hdr["srow_z"] = np.zeros(4, np.float32)


def _sform_qform_disagree(hdr: nib.Nifti1Header) -> None:
    # same voxel sizes and axes, the sform shifted 5 mm along x
    srow = hdr["srow_x"].copy()
    srow[3] += 5.0
    hdr["srow_x"] = srow


def _write_array(data: np.ndarray, affine: np.ndarray = AFFINE) -> Callable[[Path], None]:
    def breaker(path: Path) -> None:
        nib.save(nifti(data, affine), str(path))

    return breaker


def _too_large(path: Path) -> None:
    """A header declaring 1100^3 float32 voxels (5.3 GB) over a few bytes of data."""
    hdr = nifti(brain_volume(3)).header.copy()
    hdr.set_data_shape((1100, 1100, 1100))
    hdr.set_data_offset(352)
    _write_nifti_bytes(path, hdr.binaryblock + b"\x00" * 4 + b"\x00" * 4096)


def _gzip_bomb(path: Path) -> None:
    """A valid .nii.gz that would expand to 343 MB of uint8 voxels (~0.3 MB on disk)."""
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(np.uint8)
    hdr.set_data_shape((700, 700, 700))
    hdr.set_qform(AFFINE, code=1)
    hdr.set_sform(AFFINE, code=1)
    hdr.set_data_offset(352)
    comp = zlib.compressobj(1, zlib.DEFLATED, 31)  # gzip container
    chunk = bytes(1 << 24)
    parts = [comp.compress(hdr.binaryblock + b"\x00" * 4)]
    total = 700**3
    while total > 0:
        n = min(total, len(chunk))
        parts.append(comp.compress(chunk[:n]))
        total -= n
    parts.append(comp.flush())
    path.write_bytes(b"".join(parts))


def _not_gzip(path: Path) -> None:
    raw = _header_bytes(nifti(brain_volume(3))) + brain_volume(3).tobytes(order="F")
    _write_nifti_bytes(path, raw, compress=False)  # plain bytes under a .nii.gz name


def _zero_bytes(path: Path) -> None:
    path.write_bytes(b"")


def _truncated(path: Path) -> None:
    nib.save(nifti(brain_volume(3)), str(path))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def _symlink_loop(path: Path) -> None:
    other = path.with_name("loop_partner.nii.gz")
    os.symlink(other.name, path)
    os.symlink(path.name, other)


def _complex(path: Path) -> None:
    data = brain_volume(3).astype(np.complex64) * (1 + 1j)
    nib.save(nifti(data), str(path))


def _rgb(path: Path) -> None:
    vol = (brain_volume(3) / 2).astype(np.uint8)
    rgb = np.zeros(vol.shape, dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    for ch in "RGB":
        rgb[ch] = vol
    nib.save(nifti(rgb), str(path))


def _constant(path: Path) -> None:
    nib.save(nifti(np.full(SHAPE, 7.0, np.float32)), str(path))


def _with_bad_voxel(value: float) -> Callable[[Path], None]:
    def breaker(path: Path) -> None:
        data = brain_volume(3)
        data[10, 10, 6] = value
        nib.save(nifti(data), str(path))

    return breaker


def _four_d(volumes: int) -> Callable[[Path], None]:
    def breaker(path: Path) -> None:
        data = np.stack([brain_volume(3 + v) for v in range(volumes)], axis=-1)
        nib.save(nifti(data), str(path))

    return breaker


@dataclass(frozen=True)
class Kind:
    """One kind of broken case: how to break it and what the message must say."""

    name: str
    breaker: Callable[[Path], None] | None  # breaks the flair file (None: whole-case builder)
    expect: tuple[str, ...]  # fragments the message must contain (lower-case)
    builder: Callable[[Path, str], None] | None = None


def _empty_brain(folder: Path, case_id: str) -> None:
    """Every modality is zero except two voxels: nothing left of a brain after cropping."""
    (folder / case_id).mkdir(parents=True, exist_ok=True)
    for i, key in enumerate(TOKENS):
        data = np.zeros(SHAPE, np.float32)
        data[10, 10, 6] = 50.0 + i
        data[10, 11, 6] = 60.0 + i
        nib.save(nifti(data), str(case_path(folder, case_id, key)))


def _all_modalities_zero_but_flair(folder: Path, case_id: str) -> None:
    write_good_case(folder, case_id, 5)
    nib.save(nifti(np.zeros(SHAPE, np.float32)), str(case_path(folder, case_id, "t2")))


IMAGE_KINDS: tuple[Kind, ...] = (
    Kind("zero_pixdim", _patched_header(_set_pixdim(2, 0.0)), ("voxel size",)),
    Kind("negative_pixdim", _patched_header(_set_pixdim(1, -1.0)), ("voxel size",)),
    Kind("nan_affine", _patched_header(_nan_affine), ("nan", "sform")),
    Kind("singular_affine", _patched_header(_singular_affine), ("singular",)),
    Kind("sform_qform_disagree", _patched_header(_sform_qform_disagree), ("sform", "qform")),
    Kind("two_d", _write_array(brain_volume(3)[:, :, 6]), ("2d",)),
    Kind("four_d_series", _four_d(3), ("4d",)),
    Kind("complex", _complex, ("complex",)),
    Kind("rgb", _rgb, ("rgb",)),
    Kind("too_large", _too_large, ("voxels", "limit")),
    Kind("gzip_bomb", _gzip_bomb, ("voxels", "limit")),
    Kind("all_zero", None, ("all zero",), builder=_all_modalities_zero_but_flair),
    Kind("constant", _constant, ("constant",)),
    Kind("nan_voxels", _with_bad_voxel(np.nan), ("nan",)),
    Kind("inf_voxels", _with_bad_voxel(np.inf), ("infinite",)),
    Kind("empty_brain", None, ("brain",), builder=_empty_brain),
    Kind("not_gzip", _not_gzip, ("gzip",)),
    Kind("zero_bytes", _zero_bytes, ("empty",)),
    Kind("truncated", _truncated, ("truncated",)),
    Kind("symlink_loop", _symlink_loop, ("symbolic link",)),
)


def build_image_cohort(folder: Path, kinds: tuple[Kind, ...] = IMAGE_KINDS) -> dict[str, str]:
    """Write two good cases, a good 4D-with-one-volume case and one case per kind.

    Returns
    -------
    dict[str, str]
        Kind name -> case id.
    """
    write_good_case(folder, "BraTS2021_00001", 1)
    write_good_case(folder, "BraTS2021_00002", 2)
    write_good_case(folder, "BraTS2021_00003", 3, skip="flair")
    _four_d(1)(case_path(folder, "BraTS2021_00003", "flair"))
    ids = {}
    for i, kind in enumerate(kinds):
        case_id = f"BraTS2021_{100 + i:05d}"
        ids[kind.name] = case_id
        if kind.builder is not None:
            kind.builder(folder, case_id)
        else:
            write_good_case(folder, case_id, 7 + i, skip="flair")
            assert kind.breaker is not None
            kind.breaker(case_path(folder, case_id, "flair"))
    return ids


GOOD_IDS = ("BraTS2021_00001", "BraTS2021_00002", "BraTS2021_00003")


def write_labels(folder: Path, case_id: str, data: np.ndarray) -> Path:
    path = case_path(folder, case_id, "seg")
    nib.save(nifti(data), str(path))
    return path


def good_labels() -> np.ndarray:
    labels = np.zeros(SHAPE, np.uint8)
    labels[8:12, 8:12, 4:8] = 2
    labels[9:11, 9:11, 5:7] = 4
    return labels


def non_utf8_id() -> str:
    """A case id holding the byte 0xE9 (Latin-1 'é'), which is not valid UTF-8."""
    return os.fsdecode(b"BraTS2021_caf\xe9")


LONG_ID = "BraTS2021_" + "x" * 200
