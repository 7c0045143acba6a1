"""The NEH derivation rule on hand-built label maps (nehmap labels: 1 NC, 2 ED, 3 NEH, 4 ET)."""

from __future__ import annotations

import numpy as np
import pytest

from nehmap.derive.neh import (
    STAGES,
    NehStats,
    ball,
    choose_rule,
    derive_neh,
    remove_small_components,
    volume_table,
)

ISO = (1.0, 1.0, 1.0)


def _reference(shape=(12, 12, 12)) -> np.ndarray:
    """Edema block with a necrosis cube and an enhancing cube inside."""
    ref = np.zeros(shape, dtype=np.uint8)
    ref[1:11, 1:11, 1:11] = 2
    ref[2:4, 2:4, 2:4] = 1
    ref[7:9, 7:9, 7:9] = 4
    return ref


# --------------------------------------------------------------------------- structuring element


def test_ball_isotropic_and_radius_zero():
    assert ball(1.0, ISO).shape == (3, 3, 3) and ball(1.0, ISO).sum() == 7  # the 6-neighbour cross
    assert ball(1.5, ISO).sum() == 19  # offsets with at most two non-zero coordinates
    assert ball(0.0, ISO).shape == (1, 1, 1) and ball(0.0, ISO).all()
    assert ball(0.9, ISO).shape == (1, 1, 1)  # radius below the voxel size: no opening


def test_ball_anisotropic_spacing():
    b = ball(1.0, (1.0, 1.0, 3.0))
    assert b.shape == (3, 3, 1) and b.sum() == 5  # in-plane cross, no extent along z
    fine = ball(1.0, (0.5, 0.5, 0.5))
    assert fine.shape == (5, 5, 5) and fine.sum() == 33  # radius 2 voxels
    mixed = ball(2.0, (1.0, 2.0, 4.0))
    assert mixed.shape == (5, 3, 1)
    assert mixed[4, 1, 0] and mixed[2, 2, 0] and not mixed[3, 2, 0]  # (1 mm, 2 mm) is outside


def test_ball_rejects_bad_input():
    with pytest.raises(ValueError, match="radius_mm"):
        ball(-1.0, ISO)
    with pytest.raises(ValueError, match="spacing"):
        ball(1.0, (1.0, 0.0, 1.0))


# --------------------------------------------------------------------------- the rule


def _brats2018_reference(shape=(12, 12, 12)) -> np.ndarray:
    """BraTS 2017-2020 style, in nehmap labels: edema block, NCR/NET slab (read as NC)
    wrapped around an enhancing cube."""
    ref = np.zeros(shape, dtype=np.uint8)
    ref[1:11, 1:11, 1:11] = 2
    ref[3:9, 3:9, 3:9] = 1  # NCR/NET: necrosis and non-enhancing tumour together
    ref[5:7, 5:7, 5:7] = 4
    return ref


def test_paper_rule_reference_ncr_net_not_called_necrosis_becomes_neh():
    ref = _brats2018_reference()
    # a BraTS 2021-style second segmentation: the non-enhancing tumour is "edema", the
    # necrosis (here the slab's lower half) is label 1, the ET is ET
    second = np.where(ref > 0, 2, 0).astype(np.uint8)
    second[3:6, 3:9, 3:9] = 1
    second[5:7, 5:7, 5:7] = 4
    labels, stats = derive_neh(ref, second, ISO, opening_mm=0, min_volume_mm3=0)
    expected = ref.copy()
    expected[6:9, 3:9, 3:9] = 3  # NCR/NET that the second calls edema: NEH
    expected[5:7, 5:7, 5:7] = 4  # ET is never touched
    np.testing.assert_array_equal(labels, expected)
    assert (labels[3:5, 3:9, 3:9] == 1).all()  # both call necrosis: stays NC
    assert stats.rule == "paper"
    assert stats.eligible == 6**3 - 8
    assert stats.candidates == stats.final == 3 * 6 * 6 - 4
    assert stats.outside_wt == 0 and labels.dtype == np.uint8


