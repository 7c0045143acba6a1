"""Units of the training pipeline: split, sampling, augmentation, loss, seeding, data."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from nehmap.errors import NehmapInputError
from nehmap.train.augment import RandPatchd, build_pipeline
from nehmap.train.config import AugmentConfig
from nehmap.train.data import DiskCache, PreparedCase, prepare_cases, preprocess
from nehmap.train.dataset import EpochBatches, PatchDataset
from nehmap.train.loss import DeepSupervisionLoss, DiceCELoss, resize_target
from nehmap.train.sampling import PatchPlan, centred_start, extract, plan_patch, start_range
from nehmap.train.seeding import derived_seed, sample_generator
from nehmap.train.split import Split, split_cases
from nehmap.train.step import poly_lr
from nehmap.train.targets import CONSENSUS, TISSUE, target_for
from nehmap.train.validate import dice_from_counts, fixed_patches, region_counts, validate
from test_train_support import synthetic_case, write_brats, write_nnunet

# ----------------------------------------------------------------------------- split


def test_split_is_seeded_sorted_and_disjoint() -> None:
    ids = [f"c{i}" for i in range(10)]
    a = split_cases(ids, 0.2, seed=3)
    assert a == split_cases(list(reversed(ids)), 0.2, seed=3)
    assert len(a.val) == 2 and len(a.train) == 8
    assert set(a.train) | set(a.val) == set(ids) and not set(a.train) & set(a.val)
    assert list(a.train) == sorted(a.train)
    others = {split_cases(ids, 0.2, seed=s).val for s in range(8)}
    assert len(others) > 1


def test_split_round_trip(tmp_path: Path) -> None:
    s = split_cases(["a", "b", "c"], 0.34, seed=1)
    s.save(tmp_path)
    assert Split.load(tmp_path) == s


@pytest.mark.parametrize(
    ("n", "fraction", "words"),
    [(1, 0.2, "only 1 labelled case"), (0, 0.2, "only 0 labelled"), (2, 0.9, "no case to train")],
)
def test_split_refuses_too_few_cases(n: int, fraction: float, words: str) -> None:
    with pytest.raises(NehmapInputError, match=words):
        split_cases([f"c{i}" for i in range(n)], fraction, seed=0)


# ----------------------------------------------------------------------------- sampling


def test_start_range_and_centring() -> None:
    assert start_range(20, 16) == (0, 4)
    assert start_range(10, 16) == (-3, -3)
    assert centred_start((0, 19, 10), (20, 20, 20), (16, 16, 16)) == (0, 4, 2)


def test_extract_pads_with_zeros() -> None:
    vol = np.arange(27, dtype=np.float32).reshape(1, 3, 3, 3) + 1
    out = extract(vol, (-1, -1, -1), (5, 5, 5))
    assert out.shape == (1, 5, 5, 5)
    assert np.array_equal(out[0, 1:4, 1:4, 1:4], vol[0]) and out.sum() == vol.sum()
    assert extract(vol, (10, 0, 0), (2, 2, 2)).sum() == 0


def _prepared(seed: int = 0) -> PreparedCase:
    images, labels = synthetic_case(seed)
    image = np.stack([images[k] for k in ("t1", "t1c", "t2", "flair")])
    fg = np.argwhere(labels > 0).astype(np.int32)
    focus = np.argwhere(labels == 3).astype(np.int32)
    return PreparedCase("x", image, labels, fg, focus, (1.0, 1.0, 1.0))


def test_foreground_oversampling_rates() -> None:
    case = _prepared()
    rng = np.random.default_rng(0)
    plans = [plan_patch(rng, [case], (8, 8, 8), 0.33, 0.5) for _ in range(3000)]
    kinds = np.array([p.kind for p in plans])
    assert abs(np.mean(kinds != "random") - 0.33) < 0.04
    assert abs(np.mean(kinds == "focus") - 0.165) < 0.03
    for p in plans[:200]:
        if p.kind == "focus":
            patch = extract(case.target, p.start, (8, 8, 8))
            assert (patch == 3).any()


# ----------------------------------------------------------------------------- augmentation


def test_rand_patch_identity_and_resampled_paths_agree() -> None:
    case = _prepared()
    t = RandPatchd((8, 8, 8))
    t.set_random_state(0)
    plain = t({"image": case.image, "label": case.target, "start": (5, 6, 7)})
    t._angles, t._zoom = np.zeros(3), 1.0
    t.randomize = lambda data=None: None  # keep the forced (identity) parameters
    t.matrix = lambda: np.eye(3)  # take the resampling path with the identity
    resampled = t({"image": case.image, "label": case.target, "start": (5, 6, 7)})
    assert torch.allclose(plain["image"], resampled["image"], atol=1e-4)
    assert torch.equal(plain["label"], resampled["label"])


def test_rotation_keeps_image_and_labels_aligned() -> None:
    case = _prepared()
    t = RandPatchd((16, 16, 16), rotation_prob=1.0, rotation_deg=30, scale_prob=1.0)
    t.set_random_state(3)
    start = centred_start(case.focus[0], case.shape, (16, 16, 16))
    out = t({"image": case.image, "label": case.target, "start": start})
    assert out["image"].shape == (4, 16, 16, 16) and out["label"].shape == (1, 16, 16, 16)
    t1c, label = out["image"][1], out["label"][0]
    # enhancing tumour stays bright in T1c after the joint resampling
    assert t1c[label == 4].mean() > t1c[(label == 0) & (t1c > 0)].mean() + 50
    assert set(torch.unique(label).tolist()) <= {0, 1, 2, 3, 4}


def test_pipeline_is_a_pure_function_of_its_seed() -> None:
    case = _prepared()
    aug = AugmentConfig(rotation_prob=1, scale_prob=1, noise_prob=1, blur_prob=1, gamma_prob=1)
    pipe = build_pipeline((8, 8, 8), aug)
    sample = {"image": case.image, "label": case.target, "start": (6, 6, 6)}
    pipe.set_random_state(11)
    a = pipe(dict(sample))
    pipe.set_random_state(12)
    pipe(dict(sample))
    pipe.set_random_state(11)
    b = pipe(dict(sample))
    assert torch.equal(torch.as_tensor(a["image"]), torch.as_tensor(b["image"]))


def test_dataset_sample_depends_only_on_its_key() -> None:
    cases = [_prepared(0), _prepared(1)]
    ds = PatchDataset(cases, (8, 8, 8), seed=5, augmentation=AugmentConfig(rotation_prob=1))
    x1, y1 = ds[(2, 3, 1)]
    ds[(0, 0, 0)]
    x2, y2 = ds[(2, 3, 1)]
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert x1.dtype == torch.float32 and y1.dtype == torch.int64 and y1.shape == (8, 8, 8)
    other = PatchDataset(cases, (8, 8, 8), seed=5, rank=1)
    assert not torch.equal(
        other[(2, 3, 1)][0], PatchDataset(cases, (8, 8, 8), seed=5)[(2, 3, 1)][0]
    )
    batches = EpochBatches(3, 2)
    batches.epoch, batches.start_iteration = 4, 1
    assert list(batches) == [[(4, 1, 0), (4, 1, 1)], [(4, 2, 0), (4, 2, 1)]]


def test_seeds_differ_by_position() -> None:
    a = sample_generator(1, 0, 0, 0, 0).random()
    assert a == sample_generator(1, 0, 0, 0, 0).random()
    assert a != sample_generator(1, 0, 0, 0, 1).random()
    assert derived_seed(1, 4, 0) != derived_seed(1, 4, 1) < 2**63


# ----------------------------------------------------------------------------- loss


def test_dice_ce_loss_is_low_for_a_confident_correct_prediction() -> None:
    target = torch.randint(0, 3, (2, 8, 8, 8))
    good = torch.nn.functional.one_hot(target, 3).movedim(-1, 1).float() * 20
    loss = DiceCELoss(3)
    assert loss(good, target) < 0.01
    assert loss(-good, target) > 1.5


def test_deep_supervision_downsamples_the_target() -> None:
    target = torch.zeros(1, 8, 8, 8, dtype=torch.long)
    target[:, 4:, 4:, 4:] = 1
    small = resize_target(target, (4, 4, 4))
    assert small.shape == (1, 4, 4, 4) and small[0, 3, 3, 3] == 1 and small[0, 0, 0, 0] == 0
    full = torch.nn.functional.one_hot(target, 2).movedim(-1, 1).float() * 20
    coarse = torch.nn.functional.one_hot(small, 2).movedim(-1, 1).float() * 20
    ds = DeepSupervisionLoss(DiceCELoss(2), (0.6, 0.4))
    assert ds([full, coarse], target) < 0.01
    assert ds([full, -coarse], target) > 0.4


def test_poly_learning_rate() -> None:
    assert poly_lr(0.01, 0, 100) == 0.01
    assert math.isclose(poly_lr(0.01, 50, 100), 0.01 * 0.5**0.9)
    assert poly_lr(0.01, 99, 100) > 0


# ----------------------------------------------------------------------------- validation


def test_region_dice_counts() -> None:
    pred = torch.tensor([0, 1, 3, 3, 4])
    true = torch.tensor([0, 1, 3, 2, 0])
    counts = region_counts(pred, true, {"NEH": (3,), "WT": (1, 2, 3, 4)})
    assert counts["NEH"].tolist() == [1, 1, 0]
    assert dice_from_counts(*counts["WT"]) == pytest.approx(2 * 3 / (4 + 3))
    assert dice_from_counts(0, 0, 0) == 1.0


def test_fixed_validation_patches_are_seeded() -> None:
    cases = [_prepared(0), _prepared(1)]
    a = fixed_patches(cases, (8, 8, 8), 4, seed=2)
    assert a == fixed_patches(cases, (8, 8, 8), 4, seed=2)
    assert len(a) == 8 and sum(p.kind == "tumour" for p in a) == 4


# ----------------------------------------------------------------------------- data


class _LabelEcho(torch.nn.Module):
    """A stand-in network whose logits say: the class is the first channel, rounded."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        classes = x[:, 0].round().long().clamp(0, 3)
        return 8.0 * torch.nn.functional.one_hot(classes, 4).permute(0, 4, 1, 2, 3).float()


