"""Tests of the surface-distance metrics and of evaluate_labels.

nehmap's two conventions are compared with the code they reproduce (MONAI 1.6 for
``method="voxels"``, DeepMind's surface-distance for ``method="surface_elements"``) on
varied seeded masks, and with a brute-force all-pairs implementation of the definitions.
"""

from __future__ import annotations

import math
import warnings

import edt
import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy.spatial.distance import cdist

from nehmap.labels import region_mask
from nehmap.metrics import (
    DEFAULT_REGIONS,
    average_surface_distance,
    dice,
    evaluate_labels,
    hausdorff,
    hd95,
    jaccard,
    surface_dice,
    surface_element_areas,
    surface_metrics,
)
from nehmap.metrics import _nearest as nearest_module
from nehmap.metrics import _query_edt as query_edt_module
from nehmap.metrics._grid import _euclidean
from nehmap.metrics._nearest import nearest_distances
from nehmap.metrics._query_edt import error_bound, squared_distances
from nehmap.metrics._surfels import _corner_codes

torch = pytest.importorskip("torch")
monai_metrics = pytest.importorskip("monai.metrics")
sd = pytest.importorskip("surface_distance")
sd_tables = pytest.importorskip("surface_distance.lookup_tables")

HD_ABS = 1e-4  # mm
RATIO_ABS = 1e-6


@pytest.fixture(autouse=True)
def _numpy2_aliases(monkeypatch):
    """surface-distance 0.1 uses np.NaN / np.Inf, which NumPy 2 removed."""
    monkeypatch.setattr(np, "NaN", np.nan, raising=False)
    monkeypatch.setattr(np, "Inf", np.inf, raising=False)


# --------------------------------------------------------------------------------------
# References
# --------------------------------------------------------------------------------------


