import numpy as np
import pytest

from nehmap.preprocess import (
    brain_crop,
    labels_from_probabilities,
    resample_channels,
    resample_probabilities,
    resampled_shape,
    zscore_in_mask,
)


def test_brain_crop_and_paste_round_trip():
    mask = np.zeros((10, 12, 8), bool)
    mask[2:5, 3:9, 1:7] = True
    crop = brain_crop(mask, margin=1)
    assert crop.slices == (slice(1, 6), slice(2, 10), slice(0, 8))
    block = np.arange(np.prod(crop.shape)).reshape(crop.shape)
    full = crop.paste(block[None], fill=-1)
    assert full.shape == (1, 10, 12, 8)
    np.testing.assert_array_equal(full[0][crop.slices], block)
    assert (full[0][~np.pad(np.ones(crop.shape, bool), [(1, 4), (2, 2), (0, 0)])] == -1).all()
    with pytest.raises(ValueError, match="empty"):
        brain_crop(np.zeros((3, 3, 3), bool))


def test_zscore_inside_mask_only():
    rng = np.random.default_rng(0)
    stack = rng.normal(50, 10, size=(2, 8, 8, 8))
    mask = np.zeros((8, 8, 8), bool)
    mask[2:6, 2:6, 2:6] = True
    out = zscore_in_mask(stack, mask)
    for c in range(2):
        assert out[c][mask].mean() == pytest.approx(0, abs=1e-5)
        assert out[c][mask].std() == pytest.approx(1, abs=1e-5)
        assert (out[c][~mask] == 0).all()
    stack[1][mask] = 3.0
    with pytest.raises(ValueError, match="flair is constant"):
        zscore_in_mask(stack, mask, names=["t1", "flair"])


def test_resampled_shape_covers_same_extent():
    assert resampled_shape((240, 240, 155), (1, 1, 1), (2, 2, 2)) == (120, 120, 78)
    assert resampled_shape((256, 256, 60), (0.9375, 0.9375, 2.5), (1, 1, 1)) == (240, 240, 150)


def test_resample_round_trip_of_smooth_field_and_constant():
    x, y, z = np.meshgrid(np.arange(40), np.arange(30), np.arange(20), indexing="ij")
    field = np.sin(x / 9.0) + np.cos(y / 7.0) + z / 20.0
    down = resample_channels(field[None], (20, 15, 10))
    back = resample_channels(down, (40, 30, 20))[0]
    assert np.abs(back - field)[2:-2, 2:-2, 2:-2].max() < 0.05
    const = resample_channels(np.full((1, 7, 9, 5), 3.0), (13, 4, 11))
    np.testing.assert_allclose(const, 3.0, rtol=1e-6)


def test_probabilities_resampled_then_argmax():
    probs = np.zeros((3, 10, 10, 10), np.float32)
    probs[0] = 1
    probs[:, 3:7, 3:7, 3:7] = [[[[0.1]]], [[[0.2]]], [[[0.7]]]]
    up = resample_probabilities(probs, (20, 20, 20))
    np.testing.assert_allclose(up.sum(0), 1, rtol=1e-5)
    labels = labels_from_probabilities(up, [0, 2, 4])
    assert set(np.unique(labels)) == {0, 4}
    assert labels[10, 10, 10] == 4 and labels[0, 0, 0] == 0