def _brute_dice(pred: np.ndarray, truth: np.ndarray, classes: list[int]) -> float:
    a, b = np.isin(pred, classes), np.isin(truth, classes)
    return 1.0 if a.sum() + b.sum() == 0 else 2.0 * (a & b).sum() / (a.sum() + b.sum())


@pytest.mark.parametrize("mode", ["patches", "cases"])
def test_validation_loss_and_dice_match_a_brute_force_count(mode: str) -> None:
    rng = np.random.default_rng(3)
    regions = {"WT": [1, 2, 3], "TC": [2, 3]}
    cases, preds = [], []
    for k in range(2):
        truth = rng.integers(0, 4, (12, 12, 12)).astype(np.uint8)
        pred = np.where(rng.random(truth.shape) < 0.3, rng.integers(0, 4, truth.shape), truth)
        image = np.stack([pred, rng.random(truth.shape)]).astype(np.float32)
        cases.append(PreparedCase(f"c{k}", image, truth, truth > 0, truth > 0, (1.0, 1.0, 1.0)))
        preds.append(pred)
    loss_fn = torch.nn.CrossEntropyLoss()
    patch = (8, 8, 8)
    if mode == "patches":
        plans = [
            PatchPlan(k, s, "random") for k in (0, 1) for s in [(0, 0, 0), (4, 2, 1), (3, 4, 4)]
        ]
        pieces = [
            (
                extract(preds[p.case_index][None], p.start, patch)[0],
                extract(cases[p.case_index].target, p.start, patch),
            )
            for p in plans
        ]
        pred_all = np.concatenate([a.ravel() for a, _ in pieces])
        truth_all = np.concatenate([b.ravel() for _, b in pieces])
        want = {r: _brute_dice(pred_all, truth_all, c) for r, c in regions.items()}
        batches = [pieces[i : i + 2] for i in range(0, len(pieces), 2)]
    else:
        plans = None
        want = {
            r: np.mean([_brute_dice(p, c.target, cl) for p, c in zip(preds, cases, strict=True)])
            for r, cl in regions.items()
        }
        batches = [[(p, c.target)] for p, c in zip(preds, cases, strict=True)]
    batch_losses = []
    for batch in batches:
        logits = _LabelEcho()(
            torch.from_numpy(np.stack([a for a, _ in batch])[:, None].astype(np.float32))
        )
        y = torch.from_numpy(np.stack([b for _, b in batch]).astype(np.int64))
        batch_losses.append((float(loss_fn(logits, y)), len(batch)))
    want_loss = sum(v * n for v, n in batch_losses) / sum(n for _, n in batch_losses)
    got = validate(
        _LabelEcho(),
        cases,
        loss_fn,
        regions,
        patch,
        device=torch.device("cpu"),
        plans=plans,
        batch_size=2,
    )
    assert got.dice == pytest.approx(want, abs=1e-12)
    assert got.loss == pytest.approx(want_loss, rel=1e-6)
    assert got.metric == pytest.approx(np.mean(list(want.values())))


