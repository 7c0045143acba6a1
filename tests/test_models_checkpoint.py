"""Checkpoints and model cards of nehmap.models: round trip, atomicity, tampering."""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import nehmap.models
from nehmap.models import (
    CheckpointError,
    ModelCard,
    ModelCardError,
    ModelInputError,
    create_model,
    load_checkpoint,
    read_card,
    save_checkpoint,
)
from nehmap.models import checkpoint as ckpt
from nehmap.models.checkpoint import checkpoint_paths, sha256_file

torch.set_num_threads(1)

TINY_PAUNET = {
    "base_features": 4,
    "n_stages": 3,
    "max_features": 16,
    "highres_features": 2,
    "patch_size": 16,
}
TINY_CONSENSUS = {
    "patch_size": 16,
    "stem_stride": 2,
    "feature_sizes": (8, 16, 32),
    "depths": 1,
    "proj_sizes": (8, 8, 4),
}


def _paunet(seed: int = 0, **kwargs: object) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model("paunet", **{**TINY_PAUNET, **kwargs})


def _card(model: torch.nn.Module, **kwargs: object) -> ModelCard:
    return ModelCard.for_model(
        model,
        name="tiny",
        spacing_mm=(1.0, 1.0, 1.0),
        training_data="3 synthetic cases, 2 epochs",
        validation_metrics={"dice": {"NEH": 0.5, "ET": 0.8}, "hd95_mm": 4.2},
        **kwargs,
    )


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("name", ["paunet", "unetrpp-consensus"])
def test_round_trip_gives_identical_outputs(tmp_path: Path, name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, **(TINY_PAUNET if name == "paunet" else TINY_CONSENSUS))
    model.train()
    model(torch.randn(2, 4, 16, 16, 16))  # move batch-norm running statistics
    model.eval()
    card = save_checkpoint(model, _card(model), tmp_path / "tiny")
    assert sorted(os.listdir(tmp_path)) == ["tiny.json", "tiny.safetensors"]
    assert card.weights_sha256 == sha256_file(tmp_path / "tiny.safetensors")

    loaded, loaded_card = load_checkpoint(tmp_path / "tiny.safetensors")
    assert loaded_card == card and not loaded.training
    x = torch.randn(1, 4, 16, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    if name == "unetrpp-consensus":
        assert card.class_names == ["background", "NEH-low", "NEH-high"]
        assert card.class_labels == [0, 3, 3] and card.label_scheme == "neh-consensus"
    else:
        assert card.class_names == ["background", "NC", "ED", "NEH", "ET"]
        assert card.class_labels == [0, 1, 2, 3, 4]


def test_card_json_holds_what_inference_needs(tmp_path: Path) -> None:
    model = _paunet()
    save_checkpoint(model, _card(model), tmp_path / "tiny")
    data = json.loads((tmp_path / "tiny.json").read_text())
    assert data["format"] == "nehmap-model-card" and data["architecture"] == "paunet"
    assert data["modalities"] == ["t1", "t1c", "t2", "flair"]
    assert data["normalisation"] == "zscore-brain" and data["spacing_mm"] == [1.0, 1.0, 1.0]
    assert data["patch_size"] == [16, 16, 16] and data["config"]["base_features"] == 4
    assert data["validation_metrics"]["dice"]["NEH"] == 0.5
    assert data["nehmap_version"] == nehmap.__version__ and data["created"].endswith("Z")
    assert data["weights_file"] == "tiny.safetensors" and len(data["weights_sha256"]) == 64
    assert data["n_parameters"] == model.n_parameters()
    assert ModelCard.from_json((tmp_path / "tiny.json").read_text()) == read_card(tmp_path / "tiny")


def test_checkpoint_paths_accept_name_or_either_file() -> None:
    expected = (Path("m/a.safetensors"), Path("m/a.json"))
    assert checkpoint_paths("m/a") == checkpoint_paths("m/a.json") == expected
    assert checkpoint_paths(Path("m/a.safetensors")) == expected


def test_failed_weights_write_leaves_previous_checkpoint_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = _paunet(seed=1)
    save_checkpoint(old, _card(old), tmp_path / "tiny")
    before = _files(tmp_path)

    def broken_write(tensors: dict, path: Path, metadata: dict) -> None:
        path.write_bytes(b"half a safetensors file")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "_write_weights", broken_write)
    new = _paunet(seed=2)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(new, _card(new), tmp_path / "tiny")
    assert _files(tmp_path) == before  # same files, same bytes, no temporary left
    loaded, _ = load_checkpoint(tmp_path / "tiny")
    assert torch.equal(loaded.head.weight, old.head.weight)