def test_paper_rule_net_called_edema_yields_neh():
    # The failure of the old rule: a BraTS 2018 case whose NET the 2021-style model calls
    # edema. The NET must become NEH.
    ref = np.zeros((20, 20, 20), np.uint8)
    ref[2:18, 2:18, 2:18] = 2  # edema
    ref[5:15, 5:15, 5:15] = 1  # NCR/NET
    ref[8:12, 8:12, 8:12] = 4  # enhancing
    second = np.where(ref == 1, 2, ref).astype(np.uint8)  # NET called edema; no necrosis
    labels, stats = derive_neh(ref, second, ISO)  # default filtering
    assert stats.final == 10**3 - 4**3 - 8 - 12 * 8  # NCR/NET minus ET, less the box's edges
    assert (labels == 3).sum() == stats.final > 0
    assert (labels == 4).sum() == 4**3 and (labels == 2).sum() == (ref == 2).sum()


def test_paper_rule_second_labels_other_than_necrosis_all_count():
    ref = np.full((3, 8, 3), 1, np.uint8)  # all NCR/NET
    second = np.zeros_like(ref)
    for j, value in enumerate((0, 1, 2, 3, 4)):
        second[1, j, 1] = value
    labels, _ = derive_neh(ref, second, ISO, opening_mm=0, min_volume_mm3=0)
    # background, edema, NEH and ET of the second segmentation are "not necrosis"
    assert [labels[1, j, 1] for j in range(5)] == [3, 1, 3, 3, 3]


def test_paper_rule_refuses_keep_outside_wt():
    ref = _brats2018_reference()
    with pytest.raises(ValueError, match="mirrored"):
        derive_neh(ref, ref, ISO, within_wt=False)
    with pytest.raises(ValueError, match="rule"):
        derive_neh(ref, ref, ISO, rule="nonsense")


@pytest.mark.parametrize(
    ("reference", "second", "rule"),
    [
        ("brats2018", "brats2021", "paper"),
        ("brats2018", "nehmap", "paper"),
        ("brats2021", "brats2018", "mirrored"),
    ],
)
def test_rule_told_from_the_schemes(reference, second, rule):
    assert choose_rule(reference, second) == rule


@pytest.mark.parametrize("reference", ["brats", "nehmap", "upenn", "rhuh", "brats2023"])
def test_rule_cannot_be_told_asks_for_the_scheme(reference):
    with pytest.raises(ValueError, match="--reference-scheme"):
        choose_rule(reference, "brats2021")
    assert choose_rule(reference, "brats2021", "paper") == "paper"  # explicit: trusted


def test_brats2021_reference_with_2021_second_is_refused():
    with pytest.raises(ValueError, match="BraTS 2021-style.*--second-scheme brats2018"):
        choose_rule("brats2021", "brats2021")


def test_mirrored_rule_without_cleaning_gives_exact_labels():
    ref = _reference()
    second = np.zeros_like(ref)
    second[0:5, :, :] = 1  # NCR/NET over a slab: reference background, edema and necrosis
    second[7:9, 7:9, 7:9] = 1  # NCR/NET inside the reference enhancing tumour
    labels, stats = derive_neh(ref, second, ISO, opening_mm=0, min_volume_mm3=0, rule="mirrored")
    expected = ref.copy()
    expected[1:5, 1:11, 1:11] = 3  # reference edema under the slab becomes NEH
    expected[2:4, 2:4, 2:4] = 1  # reference necrosis stays necrosis
    np.testing.assert_array_equal(labels, expected)
    assert labels[8, 8, 8] == 4  # a candidate inside ET stays ET
    assert labels[0, 5, 5] == 0  # outside the reference whole tumour: unchanged
    assert stats.candidates == 4 * 10 * 10 - 8 == stats.final
    assert stats.outside_wt == 12 * 12 + (4 * 12 * 2 + 4 * 10 * 2)  # slab voxels with ref 0
    assert stats.eligible == 5 * 12 * 12 + 8
    assert labels.dtype == np.uint8


