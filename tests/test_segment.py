"""nehmap segment with tiny untrained checkpoints: geometry, outputs, skipping, errors."""

import json

import nibabel as nib
import numpy as np
import pytest

from conftest import save
from nehmap.cli import main
from nehmap.io import discover, load_case
from nehmap.segmentation import load_models, segment

# stored L-P-S with anisotropic voxels, so canonicalisation and write-back both matter
AFFINE = np.array([[-1.2, 0, 0, 30], [0, -1.0, 0, 40], [0, 0, 2.0, -10], [0, 0, 0, 1]])
SHAPE = (30, 34, 18)


@pytest.fixture
def collection(tmp):
    rng = np.random.default_rng(0)
    cid = "BraTS2021_00007"
    brain = np.zeros(SHAPE, bool)
    brain[3:-3, 4:-4, 2:-2] = True
    for i, tok in enumerate(("t1", "t1ce", "t2", "flair")):
        data = (rng.normal(100 + 10 * i, 20, SHAPE) * brain).astype(np.float32)
        save(tmp / "in" / cid / f"{cid}_{tok}.nii.gz", data, AFFINE)
    return tmp / "in"


def test_segment_api_shapes_and_fusion(checkpoints, collection):
    case = load_case(discover(collection)["BraTS2021_00007"])
    models = load_models(
        [str(checkpoints / n) for n in ("tiny-paunet", "tiny-unetrpp", "tiny-consensus")]
    )
    result = segment(case, models)
    assert set(result.labels) == {"tiny-paunet", "tiny-unetrpp", "tiny-consensus"}
    assert list(result.neh) == ["tiny-paunet", "tiny-unetrpp"]  # the consensus model is apart
    for probs in result.probabilities.values():
        assert probs.shape[1:] == case.shape
        np.testing.assert_allclose(probs.sum(0), 1, rtol=1e-4)
    outside = ~case.brain_mask()
    assert (result.labels["tiny-paunet"][outside] == 0).all()
    assert set(np.unique(result.labels["tiny-consensus"])) <= {0, 1, 2}
    c = result.consensus
    assert c is not None and c.probability.shape == case.shape
    assert 0 <= c.probability.min() and c.probability.max() <= 1
    np.testing.assert_array_equal(c.mask, (c.probability >= 0.5).astype(np.uint8))