def test_targets_follow_the_model() -> None:
    assert target_for("paunet") is TISSUE
    assert target_for("unetrpp-consensus") is CONSENSUS
    with pytest.raises(ValueError, match="does not fit"):
        target_for("unetrpp-consensus", "tissue")


def test_preprocess_crops_normalises_and_resamples(tmp_path: Path) -> None:
    from nehmap.io import discover

    files = discover(write_nnunet(tmp_path / "d", 1))["case000"]
    at_1mm = preprocess(files, TISSUE, (1.0, 1.0, 1.0))
    assert at_1mm.image.shape == (4, *at_1mm.shape) and at_1mm.shape[0] < 24  # cropped
    brain = at_1mm.image[0] != 0
    assert (
        abs(at_1mm.image[0][brain].mean()) < 1e-3 and abs(at_1mm.image[0][brain].std() - 1) < 1e-2
    )
    assert set(np.unique(at_1mm.target)) == {0, 1, 2, 3, 4}
    assert (at_1mm.target[tuple(at_1mm.focus.T)] == 3).all()
    at_2mm = preprocess(files, TISSUE, (2.0, 2.0, 2.0))
    assert at_2mm.shape == tuple(round(s / 2) for s in at_1mm.shape)
    assert set(np.unique(at_2mm.target)) <= {0, 1, 2, 3, 4}


