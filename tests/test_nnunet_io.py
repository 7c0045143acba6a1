"""nnU-Net v2 raw datasets: export, import, round trips and the meaning of dataset.json labels."""

from __future__ import annotations

import argparse
import json
import os

import nibabel as nib
import numpy as np
import pytest

from conftest import save, tiny_labels, tiny_volume
from nehmap.commands import export_nnunet as export_cmd
from nehmap.commands import import_nnunet as import_cmd
from nehmap.errors import NehmapInputError, OutputError
from nehmap.io import discover, load_case
from nehmap.io.nnunet import (
    TISSUE_REGIONS,
    TISSUE_REGIONS_CLASS_ORDER,
    dataset_folder_name,
    dataset_label_scheme,
    export_nnunet,
    import_nnunet,
    nnunet_case_paths,
    parse_channels,
    place_file,
    read_dataset_json,
    region_label_scheme,
)
from nehmap.labels import to_nehmap

CASES = ("BraTS2021_00001", "BraTS2021_00002")
# an oblique, LPS-stored affine: round trips must keep it exactly
AFFINE = np.array(
    [[-1.0, 0.0, 0.0, 90.0], [0.0, -1.2, 0.1, 120.0], [0.0, 0.0, 2.0, -60.0], [0, 0, 0, 1]]
)
TOKENS = ("t1", "t1ce", "t2", "flair")


def _brats(root, cases=CASES, ext=".nii.gz", seg=True, labels=(1, 2, 4)):
    for case_id in cases:
        for i, tok in enumerate(TOKENS):
            save(root / case_id / f"{case_id}_{tok}{ext}", tiny_volume(i).astype(np.int16), AFFINE)
        if seg:
            save(root / case_id / f"{case_id}_seg{ext}", tiny_labels(labels), AFFINE)
    return root


def _manifest_with_neh(root):
    rows = ["case,timepoint,modality,path,label_scheme"]
    for case_id in CASES:
        for i, mod in enumerate(("t1", "t1c", "t2", "flair")):
            save(root / f"{case_id}_{mod}.nii.gz", tiny_volume(i), AFFINE)
            rows.append(f"{case_id},,{mod},{case_id}_{mod}.nii.gz,nehmap")
        save(root / f"{case_id}_lab.nii.gz", tiny_labels((1, 2, 3, 4)), AFFINE)
        rows.append(f"{case_id},,seg,{case_id}_lab.nii.gz,nehmap")
    (root / "cases.csv").write_text("\n".join(rows) + "\n")
    return root / "cases.csv"


