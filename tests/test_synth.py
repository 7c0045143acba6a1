"""Synthetic cases: determinism, labels, geometry in mm, contrasts, rCBV and recurrence."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from nehmap.labels import ED, ET, NC, NEH
from nehmap.synth import brats_grid, generate_case, load_anatomy
from nehmap.synth.params import merge_params

ALL_LABELS = {0, NC, ED, NEH, ET}


@pytest.fixture(scope="module")
def case2():
    """One 2 mm case with every optional part."""
    return generate_case(11, 2.0, rcbv=True, recurrence=True)


@pytest.fixture(scope="module")
def cases2():
    """A few 2 mm cases (structural images only)."""
    return [generate_case(seed, 2.0) for seed in (1, 2, 3)]


# --- grid and anatomy -------------------------------------------------------------------


def test_brats_grid_same_field_of_view_at_every_spacing():
    one = brats_grid(1.0)
    two = brats_grid(2.0)
    assert one.canonical_shape == (240, 240, 155)
    assert two.canonical_shape == (120, 120, 78)
    assert two.spacing == (2.0, 2.0, 2.0)
    centre = [
        g.canonical_affine[:3, 3] + (np.array(g.canonical_shape) - 1) / 2 * np.array(g.spacing)
        for g in (one, two)
    ]
    np.testing.assert_allclose(centre[0], centre[1], atol=1e-6)
    assert brats_grid((1.0, 1.0, 3.0)).canonical_shape == (240, 240, 52)


def test_anatomy_tissues_and_cache():
    anatomy = load_anatomy(4.0)
    assert load_anatomy(4) is anatomy  # cached per spacing
    brain = anatomy.brain
    total = anatomy.gm + anatomy.wm + anatomy.csf
    np.testing.assert_allclose(total[brain], 1.0, atol=1e-5)
    assert not total[~brain].any()
    assert anatomy.ventricles.any()
    assert not anatomy.ventricles[~brain].any()
    # the whole MNI brain lies inside the field of view (about 1.9 litres)
    volume_l = brain.sum() * np.prod(anatomy.spacing) / 1e6
    assert 1.6 < volume_l < 2.1
    assert not anatomy.gm.flags.writeable


# --- determinism and contents -----------------------------------------------------------


def test_deterministic_by_seed():
    a = generate_case(5, 4.0)
    b = generate_case(5, 4.0)
    c = generate_case(6, 4.0)
    np.testing.assert_array_equal(a.labels, b.labels)
    for modality in ("t1", "t1c", "t2", "flair"):
        np.testing.assert_array_equal(a.images[modality], b.images[modality])
    assert a.params == b.params
    assert not np.array_equal(a.labels, c.labels)


def test_optional_parts_do_not_change_the_structural_images():
    plain = generate_case(7, 4.0)
    full = generate_case(7, 4.0, rcbv=True, recurrence=True)
    np.testing.assert_array_equal(plain.labels, full.labels)
    np.testing.assert_array_equal(plain.images["flair"], full.images["flair"])
    assert plain.rcbv is None and plain.recurrence is None
    assert full.rcbv is not None and full.recurrence is not None


@pytest.mark.parametrize("seed", range(8))
def test_every_label_present_at_4mm(seed):
    case = generate_case(seed, 4.0)
    assert set(np.unique(case.labels).tolist()) == ALL_LABELS


def test_every_label_present_at_2mm(cases2, case2):
    for case in [*cases2, case2]:
        assert set(np.unique(case.labels).tolist()) == ALL_LABELS


def test_arrays_types_and_skull_stripping(case2):
    shape = (120, 120, 78)
    assert case2.grid.canonical_shape == shape
    assert case2.spacing == (2.0, 2.0, 2.0)
    assert case2.labels.dtype == np.uint8 and case2.labels.shape == shape
    assert case2.brain_mask.dtype == bool
    for image in [*case2.images.values(), case2.rcbv]:
        assert image.dtype == np.float32 and image.shape == shape
        assert not image[~case2.brain_mask].any()
        assert np.all(np.isfinite(image)) and image[case2.brain_mask].min() >= 0
    assert not case2.labels[~case2.brain_mask].any()


def test_params_are_json_and_unknown_names_refused(case2):
    import json

    json.dumps(case2.params)
    json.dumps(case2.facts)
    with pytest.raises(ValueError, match="Unknown synthetic-case parameter"):
        merge_params({"no_such_parameter": 1})


def test_intensity_scale_differs_between_modalities_and_cases(cases2):
    scales = [c.params["contrast"]["intensity_scale"] for c in cases2]
    values = [s[m] for s in scales for m in s]
    assert min(values) >= 0.5 and max(values) <= 2.0
    assert len({round(v, 6) for v in values}) == len(values)


# --- geometry in mm ---------------------------------------------------------------------


def _outside_distance(labels, spacing):
    bulk = (labels == ET) | (labels == NC)
    return ndi.distance_transform_edt(~bulk, sampling=spacing), bulk


@pytest.mark.parametrize("spacing", [2.0, (1.5, 1.5, 3.0)])
def test_neh_touches_rim_and_lies_outside_it(spacing):
    case = generate_case(21, spacing)
    labels = case.labels
    neh, et, nc = labels == NEH, labels == ET, labels == NC
    assert neh.any()
    # every NEH component touches the enhancing rim
    components, count = ndi.label(neh)
    touching = set(np.unique(components[ndi.binary_dilation(et) & neh]).tolist()) - {0}
    assert touching == set(range(1, count + 1))
    # NEH never touches the necrosis: the rim encloses it
    assert not (ndi.binary_dilation(nc) & neh).any()
    # NEH covers only part of the rim's outer surface
    distance, bulk = _outside_distance(labels, case.spacing)
    shell = ndi.binary_dilation(bulk) & ~bulk
    coverage = (labels[shell] == NEH).mean()
    assert 0.2 < coverage < 0.8


@pytest.mark.parametrize("spacing", [2.0, (1.5, 1.5, 3.0)])
@pytest.mark.parametrize("thickness", [2.0, 5.0])
def test_neh_thickness_in_mm(spacing, thickness):
    params = {"neh_thickness_mm": thickness, "et_thickness_mm": 3.0}
    case = generate_case(22, spacing, params=params)
    distance, _ = _outside_distance(case.labels, case.spacing)
    neh = distance[case.labels == NEH]
    # a voxel centre lies up to half a voxel beyond the layer's edge; plus the
    # boundary voxels that are always kept (one voxel along the coarsest axis)
    limit = thickness + 0.5 * min(case.spacing) + 1e-6
    assert np.all((neh <= limit) | (neh <= max(case.spacing) + 1e-6))
    assert np.percentile(neh, 95) >= thickness - 0.5 * max(case.spacing) - 1e-6


@pytest.mark.parametrize("spacing", [2.0, (1.5, 1.5, 3.0)])
def test_rim_thickness_in_mm(spacing):
    case = generate_case(23, spacing, params={"et_thickness_mm": (2.0, 4.0)})
    bulk = (case.labels == ET) | (case.labels == NC)
    inside = ndi.distance_transform_edt(bulk, sampling=case.spacing)
    rim = inside[case.labels == ET]
    limit = 4.0 + 0.5 * min(case.spacing) + 1e-6
    assert np.all((rim <= limit) | (rim <= max(case.spacing) + 1e-6))
    assert inside[case.labels == NC].min() > 2.0


def test_edema_extent_and_white_matter_preference():
    case = generate_case(24, 2.0, params={"edema_extent_mm": 20.0})
    distance, _ = _outside_distance(case.labels, case.spacing)
    ed = case.labels == ED
    assert distance[ed].max() <= 1.4 * 20.0 + 1.0 + 1e-6
    wm = case.tissues["wm"]
    near = (distance > 8) & (distance < 20) & case.brain_mask & ((case.labels == 0) | ed)
    in_wm = ed[near & (wm > 0.8)].mean()
    in_gm = ed[near & (case.tissues["gm"] > 0.8)].mean()
    assert in_wm > in_gm


def test_mass_effect_moves_only_the_surroundings():
    still = generate_case(25, 4.0, params={"mass_effect": 0.0})
    pushed = generate_case(25, 4.0, params={"mass_effect": 0.5})
    anatomy = load_anatomy(4.0)
    np.testing.assert_array_equal(still.tissues["wm"], anatomy.wm)
    changed = np.abs(pushed.tissues["wm"] - anatomy.wm) > 1e-3
    assert changed.any()
    np.testing.assert_array_equal(pushed.brain_mask, anatomy.brain)


# --- contrasts --------------------------------------------------------------------------


def test_neh_versus_edema_directions(cases2):
    relative = {m: [] for m in ("t1", "t1c", "t2", "flair")}
    for case in cases2:
        for modality, image in case.images.items():
            ed = image[case.labels == ED].mean()
            neh = image[case.labels == NEH].mean()
            relative[modality].append((neh - ed) / ed)
    mean = {m: float(np.mean(v)) for m, v in relative.items()}
    assert mean["flair"] < -0.03
    assert mean["t1c"] > 0.05
    assert mean["t1"] < -0.03
    assert abs(mean["t2"]) < 0.02


def test_neh_is_hard_contrast_small_relative_to_noise(cases2):
    for case in cases2:
        for modality in ("t1", "t1c", "flair"):
            image = case.images[modality]
            ed = image[case.labels == ED]
            neh = image[case.labels == NEH]
            cnr = abs(neh.mean() - ed.mean()) / ed.std()
            assert 0.2 < cnr < 1.5, (modality, cnr)


def test_normal_tissue_and_tumour_contrasts(case2):
    labels, tissues = case2.labels, case2.tissues
    normal = labels == 0

    def mean(image, mask):
        return float(image[mask].mean())

    wm = normal & (tissues["wm"] > 0.9)
    gm = normal & (tissues["gm"] > 0.9)
    csf = normal & (tissues["csf"] > 0.9)
    t1, t1c, t2, flair = (case2.images[m] for m in ("t1", "t1c", "t2", "flair"))
    assert mean(t1, wm) > mean(t1, gm) > mean(t1, csf)
    assert mean(t2, csf) > mean(t2, gm) > mean(t2, wm)
    assert mean(flair, gm) > mean(flair, wm) > mean(flair, csf)
    assert mean(t1c, labels == ET) > mean(t1c, wm)
    assert mean(t1, labels == NC) < mean(t1, wm)
    assert mean(t2, labels == NC) > mean(t2, wm)
    assert mean(flair, labels == ED) > mean(flair, wm)
    assert mean(t1, labels == ED) < mean(t1, wm)


# --- rCBV ---------------------------------------------------------------------------------


def _rcbv_means(case):
    rcbv, labels = case.rcbv, case.labels
    out = {
        name: float(rcbv[labels == value].mean())
        for name, value in (("NC", NC), ("ED", ED), ("NEH", NEH), ("ET", ET))
    }
    out["WM"] = float(rcbv[(labels == 0) & (case.tissues["wm"] > 0.9)].mean())
    out["GM"] = float(rcbv[(labels == 0) & (case.tissues["gm"] > 0.9)].mean())
    return out


def test_rcbv_ordering_when_planted(case2):
    means = _rcbv_means(case2)
    assert means["ET"] > means["NEH"] > means["ED"] > means["WM"]
    assert 1.5 < means["GM"] / means["WM"] < 2.5
    planted = case2.params["rcbv"]["rcbv_means"]
    assert planted["ET"] > planted["NEH"] > planted["ED"] > planted["WM"]


def test_rcbv_equal_when_planted_equal():
    equal = {"ET": 1.0, "NEH": 1.0, "ED": 1.0, "NC": 1.0, "WM": 1.0}
    case = generate_case(31, 2.0, rcbv=True, params={"rcbv_means": equal})
    assert case.params["rcbv"]["rcbv_means"]["NEH"] == 1.0
    means = _rcbv_means(case)
    reference = means["WM"]
    for name in ("ET", "NEH", "ED"):
        assert abs(means[name] / reference - 1.0) < 0.06, (name, means)


def test_rcbv_has_vessels_and_a_global_scale(case2):
    rcbv = case2.rcbv[case2.brain_mask]
    scale = case2.params["rcbv"]["rcbv_scale"]
    assert 0.5 <= scale <= 2.0
    wm = _rcbv_means(case2)["WM"]
    assert np.percentile(rcbv, 99.9) > 3.0 * wm
    assert len(case2.params["rcbv"]["vessels"]) >= 3


# --- recurrence ---------------------------------------------------------------------------


def _neh_overlap(case):
    rec = case.recurrence
    et = rec.labels == ET
    return float((et & rec.preop_neh).sum() / et.sum())


def test_recurrence_from_neh_overlaps_preoperative_neh_more():
    overlaps = {}
    for origin in ("neh", "random"):
        values = []
        for seed in (41, 42):
            case = generate_case(seed, 2.0, recurrence=True, params={"recurrence_origin": origin})
            assert case.recurrence.origin == origin
            values.append(_neh_overlap(case))
        overlaps[origin] = float(np.mean(values))
    assert overlaps["neh"] > overlaps["random"] + 0.2


def test_recurrence_origin_follows_probability():
    assert (
        generate_case(
            3, 4.0, recurrence=True, params={"p_recurrence_from_neh": 1.0}
        ).recurrence.origin
        == "neh"
    )
    assert (
        generate_case(
            3, 4.0, recurrence=True, params={"p_recurrence_from_neh": 0.0}
        ).recurrence.origin
        == "random"
    )


def test_recurrence_scan_contents(case2):
    rec = case2.recurrence
    assert rec.cavity.any() and (rec.labels == ET).any() and (rec.labels == ED).any()
    assert not (rec.cavity & (rec.labels > 0)).any()
    flair = rec.images["flair"]
    wm = (rec.labels == 0) & ~rec.cavity & rec.brain_mask
    assert flair[rec.cavity].mean() < flair[wm].mean()
    assert rec.images["t1c"][rec.labels == ET].mean() > rec.images["t1c"][wm].mean()
    for image in rec.images.values():
        assert image.dtype == np.float32 and not image[~rec.brain_mask].any()


def test_recurrence_transform_is_the_stated_one(case2):
    rec = case2.recurrence
    rotation = rec.rigid[:3, :3]
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-9)
    angle = np.degrees(np.arccos(np.clip((np.trace(rotation) - 1) / 2, -1, 1)))
    assert 0 < angle <= 3.0 * np.sqrt(3) + 1e-6
    field = rec.displacement(case2.grid)
    assert field.shape == (*case2.grid.canonical_shape, 3)
    assert 0 < np.linalg.norm(field, axis=-1).max() <= 3.0 + 1e-4
    # the pre-operative NEH sampled through x = A (y + u(y)) is exactly preop_neh
    affine = case2.grid.canonical_affine
    idx = np.argwhere(rec.brain_mask)[::7]
    world = idx * np.diag(affine)[:3] + affine[:3, 3]
    moved = world + field[tuple(idx.T)]
    pre = moved @ rec.rigid[:3, :3].T + rec.rigid[:3, 3]
    voxel = np.rint((pre - affine[:3, 3]) / np.diag(affine)[:3]).astype(int)
    inside = np.all((voxel >= 0) & (voxel < case2.labels.shape), axis=1)
    sampled = case2.labels[tuple(voxel[inside].T)] == NEH
    agree = (sampled == rec.preop_neh[tuple(idx[inside].T)]).mean()
    assert agree > 0.999