def monai_reference(pred, ref, spacing, tol, percentile=95.0):
    """(HD_percentile, HD, ASSD, surface Dice) from MONAI's functional API."""
    yp = torch.from_numpy(pred[None, None].astype(np.float32))
    y = torch.from_numpy(ref[None, None].astype(np.float32))
    sp = [float(s) for s in spacing]
    kw = dict(include_background=True, spacing=sp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        h = monai_metrics.compute_hausdorff_distance(yp, y, percentile=percentile, **kw)
        hmax = monai_metrics.compute_hausdorff_distance(yp, y, **kw)
        assd = monai_metrics.compute_average_surface_distance(yp, y, symmetric=True, **kw)
        nsd = monai_metrics.compute_surface_dice(yp, y, [tol], **kw)
    return h.item(), hmax.item(), assd.item(), nsd.item()


def deepmind_reference(pred, ref, spacing, tol, percentile=95.0):
    """(HD_percentile, HD, ASSD, surface Dice) from surface-distance."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # scipy.ndimage.filters
        d = sd.compute_surface_distances(ref, pred, spacing)
    to_pred, to_ref = sd.compute_average_surface_distance(d)
    a_ref, a_pred = d["surfel_areas_gt"].sum(), d["surfel_areas_pred"].sum()
    return (
        sd.compute_robust_hausdorff(d, percentile),
        sd.compute_robust_hausdorff(d, 100),
        (to_pred * a_ref + to_ref * a_pred) / (a_ref + a_pred),
        sd.compute_surface_dice_at_tolerance(d, tol),
    )


def brute_force_voxels(pred, ref, spacing, tol, percentile=95.0):
    """The voxels convention computed from all pairwise distances."""
    s = np.asarray(spacing, float)
    bp = pred & ~ndi.binary_erosion(pred, border_value=0)
    br = ref & ~ndi.binary_erosion(ref, border_value=0)
    dist = cdist(np.argwhere(bp) * s, np.argwhere(br) * s)
    d_pr, d_rp = dist.min(axis=1), dist.min(axis=0)
    both = np.concatenate([d_pr, d_rp])
    return (
        max(np.percentile(d_pr, percentile), np.percentile(d_rp, percentile)),
        both.max(),
        both.mean(),
        np.mean(both <= tol),
    )


def ours(pred, ref, spacing, tol, method, percentile=95.0):
    m = surface_metrics(pred, ref, spacing, tol, method, percentile)
    return m.hd_percentile, m.hausdorff, m.assd, m.surface_dice


def assert_close(got, want, hd_abs=HD_ABS, ratio_abs=RATIO_ABS):
    hd_p, hd, assd, nsd = got
    w_hd_p, w_hd, w_assd, w_nsd = want
    assert hd_p == pytest.approx(w_hd_p, abs=hd_abs)
    assert hd == pytest.approx(w_hd, abs=hd_abs)
    assert assd == pytest.approx(w_assd, abs=hd_abs)
    assert nsd == pytest.approx(w_nsd, abs=ratio_abs)


# --------------------------------------------------------------------------------------
# Seeded masks
# --------------------------------------------------------------------------------------


def blobs(rng, shape, sigma=1.5, level=0.4):
    """Several irregular components: thresholded smoothed noise."""
    field = ndi.gaussian_filter(rng.standard_normal(shape), sigma)
    return field > level * field.std()


def ball(shape, centre, radius, spacing=(1.0, 1.0, 1.0)):
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    r2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, spacing, strict=True))
    return r2 <= radius**2


def shell(shape, centre, radius):
    """A one-voxel-thick hollow sphere."""
    b = ball(shape, centre, radius)
    return b & ~ndi.binary_erosion(b)


def perturb(rng, mask, flips=0.02):
    """Flip a few boundary-near voxels and add a stray voxel."""
    near = ndi.binary_dilation(mask) & ~ndi.binary_erosion(mask)
    out = mask ^ (near & (rng.random(mask.shape) < flips * 10))
    idx = tuple(rng.integers(0, n) for n in mask.shape)
    out[idx] = True
    return out


def make_pairs():
    """(name, pred, ref) for the comparisons; all seeded."""
    rng = np.random.default_rng(2024)
    pairs = []
    for i in range(6):
        shape = tuple(int(n) for n in rng.integers(10, 26, 3))
        pairs.append((f"blobs{i}", blobs(rng, shape), blobs(rng, shape)))
    for i in range(3):
        shape = tuple(int(n) for n in rng.integers(14, 24, 3))
        ref = blobs(rng, shape, sigma=2.0, level=0.2)
        pairs.append((f"perturbed{i}", perturb(rng, ref), ref))
    shape = (20, 22, 18)
    pairs.append(("shells", shell(shape, (10, 11, 9), 7), shell(shape, (11, 10, 9), 6)))
    pairs.append(("shell_vs_ball", shell(shape, (10, 11, 9), 6), ball(shape, (10, 11, 8), 5)))
    single = np.zeros((9, 10, 11), bool)
    single[4, 5, 6] = True
    other = np.zeros_like(single)
    other[1, 8, 2] = True
    pairs.append(("single_voxels", single, other))
    pairs.append(("single_vs_blob", single, blobs(np.random.default_rng(5), (9, 10, 11))))
    border = np.zeros((12, 13, 14), bool)
    border[0:5, :, 3:9] = True  # touches three array faces
    border2 = np.zeros_like(border)
    border2[0:7, 2:13, 0:7] = True
    pairs.append(("touch_border", border, border2))
    full = np.ones((6, 7, 8), bool)  # the whole array: boundary is its outer layer
    part = np.zeros_like(full)
    part[1:5, 1:6, 2:8] = True
    pairs.append(("whole_array", full, part))
    line = np.zeros((15, 9, 9), bool)
    line[2:13, 4, 4] = True  # one voxel thin
    plane = np.zeros_like(line)
    plane[:, 2:7, 6] = True
    pairs.append(("line_vs_plane", line, plane))
    far = np.zeros((60, 12, 12), bool)
    far[2:5, 3:6, 3:6] = True
    far[50:53, 5:8, 5:8] = True  # far island: beyond the stencil, KD-tree path
    near = np.zeros_like(far)
    near[2:6, 3:7, 3:6] = True
    pairs.append(("far_island", far, near))
    same = blobs(rng, (14, 15, 16))
    pairs.append(("identical", same, same.copy()))
    return pairs


PAIRS = make_pairs()
SPACINGS = [(1.0, 1.0, 1.0), (0.9375, 0.9375, 2.0), (0.7, 1.3, 2.9), (3.0, 0.5, 1.1)]
TOLERANCES = [0.0, 1.0, 2.0, 2.5]


def _case_params():
    params = []
    for i, (name, pred, ref) in enumerate(PAIRS):
        spacing = SPACINGS[i % len(SPACINGS)]
        tol = TOLERANCES[(i // 2) % len(TOLERANCES)]
        params.append(pytest.param(pred, ref, spacing, tol, id=f"{name}-{i % len(SPACINGS)}"))
    return params


# --------------------------------------------------------------------------------------
# Agreement with the reference implementations
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("pred, ref, spacing, tol", _case_params())
def test_voxels_matches_monai(pred, ref, spacing, tol):
    assert_close(ours(pred, ref, spacing, tol, "voxels"), monai_reference(pred, ref, spacing, tol))


@pytest.mark.parametrize("pred, ref, spacing, tol", _case_params())
def test_surface_elements_matches_surface_distance(pred, ref, spacing, tol):
    got = ours(pred, ref, spacing, tol, "surface_elements")
    assert_close(got, deepmind_reference(pred, ref, spacing, tol))


@pytest.mark.parametrize("pred, ref, spacing, tol", _case_params()[:8])
def test_voxels_matches_brute_force(pred, ref, spacing, tol):
    tol += 0.05  # keep clear of exact ties: the brute force compares in float64
    got = ours(pred, ref, spacing, tol, "voxels")
    assert_close(got, brute_force_voxels(pred, ref, spacing, tol), hd_abs=1e-9, ratio_abs=1e-12)


@pytest.mark.parametrize("spacing", SPACINGS)
def test_every_spacing_both_methods(spacing):
    """One multi-component pair under every spacing, against both references."""
    rng = np.random.default_rng(11)
    pred, ref = blobs(rng, (16, 18, 14)), blobs(rng, (16, 18, 14))
    for tol in (1.0, 2.0):
        assert_close(
            ours(pred, ref, spacing, tol, "voxels"), monai_reference(pred, ref, spacing, tol)
        )
        got = ours(pred, ref, spacing, tol, "surface_elements")
        assert_close(got, deepmind_reference(pred, ref, spacing, tol))


@pytest.mark.parametrize("percentile", [0.0, 50.0, 90.0, 99.0, 100.0])
def test_other_percentiles(percentile):
    rng = np.random.default_rng(3)
    pred, ref = blobs(rng, (15, 16, 17)), blobs(rng, (15, 16, 17))
    sp = (0.9375, 0.9375, 2.0)
    got = ours(pred, ref, sp, 2.0, "voxels", percentile)
    want = brute_force_voxels(pred, ref, sp, 2.0, percentile)[0]
    assert got[0] == pytest.approx(want, abs=1e-12)
    if percentile > 0:  # MONAI reads percentile=0 as "no percentile" (the maximum)
        want = monai_reference(pred, ref, sp, 2.0, percentile)[0]
        assert got[0] == pytest.approx(want, abs=HD_ABS)
    got = ours(pred, ref, sp, 2.0, "surface_elements", percentile)
    want = deepmind_reference(pred, ref, sp, 2.0, percentile)[0]
    assert got[0] == pytest.approx(want, abs=HD_ABS)


@pytest.mark.parametrize("spacing", [(1.0, 1.0), (0.7, 1.9)])
def test_two_dimensional(spacing):
    rng = np.random.default_rng(8)
    pred, ref = blobs(rng, (30, 26)), blobs(rng, (30, 26))
    assert_close(ours(pred, ref, spacing, 1.5, "voxels"), monai_reference(pred, ref, spacing, 1.5))
    got = ours(pred, ref, spacing, 1.5, "surface_elements")
    assert_close(got, deepmind_reference(pred, ref, spacing, 1.5))


def far_and_disjoint_pairs():
    """(name, pred, ref): masks centimetres apart, disjoint, or far islands; all seeded."""
    rng = np.random.default_rng(31)
    shape = (40, 34, 22)
    a = blobs(rng, shape, sigma=2.0, level=0.6)
    b = np.roll(blobs(rng, shape, sigma=2.0, level=0.6), 17, axis=0)
    left = np.zeros(shape, bool)
    left[2:9, 3:12, 4:10] = True
    right = np.zeros(shape, bool)
    right[30:38, 20:31, 12:20] = ball((8, 11, 8), (4, 5, 4), 4)
    edge = np.zeros(shape, bool)
    edge[0:3, 0:34, 0:4] = True  # touches four array faces, far from `right`
    return [("shifted", a, b), ("disjoint", left, right), ("edge_vs_far", edge, right)]


@pytest.mark.parametrize("spacing", SPACINGS + [(1.2, 1.2, 1.2)])
@pytest.mark.parametrize("name, pred, ref", far_and_disjoint_pairs())
def test_far_and_disjoint_pairs_match_references(name, pred, ref, spacing):
    """Distances of centimetres (long distance-transform paths, big boxes) stay exact."""
    assert_close(ours(pred, ref, spacing, 2.0, "voxels"), monai_reference(pred, ref, spacing, 2.0))
    got = ours(pred, ref, spacing, 2.0, "surface_elements")
    assert_close(got, deepmind_reference(pred, ref, spacing, 2.0))
    if name != "shifted":
        assert_close(
            ours(pred, ref, spacing, 2.0, "voxels"),
            brute_force_voxels(pred, ref, spacing, 2.05),
            hd_abs=1e-9,
            ratio_abs=1e-12,
        )


def _brute_force_nearest(src, dst, spacing):
    """min over dst of the double-precision length of the offset, for every src point."""
    a, b = np.argwhere(src), np.argwhere(dst)
    offsets = (b[None, :, :] - a[:, None, :]).reshape(-1, src.ndim)
    return _euclidean(offsets, spacing).reshape(len(a), len(b)).min(axis=1)


@pytest.mark.parametrize(
    "spacing",
    [(1.0, 1.0, 1.0), (0.9375, 0.9375, 2.0), (0.7, 1.3, 2.9), (1.2, 1.2, 1.2), (0.7, 0.7, 0.7)],
)
def test_nearest_distances_are_the_exact_minimum(spacing):
    """Bit for bit the smallest double-precision offset length, ties of offsets included."""
    rng = np.random.default_rng(17)
    shape = (36, 20, 18)
    for _ in range(3):
        src = rng.random(shape) < 0.01
        dst = np.zeros(shape, bool)
        dst[rng.integers(0, 12), :, :] = rng.random(shape[1:]) < 0.05  # a sparse far plane
        dst[rng.integers(0, 36, 5), rng.integers(0, 20, 5), rng.integers(0, 18, 5)] = True
        got = nearest_distances(src, dst, spacing)
        np.testing.assert_array_equal(got, _brute_force_nearest(src, dst, spacing))


def test_nearest_distances_two_dimensional():
    rng = np.random.default_rng(18)
    src, dst = rng.random((60, 45)) < 0.05, rng.random((60, 45)) < 0.01
    for spacing in ((1.0, 1.0), (0.7, 1.9), (1.3, 1.3)):
        got = nearest_distances(src, dst, spacing)
        np.testing.assert_array_equal(got, _brute_force_nearest(src, dst, spacing))


@pytest.mark.parametrize("sorted_keys", [False, True])
@pytest.mark.parametrize("case", ["table", "wide_bands", "small_table"])
def test_every_route_is_exact(monkeypatch, case, sorted_keys):
    """Force each route past the whole-unit rounding of binary-fraction spacings: the
    length table (searched with sorted keys or in the points' order), and the KD-tree
    for bands that hold several lengths or distances beyond the table."""
    monkeypatch.setattr(nearest_module, "_tables", {})
    monkeypatch.setattr(nearest_module, "_lattice_unit", lambda spacing, shape: None)
    monkeypatch.setattr(nearest_module, "_SORT_KEYS_ABOVE", 0 if sorted_keys else 10**9)
    if case == "wide_bands":  # every band holds several lengths
        monkeypatch.setattr(query_edt_module, "_ERROR_PER_DIAGONAL", 1e-2)
    elif case == "small_table":  # a table too small for most distances
        monkeypatch.setattr(nearest_module, "_TABLE_LIMIT", 30)
    rng = np.random.default_rng(21)
    for spacing in ((1.0, 1.0, 1.0), (0.7, 1.3, 2.9)):
        pred, ref = blobs(rng, (14, 16, 15)), blobs(rng, (14, 16, 15))
        got = ours(pred, ref, spacing, 2.0, "voxels")
        assert_close(got, monai_reference(pred, ref, spacing, 2.0))
        got = ours(pred, ref, spacing, 2.0, "surface_elements")
        assert_close(got, deepmind_reference(pred, ref, spacing, 2.0))
        src, dst = rng.random((20, 21, 22)) < 0.02, rng.random((20, 21, 22)) < 0.002
        got = nearest_distances(src, dst, spacing)
        np.testing.assert_array_equal(got, _brute_force_nearest(src, dst, spacing))


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.9375, 0.9375, 2.0), (0.7, 1.3, 2.9)])
@pytest.mark.parametrize("workers", [1, 2])
def test_query_transform_matches_scipy_and_edt(spacing, workers):
    """The query-restricted transform gives scipy's (and edt's) Euclidean distance
    transform at the query points, queries off the seeds' planes included."""
    rng = np.random.default_rng(31)
    shape = (40, 23, 17)
    seeds = np.zeros(shape, bool)
    seeds[10:18] = rng.random((8, *shape[1:])) < 0.01  # planes 0-9 and 18-39 hold none
    seeds[12, 3, 4] = True
    queries = np.argwhere(rng.random(shape) < 0.05)
    kept = queries.copy()
    got = squared_distances(seeds, queries, spacing, workers)
    np.testing.assert_array_equal(queries, kept)  # the caller's array is not shifted
    want = ndi.distance_transform_edt(~seeds, sampling=spacing)[tuple(queries.T)] ** 2
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=error_bound(shape, spacing))
    field = edt.edtsq(np.ascontiguousarray(~seeds).view(np.uint8), anisotropy=spacing)
    np.testing.assert_allclose(got, field[tuple(queries.T)], rtol=1e-6, atol=1e-6)


