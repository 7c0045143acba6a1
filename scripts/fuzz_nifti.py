"""Fuzz nehmap's NIfTI reading and validation path with Hypothesis.

Each example starts from a valid small NIfTI-1 image (random shape, datatype and
affine), damages it (header fields set to hostile values, random bytes flipped,
truncation, junk appended, gzip or a false ``.gz`` name), then runs what nehmap does to
an input file: ``read_grid``, ``read_image`` as a float32 scan and as a label map, and
``load_case`` on a case whose FLAIR is the damaged file. nehmap may refuse the file
only with its own :class:`~nehmap.errors.NehmapInputError`; any other exception (or a
crash) is a finding.

The same harness runs briefly in the test suite (``tests/test_fuzz_nifti.py``). The long
run::

    nice -n 10 python scripts/fuzz_nifti.py --minutes 5

prints the number of examples executed, how many nehmap refused and accepted, and every
distinct failure (exception type and the innermost nehmap/nibabel frame) with the
smallest example Hypothesis found.
"""

from __future__ import annotations

import argparse
import gzip
import logging
import os
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nehmap.errors import NehmapInputError
from nehmap.io.case import load_case
from nehmap.io.image import read_grid, read_image
from nehmap.io.layouts import CaseFiles

FUZZ_MAX_VOXELS = 2_000_000
"""Voxel limit during fuzzing (``NEHMAP_MAX_VOXELS``), so hostile shapes stay cheap."""

_DTYPES = (np.uint8, np.int16, np.int32, np.float32, np.float64)
_HEADER_FIELDS = {
    "dim": "int16",
    "datatype": "int16",
    "bitpix": "int16",
    "pixdim": "float32",
    "vox_offset": "float32",
    "scl_slope": "float32",
    "scl_inter": "float32",
    "qform_code": "int16",
    "sform_code": "int16",
    "quatern_b": "float32",
    "quatern_c": "float32",
    "quatern_d": "float32",
    "qoffset_x": "float32",
    "srow_x": "float32",
    "srow_y": "float32",
    "srow_z": "float32",
    "sizeof_hdr": "int32",
    "magic": "bytes",
}
_HOSTILE_INTS = [
    0,
    1,
    -1,
    2,
    3,
    4,
    5,
    7,
    8,
    16,
    32,
    64,
    128,
    256,
    511,
    768,
    1024,
    2048,
    32767,
    -32768,
]
_HOSTILE_FLOATS = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    1e-30,
    1e30,
    -1e30,
    np.inf,
    -np.inf,
    np.nan,
    352.0,
    3.4e38,
]


def base_image(shape: tuple[int, int, int], dtype: type, seed: int, affine: np.ndarray) -> bytes:
    """The bytes of a valid single-file NIfTI-1 image."""
    rng = np.random.default_rng(seed)
    data = (rng.uniform(0, 100, size=shape)).astype(dtype)
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    return img.to_bytes()


@st.composite
def damaged_nifti(draw: st.DrawFn) -> tuple[bytes, str, tuple[int, int, int], np.ndarray]:
    """(file bytes, suffix, original shape, original affine) of a damaged NIfTI."""
    shape = tuple(draw(st.integers(1, 9)) for _ in range(3))
    dtype = draw(st.sampled_from(_DTYPES))
    zooms = [draw(st.sampled_from([0.5, 1.0, 1.5, 3.0])) for _ in range(3)]
    affine = np.diag([*zooms, 1.0])
    if draw(st.booleans()):
        affine[:3, :3] = affine[:3, :3][:, draw(st.permutations([0, 1, 2]))]
        affine[0] *= -1
    raw = bytearray(base_image(shape, dtype, draw(st.integers(0, 9)), affine))
    header = np.frombuffer(bytes(raw[:348]), dtype=nib.nifti1.header_dtype).copy()
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.sampled_from(sorted(_HEADER_FIELDS)))
        kind = _HEADER_FIELDS[name]
        if kind == "bytes":
            header[name] = draw(st.sampled_from([b"n+1", b"ni1", b"n+2", b"xyz", b""]))
            continue
        field = np.asarray(header[0][name])
        index = draw(st.integers(0, field.size - 1)) if field.ndim else None
        pool = _HOSTILE_INTS if kind.startswith("int") else _HOSTILE_FLOATS
        value = draw(st.one_of(st.sampled_from(pool), st.integers(-40000, 40000)))
        value = np.clip(value, -32768, 32767) if kind == "int16" else value
        with np.errstate(all="ignore"):
            if index is None:
                header[name] = value
            else:
                header[name][0, index] = value
    raw[:348] = header.tobytes()
    for _ in range(draw(st.integers(0, 3))):
        pos = draw(st.integers(0, len(raw) - 1))
        raw[pos] = draw(st.integers(0, 255))
    if draw(st.integers(0, 4)) == 0:
        raw = raw[: draw(st.integers(0, len(raw)))]
    if draw(st.integers(0, 6)) == 0:
        raw += draw(st.binary(max_size=64))
    wrap = draw(st.sampled_from(["nii", "gz", "false-gz", "gz-truncated"]))
    if wrap == "nii":
        return bytes(raw), ".nii", shape, affine
    if wrap == "false-gz":
        return bytes(raw), ".nii.gz", shape, affine
    packed = gzip.compress(bytes(raw), compresslevel=1)
    if wrap == "gz-truncated":
        packed = packed[: draw(st.integers(0, len(packed)))]
    return packed, ".nii.gz", shape, affine


