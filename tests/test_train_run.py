"""End-to-end training runs on tiny synthetic collections (CPU, seconds each)."""

from __future__ import annotations

import errno
import json
from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from nehmap.commands import train as command
from nehmap.errors import CaseError, NehmapInputError
from nehmap.models import create_model
from nehmap.models.checkpoint import load_checkpoint, read_card
from nehmap.train import CheckpointWriteError, ResumeError, TrainConfig, train
from nehmap.train.checkpointing import read_state_info
from nehmap.train.run_setup import initialise_from
from nehmap.train.split import Split, split_cases
from test_train_support import TINY_UNETRPP, tiny_config, write_brats, write_nnunet


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """One thread: fast for tiny networks and steady on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_nnunet(tmp_path_factory.mktemp("train") / "nnunet", 3)


def _weights(run: Path, name: str = "latest") -> dict[str, torch.Tensor]:
    return load_file(str(run / f"{name}.safetensors"))


def test_tiny_model_learns_the_synthetic_cases(data: Path, tmp_path: Path) -> None:
    config = tiny_config(
        data, tmp_path / "run", epochs=6, iterations_per_epoch=5, augment=False, lr=0.02,
        foreground_fraction=0.7,
    )  # fmt: skip
    result = train(config, echo=None)
    rows = result.history
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[-1]["train_loss"] < 0.75 * rows[0]["train_loss"]
    assert result.best_metric is not None and result.best_metric > rows[0]["val_metric"] + 0.2
    assert rows[-1]["dice_WT"] > rows[0]["dice_WT"]
    network, card = load_checkpoint(result.best)
    assert card.validation_metrics["epoch"] == result.best_epoch
    assert card.spacing_mm == [1.0, 1.0, 1.0] and card.patch_size == [16, 16, 16]
    assert (
        "2 training cases" in card.training_data
        and "1 further cases held out" in card.training_data
    )
    log = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert log[0].split(",") == [
        "epoch", "lr", "train_loss", "val_loss", "dice_WT", "dice_TC", "dice_ET", "dice_NEH",
        "val_metric", "best_metric", "seconds",
    ]  # fmt: skip
    assert len(log) == 7


def test_resume_reaches_the_same_weights(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2 epochs straight == 1 epoch, killed during epoch 2, then resumed (UNETR++ with
    dropout, full augmentation; the resumed run also switches to the disk cache)."""
    settings = {
        "epochs": 2,
        "iterations_per_epoch": 2,
        "deterministic": True,
        "augmentation": {"rotation_prob": 0.5, "scale_prob": 0.5},
    }
    straight = train(tiny_config(data, tmp_path / "a", "unetrpp", **settings), echo=None)

    from nehmap.train.dataset import PatchDataset

    original = PatchDataset.__getitem__

    def killed_in_epoch_2(self: PatchDataset, key: tuple[int, int, int]) -> tuple:
        if key[0] == 1:
            raise KeyboardInterrupt
        return original(self, key)

    monkeypatch.setattr(PatchDataset, "__getitem__", killed_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(data, tmp_path / "b", "unetrpp", cache="disk", **settings), echo=None)
    assert read_state_info(tmp_path / "b")["epoch"] == 1
    monkeypatch.setattr(PatchDataset, "__getitem__", original)
    resumed = train(
        tiny_config(data, tmp_path / "b", "unetrpp", resume=True, **settings), echo=None
    )
    assert resumed.epochs_completed == straight.epochs_completed == 2
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)
    assert [r["train_loss"] for r in resumed.history] == pytest.approx(
        [r["train_loss"] for r in straight.history], rel=1e-5
    )
    assert (tmp_path / "b" / "cache").is_dir()


def test_loader_workers_draw_the_same_batches(data: Path, tmp_path: Path) -> None:
    settings = {"epochs": 2, "iterations_per_epoch": 2}
    train(tiny_config(data, tmp_path / "w0", **settings), echo=None)
    train(tiny_config(data, tmp_path / "w2", num_workers=2, **settings), echo=None)
    a, b = _weights(tmp_path / "w0"), _weights(tmp_path / "w2")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)


def test_split_and_config_are_saved_with_the_run(data: Path, tmp_path: Path) -> None:
    config = tiny_config(data, tmp_path / "run", epochs=1, iterations_per_epoch=1, spacing="data")
    result = train(config, echo=None)
    assert read_card(tmp_path / "run" / "latest").spacing_mm == [1.0, 1.0, 1.0]
    saved = Split.load(tmp_path / "run")
    assert saved == result.split == split_cases(["case000", "case001", "case002"], 0.34, seed=7)
    written = json.loads((tmp_path / "run" / "split.json").read_text())
    assert written["n_train"] == 2 and written["val"] == list(saved.val)
    back = TrainConfig.from_file(tmp_path / "run" / "config.toml")
    assert back.lr == 1e-2 and back.model_kwargs == config.model_kwargs and not back.resume


