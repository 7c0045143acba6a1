import numpy as np
import pytest
from scipy import ndimage

from nehmap.fusion import (
    disagreement,
    fuse_neh,
    mean_probability,
    probability_levels,
    smooth,
    staple,
)


def test_mean_and_weights():
    a, b = np.full((3, 3, 3), 0.2), np.full((3, 3, 3), 0.8)
    np.testing.assert_allclose(mean_probability([a, b]), 0.5)
    np.testing.assert_allclose(mean_probability([a, b], weights=[3, 1]), 0.35)
    with pytest.raises(ValueError, match="weights"):
        mean_probability([a, b], weights=[1])
    with pytest.raises(ValueError, match="different shapes"):
        mean_probability([a, np.zeros((2, 3, 3))])


def test_smoothing_sigma_is_in_mm_per_axis():
    impulse = np.zeros((41, 41, 41), np.float32)
    impulse[20, 20, 20] = 1.0
    spacing = (0.5, 1.0, 3.0)
    out = smooth(impulse, spacing, sigma_mm=1.5)
    ref = ndimage.gaussian_filter(impulse, [3.0, 1.5, 0.5], mode="nearest")
    np.testing.assert_allclose(out, ref, atol=1e-7)
    # the blob's physical second moment is sigma^2 = 2.25 mm^2 along every axis
    grid = np.indices(out.shape).astype(float)
    for axis, s in enumerate(spacing):
        coord = (grid[axis] - 20) * s
        var = (out * coord**2).sum() / out.sum()
        if s <= 1.0:
            assert var == pytest.approx(2.25, rel=0.02)


def test_levels_and_threshold():
    p = np.array([0.0, 0.1, 0.2, 0.49, 0.5, 0.9])
    assert probability_levels(p).tolist() == [0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError):
        probability_levels(p, low=0.6, high=0.5)


def test_fuse_neh_pipeline():
    rng = np.random.default_rng(0)
    truth = np.zeros((30, 30, 30), bool)
    truth[10:20, 10:20, 10:20] = True
    maps = [np.clip(truth * 0.9 + rng.normal(0, 0.1, truth.shape), 0, 1) for _ in range(2)]
    c = fuse_neh(maps, (1.0, 1.0, 1.0))
    assert c.mask.dtype == np.uint8
    dice = 2 * (c.mask.astype(bool) & truth).sum() / (c.mask.sum() + truth.sum())
    assert dice > 0.8  # smoothing rounds the cube's edges and corners
    np.testing.assert_array_equal(c.mask, (c.levels == 2).astype(np.uint8))
    np.testing.assert_allclose(c.uncertainty, np.abs(maps[0] - maps[1]) / 2, atol=1e-6)


def test_disagreement_zero_when_equal():
    a = np.random.default_rng(0).random((4, 4, 4))
    assert disagreement([a, a]).max() == 0


def test_staple_of_identical_masks_is_that_mask():
    m = np.zeros((10, 10, 10), np.uint8)
    m[3:7, 3:7, 3:7] = 1
    p = staple([m, m, m])
    assert ((p > 0.5) == m.astype(bool)).all()


@pytest.mark.parametrize("thickness_mm", [2.0, 3.0, 4.0, 6.0])
def test_smoothing_of_a_flat_layer_matches_the_analytic_values(thickness_mm):
    """The values docs/method.md quotes: a certain layer of thickness t keeps
    erf(t / (2 sqrt(2) sigma)) at its centre, and 0.5 at the edges of a thick layer."""
    from scipy.special import erf

    step = 0.25  # mm, fine enough for the continuous values
    n = int(round(thickness_mm / step))
    layer = np.zeros((8, 8, 200), np.float32)
    layer[:, :, 100 - n // 2 : 100 - n // 2 + n] = 1.0
    out = smooth(layer, (1.0, 1.0, step), sigma_mm=1.5)
    centre = out[4, 4, 100 - n // 2 : 100 - n // 2 + n].max()
    expected = erf(thickness_mm / (2 * np.sqrt(2) * 1.5))
    assert centre == pytest.approx(expected, abs=0.01)
    kept_mm = (out[4, 4] >= 0.5).sum() * step
    if thickness_mm == 2.0:
        assert kept_mm == 0.0  # the centre stays just under 0.5: the mask loses the layer
    else:
        assert kept_mm == pytest.approx(thickness_mm, abs=2 * step)


def _raters(seed=1, shape=(20, 22, 18)):
    """A cube of truth and three raters of different sensitivity and specificity."""
    rng = np.random.default_rng(seed)
    truth = np.zeros(shape, bool)
    truth[5:14, 6:15, 4:12] = True
    masks = []
    for sens, spec in ((0.9, 0.98), (0.7, 0.995), (0.95, 0.9)):
        m = np.where(truth, rng.random(shape) < sens, rng.random(shape) > spec)
        masks.append(m.astype(np.uint8))
    return truth, masks


def test_staple_equals_an_independent_em():
    from staple_em import staple_em

    truth, masks = _raters()
    p = staple(masks)
    np.testing.assert_allclose(p, staple_em(masks), atol=1e-5)
    # STAPLE weighs the raters, unlike a vote: one "yes" counts more from the most
    # specific rater (mask 1) than from the least specific one (mask 2)
    only_2 = (masks[2] == 1) & (masks[0] == 0) & (masks[1] == 0)
    only_1 = (masks[1] == 1) & (masks[0] == 0) & (masks[2] == 0)
    assert p[only_2].max() < p[only_1].min()


def test_staple_of_masks_that_all_agree_is_the_mask():
    m = np.zeros((6, 6, 6), np.uint8)
    np.testing.assert_array_equal(staple([m, m]), 0)
    np.testing.assert_array_equal(staple([m + 1, m + 1]), 1)


def test_fuse_neh_with_staple_smooths_the_staple_probability():
    from staple_em import staple_em

    truth, masks = _raters(2)
    maps = [m.astype(np.float32) for m in masks]
    spacing = (1.0, 1.2, 2.0)
    c = fuse_neh(maps, spacing, fusion="staple", masks=masks)
    np.testing.assert_allclose(c.raw, staple_em(masks), atol=1e-5)
    np.testing.assert_allclose(c.probability, smooth(c.raw, spacing, 1.5), atol=1e-6)
    np.testing.assert_array_equal(c.mask, c.probability >= 0.5)
    with pytest.raises(ValueError, match="one binary NEH mask per model"):
        fuse_neh(maps, spacing, fusion="staple")
    with pytest.raises(ValueError, match="weights apply to the mean"):
        fuse_neh(maps, spacing, fusion="staple", masks=masks, weights=[1, 1, 1])
    with pytest.raises(ValueError, match="Unknown fusion 'vote'"):
        fuse_neh(maps, spacing, fusion="vote")
