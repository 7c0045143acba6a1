"""Tests of the spatial relation metrics against brute-force references and worked examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage as ndi

from nehmap.metrics import (
    VolumeContainment,
    fraction_inside,
    fraction_near_edge,
    mean_edge_distance,
    volume_containment,
)

# --------------------------------------------------------------------------------------
# Brute force
# --------------------------------------------------------------------------------------


def brute_edge_distances(a, b, spacing):
    """Distance of every voxel of ``a`` to the nearest boundary voxel of ``b`` (all pairs).

    Distances come from integer offsets, ``sqrt(sum((offset * spacing) ** 2))``, the same
    arithmetic as nehmap, so that exact ties compare equal.
    """
    edge = b & ~ndi.binary_erosion(b, border_value=0)
    pa, pe = np.argwhere(a), np.argwhere(edge)
    offsets = (pa[:, None, :] - pe[None, :, :]).astype(float) * np.asarray(spacing)
    return np.sqrt((offsets**2).sum(axis=-1)).min(axis=1)


def random_masks(seed, shape=(11, 12, 13)):
    rng = np.random.default_rng(seed)

    def blob():
        f = ndi.gaussian_filter(rng.standard_normal(shape), 1.3)
        return f > 0.5 * f.std()

    return blob(), blob()


SPACINGS = [(1.0, 1.0, 1.0), (0.9375, 0.9375, 2.0), (0.7, 1.3, 2.9)]


# --------------------------------------------------------------------------------------
# Properties against brute force
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_against_brute_force(seed):
    a, b = random_masks(seed)
    spacing = SPACINGS[seed % 3]
    d = brute_edge_distances(a, b, spacing)
    assert mean_edge_distance(a, b, spacing) == pytest.approx(d.mean(), rel=1e-12)
    for within in (0.0, 1.0, 2.0, 2.9, 5.0):
        assert fraction_near_edge(a, b, spacing, within) == np.mean(d <= within)
    n_ab = np.sum(a & b)
    vc = volume_containment(a, b, spacing)
    assert vc.overlap_mm3 == pytest.approx(n_ab * np.prod(spacing), rel=1e-12)
    assert vc.fraction_of_smaller == pytest.approx(n_ab / min(a.sum(), b.sum()), rel=1e-12)
    assert fraction_inside(a, b) == pytest.approx(n_ab / a.sum(), rel=1e-12)


@pytest.mark.parametrize("spacing", SPACINGS)
def test_far_apart_masks(spacing):
    a = np.zeros((40, 8, 9), bool)
    b = np.zeros_like(a)
    a[1:4, 2:5, 2:6] = True
    b[30:38, 1:7, 3:8] = True
    d = brute_edge_distances(a, b, spacing)
    assert mean_edge_distance(a, b, spacing) == pytest.approx(d.mean(), rel=1e-12)
    assert fraction_near_edge(a, b, spacing, 30.0) == np.mean(d <= 30.0)
    assert fraction_inside(a, b) == 0.0
    assert volume_containment(a, b, spacing) == (0.0, 0.0)


def test_exact_ties_count_as_within():
    # A single voxel 3 and 4 voxels away along two axes of a voxel of b: distance 5 mm.
    a = np.zeros((9, 9, 3), bool)
    b = np.zeros_like(a)
    a[0, 0, 1] = True
    b[3, 4, 1] = True
    assert mean_edge_distance(a, b, (1.0, 1.0, 1.0)) == 5.0
    assert fraction_near_edge(a, b, (1.0, 1.0, 1.0), 5.0) == 1.0
    assert fraction_near_edge(a, b, (1.0, 1.0, 1.0), 4.999999) == 0.0
    # Non-dyadic spacing: 2 x 0.7 mm is 1.4 mm wherever the voxels are.
    a = np.zeros((20, 3, 3), bool)
    b = np.zeros_like(a)
    a[[0, 5, 11, 16], 1, 1] = True
    b[[2, 7, 13, 18], 1, 1] = True
    assert fraction_near_edge(a, b, (0.7, 1.0, 1.0), 1.4) == 1.0
    assert mean_edge_distance(a, b, (0.7, 1.0, 1.0)) == 2 * 0.7


# --------------------------------------------------------------------------------------
# Worked examples
# --------------------------------------------------------------------------------------


def test_voxel_outside_inside_and_on_the_edge():
    b = np.zeros((11, 11, 11), bool)
    b[2:9, 2:9, 2:9] = True  # 7-voxel cube: edge is its outer layer
    sp = (1.0, 1.0, 2.0)
    centre = np.zeros_like(b)
    centre[5, 5, 5] = True  # 3 voxels from the edge along axes 0 and 1, 6 mm along axis 2
    assert mean_edge_distance(centre, b, sp) == 3.0
    on_edge = np.zeros_like(b)
    on_edge[2, 5, 5] = True
    assert mean_edge_distance(on_edge, b, sp) == 0.0
    outside = np.zeros_like(b)
    outside[10, 5, 5] = True  # 2 voxels beyond the face at index 8
    assert mean_edge_distance(outside, b, sp) == 2.0
    both = centre | on_edge | outside
    assert mean_edge_distance(both, b, sp) == pytest.approx(5.0 / 3)
    assert fraction_near_edge(both, b, sp, 2.0) == pytest.approx(2 / 3)
    assert fraction_inside(both, b) == pytest.approx(2 / 3)


def test_mask_against_itself():
    b = np.zeros((9, 9, 9), bool)
    b[1:8, 1:8, 1:8] = True
    # Distances to its own edge: 0 on the outer layer, 1, 2, 3 deeper in.
    layers = {0: 7**3 - 5**3, 1: 5**3 - 3**3, 2: 3**3 - 1, 3: 1}
    expected = sum(d * n for d, n in layers.items()) / 7**3
    assert mean_edge_distance(b, b, (1.0, 1.0, 1.0)) == pytest.approx(expected)
    assert fraction_near_edge(b, b, (1.0, 1.0, 1.0), 0.0) == pytest.approx(layers[0] / 7**3)
    assert fraction_inside(b, b) == 1.0
    assert volume_containment(b, b, (1.0, 2.0, 0.5)) == (7**3, 1.0)


def test_array_edge_is_background():
    # b fills the array along axis 0, so its voxels on the array faces are edge voxels.
    b = np.zeros((5, 7, 7), bool)
    b[:, 1:6, 1:6] = True
    a = np.zeros_like(b)
    a[0, 3, 3] = True
    assert mean_edge_distance(a, b, (1.0, 1.0, 1.0)) == 0.0


def test_volume_containment_worked_example():
    a = np.zeros((10, 10, 10), bool)
    b = np.zeros_like(a)
    a[0:4, 0:5, 0:5] = True  # 100 voxels
    b[2:8, 0:5, 0:5] = True  # 150 voxels, 50 shared
    vc = volume_containment(a, b, (0.9375, 0.9375, 2.0))
    assert isinstance(vc, VolumeContainment)
    assert vc.overlap_mm3 == pytest.approx(50 * 0.9375 * 0.9375 * 2.0)
    assert vc.fraction_of_smaller == pytest.approx(0.5)
    overlap, fraction = vc  # a NamedTuple unpacks
    assert fraction == vc.fraction_of_smaller
    assert fraction_inside(a, b) == pytest.approx(0.5)
    assert fraction_inside(b, a) == pytest.approx(1 / 3)


def test_two_dimensional_and_one_dimensional():
    a, b = random_masks(3, shape=(20, 22))
    d = brute_edge_distances(a, b, (0.5, 1.5))
    assert mean_edge_distance(a, b, (0.5, 1.5)) == pytest.approx(d.mean(), rel=1e-12)
    line_a = np.array([1, 1, 0, 0, 0, 0], bool)
    line_b = np.array([0, 0, 0, 1, 1, 1], bool)
    assert mean_edge_distance(line_a, line_b, (2.0,)) == pytest.approx((6.0 + 4.0) / 2)


# --------------------------------------------------------------------------------------
# Empty masks and bad input
# --------------------------------------------------------------------------------------


def test_empty_masks_give_nan():
    a, _ = random_masks(1)
    empty = np.zeros_like(a)
    sp = (1.0, 1.0, 1.0)
    for x, y in ((a, empty), (empty, a), (empty, empty)):
        assert math.isnan(mean_edge_distance(x, y, sp))
        assert math.isnan(fraction_near_edge(x, y, sp))
        assert math.isnan(fraction_inside(x, y))
        vc = volume_containment(x, y, sp)
        assert math.isnan(vc.overlap_mm3) and math.isnan(vc.fraction_of_smaller)


def test_bad_input():
    a, b = random_masks(2)
    sp = (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="a has shape .* but b has shape .*resample"):
        mean_edge_distance(a, b[:, :, :5], sp)
    with pytest.raises(ValueError, match="b must be a binary mask"):
        fraction_near_edge(a, b.astype(np.uint8) * 3, sp)
    with pytest.raises(ValueError, match="within_mm"):
        fraction_near_edge(a, b, sp, -1.0)
    with pytest.raises(ValueError, match="spacing"):
        volume_containment(a, b, (1.0, 1.0))
    with pytest.raises(ValueError, match="positive"):
        mean_edge_distance(a, b, (1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="a must be a binary mask"):
        fraction_inside(a * 0.5, b)