def _good_case(folder: Path, shape: tuple[int, int, int], affine: np.ndarray) -> dict[str, Path]:
    """Three good modalities on the damaged file's original grid."""
    files = {}
    rng = np.random.default_rng(0)
    for key in ("t1", "t1c", "t2"):
        path = folder / f"good_{key}.nii.gz"
        nib.save(nib.Nifti1Image(rng.uniform(1, 9, shape).astype(np.float32), affine), path)
        files[key] = path
    return files


def exercise(
    data: bytes, suffix: str, shape: tuple[int, int, int], affine: np.ndarray, folder: Path
) -> str:
    """Run nehmap's reading path on the bytes: 'accepted' when ``read_image`` took them.

    Raises:
        Any exception that is not a NehmapInputError (a finding).
    """
    path = folder / f"fuzz_flair{suffix}"
    path.write_bytes(data)
    outcome = "accepted"
    for call in (
        lambda: read_image(path),
        lambda: read_grid(path),
        lambda: read_image(path, dtype=None, kind="label map"),
    ):
        try:
            call()
        except NehmapInputError:
            outcome = "refused" if outcome == "accepted" and call is not None else outcome
            break
    case = CaseFiles(
        "fuzz", "fuzz", None, "manifest", files={**_good_case(folder, shape, affine), "flair": path}
    )
    try:
        load_case(case)
    except NehmapInputError:
        pass
    path.unlink()
    return outcome


def _signature(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = next(
        (f for f in reversed(frames) if "nehmap" in f.filename or "nibabel" in f.filename),
        frames[-1] if frames else None,
    )
    place = f"{Path(where.filename).name}:{where.lineno}" if where else "?"
    return f"{type(exc).__name__} at {place}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="how long to fuzz")
    parser.add_argument("--seed", type=int, default=0, help="Hypothesis seed")
    args = parser.parse_args(argv)
    os.environ["NEHMAP_MAX_VOXELS"] = str(FUZZ_MAX_VOXELS)
    for name in ("nibabel", "nibabel.global"):  # its notes on the headers it fixes or refuses
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)
    counts: Counter[str] = Counter()
    findings: dict[str, str] = {}
    deadline = time.monotonic() + 60 * args.minutes
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)

        @settings(
            max_examples=200,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(damaged_nifti())
        def probe(sample: tuple[bytes, str]) -> None:
            if time.monotonic() > deadline:
                return
            try:
                counts[exercise(*sample, folder)] += 1
            except Exception as exc:  # noqa: BLE001 - every other exception is a finding
                counts["failed"] += 1
                key = _signature(exc)
                findings.setdefault(
                    key, f"{str(exc)[:160]!r}; {sample[1]} file of {len(sample[0])} bytes"
                )

        while time.monotonic() < deadline:  # batches of 200 fresh random examples
            probe()
    total = sum(counts.values())
    print(
        f"examples: {total} ({counts['refused']} refused, {counts['accepted']} accepted, "
        f"{counts['failed']} failed)"
    )
    print(f"distinct failures: {len(findings)}")
    for key, example in findings.items():
        print(f"- {key}\n    first seen: {example}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