def test_query_transform_two_dimensional_and_single_seed():
    seeds = np.zeros((30, 20), bool)
    seeds[29, 0] = True
    queries = np.argwhere(np.ones((30, 20), bool))
    got = squared_distances(seeds, queries, (0.8, 1.7))
    want = ((queries - [29, 0]) * [0.8, 1.7]) ** 2
    np.testing.assert_allclose(got, want.sum(axis=1), rtol=1e-14)


def test_lattice_unit_only_where_sums_are_exact():
    assert nearest_module._lattice_unit((1.0, 1.0, 1.0), (240, 240, 155)) == 1.0
    assert nearest_module._lattice_unit((0.9375, 0.9375, 2.0), (240, 240, 155)) == 2.0**-8
    assert nearest_module._lattice_unit((0.7, 1.0, 1.0), (10, 10, 10)) is None
    # 2**-30 mm steps: whole numbers of u beyond 2**53 on a 2**25-voxel axis
    assert nearest_module._lattice_unit((1.0, 2.0**-30), (2**25, 2)) is None


def test_length_table_is_capped_and_kept(monkeypatch):
    """Distances beyond the largest table allowed reuse it (no rebuild per call)."""
    monkeypatch.setattr(nearest_module, "_tables", {})
    monkeypatch.setattr(nearest_module, "_TABLE_LIMIT", 1000)
    first = nearest_module._lengths((1.0, 1.0, 1.0), 50.0)
    assert first[0] < 50.0  # capped: about 10 voxels per axis
    assert nearest_module._lengths((1.0, 1.0, 1.0), 80.0) is first
    # The table is complete up to its radius and sorted without repeats.
    k = np.indices((11, 11, 11)).reshape(3, -1).T
    lengths = _euclidean(k, (1.0, 1.0, 1.0))
    np.testing.assert_array_equal(first[1], np.unique(lengths[lengths <= first[0]]))


