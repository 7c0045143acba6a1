"""The viewer's data: cropping, quantising, encoding, size budget, and nehmap view."""

from __future__ import annotations

import base64
import gzip
import json
import re

import nibabel as nib
import numpy as np
import pytest

from nehmap.cli import main
from nehmap.report.viewer import (
    Layer,
    ViewerCase,
    bounding_box,
    downsample,
    encode_case,
    encode_cases,
    quantise,
)
from nehmap.report.viewer_cases import segment_case
from nehmap.report.viewer_page import (
    LICENCE_FILE,
    NIIVUE_FILE,
    NIIVUE_SHA256,
    NIIVUE_VERSION,
    data_json,
)
from viewer_data import SHAPE, brain_and_tumour, write_case


def _decode(layer: dict) -> nib.Nifti1Image:
    raw = gzip.decompress(base64.b64decode(layer["data"]))
    return nib.Nifti1Image.from_bytes(raw)


def _case(seed: int = 0, shape=SHAPE) -> ViewerCase:
    rng = np.random.default_rng(seed)
    brain, labels = brain_and_tumour(shape)
    image = (brain * rng.uniform(100, 900, shape)).astype(np.float32)
    probability = (labels == 3) * 0.8
    return ViewerCase(
        f"C{seed}",
        "test",
        (1.0, 1.0, 1.0),
        [
            Layer("T1c", "image", image),
            Layer("labels", "labels", labels),
            Layer("p", "probability", probability, threshold=0.5),
        ],
    )


def test_bounding_box_is_the_nonzero_extent_plus_margin() -> None:
    a = np.zeros((20, 20, 20))
    a[5:9, 7, 10:12] = 1
    box = bounding_box([a], margin=2)
    assert box == (slice(3, 11), slice(5, 10), slice(8, 14))
    assert bounding_box([np.zeros((4, 5, 6))]) == (slice(0, 4), slice(0, 5), slice(0, 6))


def test_quantised_values_come_back_within_half_a_step() -> None:
    rng = np.random.default_rng(3)
    for kind in ("image", "probability", "uncertainty"):
        values = rng.uniform(0, 1 if kind == "probability" else 700, (10, 11, 12)).astype(
            np.float32
        )
        q, slope, inter = quantise(values, kind)
        back = q * slope + inter
        keep = values <= np.percentile(values[values != 0], 99.9)  # images are clipped there
        assert np.max(np.abs(back - values)[keep]) <= slope / 2 + 1e-6
    labels = rng.integers(0, 5, (4, 4, 4))
    q, slope, inter = quantise(labels, "labels")
    assert (slope, inter) == (1.0, 0.0) and np.array_equal(q, labels)


def test_encoded_layers_decode_to_the_cropped_maps_in_mm() -> None:
    case = _case()
    encoded = encode_case(case)
    box = bounding_box([layer.array for layer in case.layers])
    labels = _decode(encoded["layers"][1])
    assert np.array_equal(np.asarray(labels.dataobj), case.layers[1].array[box])
    assert labels.get_data_dtype() == np.uint8
    assert np.allclose(labels.affine[:3, 3], [b.start for b in box])  # 1 mm voxels
    probability = _decode(encoded["layers"][2])
    assert probability.get_data_dtype() == np.uint8
    assert np.allclose(probability.get_fdata(), case.layers[2].array[box], atol=0.5 / 255 + 1e-6)
    assert encoded["bytes"] == sum(len(layer["data"]) for layer in encoded["layers"])
    # the crosshair opens on the NEH: the focus voxel has probability above 0.5
    focus = [int(f * s) for f, s in zip(encoded["focus"], encoded["shape"], strict=True)]
    assert probability.get_fdata()[tuple(focus)] > 0.5


def test_downsampling_keeps_labels_and_averages_values() -> None:
    a = np.arange(4 * 4 * 4, dtype=float).reshape(4, 4, 4)
    mean = downsample(a, 2, nearest=False)
    assert mean.shape == (2, 2, 2)
    assert mean[0, 0, 0] == pytest.approx(a[:2, :2, :2].mean())
    labels = downsample(np.arange(64).reshape(4, 4, 4) % 5, 2, nearest=True)
    assert set(np.unique(labels)) <= set(range(5))
    assert labels[0, 0, 0] == (np.arange(64).reshape(4, 4, 4) % 5)[1, 1, 1]


def test_cases_over_budget_are_downsampled_with_a_note_never_dropped() -> None:
    cases = [_case(seed) for seed in range(3)]
    full = encode_cases(cases, budget_bytes=10**9)
    total = sum(e["bytes"] for e in full)
    budget = total // 3
    fitted = encode_cases(cases, budget_bytes=budget)
    assert [e["id"] for e in fitted] == [c.case_id for c in cases]
    assert sum(e["bytes"] for e in fitted) <= budget
    small = [e for e in fitted if e["spacing"][0] > 1]
    assert small and all(any("Down-sampled by" in n for n in e["notes"]) for e in small)
    assert all(not e["notes"] for e in fitted if e["spacing"][0] == 1)


