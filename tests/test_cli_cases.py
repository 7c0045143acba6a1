import numpy as np
import pandas as pd

from conftest import save, tiny_labels, tiny_volume
from nehmap.cli import main


def _collection(root):
    for cid in ("BraTS2021_00000", "BraTS2021_00001", "BraTS2021_00002"):
        for i, tok in enumerate(("t1", "t1ce", "t2", "flair")):
            if cid.endswith("1") and tok == "flair":
                continue
            save(root / cid / f"{cid}_{tok}.nii.gz", tiny_volume(i))
        save(root / cid / f"{cid}_seg.nii.gz", tiny_labels((1, 2, 4)))
    save(root / "BraTS2021_00002" / "BraTS2021_00002_t2.nii.gz", np.zeros((12, 14, 10)))


def test_cases_lists_found_and_missing(tmp, capsys):
    _collection(tmp)
    assert main(["cases", str(tmp), "--csv", str(tmp / "out" / "cases.csv")]) == 0
    out = capsys.readouterr().out
    assert "layout brats2021, 3 case(s)" in out
    assert "BraTS2021_00001: " in out and "missing modality flair" in out
    table = pd.read_csv(tmp / "out" / "cases.csv", keep_default_na=False)
    assert table["status"].tolist() == ["ok", "incomplete", "ok"]  # headers only
    assert table.loc[1, "flair"] == ""


def test_cases_check_reads_voxels_and_strict_fails(tmp, capsys):
    _collection(tmp)
    assert main(["cases", str(tmp), "--check", "--strict"]) == 1
    out = capsys.readouterr().out
    assert "BraTS2021_00002_t2.nii.gz: t2 image is all zero" in out
    assert "1 usable, 2 with problems" in out


def test_cases_on_missing_folder(tmp, capsys):
    assert main(["cases", str(tmp / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