def test_crop_is_exact_against_the_whole_grid():
    """Cropped computation equals an all-pairs one on the uncropped, zero-padded grid."""
    rng = np.random.default_rng(23)
    shape = (30, 26, 20)
    pred = np.zeros(shape, bool)
    ref = np.zeros(shape, bool)
    pred[0:6, 0:8, 3:9] = blobs(rng, (6, 8, 6), level=0.0)  # at the array corner
    ref[22:30, 15:26, 12:20] = blobs(rng, (8, 11, 8), level=0.0)
    sp = (0.9, 1.1, 2.3)
    for method in ("voxels", "surface_elements"):
        if method == "voxels":
            sp_pts, sr_pts = (m & ~ndi.binary_erosion(m, border_value=0) for m in (pred, ref))
            wp, wr = np.ones(int(sp_pts.sum())), np.ones(int(sr_pts.sum()))
        else:  # corners of the whole grid, one voxel of background all round
            table = surface_element_areas(sp)
            cp, cr = (_corner_codes(np.pad(m, 1)) for m in (pred, ref))
            sp_pts, sr_pts = (cp != 0) & (cp != 255), (cr != 0) & (cr != 255)
            wp, wr = table[cp[sp_pts]], table[cr[sr_pts]]
        d_pr = _brute_force_nearest(sp_pts, sr_pts, sp)
        d_rp = _brute_force_nearest(sr_pts, sp_pts, sp)
        m = surface_metrics(pred, ref, sp, 3.0, method)
        assert m.hausdorff == max(d_pr.max(), d_rp.max())
        assd = (d_pr @ wp + d_rp @ wr) / (wp.sum() + wr.sum())
        assert m.assd == pytest.approx(assd, rel=1e-12)
        within = (wp[d_pr <= 3.0].sum() + wr[d_rp <= 3.0].sum()) / (wp.sum() + wr.sum())
        assert m.surface_dice == pytest.approx(within, rel=1e-12)