def test_disk_cache_reuses_and_invalidates(tmp_path: Path) -> None:
    from nehmap.io import discover

    files = discover(write_brats(tmp_path / "b", 1)).cases[0]
    cache = DiskCache(tmp_path / "cache")
    (first,) = prepare_cases([files], TISSUE, (1.0, 1.0, 1.0), cache=cache)  # type: ignore[misc]
    assert isinstance(first.image, np.memmap)
    assert cache.load(files, TISSUE, (1.0, 1.0, 1.0)) is not None
    assert cache.load(files, TISSUE, (2.0, 2.0, 2.0)) is None  # other spacing
    fresh = preprocess(files, TISSUE, (1.0, 1.0, 1.0))
    assert np.array_equal(np.asarray(first.image), fresh.image)
    assert np.array_equal(np.asarray(first.target), fresh.target)


# ----------------------------------------------------------------------------- log


def test_run_log_csv_reload_and_tensorboard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys
    import types

    from nehmap.train.history import RunLog

    scalars: list[tuple[str, float, int]] = []

    class FakeWriter:
        def __init__(self, folder: str) -> None:
            self.folder = folder

        def add_scalar(self, key: str, value: float, step: int) -> None:
            scalars.append((key, value, step))

        def flush(self) -> None:
            pass

        def close(self) -> None:
            pass

    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = FakeWriter  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    log = RunLog(tmp_path, ["WT", "NEH"])
    for epoch in (1, 2, 3):
        log.add({"epoch": epoch, "lr": 0.01, "train_loss": 1.0 / epoch, "dice_NEH": 0.5})
    log.close()
    assert ("train_loss", 0.5, 2) in scalars
    monkeypatch.delitem(sys.modules, "torch.utils.tensorboard")
    again = RunLog(tmp_path, ["WT", "NEH"], tensorboard=False)
    again.load(up_to_epoch=2)
    assert [r["epoch"] for r in again.rows] == [1, 2]
    assert again.rows[1]["train_loss"] == 0.5 and again.rows[1]["dice_WT"] is None


# ----------------------------------------------------------------------------- state


def test_training_state_round_trip_loads_tensors_only(tmp_path: Path) -> None:
    from nehmap.train.checkpointing import ResumeError, load_state, save_state
    from nehmap.train.step import make_optimizer

    model = torch.nn.Sequential(torch.nn.Conv3d(1, 2, 3), torch.nn.InstanceNorm3d(2))
    optimizer = make_optimizer(model, "adamw", lr=1e-3)
    model(torch.randn(1, 1, 5, 5, 5)).sum().backward()
    optimizer.step()
    save_state(tmp_path, 3, model, optimizer, None, {"best_metric": 0.5})
    info, tensors = load_state(tmp_path)
    assert info["epoch"] == 3 and info["best_metric"] == 0.5
    fresh = make_optimizer(model, "adamw", lr=1e-3)
    fresh.load_state_dict(tensors["optimizer"])
    assert torch.equal(
        fresh.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"]
    )
    (tmp_path / "resume" / info["state_file"]).write_bytes(b"tampered")
    with pytest.raises(ResumeError, match="differs from the sha256"):
        load_state(tmp_path)
