"""`nehmap validate recurrence` straight on `nehmap segment` output, with no model options.

The pNEH is the fused consensus mask (``<case>_neh-mask``), the tumour core and the
recurrence ET come from the default network; the run's record says which maps were used.
"""

from __future__ import annotations

import argparse
import json
import os

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

pytest.importorskip("ants")


@pytest.fixture(scope="module")
def rhuh(tmp_path_factory):
    """Two synthetic RHUH patients (3 mm) and their truth label maps by scan id."""
    from nehmap.io import discover
    from nehmap.synth import write_cohort

    root = tmp_path_factory.mktemp("h3seg")
    made = write_cohort(
        root / "rhuh", n=2, seed=5, spacing=3.0, layout="rhuh", progress=False, overwrite=False
    )
    truth = {}
    for subject, scans in discover(made.collection).by_subject().items():
        truth[scans["preop"].case_id] = nib.load(made.truth / f"{subject}_truth-labels.nii.gz")
        truth[scans["recurrence"].case_id] = nib.load(
            made.truth / f"{subject}_recurrence-labels.nii.gz"
        )
    return {"root": root, "collection": made.collection, "truth": truth}


def _write(path, data, affine):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data, np.uint8), affine), path)


@pytest.fixture(scope="module")
def segment_like(rhuh):
    """A segment output folder: paunet without NEH, unetrpp = truth, fused mask = truth NEH.

    Were the pNEH taken from paunet, every patient would be excluded for having no NEH.
    """
    out = rhuh["root"] / "seg"
    for case_id, image in rhuh["truth"].items():
        labels = np.asarray(image.dataobj).astype(np.uint8)
        folder = out / case_id
        _write(folder / f"{case_id}_seg-unetrpp.nii.gz", labels, image.affine)
        _write(
            folder / f"{case_id}_seg-paunet.nii.gz", np.where(labels == 3, 2, labels), image.affine
        )
        _write(folder / f"{case_id}_neh-mask.nii.gz", labels == 3, image.affine)
    return out


def _args(rhuh, seg, out, *extra):
    from nehmap.commands import validate_recurrence

    parser = argparse.ArgumentParser()
    validate_recurrence.add_arguments(parser)
    return parser.parse_args(
        [
            str(rhuh["collection"]),
            "--preop-seg",
            str(seg),
            "--recurrence-seg",
            str(seg),
            "-o",
            str(out),
            "--preset",
            "affine",
            "--null-n",
            "20",
            "--no-progress",
            *extra,
        ]
    )


def test_segment_output_needs_no_model_options(rhuh, segment_like):
    from nehmap.commands import validate_recurrence

    out = rhuh["root"] / "out-default"
    assert validate_recurrence.run(_args(rhuh, segment_like, out)) == 0
    excluded = pd.read_csv(out / "excluded.csv")
    # only a pNEH too large for its peritumoral band may be left out (the matched model)
    assert excluded["reason"].str.contains("peritumoral band cannot hold").all()
    cases = pd.read_csv(out / "recurrence_cases.csv")
    assert cases["case"].nunique() + len(excluded) == 2 and cases["case"].nunique() >= 1
    record = json.loads((out / "recurrence_run.json").read_text())
    assert record["maps"] == {
        "pneh": ["fused consensus NEH mask (<case>_neh-mask)"],
        "preop_core": ["unetrpp label map (<case>_seg-unetrpp)"],
        "recurrence_et": ["unetrpp label map (<case>_seg-unetrpp)"],
    }
    for files in record["segmentations"].values():
        assert files["preop_neh"].endswith("_neh-mask.nii.gz")
    # 'fused' by name gives the same pNEH; a named network gives its own NEH (none here)
    out_fused = rhuh["root"] / "out-fused"
    assert (
        validate_recurrence.run(_args(rhuh, segment_like, out_fused, "--preop-model", "fused")) == 0
    )
    fused = pd.read_csv(out_fused / "recurrence_cases.csv")
    # the same mask (the registration may differ in the last voxels between runs)
    np.testing.assert_allclose(fused["pneh_volume_mm3"], cases["pneh_volume_mm3"], rtol=0.01)
    out_paunet = rhuh["root"] / "out-paunet"
    validate_recurrence.run(_args(rhuh, segment_like, out_paunet, "--preop-model", "paunet"))
    reasons = pd.read_csv(out_paunet / "excluded.csv")["reason"]
    assert len(reasons) == 2 and reasons.str.contains("no NEH").all()


def test_fused_cannot_give_the_recurrence_et(rhuh, segment_like, capsys):
    from nehmap.commands import validate_recurrence

    out = rhuh["root"] / "out-bad"
    args = _args(rhuh, segment_like, out, "--recurrence-model", "fused")
    # refused before any work: exit 2 ("nothing could start"), no output folder
    assert validate_recurrence.run(args) == 2
    assert "--recurrence-model fused" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("NEHMAP_SLOW") != "1", reason="slow; set NEHMAP_SLOW=1")
def test_real_segment_output_of_two_networks(rhuh, checkpoints):
    """`nehmap segment` with two (untrained) networks, then validate with no model options.

    Slow on a CPU (the tiny networks' 16-voxel patches tile the whole 2 mm volume).
    """
    from nehmap.cli import main
    from nehmap.commands import validate_recurrence

    seg = rhuh["root"] / "segment-out"
    models = ",".join(str(checkpoints / n) for n in ("tiny-paunet", "tiny-unetrpp"))
    assert main(["segment", str(rhuh["collection"]), "-o", str(seg), "--models", models]) == 0
    out = rhuh["root"] / "out-real"
    validate_recurrence.run(_args(rhuh, seg, out))
    excluded = pd.read_csv(out / "excluded.csv")
    assert not excluded["reason"].str.contains("several models").any()
    record = json.loads((out / "recurrence_run.json").read_text())
    assert record["maps"]["pneh"] == ["fused consensus NEH mask (<case>_neh-mask)"]
    assert record["maps"]["recurrence_et"] == ["tiny-unetrpp label map (<case>_seg-tiny-unetrpp)"]