@pytest.mark.parametrize("ndim", [2, 3])
def test_area_table_matches_surface_distance(ndim):
    rng = np.random.default_rng(ndim)
    spacings = [(1.0,) * ndim, (0.9375, 0.9375, 2.0)[:ndim]]
    spacings += [tuple(rng.uniform(0.2, 4.0, ndim)) for _ in range(10)]
    for spacing in spacings:
        ours_table = surface_element_areas(tuple(float(s) for s in spacing))
        if ndim == 3:
            want = sd_tables.create_table_neighbour_code_to_surface_area(spacing)
        else:
            want = sd_tables.create_table_neighbour_code_to_contour_length(spacing)
        np.testing.assert_allclose(ours_table, want, rtol=1e-14, atol=1e-14)


# --------------------------------------------------------------------------------------
# Conventions found in the references
# --------------------------------------------------------------------------------------


def test_monai_tolerance_is_compared_in_float32():
    # Boundary distances of 2 x 0.7 mm: MONAI (and nehmap's voxels method) count them
    # within a tolerance of 1.39999999 mm, which equals 1.4 in single precision.
    a = np.zeros((12, 3, 3), bool)
    b = np.zeros((12, 3, 3), bool)
    a[3:5, 1, 1] = True
    b[3:7, 1, 1] = True
    sp = (0.7, 1.0, 1.0)
    for tol in (1.39999999, 1.4, 1.4000001):
        want = monai_reference(a, b, sp, tol)[3]
        assert surface_dice(a, b, sp, tol) == pytest.approx(want, abs=RATIO_ABS)
        assert surface_dice(a, b, sp, tol) == 1.0
    assert surface_dice(a, b, sp, 1.3999) == pytest.approx(5 / 6)


def test_surface_elements_tolerance_is_inclusive():
    # Two single voxels 2 voxels apart: half of each surface at 1 mm, half at 2 mm.
    a = np.zeros((7, 3, 3), bool)
    b = np.zeros((7, 3, 3), bool)
    a[1, 1, 1] = b[3, 1, 1] = True
    sp = (1.0, 1.0, 1.0)
    assert surface_dice(a, b, sp, 2.0, "surface_elements") == 1.0
    assert surface_dice(a, b, sp, 1.9999999, "surface_elements") == pytest.approx(0.5)
    assert surface_dice(a, b, sp, 1.0, "surface_elements") == pytest.approx(0.5)
    assert surface_dice(a, b, sp, 0.9999, "surface_elements") == 0.0