def test_segment_command_writes_on_input_grid_and_skips(checkpoints, collection, tmp, capsys):
    out = tmp / "out"
    models = ",".join(str(checkpoints / n) for n in ("tiny-paunet", "tiny-unetrpp"))
    assert main(["segment", str(collection), "-o", str(out), "--models", models]) == 0
    cid = "BraTS2021_00007"
    folder = out / cid
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(
        [
            f"{cid}_seg-tiny-paunet.nii.gz",
            f"{cid}_seg-tiny-unetrpp.nii.gz",
            f"{cid}_neh-prob.nii.gz",
            f"{cid}_neh-mask.nii.gz",
            f"{cid}_neh-levels.nii.gz",
            f"{cid}_neh-uncertainty.nii.gz",
            f"{cid}_nehmap.json",
            "nehmap-labels.ctbl",
            "nehmap-labels.itksnap.txt",
        ]
    )
    for name in names:
        if name.endswith(".nii.gz"):
            img = nib.load(folder / name)
            assert img.shape == SHAPE
            np.testing.assert_allclose(img.affine, AFFINE)
    prob = nib.load(folder / f"{cid}_neh-prob.nii.gz")
    assert prob.get_data_dtype() == np.float32
    seg = nib.load(folder / f"{cid}_seg-tiny-paunet.nii.gz")
    assert seg.get_data_dtype() == np.uint8
    # outputs overlay the input voxel for voxel: background exactly where the input is zero
    t1 = np.asarray(nib.load(collection / cid / f"{cid}_t1.nii.gz").dataobj)
    assert (np.asarray(seg.dataobj)[t1 == 0] == 0).all()
    record = json.loads((folder / f"{cid}_nehmap.json").read_text())
    assert record["parameters"]["sigma_mm"] == 1.5
    assert record["versions"]["nehmap"]
    capsys.readouterr()
    assert main(["segment", str(collection), "-o", str(out), "--models", models]) == 0
    captured = capsys.readouterr()
    assert "1 case(s) already complete" in captured.out and "warning" not in captured.err
    # a rerun with other settings keeps the outputs but says they were made differently
    before = (folder / f"{cid}_neh-prob.nii.gz").read_bytes()
    args = ["segment", str(collection), "-o", str(out), "--models", models, "--sigma-mm", "1"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert f"1 of them were segmented with other settings (sigma_mm differ; e.g. {cid})" in err
    assert (folder / f"{cid}_neh-prob.nii.gz").read_bytes() == before
    one = str(checkpoints / "tiny-paunet")
    assert main(["segment", str(collection), "-o", str(out), "--models", one]) == 0
    assert "model_sha256 differ" in capsys.readouterr().err


def test_segment_maps_do_not_depend_on_the_storage_order(checkpoints, collection, tmp, capsys):
    """The same voxels stored with their axes permuted and flipped (nibabel's reorientation,
    world positions unchanged) give the same maps, voxel for voxel in the world, each on
    its own input grid."""
    cid = "BraTS2021_00007"
    permuted = tmp / "permuted"
    # new axis 0 = old axis 2 reversed, 1 = old 0, 2 = old 1 reversed: stored as I-L-A
    ornt = np.array([[1, 1], [2, -1], [0, -1]])
    (permuted / cid).mkdir(parents=True)
    for src in sorted((collection / cid).iterdir()):
        nib.save(nib.load(src).as_reoriented(ornt), permuted / cid / src.name)
    stored = nib.load(permuted / cid / f"{cid}_t1.nii.gz")
    assert "".join(nib.aff2axcodes(stored.affine)) == "ILA"
    models = ",".join(str(checkpoints / n) for n in ("tiny-paunet", "tiny-unetrpp"))
    for source, out in ((collection, tmp / "a"), (permuted, tmp / "b")):
        assert main(["segment", str(source), "-o", str(out), "--models", models]) == 0
    capsys.readouterr()
    outputs = sorted(p.name for p in (tmp / "a" / cid).glob("*.nii.gz"))
    assert len(outputs) == 6
    constant = set()
    for name in outputs:
        a, b = nib.load(tmp / "a" / cid / name), nib.load(tmp / "b" / cid / name)
        assert b.shape == stored.shape
        np.testing.assert_allclose(b.affine, stored.affine)
        a_ras, b_ras = nib.as_closest_canonical(a), nib.as_closest_canonical(b)
        np.testing.assert_allclose(a_ras.affine, b_ras.affine)
        a_data = np.asarray(a_ras.dataobj)
        np.testing.assert_array_equal(a_data, np.asarray(b_ras.dataobj))
        if np.unique(a_data).size == 1:
            constant.add(name)
    # the comparisons above prove something only on maps that vary; the tiny models' fused
    # NEH stays below 0.5 here, so only the thresholded mask may be empty
    assert constant <= {f"{cid}_neh-mask.nii.gz"}, constant


def test_segment_reports_failing_cases_and_goes_on(checkpoints, collection, tmp, capsys):
    bad = collection / "BraTS2021_00008"
    for tok in ("t1", "t1ce", "t2"):
        save(bad / f"BraTS2021_00008_{tok}.nii.gz", np.ones(SHAPE, np.float32), AFFINE)
    save(bad / "BraTS2021_00008_flair.nii.gz", np.ones((5, 5, 5), np.float32), AFFINE)
    rc = main(
        [
            "segment",
            str(collection),
            "-o",
            str(tmp / "out"),
            "--models",
            str(checkpoints / "tiny-paunet"),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 1
    assert "1 case(s) segmented" in out and "FAILED BraTS2021_00008" in out
    assert (tmp / "out" / "BraTS2021_00007" / "BraTS2021_00007_nehmap.json").is_file()
    assert not (tmp / "out" / "BraTS2021_00008").exists()


def test_unknown_model_is_a_clear_error(collection, tmp, capsys):
    rc = main(["segment", str(collection), "-o", str(tmp / "o"), "--models", "nope"])
    assert rc == 2
    assert "neither a checkpoint file nor the name of a shipped model" in capsys.readouterr().err


def test_top_level_api(checkpoints, collection):
    import nehmap

    case = nehmap.load_case(nehmap.discover(collection)["BraTS2021_00007"])
    result = nehmap.segment(case, [str(checkpoints / "tiny-paunet")])
    assert result.labels["tiny-paunet"].shape == case.shape
    assert "segment" in dir(nehmap)


def test_model_output_names():
    from nehmap.segmentation import model_output_names

    assert model_output_names(["paunet", "unetrpp"]) == ["paunet", "unetrpp"]
    assert model_output_names(["models/paunet.json", "/x/unetrpp.safetensors"]) == [
        "paunet",
        "unetrpp",
    ]
    # a training run's checkpoints are named after the run folder
    assert model_output_names(["runs/paunet/best", "runs/unetrpp/best.json"]) == [
        "paunet-best",
        "unetrpp-best",
    ]
    assert model_output_names(["a/m", "b/m", "c/other"]) == ["a-m", "b-m", "other"]
    with pytest.raises(ValueError, match="same name"):
        model_output_names(["paunet", "paunet"])


def test_run_checkpoints_of_one_name_are_fused_as_two_models(checkpoints, collection, tmp):
    """runs/paunet/best and runs/unetrpp/best: two models, two maps, both in the fusion."""
    from nehmap.models.checkpoint import load_checkpoint, save_checkpoint

    for run, tiny in (("paunet", "tiny-paunet"), ("unetrpp", "tiny-unetrpp")):
        (tmp / "runs" / run).mkdir(parents=True)
        save_checkpoint(*load_checkpoint(checkpoints / tiny), tmp / "runs" / run / "best")
    models = f"{tmp}/runs/paunet/best,{tmp}/runs/unetrpp/best"
    assert main(["segment", str(collection), "-o", str(tmp / "out"), "--models", models]) == 0
    folder = tmp / "out" / "BraTS2021_00007"
    assert sorted(p.name for p in folder.glob("*_seg-*.nii.gz")) == [
        "BraTS2021_00007_seg-paunet-best.nii.gz",
        "BraTS2021_00007_seg-unetrpp-best.nii.gz",
    ]
    record = json.loads((folder / "BraTS2021_00007_nehmap.json").read_text())
    assert record["parameters"]["fused"] == ["paunet-best", "unetrpp-best"]
    case = load_case(discover(collection)["BraTS2021_00007"])
    one = load_models([str(checkpoints / "tiny-paunet")])[0]
    with pytest.raises(ValueError, match="Two models are named tiny-paunet"):
        segment(case, [one, one])


def test_segment_staple_fusion_is_staple_of_the_models_neh_masks(checkpoints, collection, tmp):
    from staple_em import staple_em

    case = load_case(discover(collection)["BraTS2021_00007"])
    rng = np.random.default_rng(3)
    external = {}
    for name, shift in (("ext-a", 0), ("ext-b", 3)):
        probs = np.zeros((5, *case.shape), np.float32)
        probs[2] = 1.0
        blob = np.zeros(case.shape, bool)
        blob[8 + shift : 20 + shift, 9:24, 4:13] = True
        blob ^= rng.random(case.shape) < 0.03
        probs[2, blob], probs[3, blob] = 0.0, 1.0
        external[name] = probs
    models = load_models([str(checkpoints / "tiny-paunet")])
    result = segment(case, models, external=external, fusion="staple", sigma_mm=0)
    assert list(result.neh) == ["tiny-paunet", "ext-a", "ext-b"]
    masks = [result.labels[n] == 3 for n in result.neh]
    assert result.parameters["fusion"] == "staple"
    # ITK stops its EM when the sensitivities and specificities change by < 1e-7
    np.testing.assert_allclose(result.consensus.raw, staple_em(masks), atol=1e-3)
    np.testing.assert_array_equal(result.consensus.probability, result.consensus.raw)
    mean = segment(case, models, external=external, sigma_mm=0)
    assert mean.parameters["fusion"] == "mean"
    assert not np.allclose(mean.consensus.raw, result.consensus.raw)


def test_segment_command_fusion_staple_is_recorded(checkpoints, collection, tmp, capsys):
    out = tmp / "out"
    models = ",".join(str(checkpoints / n) for n in ("tiny-paunet", "tiny-unetrpp"))
    # a third rater (STAPLE's rates are not identifiable from two): an external map on
    # the input grid, stored layout (X, Y, Z, 5), NEH in a box
    probs = np.zeros((*SHAPE, 5), np.float32)
    probs[..., 2] = 1.0
    probs[6:20, 8:26, 4:14, 2], probs[6:20, 8:26, 4:14, 3] = 0.0, 1.0
    nib.save(nib.Nifti1Image(probs, AFFINE), tmp / "ext.nii.gz")
    ext = f"ext={tmp / 'ext.nii.gz'}:background,NC,ED,NEH,ET"
    args = ["segment", str(collection), "-o", str(out), "--models", models, "--sigma-mm", "0"]
    args += ["--external", ext]
    assert main([*args, "--fusion", "staple"]) == 0
    cid = "BraTS2021_00007"
    folder = out / cid
    record = json.loads((folder / f"{cid}_nehmap.json").read_text())
    assert record["parameters"]["fusion"] == "staple"
    from staple_em import staple_em

    masks = [
        np.asarray(nib.load(folder / f"{cid}_seg-{m}.nii.gz").dataobj) == 3
        for m in ("tiny-paunet", "tiny-unetrpp", "ext")
    ]
    assert masks[2].sum() > 0
    prob = np.asarray(nib.load(folder / f"{cid}_neh-prob.nii.gz").dataobj)
    np.testing.assert_allclose(prob, staple_em(masks), atol=1e-3)
    # a rerun with the mean reports the other fusion; weights do not go with STAPLE
    assert main(args) == 0
    assert "fusion differ" in capsys.readouterr().err
    assert main([*args, "--fusion", "staple", "--weights", "1,2", "--overwrite"]) == 2
    assert "--weights apply to --fusion mean only" in capsys.readouterr().err


def test_segment_html_writes_each_cases_viewer_of_its_own_maps(checkpoints, collection, tmp):
    import base64
    import gzip
    import re

    out = tmp / "out"
    model = str(checkpoints / "tiny-paunet")
    assert main(["segment", str(collection), "-o", str(out), "--models", model, "--html"]) == 0
    cid = "BraTS2021_00007"
    page = out / cid / f"{cid}_viewer.html"
    text = page.read_text(encoding="utf-8")
    data = json.loads(re.search(r'id="nehmap-viewer-data">(.*?)</script>', text).group(1))
    layers = {layer["name"]: layer for layer in data[0]["layers"]}
    assert {"T1c", "FLAIR", "tiny-paunet labels", "fused NEH probability"} <= set(layers)
    # the labels shown are the segment output's, voxel for voxel (counted per label)
    raw = gzip.decompress(base64.b64decode(layers["tiny-paunet labels"]["data"]))
    shown = np.asarray(nib.Nifti1Image.from_bytes(raw).dataobj)
    written = np.asarray(nib.load(out / cid / f"{cid}_seg-tiny-paunet.nii.gz").dataobj)
    assert len(np.unique(written)) > 1  # the untrained model does label something
    for label in range(1, 5):
        assert (shown == label).sum() == (written == label).sum()
    # the folder is still a complete segment output: a rerun skips the case
    assert main(["segment", str(collection), "-o", str(out), "--models", model, "--html"]) == 0
    assert page.read_text(encoding="utf-8") == text