def test_failed_card_rename_restores_previous_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = _paunet(seed=1)
    save_checkpoint(old, _card(old), tmp_path / "tiny")
    before = _files(tmp_path)
    real_replace = os.replace

    def replace(src: str | Path, dst: str | Path) -> None:
        if str(dst).endswith("tiny.json"):
            raise OSError("card rename failed")
        real_replace(src, dst)

    monkeypatch.setattr(ckpt.os, "replace", replace)
    new = _paunet(seed=2)
    with pytest.raises(OSError, match="card rename failed"):
        save_checkpoint(new, _card(new), tmp_path / "tiny")
    monkeypatch.undo()
    assert _files(tmp_path) == before
    load_checkpoint(tmp_path / "tiny")


def test_first_save_that_fails_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_write(tensors: dict, path: Path, metadata: dict) -> None:
        path.write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "_write_weights", broken_write)
    model = _paunet()
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(model, _card(model), tmp_path / "sub" / "tiny")
    assert list((tmp_path / "sub").iterdir()) == []


def test_tampered_weights_are_detected(tmp_path: Path) -> None:
    model = _paunet()
    save_checkpoint(model, _card(model), tmp_path / "tiny")
    weights = tmp_path / "tiny.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"tiny\.safetensors: sha256 [0-9a-f]{64} differs"):
        load_checkpoint(tmp_path / "tiny")