def test_array_edge_counts_as_background():
    """A mask filling the array has its outer layer as boundary (both conventions)."""
    full = np.ones((5, 6, 7), bool)
    inner = np.zeros_like(full)
    inner[1:4, 1:5, 1:6] = True
    # Voxels: boundary of `full` is its outer layer; of `inner`, the layer one deeper.
    assert hausdorff(full, inner, (1.0, 1.0, 1.0)) == pytest.approx(math.sqrt(3))
    assert hd95(full, full, (1.0, 2.0, 3.0)) == 0.0
    # Cropping an embedded copy gives the same result as the array-filling mask.
    big = np.zeros((9, 10, 11), bool)
    big[2:7, 2:8, 2:9] = True
    big_inner = np.zeros_like(big)
    big_inner[3:6, 3:7, 3:8] = True
    for method in ("voxels", "surface_elements"):
        a = surface_metrics(full, inner, (0.9, 1.1, 2.0), 1.0, method)
        b = surface_metrics(big, big_inner, (0.9, 1.1, 2.0), 1.0, method)
        assert a == b


# --------------------------------------------------------------------------------------
# Worked examples
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.9375, 0.9375, 2.0), (2.5, 1.0, 0.5)])
def test_two_cubes_offset(k, spacing):
    """Cubes of side n offset by k voxels along axis 0."""
    n = 6
    a = np.zeros((n + k + 4, n + 4, n + 4), bool)
    b = np.zeros_like(a)
    a[2 : 2 + n, 2 : 2 + n, 2 : 2 + n] = True
    b[2 + k : 2 + k + n, 2 : 2 + n, 2 : 2 + n] = True
    # The far face of each cube is k voxels from the other boundary; nothing is farther.
    assert hausdorff(a, b, spacing) == pytest.approx(k * spacing[0])
    assert hausdorff(a, b, spacing, "surface_elements") == pytest.approx(k * spacing[0])
    # Boundary voxels shared by both: the side rings of the n - k overlapping slices.
    shared = (n - k) * (4 * n - 4)
    boundary = n**3 - (n - 2) ** 3
    assert surface_dice(a, b, spacing, 0.0) == pytest.approx(shared / boundary)
    # Within tolerance k * s0, every boundary voxel agrees.
    assert surface_dice(a, b, spacing, k * spacing[0]) == 1.0


@pytest.mark.parametrize("k", [1, 2, 5, 40])
@pytest.mark.parametrize("s0", [1.0, 0.7, 2.0])
def test_two_single_voxels(k, s0):
    a = np.zeros((k + 3, 3, 3), bool)
    b = np.zeros_like(a)
    a[1, 1, 1] = True
    b[1 + k, 1, 1] = True
    sp = (s0, 1.0, 1.0)
    # Voxels: each boundary is one voxel, k * s0 away.
    m = surface_metrics(a, b, sp, k * s0)
    assert (m.hd_percentile, m.hausdorff, m.assd, m.surface_dice) == pytest.approx(
        (k * s0, k * s0, k * s0, 1.0)
    )
    # Surface elements: the 8 corners of each voxel, equal areas; four corners at
    # (k - 1) s0 and four at k s0 from the other voxel's corners.
    m = surface_metrics(a, b, sp, (k - 1) * s0, "surface_elements")
    assert m.hd_percentile == pytest.approx(k * s0)
    assert m.hausdorff == pytest.approx(k * s0)
    assert m.assd == pytest.approx((k - 0.5) * s0)
    assert m.surface_dice == pytest.approx(0.5)


def test_symmetry_and_identity():
    rng = np.random.default_rng(4)
    p, r = blobs(rng, (12, 13, 14)), blobs(rng, (12, 13, 14))
    for method in ("voxels", "surface_elements"):
        assert surface_metrics(p, r, (0.7, 1.3, 2.9), 2.0, method) == surface_metrics(
            r, p, (0.7, 1.3, 2.9), 2.0, method
        )
        same = surface_metrics(p, p, (0.7, 1.3, 2.9), 0.0, method)
        assert (same.hd_percentile, same.hausdorff, same.assd, same.surface_dice) == (
            0.0,
            0.0,
            0.0,
            1.0,
        )


def test_translation_invariance():
    rng = np.random.default_rng(9)
    p, r = blobs(rng, (10, 11, 12)), blobs(rng, (10, 11, 12))
    big_p = np.zeros((30, 31, 32), bool)
    big_r = np.zeros_like(big_p)
    big_p[7:17, 13:24, 3:15], big_r[7:17, 13:24, 3:15] = p, r
    for method in ("voxels", "surface_elements"):
        small = surface_metrics(p, r, (0.9, 1.0, 1.7), 2.0, method)
        # Inside a larger array the masks no longer touch the array edge, so compare
        # with masks padded by one background voxel on the small grid.
        padded = surface_metrics(np.pad(p, 1), np.pad(r, 1), (0.9, 1.0, 1.7), 2.0, method)
        assert surface_metrics(big_p, big_r, (0.9, 1.0, 1.7), 2.0, method) == padded
        assert small.method == method


def test_memory_layout_does_not_matter():
    rng = np.random.default_rng(10)
    p, r = blobs(rng, (12, 13, 14)), blobs(rng, (12, 13, 14))
    sp = (0.9375, 0.9375, 2.0)
    for method in ("voxels", "surface_elements"):
        want = surface_metrics(p, r, sp, 2.0, method)
        assert surface_metrics(np.asfortranarray(p), np.asfortranarray(r), sp, 2.0, method) == want
        big_p = np.zeros((24, 13, 28), bool)
        big_r = np.zeros_like(big_p)
        big_p[::2, :, ::2], big_r[::2, :, ::2] = p, r
        assert surface_metrics(big_p[::2, :, ::2], big_r[::2, :, ::2], sp, 2.0, method) == want


