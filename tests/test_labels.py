import numpy as np
import pytest

from nehmap import labels as L


@pytest.mark.parametrize(
    "scheme", ["brats2018", "brats2021", "brats", "upenn", "rhuh", "nnunet-brats", "nehmap"]
)
def test_native_round_trip_is_exact(scheme):
    s = L.get_scheme(scheme)
    native = np.array([v for v in s.allowed_values if v != 4 or scheme != "rhuh"] * 3)
    back = L.from_nehmap(L.to_nehmap(native, s), s)
    np.testing.assert_array_equal(back, native)


def test_rhuh_accepts_4_as_enhancing():
    assert L.to_nehmap(np.array([0, 1, 2, 3, 4]), "rhuh").tolist() == [0, 1, 2, 4, 4]


def test_brats2023_cavity_becomes_background_with_warning():
    with pytest.warns(UserWarning, match="no nehmap equivalent"):
        out = L.to_nehmap(np.array([0, 1, 2, 3, 4]), "brats2023")
    assert out.tolist() == [0, 1, 2, 4, 0]


def test_known_values_of_each_scheme():
    # values from the collections' documentation
    assert L.to_nehmap(np.array([1, 2, 4]), "brats2021").tolist() == [L.NC, L.ED, L.ET]
    assert L.to_nehmap(np.array([1, 2, 3]), "brats2023").tolist() == [L.NC, L.ED, L.ET]
    assert L.to_nehmap(np.array([1, 2, 3]), "nnunet-brats").tolist() == [L.ED, L.NC, L.ET]
    assert L.to_nehmap(np.array([1, 2, 4]), "upenn").tolist() == [L.NC, L.ED, L.ET]


@pytest.mark.parametrize(
    "scheme", ["brats2018", "brats", "brats2023", "upenn", "rhuh", "nnunet-brats"]
)
def test_nehmap_to_scheme_preserves_regions(scheme):
    ours = np.array([0, 1, 2, 3, 4])
    back = L.to_nehmap(L.from_nehmap(ours, scheme), scheme)
    for region in ("ET", "TC", "WT"):
        np.testing.assert_array_equal(L.region_mask(back, region), L.region_mask(ours, region))
    # NEH joins the non-enhancing core: the only lossy step
    assert back.tolist() == [0, 1, 2, 1, 4]


def test_regions_and_label_masks():
    lab = np.array([0, 1, 2, 3, 4])
    assert L.region_mask(lab, "ET").tolist() == [0, 0, 0, 0, 1]
    assert L.region_mask(lab, "TC").tolist() == [0, 1, 0, 1, 1]
    assert L.region_mask(lab, "WT").tolist() == [0, 1, 1, 1, 1]
    assert L.region_mask(lab, "NEH").tolist() == [0, 0, 0, 1, 0]
    assert L.region_mask(lab, 2).tolist() == [0, 0, 1, 0, 0]
    with pytest.raises(ValueError, match="Unknown region"):
        L.region_mask(lab, "XX")


def test_values_outside_scheme_are_rejected_with_names():
    with pytest.raises(ValueError, match=r"values \[3\].*brats2021"):
        L.to_nehmap(np.array([0, 1, 3]), "brats2021")
    with pytest.raises(ValueError, match=r"1\.5"):
        L.to_nehmap(np.array([0.0, 1.5]), "nehmap")


def test_aliases_and_unknown_scheme():
    assert L.get_scheme("BraTS2018").name == "brats2018"
    assert L.get_scheme("brats2020").name == "brats2018"
    assert L.get_scheme("brats2019").name == "brats2018"
    assert L.get_scheme("brats2021").name == "brats2021"
    assert L.get_scheme("brats").name == "brats"
    assert L.get_scheme("brats2024").name == "brats2023"
    with pytest.raises(ValueError, match="Use one of"):
        L.get_scheme("msd")


def test_convert_between_collections():
    brats = np.array([0, 1, 2, 4])
    np.testing.assert_array_equal(L.convert(brats, "brats2021", "brats2023"), [0, 1, 2, 3])
    np.testing.assert_array_equal(L.convert(brats, "brats2021", "nnunet-brats"), [0, 2, 1, 3])


def test_brats2021_writes_neh_as_edema_and_brats2018_as_core():
    # BraTS 2021 moved the non-enhancing tumour from label 1 (NCR/NET until 2020) into
    # label 2 ("edematous/invaded tissue"); its tumour core excludes it.
    ours = np.array([0, 1, 2, 3, 4])
    assert L.from_nehmap(ours, "brats2021").tolist() == [0, 1, 2, 2, 4]
    assert L.from_nehmap(ours, "brats2018").tolist() == [0, 1, 2, 1, 4]
    back = L.to_nehmap(L.from_nehmap(ours, "brats2021"), "brats2021")
    np.testing.assert_array_equal(L.region_mask(back, "WT"), L.region_mask(ours, "WT"))
    assert back.tolist() == [0, 1, 2, 2, 4]


@pytest.mark.parametrize(
    ("case_id", "scheme"),
    [
        ("Brats18_TCIA01_190_1", "brats2018"),
        ("Brats17_CBICA_AAB_1", "brats2018"),
        ("BraTS19_2013_0_1", "brats2018"),
        ("BraTS20_Training_001", "brats2018"),
        ("BraTS2021_00000", "brats2021"),
        ("BraTS21_00002", "brats2021"),
        ("patient_07", "brats"),
    ],
)
def test_brats_release_from_case_id(case_id, scheme):
    assert L.brats_scheme_for_id(case_id) == scheme


def test_check_label_map_accepts_labels_and_keeps_the_dtype():
    from nehmap.labels import check_label_map

    for dtype in (np.uint8, np.int16, np.float32):
        arr = np.array([[0, 1], [3, 4]], dtype=dtype)
        out = check_label_map(arr, "seg")
        assert out.dtype == dtype and np.array_equal(out, arr)
    assert check_label_map(np.zeros((0, 3), np.uint8)).shape == (0, 3)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.array([0, 1, 5], np.uint8), r"seg holds values \[5\] that are not nehmap labels"),
        (np.array([0, -1], np.int8), r"seg holds values \[-1\] that are not nehmap labels"),
        (np.array([0.0, 0.5, 1.0]), r"seg holds non-integer values \[0.5\]"),
        (np.array([0.0, np.nan]), r"seg holds non-integer values"),
        (np.array([True, False]), r"seg must be an integer nehmap label map .* dtype bool"),
    ],
)
def test_check_label_map_names_the_argument_and_the_values(bad, message):
    from nehmap.derive import derive_neh
    from nehmap.labels import check_label_map
    from nehmap.metrics import evaluate_labels

    with pytest.raises(ValueError, match=message):
        check_label_map(bad, "seg")
    # derive-neh and the metrics table check label maps with this one function
    good = np.zeros(bad.shape, np.uint8)
    with pytest.raises(ValueError, match=message.replace("seg", "second_labels")):
        derive_neh(good, bad, (1.0,))
    with pytest.raises(ValueError, match=message.replace("seg", "pred_labels")):
        evaluate_labels(bad, good, (1.0,))
