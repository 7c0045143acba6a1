"""Tests of Dice and Jaccard and of the input checks they share with the other metrics."""

from __future__ import annotations

import numpy as np
import pytest

from nehmap.metrics import dice, jaccard


def _random_pair(seed: int, shape=(9, 10, 11), p=0.4):
    rng = np.random.default_rng(seed)
    return rng.random(shape) < p, rng.random(shape) < p


def test_worked_example():
    # pred covers rows 0-1, ref rows 1-2 of a 4x4 grid: |P| = |R| = 8, |P & R| = 4.
    pred = np.zeros((4, 4), bool)
    ref = np.zeros((4, 4), bool)
    pred[:2] = True
    ref[1:3] = True
    assert dice(pred, ref) == pytest.approx(2 * 4 / 16)
    assert jaccard(pred, ref) == pytest.approx(4 / 12)


def test_two_cubes_offset():
    # Two 4x4x4 cubes offset by one voxel along axis 0 share 3x4x4 voxels.
    a = np.zeros((8, 8, 8), bool)
    b = np.zeros((8, 8, 8), bool)
    a[1:5, 2:6, 2:6] = True
    b[2:6, 2:6, 2:6] = True
    assert dice(a, b) == pytest.approx(2 * 48 / 128)
    assert jaccard(a, b) == pytest.approx(48 / 80)


@pytest.mark.parametrize("seed", range(5))
def test_against_counting(seed):
    p, r = _random_pair(seed)
    inter = np.sum(p & r)
    assert dice(p, r) == pytest.approx(2 * inter / (p.sum() + r.sum()), abs=1e-15)
    assert jaccard(p, r) == pytest.approx(inter / np.sum(p | r), abs=1e-15)
    # Symmetric, and Jaccard = Dice / (2 - Dice).
    assert dice(p, r) == dice(r, p)
    assert jaccard(p, r) == pytest.approx(dice(p, r) / (2 - dice(p, r)), abs=1e-15)


def test_identical_masks():
    p, _ = _random_pair(1)
    assert dice(p, p) == 1.0
    assert jaccard(p, p) == 1.0


def test_disjoint_masks():
    a = np.zeros((5, 5), bool)
    b = np.zeros((5, 5), bool)
    a[0], b[4] = True, True
    assert dice(a, b) == 0.0
    assert jaccard(a, b) == 0.0


def test_empty_masks():
    empty = np.zeros((3, 4, 5), bool)
    full = np.zeros((3, 4, 5), bool)
    full[1, 1, 1] = True
    assert dice(empty, empty) == 1.0
    assert jaccard(empty, empty) == 1.0
    assert dice(full, empty) == 0.0
    assert dice(empty, full) == 0.0
    assert jaccard(full, empty) == 0.0
    assert jaccard(empty, full) == 0.0


@pytest.mark.parametrize(
    "dtype", [bool, np.uint8, np.int8, np.int16, np.int64, np.uint32, np.float32, np.float64]
)
def test_numeric_binary_dtypes_accepted(dtype):
    p, r = _random_pair(3)
    expected = dice(p, r)
    assert dice(p.astype(dtype), r.astype(dtype)) == expected
    assert jaccard(p.astype(dtype), r) == jaccard(p, r)


def test_lists_accepted():
    assert dice([[1, 0], [0, 1]], [[1, 1], [0, 1]]) == pytest.approx(0.8)


def test_other_validated_metrics_share_the_checks():
    from nehmap.metrics import hd95

    with pytest.raises(ValueError, match="resample one onto the other's grid"):
        hd95(np.zeros((3, 4, 5), bool), np.zeros((3, 4, 6), bool), (1.0, 1.0, 1.0))


def test_shape_mismatch_message():
    with pytest.raises(ValueError) as info:
        dice(np.zeros((3, 4, 5), bool), np.zeros((3, 5, 4), bool))
    message = str(info.value)
    assert "(3, 4, 5)" in message and "(3, 5, 4)" in message
    assert "resample one onto the other's grid" in message


@pytest.mark.parametrize(
    "bad, shown",
    [
        (np.array([[0, 1], [2, 1]]), "2"),
        (np.array([[0, 1], [-1, 1]]), "-1"),
        (np.array([[0.0, 0.5], [1.0, 1.0]]), "0.5"),
        (np.array([[0.0, np.nan], [1.0, 1.0]]), "nan"),
        (np.array([[0, 255], [1, 1]], dtype=np.uint8), "255"),
    ],
)
def test_non_binary_rejected(bad, shown):
    ok = np.zeros((2, 2), bool)
    with pytest.raises(ValueError, match="binary mask") as info:
        dice(bad, ok)
    assert shown in str(info.value)
    assert "pred" in str(info.value)
    with pytest.raises(ValueError, match="ref must be a binary mask"):
        jaccard(ok, bad)


def test_non_numeric_rejected():
    with pytest.raises(ValueError, match="dtype"):
        dice(np.array([["a", "b"]]), np.zeros((1, 2), bool))