def test_mirrored_keep_outside_wt_converts_reference_background():
    ref = _reference()
    second = np.zeros_like(ref)
    second[0:5, :, :] = 1
    labels, stats = derive_neh(
        ref, second, ISO, opening_mm=0, min_volume_mm3=0, rule="mirrored", within_wt=False
    )
    assert labels[0, 5, 5] == 3 and labels[3, 0, 0] == 3
    assert labels[2, 2, 2] == 1  # necrosis still kept
    assert stats.final == 5 * 12 * 12 - 8


def test_mirrored_only_the_second_core_counts():
    ref = _reference()
    second = np.zeros_like(ref)
    second[5, 5, 5] = 2  # edema
    second[5, 6, 5] = 4  # enhancing
    second[5, 7, 5] = 3  # NEH of a nehmap-labelled second segmentation: non-enhancing core
    second[5, 8, 5] = 1  # necrosis
    labels, _ = derive_neh(ref, second, ISO, opening_mm=0, min_volume_mm3=0, rule="mirrored")
    assert [labels[5, j, 5] for j in (5, 6, 7, 8)] == [2, 2, 3, 3]


def test_existing_reference_neh_is_kept():
    ref = _reference()
    ref[5, 5, 5] = 3
    for rule in ("paper", "mirrored"):
        labels, stats = derive_neh(ref, np.zeros_like(ref), ISO, rule=rule)
        np.testing.assert_array_equal(labels, ref)
        assert stats.final == 0


def _pair(candidates: np.ndarray, rule: str) -> tuple[np.ndarray, np.ndarray]:
    """Reference and second segmentation whose candidates under ``rule`` are ``candidates``
    inside an all-edema whole tumour."""
    if rule == "paper":
        ref = np.where(candidates, 1, 2).astype(np.uint8)
        return ref, np.full_like(ref, 2)
    ref = np.full(candidates.shape, 2, np.uint8)
    return ref, np.where(candidates, 1, 0).astype(np.uint8)


@pytest.mark.parametrize("rule", ["paper", "mirrored"])
def test_small_speck_removed_by_min_volume(rule):
    mask = np.zeros((12, 12, 12), bool)
    mask[2:8, 4:10, 4:8] = True  # 6 x 6 x 4 block (touches nothing else)
    mask[9:11, 1:3, 9:11] = True  # 2 x 2 x 2 speck = 8 mm^3
    ref, second = _pair(mask, rule)
    labels, stats = derive_neh(ref, second, ISO, opening_mm=0, min_volume_mm3=50, rule=rule)
    assert (labels[2:8, 4:10, 4:8] == 3).all()
    assert (labels[9:11, 1:3, 9:11] != 3).all()
    assert stats.components_kept == 1 and stats.components_removed == 1
    assert stats.final == 6 * 6 * 4
    # on a 2 mm grid the same speck is 64 mm^3 and survives
    coarse, coarse_stats = derive_neh(
        ref, second, (2.0, 2.0, 2.0), opening_mm=0, min_volume_mm3=50, rule=rule
    )
    assert (coarse[9:11, 1:3, 9:11] == 3).all() and coarse_stats.components_removed == 0
    assert coarse_stats.volume_mm3("final") == (6 * 6 * 4 + 8) * 8.0


def test_components_touching_by_a_corner_are_one_component():
    mask = np.zeros((6, 6, 6), dtype=bool)
    mask[0:2, 0:2, 0:2] = True
    mask[2:4, 2:4, 2:4] = True  # meets the first cube at a corner only
    kept, n_kept, n_removed = remove_small_components(mask, ISO, 10)
    assert n_kept == 1 and n_removed == 0 and kept.sum() == 16