def _cli(module, argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return module.run(parser.parse_args(argv))


def _assert_same_cases(a, b, ids=CASES):
    for case_id in ids:
        ca, cb = load_case(a[case_id]), load_case(b[case_id])
        for key in ("t1", "t1c", "t2", "flair"):
            np.testing.assert_array_equal(ca.images[key], cb.images[key])
            fa, fb = nib.load(ca.files.files[key]), nib.load(cb.files.files[key])
            np.testing.assert_array_equal(fa.affine, fb.affine)
            assert fa.get_data_dtype() == fb.get_data_dtype()
        np.testing.assert_array_equal(ca.labels, cb.labels)
        sa, sb = nib.load(ca.files.files["seg"]), nib.load(cb.files.files["seg"])
        np.testing.assert_array_equal(sa.affine, sb.affine)
        np.testing.assert_allclose(sb.affine, AFFINE, atol=1e-6)


def _stored(path) -> np.ndarray:
    """A label file's values in stored (not canonical) voxel order."""
    return np.asarray(nib.load(path).dataobj)


# --------------------------------------------------------------------------- naming


def test_names_and_channels():
    assert dataset_folder_name(501, "NEH") == "Dataset501_NEH"
    assert dataset_folder_name(7, "BraTS-NEH") == "Dataset007_BraTS-NEH"
    for bad in ((0, "NEH"), (1000, "NEH"), (5, "has space"), (5, "")):
        with pytest.raises(ValueError):
            dataset_folder_name(*bad)
    assert parse_channels("FLAIR, T1Gd,t1,t2w") == ("flair", "t1c", "t1", "t2")
    with pytest.raises(ValueError, match="exactly once"):
        parse_channels("t1,t1c,t2")
    with pytest.raises(ValueError, match="not one of"):
        parse_channels("t1,t1c,t2,adc")
    paths = nnunet_case_paths("D", "c1", ("flair", "t1", "t1c", "t2"), split="Ts")
    assert paths["flair"].as_posix() == "D/imagesTs/c1_0000.nii.gz"
    assert paths["seg"].as_posix() == "D/labelsTs/c1.nii.gz"


# --------------------------------------------------------------------------- export


def test_export_layout_and_dataset_json(tmp, capsys):
    src = _brats(tmp / "src")
    code = _cli(
        export_cmd, [str(src), "-o", str(tmp / "raw"), "--dataset-id", "501", "--name", "NEH"]
    )
    assert code == 0 and "2 case(s) exported" in capsys.readouterr().out
    root = tmp / "raw" / "Dataset501_NEH"
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert files == sorted(
        ["dataset.json"]
        + [f"imagesTr/{c}_{i:04d}.nii.gz" for c in CASES for i in range(4)]
        + [f"labelsTr/{c}.nii.gz" for c in CASES]
    )
    meta = json.loads((root / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "T1", "1": "T1ce", "2": "T2", "3": "FLAIR"}
    assert meta["labels"] == {
        "background": 0,
        "necrosis": 1,
        "edema": 2,
        "NEH": 3,
        "enhancing tumour": 4,
    }
    assert meta["numTraining"] == 2 and meta["file_ending"] == ".nii.gz"
    assert meta["label_scheme"] == "nehmap" and "regions_class_order" not in meta
    assert meta["evaluation_regions"] == {"ET": [4], "TC": [1, 3, 4], "WT": [1, 2, 3, 4]}
    assert os.path.samefile(
        root / "imagesTr" / f"{CASES[0]}_0002.nii.gz", src / CASES[0] / f"{CASES[0]}_t2.nii.gz"
    )
    # nehmap reads the export as nnU-Net with the right labels
    col = discover(root)
    assert col.layout == "nnunet" and col.ids == list(CASES)
    _assert_same_cases(discover(src), col)


def test_export_channel_order_and_unlabelled_cases(tmp):
    src = _brats(tmp / "src", cases=CASES[:1])
    _brats(src, cases=("BraTS2021_00009",), seg=False)
    report = export_nnunet(src, tmp / "ds", channels="flair,t1,t1c,t2", link="symlink")
    assert report.labelled == [CASES[0]] and report.unlabelled == ["BraTS2021_00009"]
    assert report.placed == {"symlink": 8}
    first = tmp / "ds" / "imagesTr" / f"{CASES[0]}_0000.nii.gz"
    assert (
        first.is_symlink()
        and first.resolve() == (src / CASES[0] / f"{CASES[0]}_flair.nii.gz").resolve()
    )
    assert (tmp / "ds" / "imagesTs" / "BraTS2021_00009_0003.nii.gz").exists()
    meta = json.loads((tmp / "ds" / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "FLAIR", "1": "T1", "2": "T1ce", "3": "T2"}
    assert meta["numTraining"] == 1
    col = discover(tmp / "ds")
    assert col[CASES[0]].files["flair"] == first
    _assert_same_cases(discover(src), col, ids=CASES[:1])


def test_export_region_form_paints_back_the_labels(tmp):
    src = _manifest_with_neh(tmp / "src")
    export_nnunet(src, tmp / "ds", regions=True)
    meta = json.loads((tmp / "ds" / "dataset.json").read_text())
    assert meta["labels"] == {
        "background": 0,
        "whole tumor": [1, 2, 3, 4],
        "tumor core": [1, 3, 4],
        "NEH": [3],
        "enhancing tumor": [4],
    }
    assert meta["regions_class_order"] == [2, 1, 3, 4]
    # nnU-Net's inference: paint each region, in order, with its regions_class_order label
    labels = np.asarray(nib.load(tmp / "ds" / "labelsTr" / f"{CASES[0]}.nii.gz").dataobj)
    assert set(np.unique(labels)) == {0, 1, 2, 3, 4}
    regions = [v for k, v in TISSUE_REGIONS.items() if k != "background"]
    assert len(regions) == len(TISSUE_REGIONS_CLASS_ORDER)
    painted = np.zeros_like(labels)
    for region, value in zip(regions, TISSUE_REGIONS_CLASS_ORDER, strict=True):
        painted[np.isin(labels, region)] = value
    np.testing.assert_array_equal(painted, labels)
    # import reads the region form with nehmap's labels (dataset.json says label_scheme nehmap)
    report = import_nnunet(tmp / "ds", tmp / "back")
    assert not report.failures
    _assert_same_cases(discover(src), discover(tmp / "back" / "manifest.csv"))


def test_discover_reads_the_region_form(tmp):
    src = _manifest_with_neh(tmp / "src")
    export_nnunet(src, tmp / "ds", regions=True)
    case = load_case(discover(tmp / "ds")[CASES[0]])
    np.testing.assert_array_equal(case.labels, load_case(discover(src)[CASES[0]]).labels)


def test_export_converts_other_file_types(tmp):
    src = _brats(tmp / "src", cases=CASES[:1], ext=".nii")
    report = export_nnunet(src, tmp / "ds")
    assert report.placed == {"converted": 4}
    _assert_same_cases(discover(src), discover(tmp / "ds"), ids=CASES[:1])


def test_export_reports_bad_cases(tmp):
    src = _brats(tmp / "src")
    save(src / CASES[1] / f"{CASES[1]}_seg.nii.gz", tiny_labels((1, 3)), AFFINE)  # 3: not brats2021
    report = export_nnunet(src, tmp / "ds")
    assert report.labelled == [CASES[0]]
    ((case_id, message),) = report.failures
    assert case_id == CASES[1] and "values [3]" in message and "brats2021" in message
    assert json.loads((tmp / "ds" / "dataset.json").read_text())["numTraining"] == 1


# --------------------------------------------------------------------------- import and round trips


def test_round_trip_brats2021(tmp, capsys):
    src = _brats(tmp / "src")
    export_nnunet(src, tmp / "raw", dataset_id=12, name="RT")
    dataset = tmp / "raw" / "Dataset012_RT"
    code = _cli(import_cmd, [str(dataset), "-o", str(tmp / "back"), "--layout", "brats2021"])
    assert code == 0 and "2 case(s) imported" in capsys.readouterr().out
    back = discover(tmp / "back")
    assert back.layout == "brats2021" and back.ids == list(CASES)
    _assert_same_cases(discover(src), back)
    # hard links all the way: the imported image is the original file
    assert os.path.samefile(
        tmp / "back" / CASES[0] / f"{CASES[0]}_t1ce.nii.gz",
        src / CASES[0] / f"{CASES[0]}_t1ce.nii.gz",
    )
    native = np.asarray(nib.load(tmp / "back" / CASES[0] / f"{CASES[0]}_seg.nii.gz").dataobj)
    assert set(np.unique(native)) == {0, 1, 2, 4}


def test_round_trip_with_neh_through_a_manifest(tmp):
    src = _manifest_with_neh(tmp / "src")
    export_nnunet(src, tmp / "ds", link="copy")
    report = import_nnunet(tmp / "ds", tmp / "back", link="copy")
    assert report.index == tmp / "back" / "manifest.csv" and report.placed == {"copy": 8}
    back = discover(report.index)
    assert back.layout == "manifest" and back.ids == list(CASES)
    _assert_same_cases(discover(src), back)
    assert 3 in load_case(back[CASES[0]]).labels


def test_import_refuses_to_drop_neh_unless_asked(tmp):
    export_nnunet(_manifest_with_neh(tmp / "src"), tmp / "ds")
    report = import_nnunet(tmp / "ds", tmp / "b21", layout="brats2021")
    assert len(report.failures) == 2 and "--merge-neh" in report.failures[0][1]
    report = import_nnunet(tmp / "ds", tmp / "b21m", layout="brats2021", merge_neh=True)
    assert not report.failures
    native = _stored(discover(tmp / "b21m")[CASES[0]].files["seg"])
    # BraTS 2021 puts non-enhancing tumour into label 2 (edematous/invaded tissue)
    assert [native[2 + i, 4, 4] for i in range(4)] == [1, 2, 2, 4]
    report = import_nnunet(tmp / "ds", tmp / "b18m", layout="brats2018", merge_neh=True)
    native = _stored(discover(tmp / "b18m")[CASES[0]].files["seg"])
    assert [native[2 + i, 4, 4] for i in range(4)] == [1, 2, 1, 4]  # NCR/NET: joined the core


def test_import_other_layouts(tmp):
    src = _brats(tmp / "src", cases=CASES[:1])
    export_nnunet(src, tmp / "ds")
    with pytest.raises(NehmapInputError, match="cannot hold the case IDs"):
        import_nnunet(tmp / "ds", tmp / "up", layout="upenn")
    assert not (tmp / "up").exists() or not any((tmp / "up").iterdir())
    for layout, reader in (("brats2023", "brats2023"), ("brats2020", "brats2021")):
        import_nnunet(tmp / "ds", tmp / layout, layout=layout)
        back = discover(tmp / layout)
        assert back.layout == reader
        _assert_same_cases(discover(src), back, ids=CASES[:1])
    # RHUH: the time point of the ID becomes a folder and comes back
    rhuh_src = tmp / "rhuh_src"
    for i, tok in enumerate(TOKENS):
        save(rhuh_src / "RHUH-0001" / "0" / f"RHUH-0001_0_{tok}.nii.gz", tiny_volume(i), AFFINE)
    save(
        rhuh_src / "RHUH-0001" / "0" / "RHUH-0001_0_segmentations.nii.gz",
        tiny_labels((1, 2, 3)),
        AFFINE,
    )
    export_nnunet(rhuh_src, tmp / "rhuh_ds")
    import_nnunet(tmp / "rhuh_ds", tmp / "rhuh", layout="rhuh")
    assert (tmp / "rhuh" / "RHUH-0001" / "0" / "RHUH-0001_0_t1ce.nii.gz").exists()
    _assert_same_cases(discover(rhuh_src), discover(tmp / "rhuh"), ids=("RHUH-0001_0",))


def test_import_reads_nnunet_brats_datasets(tmp):
    """nnU-Net's own BraTS conversion (region-based, 1 ED, 2 NC, 3 ET) imports correctly."""
    ds = tmp / "Dataset137_BraTS2021"
    meta = {
        "channel_names": {"0": "T1", "1": "T1ce", "2": "T2", "3": "FLAIR"},
        "labels": {
            "background": 0,
            "whole tumor": [1, 2, 3],
            "tumor core": [2, 3],
            "enhancing tumor": [3],
        },
        "regions_class_order": [1, 2, 3],
        "numTraining": 1,
        "file_ending": ".nii.gz",
    }
    ds.mkdir()
    (ds / "dataset.json").write_text(json.dumps(meta))
    for ch in range(4):
        save(ds / "imagesTr" / f"BraTS2021_00000_{ch:04d}.nii.gz", tiny_volume(ch), AFFINE)
    save(ds / "labelsTr" / "BraTS2021_00000.nii.gz", tiny_labels((1, 2, 3)), AFFINE)
    import_nnunet(ds, tmp / "back", layout="brats2021")
    native = _stored(discover(tmp / "back")["BraTS2021_00000"].files["seg"])
    assert [native[2 + i, 4, 4] for i in range(3)] == [2, 1, 4]  # ED, NC, ET in brats2021


def test_import_refuses_non_datasets_and_unknown_layouts(tmp, capsys):
    with pytest.raises(NehmapInputError, match="dataset.json"):
        read_dataset_json(tmp)
    export_nnunet(_brats(tmp / "src", cases=CASES[:1]), tmp / "ds")
    with pytest.raises(NehmapInputError, match="unknown layout"):
        import_nnunet(tmp / "ds", tmp / "x", layout="nonsense")
    assert _cli(import_cmd, [str(tmp / "src"), "-o", str(tmp / "y")]) == 2
    assert "dataset.json" in capsys.readouterr().err


# --------------------------------------------------------------------------- label meaning


def test_region_label_scheme_decodes_values_from_regions(tmp):
    brats = region_label_scheme(
        {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]},
        tmp / "dataset.json",
    )
    assert dict(brats.to_nehmap) == {0: 0, 1: 2, 2: 1, 3: 4}
    ours = region_label_scheme(
        {k: list(v) if isinstance(v, tuple) else v for k, v in TISSUE_REGIONS.items()},
        tmp / "dataset.json",
    )
    assert dict(ours.to_nehmap) == {0: 0, 1: 1, 2: 2, 3: 3, 4: 4}
    np.testing.assert_array_equal(to_nehmap(np.array([1, 2, 3]), brats), [2, 1, 4])
    with pytest.raises(NehmapInputError, match="liver"):
        region_label_scheme({"background": 0, "liver": [1, 2], "tumor core": [2]}, tmp / "d.json")


def test_dataset_label_scheme_precedence(tmp):
    path = tmp / "dataset.json"
    plain = {"labels": {"background": 0, "edema": 1, "necrosis": 2, "enhancing": 3}}
    assert dict(dataset_label_scheme(plain, path).to_nehmap) == {0: 0, 1: 2, 2: 1, 3: 4}
    explicit = {**plain, "label_scheme": "nnunet-brats"}
    assert dataset_label_scheme(explicit, path).name == "nnunet-brats"
    assert dataset_label_scheme({"labels": {}, "label_scheme": "neh-consensus"}, path) is None
    with pytest.raises(NehmapInputError, match="does not know"):
        dataset_label_scheme({**plain, "label_scheme": "mystery"}, path)


# --------------------------------------------------------------------------- safety


def test_place_file_never_replaces_an_input(tmp):
    src = save(tmp / "a.nii.gz", tiny_volume(0))
    with pytest.raises(OutputError, match="refusing"):
        place_file(src, src)
    other = save(tmp / "b.nii.gz", tiny_volume(1))
    link = tmp / "link.nii.gz"
    os.symlink(src, link)
    with pytest.raises(OutputError, match="refusing"):
        place_file(other, link, inputs=[link])  # an input given by its link
    # a link that is not itself an input is replaced; its target is untouched
    assert place_file(other, link) == "hard" and not link.is_symlink()
    assert place_file(src, tmp / "out" / "a.nii.gz") == "hard"
    assert place_file(src, tmp / "out" / "a.nii.gz") == "kept"
    assert place_file(src, tmp / "out" / "a.nii.gz", link="copy") == "copy"
    assert not os.path.samefile(src, tmp / "out" / "a.nii.gz")
    np.testing.assert_array_equal(nib.load(src).get_fdata(), tiny_volume(0))


def test_overwrite_reports_cases_left_from_an_earlier_run(tmp):
    src = _brats(tmp / "src")
    export_nnunet(src, tmp / "ds")
    with pytest.raises(OutputError, match="not empty"):
        export_nnunet(src, tmp / "ds")
    report = export_nnunet(_only(src, CASES[0]), tmp / "ds", overwrite=True)
    assert report.labelled == [CASES[0]] and report.placed == {"kept": 4}
    assert any(CASES[1] in note and "nnU-Net" in note for note in report.notes)


def _only(root, case_id):
    col = discover(root)
    col.cases = [c for c in col.cases if c.case_id == case_id]
    return col


COMMANDS = {
    "derive-neh": "nehmap.commands.derive_neh",
    "consensus-dataset": "nehmap.commands.consensus_dataset",
    "export-nnunet": "nehmap.commands.export_nnunet",
    "import-nnunet": "nehmap.commands.import_nnunet",
}


def test_commands_plug_into_the_cli(tmp, monkeypatch, capsys):
    from nehmap import cli

    for name, module in COMMANDS.items():
        monkeypatch.setitem(cli.COMMANDS, name, module)
    parser = cli.build_parser()
    args = parser.parse_args(["derive-neh", "REF", "--second", "S", "-o", "O", "--copy"])
    assert args.link == "copy" and args.opening_mm == 1.0 and args.min_volume_mm3 == 50.0
    args = parser.parse_args(["consensus-dataset", "SEG", "--images", "I", "-o", "O"])
    assert args.low is None and args.link == "hard"
    src = _brats(tmp / "src", cases=CASES[:1])
    assert (
        cli.main(
            [
                "export-nnunet",
                str(src),
                "-o",
                str(tmp / "raw"),
                "--dataset-id",
                "3",
                "--name",
                "NEH",
                "--regions",
                "--symlink",
            ]
        )
        == 0
    )
    meta = json.loads((tmp / "raw" / "Dataset003_NEH" / "dataset.json").read_text())
    assert meta["regions_class_order"] == [2, 1, 3, 4]
    dataset = str(tmp / "raw" / "Dataset003_NEH")
    assert cli.main(["import-nnunet", dataset, "-o", str(tmp / "back"), "--layout", "upenn"]) == 2
    assert "cannot hold the case IDs" in capsys.readouterr().err