def test_four_cases_at_1_mm_hold_the_budget() -> None:
    """4 cases of 160 x 190 x 150 voxels at 1 mm with three noisy images: the page's data
    stays within 12 MB, every case is kept, and each down-sampled case says so."""
    from scipy import ndimage

    shape = (160, 190, 150)
    brain, labels = brain_and_tumour(shape)
    rng = np.random.default_rng(0)
    anatomy = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), 3) * 2000
    cases = []
    for i in range(4):
        layers = [
            Layer(
                n,
                "image",
                (brain * (400 + anatomy + 15 * rng.standard_normal(shape))).astype(np.float32),
            )
            for n in ("T1c", "FLAIR", "rCBV")
        ]
        layers += [Layer("a", "labels", labels), Layer("b", "labels", np.roll(labels, 3, 0))]
        layers += [
            Layer("p", "probability", (labels == 3) * 0.7),
            Layer("u", "uncertainty", (labels == 3) * 0.2),
        ]
        cases.append(ViewerCase(f"C{i}", "", (1.0, 1.0, 1.0), layers))
    encoded = encode_cases(cases)
    assert sum(e["bytes"] for e in encoded) <= 12 * 2**20
    assert [e["id"] for e in encoded] == ["C0", "C1", "C2", "C3"]
    for e in encoded:
        factor = round(e["spacing"][0])
        assert (factor > 1) == any(f"Down-sampled by {factor}" in n for n in e["notes"])


def test_data_json_cannot_close_its_script_tag() -> None:
    text = data_json([{"id": "</script><b>", "notes": ["a & b"]}])
    assert "<" not in text and ">" not in text
    assert json.loads(text)[0]["id"] == "</script><b>"


def test_segment_case_reads_every_output_and_the_inputs(tmp_path) -> None:
    folder = write_case(tmp_path)
    case = segment_case(folder, strict=True)
    names = [layer.name for layer in case.layers]
    assert names == [
        "T1c", "FLAIR", "rCBV", "paunet labels", "unetrpp labels",
        "fused two-level map", "fused NEH probability", "uncertainty",
    ]  # fmt: skip
    assert [layer.visible for layer in case.layers][:3] == [True, False, False]


def test_view_writes_one_offline_page(tmp_path, capsys) -> None:
    folder = write_case(tmp_path)
    out = tmp_path / "v.html"
    assert main(["view", str(folder), "-o", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert f"NiiVue {NIIVUE_VERSION}" in text and "BSD 2-Clause License" in text
    assert not re.search(r"""(src|href)=["']https?:""", text)
    data = json.loads(re.search(r'id="nehmap-viewer-data">(.*?)</script>', text).group(1))
    assert [layer["name"] for layer in data[0]["layers"]][0] == "T1c"
    assert main(["view", str(folder), "-o", str(out)]) == 2  # exists: needs --overwrite
    assert "--overwrite" in capsys.readouterr().err


def test_view_of_a_folder_without_segment_outputs_names_what_is_missing(tmp_path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["view", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "empty_nehmap.json" in err and "nehmap segment" in err
    folder = write_case(tmp_path)
    for p in folder.glob("*.nii.gz"):
        p.unlink()
    assert main(["view", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "CASE-01_seg-<model>.nii.gz" in err and "--overwrite" in err


def test_view_notes_a_missing_image_and_still_writes(tmp_path, capsys) -> None:
    folder = write_case(tmp_path, rcbv=False)
    (tmp_path / "images" / "CASE-01_flair.nii.gz").unlink()
    assert main(["view", str(folder)]) == 0
    captured = capsys.readouterr()
    assert "FLAIR not shown" in captured.err
    assert (folder / "CASE-01_viewer.html").is_file()


def test_vendored_niivue_is_the_pinned_release_with_its_licence() -> None:
    import hashlib
    from importlib import resources

    vendor = resources.files("nehmap.report").joinpath("vendor")
    assert hashlib.sha256(vendor.joinpath(NIIVUE_FILE).read_bytes()).hexdigest() == NIIVUE_SHA256
    licence = vendor.joinpath(LICENCE_FILE).read_text(encoding="utf-8")
    assert "BSD 2-Clause License" in licence and f"NiiVue {NIIVUE_VERSION}" in licence


def test_report_section_says_which_cases_were_downsampled(monkeypatch, tmp_path) -> None:
    from types import SimpleNamespace

    from nehmap.report import viewer_section

    cases = [_case(0), _case(1)]
    monkeypatch.setattr(viewer_section, "figure1_cases", lambda ctx: list(cases))
    monkeypatch.setattr(viewer_section, "figure4_case", lambda ctx: None)
    full = sum(e["bytes"] for e in encode_cases(cases, 10**9))
    monkeypatch.setattr(
        viewer_section, "encode_cases", lambda c: encode_cases(c, budget_bytes=full * 2 // 3)
    )
    html = viewer_section.viewer_section(SimpleNamespace())
    assert html.count('class="note"') == 1 and "Down-sampled by 2" in html
    assert "C0: Down-sampled" in html or "C1: Down-sampled" in html