def _rewrite_weights(tmp_path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Replace the weights and record their new sha256 in the card."""
    save_file(tensors, str(tmp_path / "tiny.safetensors"))
    card = json.loads((tmp_path / "tiny.json").read_text())
    card["weights_sha256"] = sha256_file(tmp_path / "tiny.safetensors")
    (tmp_path / "tiny.json").write_text(json.dumps(card))


def test_missing_and_unexpected_tensors_are_named(tmp_path: Path) -> None:
    model = _paunet()
    save_checkpoint(model, _card(model), tmp_path / "tiny")
    tensors = load_file(str(tmp_path / "tiny.safetensors"))
    tensors["head.extra"] = tensors.pop("head.weight")
    _rewrite_weights(tmp_path, tensors)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "tiny")
    message = str(info.value)
    assert "tiny.safetensors" in message
    assert "1 missing tensor(s): head.weight" in message
    assert "1 unexpected tensor(s): head.extra" in message


def test_shape_mismatch_is_named(tmp_path: Path) -> None:
    model = _paunet()
    save_checkpoint(model, _card(model), tmp_path / "tiny")
    card = json.loads((tmp_path / "tiny.json").read_text())
    card["config"]["n_classes"] = 4
    card["class_names"] = card["class_names"][:4]
    card["class_labels"] = card["class_labels"][:4]
    (tmp_path / "tiny.json").write_text(json.dumps(card))
    with pytest.raises(
        CheckpointError,
        match=r"shape mismatch.*head\.weight is \(5, 4, 1, 1, 1\) in the file, \(4, 4, 1, 1, 1\) in",
    ):
        load_checkpoint(tmp_path / "tiny")


def test_unknown_architecture_lists_known_ones(tmp_path: Path) -> None:
    model = _paunet()
    save_checkpoint(model, _card(model), tmp_path / "tiny")
    card = json.loads((tmp_path / "tiny.json").read_text())
    card["architecture"] = "segformer3d"
    (tmp_path / "tiny.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "tiny")
    message = str(info.value)
    assert "tiny.json" in message and "'segformer3d'" in message
    assert "paunet" in message and "unetrpp-consensus" in message


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"nothing\.json: model card not found"):
        load_checkpoint(tmp_path / "nothing")
    model = _paunet()
    save_checkpoint(model, _card(model), tmp_path / "tiny")
    (tmp_path / "tiny.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"tiny\.safetensors: weights file not found"):
        load_checkpoint(tmp_path / "tiny")


def test_save_refuses_a_card_of_another_network(tmp_path: Path) -> None:
    model, other = _paunet(), _paunet(base_features=8)
    with pytest.raises(ModelCardError, match="does not describe this network"):
        save_checkpoint(model, _card(other), tmp_path / "tiny")
    assert not tmp_path.joinpath("tiny.json").exists()


def test_loading_never_unpickles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _paunet()
    save_checkpoint(model, _card(model), tmp_path / "tiny")

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.load was called")

    monkeypatch.setattr(torch, "load", forbidden)
    load_checkpoint(tmp_path / "tiny")


def test_models_package_has_no_pickle_loading() -> None:
    folder = Path(nehmap.models.__file__).parent
    offenders = []
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr == "load":
                if isinstance(node.value, ast.Name) and node.value.id in ("torch", "pickle"):
                    offenders.append(f"{path.name}:{node.lineno}")
            if isinstance(node, ast.Import | ast.ImportFrom):
                module = getattr(node, "module", None) or ""
                names = {a.name for a in node.names}
                if module in ("pickle", "dill") or names & {"pickle", "dill", "cloudpickle"}:
                    offenders.append(f"{path.name}:{node.lineno}")
                if module == "torch" and "load" in names:
                    offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []


# ------------------------------------------------------------------ model cards


def _card_dict() -> dict:
    return _card(_paunet()).to_dict()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"architecture": None}, "misses required field"),
        ({"spacing_mm": [1.0, 0.0, 1.0]}, "spacing_mm must be 3 positive"),
        ({"class_names": ["background", "NEH"]}, "2 class_names .* n_classes=5"),
        ({"modalities": ["t1", "t1c", "t2", "dwi"]}, "modalities must be canonical"),
        ({"modalities": ["t1", "t1c", "t2"]}, "3 modalities .* in_channels=4"),
        ({"normalisation": "minmax"}, "unknown normalisation 'minmax'"),
        ({"patch_size": [16, 16]}, "patch_size must be 3"),
        ({"weights_sha256": "abc"}, "64 lower-case"),
        ({"weights_file": "../x.safetensors"}, "plain .safetensors file name"),
        ({"class_labels": [0, 1, 2, 3, 7]}, "nehmap labels 0-4"),
        ({"format_version": 99}, "newer than this nehmap reads"),
        ({"colour": "blue"}, "unknown field.*colour"),
    ],
)
def test_invalid_cards_are_explained(change: dict, message: str) -> None:
    data = _card_dict()
    for key, value in change.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    with pytest.raises(ModelCardError, match=message):
        ModelCard.from_json(json.dumps(data), "cards/tiny.json")


def test_card_names_the_file_in_errors() -> None:
    with pytest.raises(ModelCardError, match=r"cards/tiny\.json: model card is not valid JSON"):
        ModelCard.from_json("{", "cards/tiny.json")


def test_check_input_accepts_aliases_and_reports_resampling() -> None:
    card = ModelCard.from_dict(_card_dict())
    check = card.check_input(["T1", "t1ce", "T2", "FLAIR"], spacing=(1.0, 1.0, 1.0))
    assert check.modalities == ("t1", "t1c", "t2", "flair") and not check.needs_resampling
    check = card.check_input(["t1", "t1c", "t2", "flair"], spacing=(0.9375, 0.9375, 5.0))
    assert check.needs_resampling and check.model_spacing_mm == (1.0, 1.0, 1.0)
    assert card.class_index("neh") == 3


@pytest.mark.parametrize(
    ("modalities", "message"),
    [
        (["t1", "t1c", "t2"], r"missing: \['flair'\]"),
        (["t1c", "t1", "t2", "flair"], "channel order .* differs"),
        (["t1", "t1c", "t2", "flair", "rcbv"], r"not used: \['rcbv'\]"),
        (["t1", "t1c", "t2", "rcbv"], r"missing: \['flair'\]; not used: \['rcbv'\]"),
        (["t1", "t1c", "t2", "dwi"], r"unknown modality name\(s\) \['dwi'\]"),
        (["t1", "t1", "t2", "flair"], r"more than once: \['t1'\]"),
    ],
)
def test_check_input_refuses_wrong_modalities(modalities: list[str], message: str) -> None:
    card = ModelCard.from_dict(_card_dict())
    with pytest.raises(ModelInputError, match=message):
        card.check_input(modalities)


def test_consensus_card_needs_class_names_for_other_outputs() -> None:
    torch.manual_seed(0)
    model = create_model("unetrpp", **TINY_CONSENSUS, n_classes=2)
    with pytest.raises(ModelCardError, match="Pass class_names"):
        ModelCard.for_model(model)
    card = ModelCard.for_model(model, class_names=["background", "NEH"], class_labels=[0, 3])
    assert card.n_classes == 2