def test_resume_of_another_model_or_config_is_refused(data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(tiny_config(data, run, epochs=1, iterations_per_epoch=1), echo=None)
    with pytest.raises(ResumeError, match="already holds a training run"):
        train(tiny_config(data, run, epochs=1, iterations_per_epoch=1), echo=None)
    with pytest.raises(ResumeError, match="model: 'paunet' in the run, 'unetrpp' now"):
        train(tiny_config(data, run, "unetrpp", resume=True), echo=None)
    with pytest.raises(ResumeError, match="batch_size: 2 in the run, 4 now"):
        train(tiny_config(data, run, resume=True, batch_size=4), echo=None)


def test_init_starts_from_the_checkpoint_weights(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fine-tuning: the new run's first step starts from the checkpoint's weights."""
    first = train(
        tiny_config(data, tmp_path / "first", epochs=1, iterations_per_epoch=1), echo=None
    )
    start = _weights(tmp_path / "first", "best")
    seen: dict[str, torch.Tensor] = {}
    from nehmap.train import loop

    original = loop.initialise_from

    def spy(model: torch.nn.Module, architecture: str, checkpoint: str | Path) -> Path:
        path = original(model, architecture, checkpoint)
        seen.update({k: v.detach().clone() for k, v in model.state_dict().items()})
        return path

    monkeypatch.setattr(loop, "initialise_from", spy)
    tuned = train(
        tiny_config(
            data, tmp_path / "tuned", epochs=1, iterations_per_epoch=1, init=str(first.best)
        ),
        echo=None,
    )
    assert seen.keys() == start.keys()
    for key in start:
        torch.testing.assert_close(seen[key], start[key], rtol=0, atol=0)
    fresh = train(
        tiny_config(data, tmp_path / "fresh", epochs=1, iterations_per_epoch=1), echo=None
    )
    # same seed, same patches: only the starting weights differ
    a, b = _weights(tmp_path / "tuned"), _weights(tmp_path / "fresh")
    assert any(not torch.equal(a[k], b[k]) for k in a)
    card = read_card(tuned.best)
    assert "starting from the weights of first/best" in card.training_data
    assert TrainConfig.from_file(tmp_path / "tuned" / "config.toml").init == str(first.best)
    assert fresh.epochs_completed == 1


def test_init_from_another_network_is_refused(data: Path, tmp_path: Path) -> None:
    first = train(
        tiny_config(data, tmp_path / "first", epochs=1, iterations_per_epoch=1), echo=None
    )
    with pytest.raises(
        NehmapInputError, match=r"first[/\\]best\.json: the checkpoint is a 'paunet'"
    ):
        train(tiny_config(data, tmp_path / "u", "unetrpp", init=str(first.best)), echo=None)
    wider = {**tiny_config(data, tmp_path / "x").model_kwargs, "base_features": 8}
    with pytest.raises(NehmapInputError, match="do not fit the network of this run"):
        train(
            tiny_config(data, tmp_path / "w", model_kwargs=wider, init=str(first.best)), echo=None
        )
    with pytest.raises(NehmapInputError, match="model card not found"):
        train(tiny_config(data, tmp_path / "m", init=str(tmp_path / "nothing")), echo=None)
    assert not (tmp_path / "w" / "latest.json").exists()


@pytest.mark.parametrize("stage", ["training-state", "latest"])
def test_full_disk_keeps_the_last_good_checkpoint(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    import nehmap.models.checkpoint as model_checkpoint

    run = tmp_path / "run"
    writes = {"n": 0}
    allowed = 1 if stage == "training-state" else 2  # epoch 1: one state; latest and best
    real_torch_save, real_save_file = torch.save, model_checkpoint.save_file

    def full_disk(real):  # type: ignore[no-untyped-def]
        def write(*args, **kwargs):  # type: ignore[no-untyped-def]
            writes["n"] += 1
            if writes["n"] > allowed:  # epoch 1 writes work, epoch 2 finds the disk full
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(*args, **kwargs)

        return write

    if stage == "training-state":
        monkeypatch.setattr(torch, "save", full_disk(real_torch_save))
    else:
        monkeypatch.setattr(model_checkpoint, "save_file", full_disk(real_save_file))
    config = tiny_config(data, run, epochs=2, iterations_per_epoch=1)
    with pytest.raises(CheckpointWriteError) as info:
        train(config, echo=None)
    message = str(info.value)
    assert f"could not write the {stage} checkpoint of epoch 2" in message
    assert "No space left on device (the disk is full)" in message and "--resume" in message
    assert "the resume state holds epoch 1, so resuming repeats epoch 2" in message
    monkeypatch.undo()
    _, card = load_checkpoint(run / "latest")  # intact and loadable
    if stage == "latest":
        assert f"{run / 'latest'} is intact and holds epoch 1" in message
        assert card.extra["training"]["epoch"] == 1
    assert read_state_info(run)["epoch"] == 1
    assert len(list((run / "resume").glob("state-*.pt"))) == 1
    assert not [p for p in run.rglob(".*") if "tmp" in p.name]
    resumed = train(TrainConfig.from_run(run), echo=None)
    assert (
        resumed.epochs_completed == 2 and read_card(run / "latest").extra["training"]["epoch"] == 2
    )


def test_volumes_smaller_than_the_patch_are_padded(data: Path, tmp_path: Path) -> None:
    """At 2 mm the cases are about 11^3 voxels, smaller than the 16^3 patch."""
    config = tiny_config(
        data, tmp_path / "run", epochs=1, iterations_per_epoch=2, spacing=2.0, val_mode="cases"
    )
    result = train(config, echo=None)
    assert result.history[0]["dice_WT"] is not None
    assert read_card(tmp_path / "run" / "latest").spacing_mm == [2.0, 2.0, 2.0]


def test_early_stopping(data: Path, tmp_path: Path) -> None:
    config = tiny_config(
        data, tmp_path / "run", epochs=6, iterations_per_epoch=1, lr=1e-9, patience=2
    )
    result = train(config, echo=None)
    assert result.stopped_early and result.epochs_completed == 3 and result.best_epoch == 1


# ----------------------------------------------------------------------------- bad input


def test_too_few_cases(tmp_path: Path) -> None:
    root = write_nnunet(tmp_path / "one", 1)
    with pytest.raises(NehmapInputError, match="only 1 labelled case"):
        train(tiny_config(root, tmp_path / "run"), echo=None)


def test_case_without_labels_is_named(tmp_path: Path) -> None:
    root = write_nnunet(tmp_path / "d", 3, unlabelled=(1,))
    with pytest.raises(CaseError) as info:
        train(tiny_config(root, tmp_path / "run"), echo=None)
    message = str(info.value)
    assert "case case001" in message and "has no label file" in message
    assert "case001_0000.nii.gz" in message


def test_label_values_outside_the_scheme_reach_the_user(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_brats(tmp_path / "brats", 3, bad_label_case=1)
    status = command.main(
        ["--data", str(root), "--out", str(tmp_path / "run"), "--epochs", "1", "--no-progress"]
    )
    err = capsys.readouterr().err
    assert status == 2
    assert "case BraTS2021_00001" in err and "BraTS2021_00001_seg.nii.gz" in err
    assert "values [3]" in err and "brats2021" in err


# ----------------------------------------------------------------------------- consensus


def test_consensus_model_trains_on_the_consensus_dataset(tmp_path: Path) -> None:
    """The set ``nehmap consensus-dataset`` writes (levels as nnU-Net labels) trains
    unetrpp-consensus; the level maps are read as they are, not as tissue labels."""
    from nehmap.derive.consensus import consensus_dataset

    images = write_brats(tmp_path / "brats", 3)
    for seg in images.glob("*/*_seg.nii.gz"):
        case_id = seg.name.removesuffix("_seg.nii.gz")
        img = nib.load(seg)
        labels = np.asarray(img.dataobj)
        levels = np.where(labels == 1, 2, np.where(labels == 4, 1, 0)).astype(np.uint8)
        out = tmp_path / "segment" / case_id / f"{case_id}_neh-levels.nii.gz"
        out.parent.mkdir(parents=True)
        nib.save(nib.Nifti1Image(levels, img.affine), out)
    report = consensus_dataset(tmp_path / "segment", images, tmp_path / "consensus")
    assert len(report.cases) == 3
    result = train(
        tiny_config(
            report.root, tmp_path / "run", "unetrpp-consensus", epochs=1, iterations_per_epoch=2
        ),
        echo=None,
    )
    assert set(result.history[0]) >= {"dice_low", "dice_high"}
    assert result.best is not None
    network, card = load_checkpoint(result.best)
    assert card.label_scheme == "neh-consensus" and card.class_names == [
        "background", "NEH-low", "NEH-high",
    ]  # fmt: skip
    assert "two-level NEH consensus map" in card.training_data
    assert set(card.validation_metrics) >= {"dice_low", "dice_high", "mean_dice"}
    assert network(torch.zeros(1, 4, 16, 16, 16)).shape == (1, 3, 16, 16, 16)


def test_consensus_labels_outside_0_1_2_are_refused(tmp_path: Path) -> None:
    bad = np.zeros((24, 24, 24), dtype=np.uint8)
    bad[10:12, 10:12, 10:12] = 4
    root = write_nnunet(tmp_path / "c", 3, consensus=True, label_override={0: bad})
    with pytest.raises(CaseError, match=r"case case000: .*NEH level map holds values \[4\]"):
        train(tiny_config(root, tmp_path / "run", "unetrpp-consensus"), echo=None)
    with pytest.raises(NehmapInputError, match="does not fit"):
        train(tiny_config(root, tmp_path / "run", "unetrpp-consensus", target="tissue"), echo=None)
    with pytest.raises(CaseError, match="Train --model unetrpp-consensus on it"):
        train(tiny_config(root, tmp_path / "run", "paunet"), echo=None)


def test_consensus_model_starts_from_unetrpp_weights_with_fresh_output_layers(
    data: Path, tmp_path: Path
) -> None:
    """--init with a unetrpp checkpoint for unetrpp-consensus: every tensor is copied
    except the output layers (5 classes there, 3 here), which keep their fresh values."""
    tissue = train(
        tiny_config(data, tmp_path / "tissue", "unetrpp", epochs=1, iterations_per_epoch=1),
        echo=None,
    )
    source = _weights(tmp_path / "tissue", "best")
    root = write_nnunet(tmp_path / "c", 3, consensus=True)
    model = create_model("unetrpp-consensus", "demo", **TINY_UNETRPP)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    init = initialise_from(model, "unetrpp-consensus", tissue.best)
    assert init.fresh and init.architecture == "unetrpp"
    after = model.state_dict()
    for key, value in after.items():
        if key in init.fresh:  # first dimension: 3 classes here, 5 in the checkpoint
            assert value.shape[0] == 3 and source[key].shape[0] == 5
            torch.testing.assert_close(value, before[key], rtol=0, atol=0)
        else:
            torch.testing.assert_close(value, source[key], rtol=0, atol=0)
    run = train(
        tiny_config(
            root, tmp_path / "consensus", "unetrpp-consensus", epochs=1, iterations_per_epoch=1,
            init=str(tissue.best),
        ),
        echo=None,
    )  # fmt: skip
    assert (
        "(a unetrpp network; the output layers started fresh)" in read_card(run.best).training_data
    )
    # another network class is still refused, whatever its classes
    paunet = train(tiny_config(data, tmp_path / "p", epochs=1, iterations_per_epoch=1), echo=None)
    with pytest.raises(NehmapInputError, match="the checkpoint is a 'paunet'"):
        initialise_from(
            create_model("unetrpp-consensus", "demo", **TINY_UNETRPP), "unetrpp-consensus",
            paunet.best,
        )  # fmt: skip


def test_consensus_levels_in_an_ordinary_label_file(tmp_path: Path) -> None:
    """--target consensus reads 0/1/2 maps from a case's ordinary label file (any layout)."""
    root = write_brats(tmp_path / "brats", 3)
    for seg in root.glob("*/*_seg.nii.gz"):
        img = nib.load(seg)
        levels = np.asarray(img.dataobj).astype(np.uint8)
        levels = np.where(levels == 4, 2, np.where(levels > 0, 1, 0)).astype(np.uint8)
        nib.save(nib.Nifti1Image(levels, img.affine), seg)
    config = tiny_config(
        root, tmp_path / "run", "unetrpp-consensus", epochs=1, iterations_per_epoch=1
    )
    result = train(config, echo=None)
    assert result.history[0]["dice_high"] is not None


# ----------------------------------------------------------------------------- command line


def test_command_line_run_resume_and_refusal(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    args = [
        "--data", str(data), "--out", str(run), "--model", "paunet",
        "--model-arg", "base_features=4", "--model-arg", "n_stages=3",
        "--model-arg", "max_features=16", "--model-arg", "highres_features=2",
        "--patch-size", "16", "--epochs", "1", "--iterations", "2", "--val-mode", "cases",
        "--val-fraction", "0.34", "--no-progress", "--no-tensorboard",
    ]  # fmt: skip
    assert command.main(args) == 0
    assert "best validation mean Dice" in capsys.readouterr().out
    assert (run / "config.toml").is_file() and (run / "best.json").is_file()
    card = read_card(run / "best")
    assert "whole validation cases" in card.validation_metrics["validation"]
    # resume with only the run folder: the saved configuration supplies the rest
    assert command.main(["--out", str(run), "--resume", "--epochs", "2", "--no-progress"]) == 0
    assert read_state_info(run)["epoch"] == 2
    assert command.main(["--out", str(run), "--resume", "--model", "unetrpp"]) == 2
    assert "model: 'paunet' in the run, 'unetrpp' now" in capsys.readouterr().err
