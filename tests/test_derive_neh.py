"""The NEH derivation rule on hand-built label maps (nehmap labels: 1 NC, 2 ED, 3 NEH, 4 ET)."""

from __future__ import annotations

import numpy as np
import pytest

from nehmap.derive.neh import (
    STAGES,
    NehStats,
    ball,
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


def test_rule_without_cleaning_gives_exact_labels():
    ref = _reference()
    second = np.zeros_like(ref)
    second[0:5, :, :] = 1  # NCR/NET over a slab: reference background, edema and necrosis
    second[7:9, 7:9, 7:9] = 1  # NCR/NET inside the reference enhancing tumour
    labels, stats = derive_neh(ref, second, ISO, opening_mm=0, min_volume_mm3=0)
    expected = ref.copy()
    expected[1:5, 1:11, 1:11] = 3  # reference edema under the slab becomes NEH
    expected[2:4, 2:4, 2:4] = 1  # reference necrosis stays necrosis
    np.testing.assert_array_equal(labels, expected)
    assert labels[8, 8, 8] == 4  # a candidate inside ET stays ET
    assert labels[0, 5, 5] == 0  # outside the reference whole tumour: unchanged
    assert stats.candidates == 4 * 10 * 10 - 8 == stats.final
    assert stats.outside_wt == 12 * 12 + (4 * 12 * 2 + 4 * 10 * 2)  # slab voxels with ref 0
    assert stats.second_core == 5 * 12 * 12 + 8
    assert labels.dtype == np.uint8


def test_keep_outside_wt_converts_reference_background():
    ref = _reference()
    second = np.zeros_like(ref)
    second[0:5, :, :] = 1
    labels, stats = derive_neh(ref, second, ISO, opening_mm=0, min_volume_mm3=0, within_wt=False)
    assert labels[0, 5, 5] == 3 and labels[3, 0, 0] == 3
    assert labels[2, 2, 2] == 1  # necrosis still kept
    assert stats.final == 5 * 12 * 12 - 8


def test_only_the_second_core_counts():
    ref = _reference()
    second = np.zeros_like(ref)
    second[5, 5, 5] = 2  # edema
    second[5, 6, 5] = 4  # enhancing
    second[5, 7, 5] = 3  # NEH of a nehmap-labelled second segmentation: non-enhancing core
    second[5, 8, 5] = 1  # necrosis
    labels, _ = derive_neh(ref, second, ISO, opening_mm=0, min_volume_mm3=0)
    assert [labels[5, j, 5] for j in (5, 6, 7, 8)] == [2, 2, 3, 3]


def test_existing_reference_neh_is_kept():
    ref = _reference()
    ref[5, 5, 5] = 3
    labels, stats = derive_neh(ref, np.zeros_like(ref), ISO)
    np.testing.assert_array_equal(labels, ref)
    assert stats.final == 0 and stats.candidates == 0


def test_small_speck_removed_by_min_volume():
    ref = _reference()
    second = np.zeros_like(ref)
    second[2:8, 4:10, 4:8] = 1  # 6 x 6 x 4 block over edema (touches nothing else)
    second[9:11, 1:3, 9:11] = 1  # 2 x 2 x 2 speck = 8 mm^3
    ref[2:4, 2:4, 2:4] = 2  # no necrosis in the way
    ref[7:9, 7:9, 7:9] = 2
    labels, stats = derive_neh(ref, second, ISO, opening_mm=0, min_volume_mm3=50)
    assert (labels[2:8, 4:10, 4:8] == 3).all()
    assert (labels[9:11, 1:3, 9:11] == 2).all()
    assert stats.components_kept == 1 and stats.components_removed == 1
    assert stats.final == 6 * 6 * 4
    # on a 2 mm grid the same speck is 64 mm^3 and survives
    coarse, coarse_stats = derive_neh(ref, second, (2.0, 2.0, 2.0), opening_mm=0, min_volume_mm3=50)
    assert (coarse[9:11, 1:3, 9:11] == 3).all() and coarse_stats.components_removed == 0
    assert coarse_stats.volume_mm3("final") == (6 * 6 * 4 + 8) * 8.0


def test_components_touching_by_a_corner_are_one_component():
    mask = np.zeros((6, 6, 6), dtype=bool)
    mask[0:2, 0:2, 0:2] = True
    mask[2:4, 2:4, 2:4] = True  # meets the first cube at a corner only
    kept, n_kept, n_removed = remove_small_components(mask, ISO, 10)
    assert n_kept == 1 and n_removed == 0 and kept.sum() == 16


def test_thin_line_removed_by_opening():
    ref = np.full((15, 15, 15), 2, dtype=np.uint8)
    second = np.zeros_like(ref)
    second[1:14, 2, 2] = 1  # a one-voxel-thick line
    second[5:10, 5:10, 5:10] = 1  # a 5 mm cube
    labels, stats = derive_neh(ref, second, ISO, opening_mm=1.0, min_volume_mm3=0)
    assert not (labels[:, 2, 2] == 3).any()
    # opening a cube with the 6-neighbour cross removes exactly its 12 edges
    cube = np.zeros(ref.shape, dtype=bool)
    cube[5:10, 5:10, 5:10] = True
    idx = np.indices(ref.shape)
    on_face = sum(((idx[a] == 5) | (idx[a] == 9)).astype(int) for a in range(3))
    expected = cube & (on_face < 2)
    np.testing.assert_array_equal(labels == 3, expected)
    assert stats.candidates == 13 + 125 and stats.after_opening == 81 == stats.final


def test_opening_uses_the_spacing():
    ref = np.full((10, 10, 6), 2, dtype=np.uint8)
    second = np.zeros_like(ref)
    second[2:8, 2:8, 3] = 1  # a plate one slice thick
    # 1 mm isotropic: one slice is 1 mm thick, thinner than the ball: removed
    iso, _ = derive_neh(ref, second, ISO, opening_mm=1.0, min_volume_mm3=0)
    assert not (iso == 3).any()
    # 3 mm slices: the 1 mm ball has no extent along z; only the plate's corners go
    aniso, stats = derive_neh(ref, second, (1.0, 1.0, 3.0), opening_mm=1.0, min_volume_mm3=0)
    expected = second == 1
    for i, j in ((2, 2), (2, 7), (7, 2), (7, 7)):
        expected[i, j, 3] = False
    np.testing.assert_array_equal(aniso == 3, expected)
    assert stats.final == 36 - 4


def test_default_parameters_clean_then_filter():
    ref = np.full((16, 16, 16), 2, dtype=np.uint8)
    second = np.zeros_like(ref)
    second[3:7, 3:7, 3:7] = 1  # 64 voxels; opened -> 4x4x4 minus edges = 32 < 50: removed
    second[8:15, 8:15, 8:15] = 1  # 343 voxels; opened -> 343 - 12*5 - 8 = 275: kept
    labels, stats = derive_neh(ref, second, ISO)  # defaults: 1 mm opening, 50 mm^3
    assert stats.after_opening == 32 + 275
    assert stats.final == 275 and stats.components_removed == 1
    assert not (labels[3:7, 3:7, 3:7] == 3).any()


def test_stats_rows_are_tidy():
    stats = NehStats(2.0, 10, 1, 8, 6, 5, 1, 1)
    rows = stats.rows("c1")
    assert [r["stage"] for r in rows] == list(STAGES)
    assert rows[-1] == {"case": "c1", "stage": "final", "voxels": 5, "volume_mm3": 10.0}
    table = volume_table({"c2": stats, "c1": stats})
    assert list(table.columns) == ["case", "stage", "voxels", "volume_mm3"]
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
