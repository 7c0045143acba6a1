"""A short fuzz of the NIfTI reading and validation path (the long run: scripts/fuzz_nifti.py).

Damaged NIfTI files (hostile header fields, flipped bytes, truncation, junk, false gzip)
go through ``read_grid``, ``read_image`` and ``load_case``; nehmap may refuse them only
with its own NehmapInputError. Any other exception fails the test, and Hypothesis shrinks
it to a small example.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "fuzz_nifti.py"
_spec = importlib.util.spec_from_file_location("fuzz_nifti", SCRIPT)
fuzz = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fuzz)


@settings(
    max_examples=80,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sample=fuzz.damaged_nifti())
def test_damaged_nifti_is_read_or_refused_cleanly(tmp_path, sample):
    data, suffix, shape, affine = sample
    previous = os.environ.get("NEHMAP_MAX_VOXELS")
    os.environ["NEHMAP_MAX_VOXELS"] = str(fuzz.FUZZ_MAX_VOXELS)
    logging.getLogger("nibabel.global").setLevel(logging.ERROR)
    try:
        assert fuzz.exercise(data, suffix, shape, affine, tmp_path) in ("accepted", "refused")
    finally:
        if previous is None:
            del os.environ["NEHMAP_MAX_VOXELS"]
        else:
            os.environ["NEHMAP_MAX_VOXELS"] = previous


def test_undamaged_image_is_accepted(tmp_path):
    """The harness's starting point is a good file: it must be accepted, not refused."""
    affine = np.diag([1.0, 1.5, 3.0, 1.0])
    raw = fuzz.base_image((5, 6, 7), np.int16, 0, affine)
    assert fuzz.exercise(raw, ".nii", (5, 6, 7), affine, tmp_path) == "accepted"