def test_wrappers_agree_with_surface_metrics():
    rng = np.random.default_rng(6)
    p, r = blobs(rng, (12, 13, 14)), blobs(rng, (12, 13, 14))
    sp = (0.9375, 0.9375, 2.0)
    for method in ("voxels", "surface_elements"):
        m = surface_metrics(p, r, sp, 2.0, method)
        assert hd95(p, r, sp, method) == m.hd95
        assert hausdorff(p, r, sp, method) == m.hausdorff
        assert average_surface_distance(p, r, sp, method) == m.assd
        assert surface_dice(p, r, sp, 2.0, method) == m.surface_dice
    assert hd95(p, r, sp, workers=-1) == hd95(p, r, sp)


def test_hd95_property_requires_percentile_95():
    p = np.zeros((4, 4, 4), bool)
    p[1, 1, 1] = True
    m = surface_metrics(p, p, (1.0, 1.0, 1.0), percentile=90)
    assert m.hd_percentile == 0.0
    with pytest.raises(AttributeError, match="percentile=90"):
        _ = m.hd95


# --------------------------------------------------------------------------------------
# Empty masks
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["voxels", "surface_elements"])
def test_empty_masks(method):
    empty = np.zeros((6, 7, 8), bool)
    one = empty.copy()
    one[2:4, 3, 4] = True
    sp = (1.0, 1.0, 2.0)
    both = surface_metrics(empty, empty, sp, 2.0, method)
    assert (both.hd_percentile, both.hausdorff, both.assd, both.surface_dice) == (
        0.0,
        0.0,
        0.0,
        1.0,
    )
    for pred, ref in ((one, empty), (empty, one)):
        m = surface_metrics(pred, ref, sp, 2.0, method)
        assert math.isnan(m.hd_percentile) and math.isnan(m.hausdorff) and math.isnan(m.assd)
        assert m.surface_dice == 0.0
        assert math.isnan(hd95(pred, ref, sp, method))
        assert hd95(pred, ref, sp, method, empty_penalty=373.13) == 373.13
        assert hausdorff(pred, ref, sp, method, empty_penalty=373.13) == 373.13
        assert average_surface_distance(pred, ref, sp, method, empty_penalty=5.0) == 5.0
        assert surface_dice(pred, ref, sp, 2.0, method) == 0.0
    assert hd95(empty, empty, sp, method, empty_penalty=373.13) == 0.0
    assert surface_dice(empty, empty, sp, 2.0, method) == 1.0


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------

GOOD = np.zeros((4, 5, 6), bool)
GOOD[1:3, 1:3, 1:3] = True


@pytest.mark.parametrize(
    "spacing, match",
    [
        ((1.0, 1.0), "has 2 value"),
        ((1.0, 1.0, 1.0, 1.0), "has 4 value"),
        ((1.0, 0.0, 1.0), "positive"),
        ((1.0, -1.0, 1.0), "positive"),
        ((1.0, float("nan"), 1.0), "finite"),
        ((1.0, float("inf"), 1.0), "finite"),
        (1.0, "one voxel size in mm per array axis"),
        ("1,1,1", "one voxel size in mm per array axis"),
        ((1.0, "a", 1.0), "numbers"),
    ],
)
def test_bad_spacing(spacing, match):
    with pytest.raises(ValueError, match=match):
        hd95(GOOD, GOOD, spacing)
    with pytest.raises(ValueError, match=match):
        surface_dice(GOOD, GOOD, spacing, method="surface_elements")


@pytest.mark.parametrize("tol", [-0.1, float("nan"), float("inf"), "2"])
def test_bad_tolerance(tol):
    with pytest.raises(ValueError, match="tolerance_mm"):
        surface_dice(GOOD, GOOD, (1.0, 1.0, 1.0), tol)


def test_bad_arguments():
    sp = (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="method must be one of"):
        hd95(GOOD, GOOD, sp, method="mesh")
    with pytest.raises(ValueError, match="between 0 and 100"):
        surface_metrics(GOOD, GOOD, sp, percentile=101)
    with pytest.raises(ValueError, match="empty_penalty"):
        hd95(GOOD, GOOD, sp, empty_penalty=-1.0)
    with pytest.raises(ValueError, match="workers"):
        hd95(GOOD, GOOD, sp, workers=0)
    with pytest.raises(ValueError, match="2D or 3D"):
        hd95(np.zeros((2, 2, 2, 2), bool), np.zeros((2, 2, 2, 2), bool), (1.0,) * 4)
    with pytest.raises(ValueError, match="resample one onto the other's grid"):
        surface_metrics(GOOD, GOOD[:, :, :5], sp)
    labels = GOOD.astype(np.uint8) * 4
    with pytest.raises(ValueError, match="pred must be a binary mask"):
        hd95(labels, GOOD, sp)
    with pytest.raises(ValueError, match="ref must be a binary mask"):
        surface_dice(GOOD, labels, sp)


