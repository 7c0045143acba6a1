"""Training configuration: files, round trips, command-line layering, resume checks."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from nehmap.commands import train as command
from nehmap.train import AugmentConfig, ConfigError, TrainConfig
from nehmap.train.augment_config import DOMAIN_RANDOMISATION_PROBS
from nehmap.train.config import differences


def _custom() -> TrainConfig:
    return TrainConfig.from_dict(
        {
            "data": "/data/brats",
            "out": "/runs/a",
            "model": "unetrpp",
            "preset": None,
            "model_kwargs": {"feature_sizes": [8, 16], "patch_size": 32},
            "spacing": [1.0, 1.0, 2.5],
            "epochs": 12,
            "optimizer": "adamw",
            "lr": 1e-3,
            "patience": 4,
            "init": "/runs/pretrained/best",
            "augmentation": {"rotation_prob": 0.5, "scale_range": [0.8, 1.2]},
        }
    )


@pytest.mark.parametrize("suffix", [".toml", ".yaml"])
def test_config_file_round_trip(tmp_path: Path, suffix: str) -> None:
    config = _custom()
    path = config.to_file(tmp_path / f"config{suffix}")
    back = TrainConfig.from_file(path)
    assert back == config
    assert back.preset is None and back.augmentation.scale_range == (0.8, 1.2)


def test_defaults_are_nnunet_like() -> None:
    c = TrainConfig().resolved()
    assert (c.optimizer, c.lr, c.momentum, c.weight_decay) == ("sgd", 1e-2, 0.99, 3e-5)
    assert (c.grad_clip, c.poly_exponent, c.foreground_fraction) == (12.0, 0.9, 0.33)
    assert TrainConfig(optimizer="adamw").resolved().lr == 3e-4
    assert AugmentConfig().scale_range == (0.7, 1.4)


def test_config_file_relative_paths_and_dashes(tmp_path: Path) -> None:
    (tmp_path / "cfg").mkdir()
    path = tmp_path / "cfg" / "run.toml"
    path.write_text('data = "../data"\nout = "run"\nval-fraction = 0.25\nspacing = 1.5\n')
    c = TrainConfig.from_file(path)
    assert Path(c.data) == tmp_path / "cfg" / ".." / "data"
    assert c.val_fraction == 0.25 and c.spacing == [1.5, 1.5, 1.5]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("epochz = 3\n", "unknown setting"),
        ("val_fraction = 1.0\n", "val_fraction must be between 0 and 1"),
        ("optimizer = 'adam'\n", "optimizer must be one of"),
        ("[augmentation]\nrotation_prob = 2.0\n", "rotation_prob must be a probability"),
        ("spacing = 'fine'\n", "invalid setting"),
        ("epochs = [\n", "is not valid TOML"),
    ],
)
def test_bad_config_files_are_refused(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=words) as info:
        TrainConfig.from_file(path)
    assert "bad.toml" in str(info.value)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_flags_override_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model: unetrpp\nepochs: 5\nlr: 0.05\naugmentation:\n  flip_prob: 0.1\n")
    config, fmt = command.config_from_args(
        _args("--config", str(path), "--epochs", "9", "--no-augment", "--spacing", "1,1,2",
              "--model-arg", "feature_sizes=[8,16]", "--patch-size", "32")
    )  # fmt: skip
    assert fmt == "yaml"
    assert (config.model, config.epochs, config.lr, config.augment) == ("unetrpp", 9, 0.05, False)
    assert config.spacing == [1.0, 1.0, 2.0] and config.patch_size == [32, 32, 32]
    assert config.model_kwargs == {"feature_sizes": [8, 16]}
    assert config.augmentation.flip_prob == 0.1
    untouched, _ = command.config_from_args(_args())
    assert untouched == TrainConfig() and untouched.init is None
    tuned, _ = command.config_from_args(_args("--init", str(tmp_path / "run" / "best")))
    assert tuned.init == str((tmp_path / "run" / "best").resolve())


def test_no_randomise_turns_off_only_the_domain_randomisation(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[augmentation]\nbias_prob = 0.9\ngamma_prob = 0.4\n")
    config, _ = command.config_from_args(_args("--config", str(path), "--no-randomise"))
    for key in DOMAIN_RANDOMISATION_PROBS:
        assert getattr(config.augmentation, key) == 0.0, key
    assert config.augment and config.augmentation.gamma_prob == 0.4
    assert config.augmentation.flip_prob == TrainConfig().augmentation.flip_prob > 0
    default, _ = command.config_from_args(_args())
    assert all(getattr(default.augmentation, k) > 0 for k in DOMAIN_RANDOMISATION_PROBS)


def test_resume_differences_name_the_settings() -> None:
    saved = _custom()
    same = TrainConfig.from_dict({**saved.to_dict(), "epochs": 50, "device": "cpu"})
    assert differences(saved, same) == []
    other = TrainConfig.from_dict(
        {**saved.to_dict(), "model": "paunet", "augmentation": {"rotation_prob": 0.1}}
    )
    diffs = differences(saved, other)
    assert any(d.startswith("model: 'unetrpp' in the run, 'paunet' now") for d in diffs)
    assert any(d.startswith("augmentation.rotation_prob: 0.5") for d in diffs)
    # a default written out explicitly is no difference
    explicit = TrainConfig.from_dict({**saved.to_dict(), "lr": None})
    assert differences(TrainConfig.from_dict({**explicit.to_dict(), "lr": 3e-4}), explicit) == []