@pytest.mark.parametrize("rule", ["paper", "mirrored"])
def test_thin_line_removed_by_opening(rule):
    mask = np.zeros((15, 15, 15), bool)
    mask[1:14, 2, 2] = True  # a one-voxel-thick line
    mask[5:10, 5:10, 5:10] = True  # a 5 mm cube
    ref, second = _pair(mask, rule)
    labels, stats = derive_neh(ref, second, ISO, opening_mm=1.0, min_volume_mm3=0, rule=rule)
    assert not (labels[:, 2, 2] == 3).any()
    # opening a cube with the 6-neighbour cross removes exactly its 12 edges
    cube = np.zeros(ref.shape, dtype=bool)
    cube[5:10, 5:10, 5:10] = True
    idx = np.indices(ref.shape)
    on_face = sum(((idx[a] == 5) | (idx[a] == 9)).astype(int) for a in range(3))
    expected = cube & (on_face < 2)
    np.testing.assert_array_equal(labels == 3, expected)
    assert stats.candidates == 13 + 125 and stats.after_opening == 81 == stats.final


@pytest.mark.parametrize("rule", ["paper", "mirrored"])
def test_opening_uses_the_spacing(rule):
    mask = np.zeros((10, 10, 6), bool)
    mask[2:8, 2:8, 3] = True  # a plate one slice thick
    ref, second = _pair(mask, rule)
    # 1 mm isotropic: one slice is 1 mm thick, thinner than the ball: removed
    iso, _ = derive_neh(ref, second, ISO, opening_mm=1.0, min_volume_mm3=0, rule=rule)
    assert not (iso == 3).any()
    # 3 mm slices: the 1 mm ball has no extent along z; only the plate's corners go
    aniso, stats = derive_neh(
        ref, second, (1.0, 1.0, 3.0), opening_mm=1.0, min_volume_mm3=0, rule=rule
    )
    expected = mask.copy()
    for i, j in ((2, 2), (2, 7), (7, 2), (7, 7)):
        expected[i, j, 3] = False
    np.testing.assert_array_equal(aniso == 3, expected)
    assert stats.final == 36 - 4


@pytest.mark.parametrize("rule", ["paper", "mirrored"])
def test_default_parameters_clean_then_filter(rule):
    mask = np.zeros((16, 16, 16), bool)
    mask[3:7, 3:7, 3:7] = True  # 64 voxels; opened -> 4x4x4 minus edges = 32 < 50: removed
    mask[8:15, 8:15, 8:15] = True  # 343 voxels; opened -> 343 - 12*5 - 8 = 275: kept
    ref, second = _pair(mask, rule)
    labels, stats = derive_neh(ref, second, ISO, rule=rule)  # 1 mm opening, 50 mm^3
    assert stats.after_opening == 32 + 275
    assert stats.final == 275 and stats.components_removed == 1
    assert not (labels[3:7, 3:7, 3:7] == 3).any()


def test_stats_rows_are_tidy():
    stats = NehStats("paper", 2.0, 10, 0, 8, 6, 5, 1, 1)
    rows = stats.rows("c1")
    assert [r["stage"] for r in rows] == list(STAGES)
    assert rows[-1] == {
        "case": "c1",
        "rule": "paper",
        "stage": "final",
        "voxels": 5,
        "volume_mm3": 10.0,
    }
    table = volume_table({"c2": stats, "c1": stats})
    assert list(table.columns) == ["case", "rule", "stage", "voxels", "volume_mm3"]
    assert table["case"].tolist()[: len(STAGES)] == ["c1"] * len(STAGES)
    with pytest.raises(ValueError, match="stage"):
        stats.volume_mm3("nonsense")


def test_errors_name_the_problem():
    ref = _reference()
    with pytest.raises(ValueError, match="shape"):
        derive_neh(ref, ref[:-1], ISO)
    with pytest.raises(ValueError, match=r"values \[5\]"):
        derive_neh(ref, np.full_like(ref, 5), ISO)
    with pytest.raises(ValueError, match="integer"):
        derive_neh(ref.astype(float) + 0.5, ref, ISO)
    with pytest.raises(ValueError, match="spacing"):
        derive_neh(ref, ref, (1.0, 1.0))
    with pytest.raises(ValueError, match="min_volume_mm3"):
        derive_neh(ref, ref, ISO, min_volume_mm3=-1)
    with pytest.raises(ValueError, match="radius_mm"):
        derive_neh(ref, ref, ISO, opening_mm=float("nan"))
