"""Domain randomisation in training: each transform against known values, and seeding."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from monai.transforms import RandAdjustContrastd
from scipy import stats

from nehmap.train.augment import build_pipeline
from nehmap.train.config import (
    DOMAIN_RANDOMISATION_PROBS,
    AugmentConfig,
    ConfigError,
    TrainConfig,
)
from nehmap.train.randomise import (
    RandBiasFieldd,
    RandLabelContrastd,
    RandModalityDropoutd,
    RandRicianNoised,
    RandThickSlicesd,
    _box_blur,
    thick_slices,
)


def _constant(value: float, shape=(1, 40, 40, 40)) -> dict:
    return {"image": torch.full(shape, value, dtype=torch.float32)}


# ----------------------------------------------------------------------- thick slices
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_thick_slices_equal_block_average_then_linear_resample(axis):
    rng = np.random.default_rng(axis)
    volume = rng.normal(size=(6, 9, 12)).astype(np.float64)
    n, t = volume.shape[axis], 3
    moved = np.moveaxis(volume, axis, -1)
    means = moved.reshape(*moved.shape[:-1], n // t, t).mean(axis=-1)
    centres = np.arange(n // t) * t + t / 2
    expected = np.apply_along_axis(lambda m: np.interp(np.arange(n) + 0.5, centres, m), -1, means)
    out = thick_slices(torch.from_numpy(volume), axis, float(t))
    np.testing.assert_allclose(np.moveaxis(out.numpy(), axis, -1), expected, atol=1e-12)


def test_thick_slices_fractional_against_brute_force():
    rng = np.random.default_rng(3)
    profile = rng.normal(size=13)
    t, offset, fine = 2.6, -1.1, 50
    positions = (np.arange(13 * fine) + 0.5) / fine  # sub-voxel samples of the profile
    signal = profile[(positions // 1).astype(int)]
    edges = np.clip(np.arange(offset, 13 + t, t), 0, 13)
    edges = np.unique(edges)
    means = [
        signal[(positions >= a) & (positions < b)].mean()
        for a, b in zip(edges[:-1], edges[1:], strict=True)
    ]
    centres = (edges[1:] + edges[:-1]) / 2
    expected = np.interp(np.arange(13) + 0.5, centres, means)
    out = thick_slices(torch.from_numpy(profile), 0, t, offset).numpy()
    np.testing.assert_allclose(out, expected, atol=0.02)


def test_thick_slice_transform_uses_mm_and_keeps_background():
    image = torch.from_numpy(np.random.default_rng(0).normal(size=(2, 20, 20, 20))).float()
    image[:, :3] = 0.0  # outside the brain
    transform = RandThickSlicesd(prob=1.0, thickness_mm=(3.0, 6.0), spacing=(2.0, 1.0, 1.5))
    for seed in range(10):
        transform.set_random_state(seed)
        out = transform({"image": image})["image"]
        axis, thickness, offset = transform.drawn
        assert 3.0 <= thickness * transform.spacing[axis] <= 6.0
        assert -thickness <= offset <= 0
        expected = thick_slices(image, axis + 1, thickness, offset)
        assert torch.allclose(out[:, 3:], expected[:, 3:])
        assert (out[:, :3] == 0).all()


# ----------------------------------------------------------------------- Rician noise
@pytest.mark.parametrize("snr", [2.0, 20.0])
def test_rician_noise_matches_the_rice_distribution(snr):
    value, zero = 5.0, -2.5
    transform = RandRicianNoised(prob=1.0, snr_range=(snr, snr), zero_signal=zero)
    transform.set_random_state(1)
    out = transform(_constant(value))["image"].numpy().ravel() - zero
    signal = value - zero
    sigma = signal / snr
    rice = stats.rice(b=signal / sigma, scale=sigma)
    assert out.mean() == pytest.approx(rice.mean(), rel=0.01)
    assert out.std() == pytest.approx(rice.std(), rel=0.02)
    if snr >= 20:  # measured SNR on a constant image: signal / noise SD
        assert signal / out.std() == pytest.approx(snr, rel=0.03)


def test_rician_noise_leaves_the_background():
    image = _constant(1.0)["image"]
    image[:, :10] = 0.0
    transform = RandRicianNoised(prob=1.0, snr_range=(5.0, 5.0))
    transform.set_random_state(0)
    out = transform({"image": image})["image"]
    assert (out[:, :10] == 0).all() and out[:, 10:].std() > 0.1


# ------------------------------------------------------------------------- bias field
def test_bias_field_strength_is_the_largest_log_bias():
    zero = -2.5
    transform = RandBiasFieldd(prob=1.0, strength=0.4, zero_signal=zero)
    data = _constant(1.0, shape=(3, 24, 20, 16))
    transform.set_random_state(4)
    out = transform(data)["image"].numpy()
    log_bias = np.log((out - zero) / (1.0 - zero)).reshape(3, -1)
    assert transform.strengths is not None
    np.testing.assert_allclose(np.abs(log_bias).max(axis=1), transform.strengths, rtol=1e-4)
    assert (transform.strengths <= 0.4).all()
    assert not np.allclose(log_bias[0], log_bias[1])  # one field per channel


# ------------------------------------------------------------------------------ gamma
def test_gamma_on_known_values():
    x = torch.linspace(0.0, 1.0, 11).reshape(1, 11, 1, 1)
    plain = RandAdjustContrastd("image", prob=1.0, gamma=(2.0, 2.0), retain_stats=False)
    plain.set_random_state(0)
    np.testing.assert_allclose(plain({"image": x})["image"].numpy(), x.numpy() ** 2, atol=1e-6)
    kept = RandAdjustContrastd("image", prob=1.0, gamma=(2.0, 2.0), retain_stats=True)
    kept.set_random_state(0)
    y = torch.linspace(-1.0, 3.0, 11).reshape(1, 11, 1, 1)
    out = kept({"image": y})["image"]
    assert float(out.mean()) == pytest.approx(float(y.mean()), abs=1e-5)
    assert float(out.std()) == pytest.approx(float(y.std()), rel=1e-4)
    # the shape is x^2 after mapping to [0, 1]
    u = (y - y.min()) / (y.max() - y.min())
    assert np.corrcoef(out.numpy().ravel(), (u**2).numpy().ravel())[0, 1] > 0.9999


# --------------------------------------------------------------- per-label contrasts
def test_label_contrast_moves_each_label_by_its_offset():
    labels = torch.zeros((1, 12, 12, 12))
    labels[0, 2:6] = 2
    labels[0, 6:9] = 3
    labels[0, 9:] = 4
    base = torch.tensor([1.0, 0.0, 2.0, 2.0, 3.0])
    image = base[labels.long()].repeat(2, 1, 1, 1)
    transform = RandLabelContrastd(prob=1.0, shift=0.4, scale=0.3, edge_voxels=0)
    transform.set_random_state(9)
    out = transform({"image": image, "label": labels})["image"]
    offsets = transform.offsets
    assert offsets is not None and offsets.shape == (2, 5)
    for k in (0, 2, 3, 4):
        inside = labels[0] == k
        for c in range(2):
            got = out[c][inside]
            assert torch.allclose(got, base[k] + float(offsets[c, k]) * torch.ones_like(got))
    assert (np.abs(offsets[:, 3] - offsets[:, 2]) <= 0.25 * 0.4 + 1e-12).all()
    assert (np.abs(offsets) <= 0.4).all()


def test_label_contrast_scales_spread_and_blurs_edges():
    rng = np.random.default_rng(2)
    labels = torch.zeros((1, 16, 16, 16))
    labels[0, 8:] = 2
    image = torch.from_numpy(rng.normal(1.0, 0.1, size=(1, 16, 16, 16))).float()
    transform = RandLabelContrastd(prob=1.0, shift=0.0, scale=0.3, edge_voxels=0)
    transform.set_random_state(5)
    out = transform({"image": image, "label": labels})["image"]
    inside = labels[0] == 2
    ratio = out[0][inside].std() / image[0][inside].std()
    assert float(ratio) == pytest.approx(1 + transform.scales[0, 2], rel=1e-4)
    soft = RandLabelContrastd(prob=1.0, shift=0.5, scale=0.0, edge_voxels=1)
    soft.set_random_state(5)
    step = soft({"image": torch.ones_like(image), "label": labels})["image"][0, :, 5, 5].numpy()
    # across the boundary (between voxels 7 and 8) the change takes two steps of a third
    # and two thirds of the whole (a 3-voxel mean of the label indicators), elsewhere flat
    jump = soft.offsets[0, 2] - soft.offsets[0, 0]
    diffs = np.diff(step)
    np.testing.assert_allclose(diffs[[6, 7, 8]], [jump / 3, jump / 3, jump / 3], atol=1e-5)
    assert np.abs(np.delete(diffs, [6, 7, 8])).max() < 1e-5


def test_box_blur_equals_average_pooling():
    volume = torch.from_numpy(np.random.default_rng(4).normal(size=(3, 9, 7, 6))).float()
    for radius in (1, 2):
        size = 2 * radius + 1
        expected = torch.nn.functional.avg_pool3d(
            volume[None], size, stride=1, padding=radius, count_include_pad=False
        )[0]
        assert torch.allclose(_box_blur(volume, radius), expected, atol=1e-6)


# ------------------------------------------------------------------ modality dropout
def test_modality_dropout_rate_and_channel():
    image = torch.arange(1, 5, dtype=torch.float32).reshape(4, 1, 1, 1).expand(4, 4, 4, 4)
    transform = RandModalityDropoutd(prob=0.1)
    dropped = []
    for seed in range(3000):
        transform.set_random_state(seed)
        out = transform({"image": image})["image"]
        zero = [c for c in range(4) if (out[c] == 0).all()]
        assert len(zero) == (0 if transform.dropped is None else 1)
        for c in range(4):
            if c not in zero:
                assert (out[c] == c + 1).all()
        dropped += zero
    rate = len(dropped) / 3000
    assert abs(rate - 0.1) < 3 * np.sqrt(0.1 * 0.9 / 3000)
    counts = np.bincount(dropped, minlength=4)
    assert counts.min() > 0.15 * len(dropped)


# ------------------------------------------------------------------- whole pipeline
def _blobs(shape=(24, 24, 24)) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = np.indices(shape).transpose(1, 2, 3, 0)
    labels = np.zeros(shape, dtype=np.uint8)
    for value in (1, 2, 3, 4):
        centre = rng.uniform(6, 18, size=3)
        labels[np.linalg.norm(x - centre, axis=-1) < 5] = value
    return labels


def _off() -> dict:
    return {f.name: 0.0 for f in dataclasses.fields(AugmentConfig) if f.name.endswith("_prob")}


@pytest.mark.parametrize("rotate", [False, True])
def test_flips_and_rotations_keep_labels_on_the_image(rotate):
    labels = _blobs()
    image = np.stack([labels, 2 * labels]).astype(np.float32)
    settings = {**_off(), "flip_prob": 0.5}
    if rotate:
        settings.update(rotation_prob=1.0, rotation_deg=15.0)
    pipe = build_pipeline((16, 16, 16), AugmentConfig(**settings))
    for seed in range(8):
        pipe.set_random_state(seed)
        out = pipe({"image": image, "label": labels, "start": np.array([4, 4, 4])})
        img = np.asarray(out["image"])
        lab = np.asarray(out["label"])[0]
        assert np.array_equal(img[1], 2 * img[0])
        agree = np.mean(np.round(img[0]) == lab)
        assert agree == 1.0 if not rotate else agree > 0.9


def test_pipeline_is_seeded_and_domain_randomisation_on_by_default():
    defaults = AugmentConfig()
    assert all(getattr(defaults, name) > 0 for name in DOMAIN_RANDOMISATION_PROBS)
    labels = _blobs()
    image = np.random.default_rng(1).normal(size=(4, 24, 24, 24)).astype(np.float32)
    sample = {"image": image, "label": labels, "start": np.array([2, 3, 4])}

    def run(seed: int) -> np.ndarray:
        pipe = build_pipeline((16, 16, 16), AugmentConfig(), spacing=(2.0, 2.0, 2.0))
        pipe.set_random_state(seed)
        return np.asarray(pipe(dict(sample))["image"])

    assert np.array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))


def test_domain_randomisation_settings_are_checked():
    with pytest.raises(ConfigError, match="rician_snr"):
        AugmentConfig(rician_snr=(0.0, 10.0)).validate()
    with pytest.raises(ConfigError, match="thick_slice_mm"):
        AugmentConfig(thick_slice_mm=(6.0, 3.0)).validate()
    with pytest.raises(ConfigError, match="bias_strength"):
        AugmentConfig(bias_strength=1.5).validate()
    with pytest.raises(ConfigError, match="dropout_prob"):
        AugmentConfig(dropout_prob=2.0).validate()


def test_a_run_saved_before_domain_randomisation_resumes_without_it(tmp_path):
    TrainConfig(data=str(tmp_path), out=str(tmp_path)).to_file(tmp_path / "config.toml")
    text = (tmp_path / "config.toml").read_text()
    old = "\n".join(
        line
        for line in text.splitlines()
        if not any(line.strip().startswith(k) for k in DOMAIN_RANDOMISATION_PROBS)
    )
    (tmp_path / "config.toml").write_text(old + "\n")
    config = TrainConfig.from_run(tmp_path)
    assert all(getattr(config.augmentation, k) == 0.0 for k in DOMAIN_RANDOMISATION_PROBS)
    assert config.augmentation.rician_snr == AugmentConfig().rician_snr