# --------------------------------------------------------------------------------------
# evaluate_labels
# --------------------------------------------------------------------------------------


def _label_map(rng, shape=(28, 30, 26)):
    """Nested tumour: ED around a core with NC, NEH and an ET rim."""
    centre = np.array(shape) / 2 + rng.uniform(-2, 2, 3)
    labels = np.zeros(shape, np.uint8)
    noise = ndi.gaussian_filter(rng.standard_normal(shape), 2.0)
    grid = np.indices(shape)
    r = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True))) + 3 * noise
    labels[r < 11] = 2  # ED
    labels[r < 7] = 4  # ET
    labels[r < 5.5] = 3  # NEH
    labels[r < 3.5] = 1  # NC
    return labels


def test_evaluate_labels_matches_direct_calls():
    rng = np.random.default_rng(12)
    ref = _label_map(rng)
    pred = _label_map(np.random.default_rng(13))
    sp = (0.9375, 0.9375, 2.0)
    for method in ("voxels", "surface_elements"):
        table = evaluate_labels(pred, ref, sp, method=method, tolerance_mm=1.5)
        assert list(table.columns) == ["region", "metric", "value"]
        assert list(table["region"].unique()) == list(DEFAULT_REGIONS)
        assert len(table) == len(DEFAULT_REGIONS) * 4
        assert list(table["metric"].iloc[:4]) == ["dice", "jaccard", "hd95", "surface_dice"]
        for region in DEFAULT_REGIONS:
            mp, mr = region_mask(pred, region), region_mask(ref, region)
            rows = table[table["region"] == region].set_index("metric")["value"]
            assert rows["dice"] == dice(mp, mr)
            assert rows["jaccard"] == jaccard(mp, mr)
            assert rows["hd95"] == hd95(mp, mr, sp, method)
            assert rows["surface_dice"] == surface_dice(mp, mr, sp, 1.5, method)


def test_evaluate_labels_regions_and_metrics():
    rng = np.random.default_rng(14)
    ref = _label_map(rng)
    sp = (1.0, 1.0, 1.0)
    # ET is both a region and label 4: listed once.
    table = evaluate_labels(ref, ref, sp, regions=("ET", 4, "et", "WT", 3))
    assert list(table["region"].unique()) == ["ET", "WT", "NEH"]
    table = evaluate_labels(ref, ref, sp, regions=("TC",), metrics=("hausdorff", "assd", "dice"))
    assert list(table["metric"]) == ["hausdorff", "assd", "dice"]
    assert list(table["value"]) == [0.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="Unknown region"):
        evaluate_labels(ref, ref, sp, regions=("XX",))
    with pytest.raises(ValueError, match="Unknown metric"):
        evaluate_labels(ref, ref, sp, metrics=("volume",))


def test_evaluate_labels_empty_regions():
    ref = np.zeros((10, 11, 12), np.uint8)
    ref[3:7, 3:7, 3:7] = 2
    ref[4:6, 4:6, 4:6] = 4
    pred = ref.copy()
    pred[pred == 4] = 2  # ET missed by the prediction; NC and NEH absent from both
    table = evaluate_labels(pred, ref, (1.0, 1.0, 1.0), empty_penalty=373.13)
    v = table.set_index(["region", "metric"])["value"]
    assert v["NC", "dice"] == 1.0 and v["NC", "hd95"] == 0.0 and v["NC", "surface_dice"] == 1.0
    assert v["ET", "dice"] == 0.0 and v["ET", "hd95"] == 373.13 and v["ET", "surface_dice"] == 0.0
    assert v["WT", "dice"] == 1.0
    table = evaluate_labels(pred, ref, (1.0, 1.0, 1.0))
    assert math.isnan(table.set_index(["region", "metric"])["value"]["ET", "hd95"])
    # Both maps empty.
    zero = np.zeros((5, 5, 5), np.uint8)
    assert (evaluate_labels(zero, zero, (1.0, 1.0, 1.0))["value"].isin([0.0, 1.0])).all()


def test_evaluate_labels_bad_input():
    ref = np.zeros((6, 6, 6), np.uint8)
    ref[2:4, 2:4, 2:4] = 1
    sp = (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="not nehmap labels"):
        evaluate_labels(ref + 5 * ref, ref, sp)
    with pytest.raises(ValueError, match="not nehmap labels"):
        evaluate_labels(ref * 0.5, ref, sp)
    with pytest.raises(ValueError, match="resample one onto the other's grid"):
        evaluate_labels(ref[:, :, :5], ref, sp)
    with pytest.raises(ValueError, match="spacing"):
        evaluate_labels(ref, ref, (1.0, 1.0))
    with pytest.raises(ValueError, match="tolerance_mm"):
        evaluate_labels(ref, ref, sp, tolerance_mm=-2)
    with pytest.raises(ValueError, match="method"):
        evaluate_labels(ref, ref, sp, method="monai")
