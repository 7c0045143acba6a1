"""Tests of the spatial chance model."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

from nehmap.stats import random_placement, spatial_null


def _ellipsoid(shape, spacing, centre_mm, radii_mm) -> np.ndarray:
    pos = np.indices(shape).transpose(1, 2, 3, 0) * np.asarray(spacing, dtype=float)
    return (((pos - np.asarray(centre_mm)) / np.asarray(radii_mm)) ** 2).sum(-1) <= 1.0


def _overlap(a: np.ndarray, b: np.ndarray, spacing) -> float:
    return np.count_nonzero(a & b) / np.count_nonzero(a)


def _centroid_mm(mask: np.ndarray, spacing) -> np.ndarray:
    return np.argwhere(mask).mean(axis=0) * np.asarray(spacing)


def _centroid_distance(a: np.ndarray, b: np.ndarray, spacing) -> float:
    return float(np.linalg.norm(_centroid_mm(a, spacing) - _centroid_mm(b, spacing)))


SHAPE = (40, 48, 40)
SPACING = (2.0, 2.0, 2.0)
BRAIN = _ellipsoid(SHAPE, SPACING, (40, 48, 40), (36, 44, 36))
A = _ellipsoid(SHAPE, SPACING, (30, 40, 44), (8, 6, 7))


def test_b_on_a_is_far_above_chance() -> None:
    res = spatial_null(A, A.copy(), BRAIN, SPACING, _overlap, n=199, seed=0)
    assert res.observed == 1.0
    assert res.ratio > 10
    assert res.p_value == pytest.approx(1 / 200)
    assert res.n == 199 and res.null.shape == (199,)
    assert 0 < res.acceptance_rate <= 1
    assert res.n_attempts >= 199
    row = res.to_dict()
    assert row["metric"] == "_overlap" and "null" not in row
    assert res.to_frame().shape == (1, len(row))
    # Distances: B on A is much closer than chance.
    res = spatial_null(A, A, BRAIN, SPACING, _centroid_distance, n=99, alternative="less")
    assert res.observed == 0.0
    assert res.ratio < 0.2
    assert res.p_value == pytest.approx(1 / 100)


def test_deterministic_by_seed() -> None:
    a = spatial_null(A, A, BRAIN, SPACING, _overlap, n=30, seed=4)
    b = spatial_null(A, A, BRAIN, SPACING, _overlap, n=30, seed=4)
    np.testing.assert_array_equal(a.null, b.null)


def test_placements_stay_in_brain() -> None:
    rng = np.random.default_rng(0)
    for _ in range(10):
        moved = random_placement(A, BRAIN, SPACING, rng, min_inside=0.95)
        assert not np.any(moved & ~BRAIN)
        unclipped = random_placement(A, BRAIN, SPACING, rng, clip_to_brain=False)
        assert np.count_nonzero(unclipped & BRAIN) >= 0.95 * np.count_nonzero(unclipped)


def test_rotation_preserves_voxel_count() -> None:
    everywhere = np.ones(SHAPE, dtype=bool)
    counts = np.array(
        [random_placement(A, everywhere, SPACING, seed, min_inside=1.0).sum() for seed in range(20)]
    )
    assert np.all(np.abs(counts - A.sum()) <= 0.08 * A.sum())
    # Translation only keeps the voxels exactly (up to a whole-voxel shift).
    moved = random_placement(A, everywhere, SPACING, 3, rotate=False, min_inside=1.0)
    idx_a, idx_m = np.argwhere(A), np.argwhere(moved)
    assert idx_m.shape == idx_a.shape
    shift = idx_m[0] - idx_a[0]
    np.testing.assert_array_equal(idx_m - idx_a, np.broadcast_to(shift, idx_a.shape))


def test_anisotropic_sphere_stays_a_sphere() -> None:
    spacing = (1.0, 1.0, 3.0)  # thick slices along the last axis
    shape = (40, 40, 14)
    sphere = _ellipsoid(shape, spacing, (20.0, 20.0, 21.0), (7.0, 7.0, 7.0))
    everywhere = np.ones(shape, dtype=bool)
    half_diagonal = 0.5 * np.linalg.norm(spacing)
    for seed in range(6):
        moved = random_placement(sphere, everywhere, spacing, seed, min_inside=1.0)
        assert abs(int(moved.sum()) - int(sphere.sum())) <= 0.05 * sphere.sum()
        pos = np.argwhere(moved) * np.asarray(spacing)
        centre = pos.mean(axis=0)
        # Still round in mm: every voxel within the radius plus the rasterisation error,
        # and similar spread along all directions (rotating in voxel units instead would
        # stretch it threefold along some direction).
        radii = np.linalg.norm(pos - centre, axis=1)
        assert radii.max() <= 7.0 + half_diagonal + 0.5
        spread = np.linalg.eigvalsh(np.cov(pos.T))
        assert spread.max() / spread.min() < 1.7


def test_p_values_roughly_uniform_when_a_is_random() -> None:
    # Observed A is itself one draw of the null model: the p-value should be uniform.
    shape = (20, 20, 20)
    spacing = (1.5, 1.5, 1.5)
    brain = _ellipsoid(shape, spacing, (15, 15, 15), (14, 14, 14))
    base = _ellipsoid(shape, spacing, (15, 15, 15), (4.5, 3.0, 3.0))
    B = _ellipsoid(shape, spacing, (9, 18, 12), (3.0, 3.0, 3.0))
    rng = np.random.default_rng(123)
    pvals = []
    for _ in range(40):
        A_obs = random_placement(base, brain, spacing, rng)
        res = spatial_null(
            A_obs, B, brain, spacing, _centroid_distance, n=39, seed=rng, alternative="less"
        )
        pvals.append(res.p_value)
    pvals = np.array(pvals)
    assert 0.35 < pvals.mean() < 0.65
    assert stats.kstest(pvals, "uniform").pvalue > 1e-3


def test_errors_and_warnings() -> None:
    tiny_brain = _ellipsoid(SHAPE, SPACING, (40, 48, 40), (5, 5, 5))
    with pytest.raises(RuntimeError, match="min_inside"):
        spatial_null(A, A, tiny_brain, SPACING, _overlap, n=5, min_inside=1.0, max_attempts=3)
    with pytest.raises(ValueError, match="empty"):
        spatial_null(np.zeros(SHAPE, bool), A, BRAIN, SPACING, _overlap, n=5)
    with pytest.raises(ValueError, match="spacing"):
        spatial_null(A, A, BRAIN, (1.0, 1.0), _overlap, n=5)
    with pytest.raises(ValueError, match="shape"):
        spatial_null(A, A[:-1], BRAIN, SPACING, _overlap, n=5)

    calls = iter(range(10**6))

    def sometimes_nan(a, b, spacing) -> float:
        return float("nan") if next(calls) % 4 == 1 else _overlap(a, b, spacing)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = spatial_null(A, A, BRAIN, SPACING, sometimes_nan, n=20)
    assert any("not finite" in str(w.message) for w in caught)
    assert res.n_invalid == 5 and res.n == 15


def test_to_dict_holds_every_scalar_field_the_metric_first():
    from dataclasses import fields

    from nehmap.stats.spatial_null import SpatialNullResult

    values = {f.name: i for i, f in enumerate(fields(SpatialNullResult))}
    row = SpatialNullResult(**values).to_dict()
    assert list(row)[0] == "metric" and "null" not in row
    assert row == {k: v for k, v in values.items() if k != "null"}
