"""The perfect model's scores: checked against closed forms, not against nehmap."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage
from scipy.stats import norm

from nehmap.evaluate.perfect_model import (
    PERFECT_MODEL_REGIONS,
    perfect_model_dice,
    perfect_probabilities,
)
from nehmap.fusion import fuse_neh
from nehmap.labels import ED, ET, NC, NEH
from nehmap.metrics.overlap import dice


def _layers(thicknesses: list[tuple[int, int]], shape_yz: tuple[int, int] = (6, 6)) -> np.ndarray:
    """A label map that varies along x only: ``(label, voxels)`` layers, in order."""
    column = np.concatenate([np.full(n, label, np.uint8) for label, n in thicknesses])
    return np.broadcast_to(column[:, None, None], (len(column), *shape_yz)).copy()


def test_a_perfect_model_at_the_cases_spacing_without_smoothing_scores_one():
    labels = _layers([(0, 5), (ED, 3), (NEH, 4), (ET, 2), (NC, 5), (ET, 3), (0, 4)])
    scores = perfect_model_dice(labels, (1.0, 1.0, 1.0), model_spacing_mm=1.0, sigma_mm=0.0)
    assert list(scores) == list(PERFECT_MODEL_REGIONS)
    assert all(value == 1.0 for value in scores.values())


def test_regions_absent_from_the_truth_are_nan_not_one():
    labels = _layers([(0, 6), (ED, 4), (NEH, 4), (NC, 4), (0, 6)])  # no enhancing tumour
    scores = perfect_model_dice(labels, (1.0, 1.0, 1.0), model_spacing_mm=1.0, sigma_mm=0.0)
    assert math.isnan(scores["ET"])
    assert scores["TC"] == 1.0


def test_layers_on_the_models_grid_survive_the_round_trip_and_one_voxel_layers_do_not():
    # 2 mm blocks of a 1 mm grid: layers of even thickness starting at even indices are
    # whole blocks; trilinear down and up (0.75/0.25 weights) gives every voxel back
    aligned = _layers([(0, 6), (ED, 4), (NEH, 4), (ET, 2), (NC, 6), (ET, 2), (0, 6)])
    scores = perfect_model_dice(aligned, (1.0, 1.0, 1.0), model_spacing_mm=2.0, sigma_mm=0.0)
    assert [scores[r] for r in ("WT", "TC", "ET", "NEH")] == [1.0] * 4
    # a 1 mm NEH layer shares its 2 mm block with edema: 0.5 NEH there, 0.375 after the
    # way back, below the edema's 0.625, so the perfect 2 mm model loses all of it
    thin = _layers([(0, 6), (ED, 5), (NEH, 1), (ET, 2), (NC, 6), (ET, 2), (0, 6)])
    scores = perfect_model_dice(thin, (1.0, 1.0, 1.0), model_spacing_mm=2.0, sigma_mm=0.0)
    assert scores["NEH"] == 0.0
    probs = perfect_probabilities(thin, (1.0, 1.0, 1.0), 2.0)
    np.testing.assert_allclose(probs[NEH][11], 0.375, atol=1e-6)
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-6)


def _smoothed_slab(n: int, start: int, width: int, step: float, sigma: float) -> np.ndarray:
    """Closed form of a slab of probability 1 (voxels ``start`` to ``start + width - 1``
    of ``n``, ``step`` mm each) smoothed by a continuous Gaussian of ``sigma`` mm, at the
    voxel centres: Phi((x + t/2) / sigma) - Phi((x - t/2) / sigma)."""
    half = width * step / 2
    x = (np.arange(n) - (start + width / 2) + 0.5) * step
    return norm.cdf((x + half) / sigma) - norm.cdf((x - half) / sigma)


@pytest.mark.parametrize(
    ("thickness_mm", "threshold"),
    [
        (2.5, 0.7),
        (3.0, 0.5),
        (3.0, 0.7),
        (4.0, 0.3),
        (4.0, 0.5),
        (4.0, 0.7),
        (6.0, 0.3),
        (6.0, 0.7),
    ],
)
def test_the_fused_mask_of_a_perfect_slab_is_what_a_continuous_gaussian_gives(
    thickness_mm, threshold
):
    # anisotropic grid (0.5 mm along the slab's normal) so that sigma must go to voxels
    # axis by axis; with sigma taken as 1.5 voxels most of these widths change
    step, sigma = 0.5, 1.5
    n_slab = int(round(thickness_mm / step))
    labels = _layers([(ED, 40), (NEH, n_slab), (ED, 40)], shape_yz=(5, 5))
    # the slab smoothed by a continuous Gaussian, at the voxel centres
    p = _smoothed_slab(labels.shape[0], 40, n_slab, step, sigma)
    assert np.min(np.abs(p - threshold)) > 0.005  # no voxel on the edge: a fair comparison
    expected = dice(p >= threshold, labels[:, 0, 0] == NEH)
    spacing = (step, 1.0, 1.0)
    scores = perfect_model_dice(labels, spacing, model_spacing_mm=spacing, threshold=threshold)
    assert scores["fused NEH"] == pytest.approx(expected, abs=1e-12)
    assert scores["NEH"] == 1.0


@pytest.mark.parametrize("thickness_mm", [1.0, 1.5])
def test_a_layer_thinner_than_2_mm_vanishes_from_the_papers_fused_mask(thickness_mm):
    # a perfect slab of t mm peaks at erf(t / (2 sqrt(2) sigma)) after smoothing: below 0.5
    # for t < 2.0 mm at sigma 1.5 mm, whatever the models
    assert math.erf(thickness_mm / (2 * math.sqrt(2) * 1.5)) < 0.5
    labels = _layers([(ED, 40), (NEH, int(thickness_mm / 0.5)), (ED, 40)], shape_yz=(5, 5))
    spacing = (0.5, 1.0, 1.0)
    assert perfect_model_dice(labels, spacing, model_spacing_mm=spacing)["fused NEH"] == 0.0


def test_bad_arguments_are_named():
    labels = _layers([(0, 4), (ED, 4)])
    with pytest.raises(ValueError, match="model_spacing_mm"):
        perfect_model_dice(labels, (1.0, 1.0, 1.0), model_spacing_mm=0.0)
    with pytest.raises(ValueError, match="brain mask"):
        perfect_model_dice(labels, (1.0, 1.0, 1.0), brain=np.ones((2, 2, 2), bool))
    with pytest.raises(ValueError, match="non-empty"):
        perfect_model_dice(labels, (1.0, 1.0, 1.0), brain=np.zeros(labels.shape, int))
    with pytest.raises(ValueError, match="3D"):
        perfect_model_dice(labels[:, :, 0], (1.0, 1.0))


def test_a_model_that_draws_a_thin_layer_too_thick_beats_the_perfect_one_after_fusion():
    # the module's caveat: its scores are a correct model's, not an upper bound; a 1.5 mm
    # layer vanishes from a perfect model's fused mask, while a confident 3.5 mm layer
    # centred on it leaves a 3.5 mm mask (edge voxels 0.55 inside, 0.43 outside): Dice 0.6
    step = 0.5
    labels = _layers([(ED, 40), (NEH, 3), (ED, 40)], shape_yz=(5, 5))
    spacing = (step, 1.0, 1.0)
    assert perfect_model_dice(labels, spacing, model_spacing_mm=spacing)["fused NEH"] == 0.0
    inflated = np.zeros(labels.shape, np.float32)
    inflated[38:45] = 1.0  # 7 voxels = 3.5 mm around the 3-voxel layer (40-42)
    mask = fuse_neh([inflated, inflated], spacing).mask > 0
    # the closed form keeps the same 7 voxels, with a margin: Dice 2 * 3 / (3 + 7)
    p = _smoothed_slab(labels.shape[0], 38, 7, step, 1.5)
    assert np.min(np.abs(p - 0.5)) > 0.05
    np.testing.assert_array_equal(mask[:, 0, 0], p >= 0.5)
    assert dice(mask, labels == NEH) == pytest.approx(0.6)


def test_outside_an_integer_brain_mask_the_perfect_model_says_background():
    labels = _layers([(0, 4), (ED, 4), (NEH, 4), (ET, 4), (0, 4)])
    brain = np.zeros(labels.shape, np.uint8)
    brain[:14] = 1  # the brain ends inside the enhancing layer
    probs = perfect_probabilities(labels, 1.0, 2.0, brain=brain)
    assert probs.shape == (5, *labels.shape)
    np.testing.assert_array_equal(probs[0, 14:], 1.0)
    np.testing.assert_array_equal(probs[1:, 14:], 0.0)
    assert probs[NEH, 9].min() > 0.5  # inside the brain the NEH layer is kept


def test_the_perfect_probabilities_equal_block_means_upsampled_by_scipy():
    # an independent route to the same numbers: exact 2 x 2 x 2 block means (numpy), then
    # scipy's linear zoom on the voxel grid (grid_mode: voxel centres at half-voxels, as
    # align_corners=False), clipped and renormalised like the pipeline
    rng = np.random.default_rng(0)
    noise = ndimage.gaussian_filter(rng.standard_normal((20, 16, 12)), 2) * 8
    labels = (np.floor(noise) % 5).astype(np.uint8)
    assert len(np.unique(labels)) == 5
    onehot = np.stack([labels == v for v in range(5)]).astype(np.float64)
    x, y, z = labels.shape
    blocks = onehot.reshape(5, x // 2, 2, y // 2, 2, z // 2, 2).mean(axis=(2, 4, 6))
    up = np.stack([ndimage.zoom(c, 2, order=1, grid_mode=True, mode="nearest") for c in blocks])
    up = np.clip(up, 0, 1) / np.clip(up, 0, 1).sum(axis=0, keepdims=True)
    ours = perfect_probabilities(labels, (1.0, 1.0, 1.0), 2.0)
    np.testing.assert_allclose(ours, up, atol=1e-6)
