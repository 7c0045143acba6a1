"""Registration with ANTsPy: physical space (RAS/LPS), presets, quality and failures.

Small grids only (3 mm); the 1 mm timings are in ``benchmarks/bench_registration.py``.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

ants = pytest.importorskip("ants")

from nehmap.validate.registration import (  # noqa: E402
    QUICK_SCHEDULE,
    RegistrationError,
    Schedule,
    assess,
    brain_dice,
    itk_threads,
    register,
    to_ants,
    warp_image,
    warp_labels,
)
from nehmap.validate.registration_schedule import schedule_levels  # noqa: E402

SPACING = 3.0


def _grid(shape: tuple[int, int, int], origin: tuple[float, float, float]) -> np.ndarray:
    affine = np.diag([SPACING, SPACING, SPACING, 1.0])
    affine[:3, 3] = origin
    return affine


def _world(shape: tuple[int, int, int], affine: np.ndarray) -> np.ndarray:
    idx = np.indices(shape).reshape(3, -1)
    return (affine[:3, :3] @ idx + affine[:3, 3:4]).T.reshape(*shape, 3)


def _phantom(world: np.ndarray, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An asymmetric 'brain' (ellipsoid with blobs) at world RAS mm, moved by ``shift``."""
    p = world - shift
    brain = ((p[..., 0] / 60) ** 2 + (p[..., 1] / 75) ** 2 + (p[..., 2] / 55) ** 2) < 1
    img = np.where(brain, 100.0, 0.0)
    for centre, sd, amp in (
        ((20, 30, 10), 10, 80),
        ((-25, -20, 15), 14, -50),
        ((5, -45, -20), 8, 120),
        ((-15, 40, -15), 12, 60),
    ):
        r2 = ((p - np.asarray(centre, float)) ** 2).sum(axis=-1)
        img += amp * np.exp(-r2 / (2 * sd**2))
    img = np.where(brain, img, 0.0).astype(np.float32)
    ball = ((p - np.array([20.0, 30.0, 10.0])) ** 2).sum(axis=-1) < 12**2
    return img, ball & brain


@pytest.fixture(scope="module")
def shifted_pair():
    """Fixed and moving phantoms; the moving content lies 6 mm further to the right.

    The two grids differ too (origin shifted by 9 mm along y), so only physical
    coordinates can align them.
    """
    shape = (48, 56, 44)
    fa = _grid(shape, (-70.0, -85.0, -65.0))
    ma = _grid(shape, (-70.0, -76.0, -65.0))
    shift = np.array([6.0, 0.0, 0.0])
    fixed, fixed_ball = _phantom(_world(shape, fa), np.zeros(3))
    moving, moving_ball = _phantom(_world(shape, ma), shift)
    reg = register(fixed, moving, fa, ma, preset="affine", threads=1)
    yield {
        "reg": reg,
        "fixed": fixed,
        "moving": moving,
        "fixed_ball": fixed_ball,
        "moving_ball": moving_ball,
        "shift": shift,
        "fa": fa,
        "ma": ma,
    }
    reg.close()


def test_to_ants_converts_ras_to_lps():
    affine = np.array(
        [[0.0, 0.0, 2.0, -10.0], [1.5, 0.0, 0.0, 20.0], [0.0, 3.0, 0.0, 5.0], [0, 0, 0, 1]]
    )
    img = to_ants(np.zeros((4, 5, 6), np.float32), affine)
    for ijk in ((0, 0, 0), (3, 1, 2), (1, 4, 5)):
        ras = affine @ np.array([*ijk, 1.0])
        lps = np.asarray(ants.transform_index_to_physical_point(img, ijk))
        np.testing.assert_allclose(lps, ras[:3] * [-1, -1, 1], atol=1e-5)
    assert to_ants(np.zeros((2, 2, 2), bool), np.eye(4), np.uint8).pixeltype == "unsigned char"


def test_translation_recovered_with_the_right_sign(shifted_pair):
    reg = shifted_pair["reg"]
    matrix = reg.affine_ras()
    # fixed point p shows what the moving scan has at p + shift (RAS mm)
    centre = np.array([0.0, 0.0, 0.0, 1.0])
    np.testing.assert_allclose((matrix @ centre)[:3], shifted_pair["shift"], atol=0.8)
    np.testing.assert_allclose(matrix[:3, :3], np.eye(3), atol=0.03)
    points = np.array([[10.0, 20.0, 0.0], [-30.0, 5.0, 12.0]])
    np.testing.assert_allclose(reg.map_points(points), points + [6.0, 0, 0], atol=0.8)


def test_warped_masks_and_images_land_on_the_fixed_grid(shifted_pair):
    reg = shifted_pair["reg"]
    before = brain_dice(shifted_pair["moving_ball"], shifted_pair["fixed_ball"])
    warped = warp_labels(reg, shifted_pair["moving_ball"])
    assert warped.dtype == bool and warped.shape == reg.fixed_shape
    after = brain_dice(warped, shifted_pair["fixed_ball"])
    assert after > 0.9 and after > before + 0.1
    labels = warp_labels(reg, shifted_pair["moving_ball"].astype(np.uint8) * 3)
    assert labels.dtype == np.uint8 and set(np.unique(labels)) <= {0, 3}
    image = warp_image(reg, shifted_pair["moving"])
    inside = shifted_pair["fixed"] > 0
    corr = np.corrcoef(image[inside], shifted_pair["fixed"][inside])[0, 1]
    assert image.dtype == np.float32 and corr > 0.95
    with pytest.raises(ValueError, match="shape"):
        warp_labels(reg, np.zeros((3, 3, 3), np.uint8))


def test_quality_and_flag(shifted_pair, tmp_path):
    reg = shifted_pair["reg"]
    q = reg.quality
    assert q is not None and not q.flag and q.brain_dice > 0.95
    assert q.jacobian_min == pytest.approx(q.jacobian_max) == pytest.approx(1.0, abs=0.05)
    fixed_brain = shifted_pair["fixed"] > 0
    moving_brain = shifted_pair["moving"] > 0
    strict = assess(reg, fixed_brain, moving_brain, min_brain_dice=1.01)
    assert strict.flag and "brain Dice" in strict.reasons[0]
    folding = assess(reg, fixed_brain, moving_brain, min_jacobian=2.0)
    assert folding.flag and "Jacobian" in folding.reasons[0]
    record = json.loads(reg.save(tmp_path / "tx").read_text())
    assert record["forward"] and all((tmp_path / "tx" / f).is_file() for f in record["forward"])
    assert record["quality"]["registration_flag"] is False


def test_known_deformation_recovered():
    """A synthetic pair with a known rigid + smooth deformation (3 mm, quick preset)."""
    synth = pytest.importorskip("nehmap.synth")
    from nehmap.validate.recurrence import Scan, registration_masks

    case = synth.generate_case(3, spacing=SPACING, recurrence=True)
    rec = case.recurrence
    affine = case.grid.canonical_affine
    pre = Scan({"t1": case.images["t1"]}, case.labels, affine, case.brain_mask)
    post = Scan({"t1": rec.images["t1"]}, rec.labels, affine, rec.brain_mask)
    fixed_mask, moving_mask = registration_masks(pre, post)
    neh = case.labels == 3
    # true positions of brain points: x = rigid @ (y + u(y))
    idx = np.argwhere(rec.brain_mask)[::97]
    y = (affine @ np.c_[idx, np.ones(len(idx))].T).T[:, :3]
    moved = y + rec.displacement(case.grid)[tuple(idx.T)]
    truth = (rec.rigid @ np.c_[moved, np.ones(len(moved))].T).T[:, :3]
    with register(
        rec.images["t1"],
        case.images["t1"],
        affine,
        affine,
        fixed_mask=fixed_mask,
        moving_mask=moving_mask,
        preset="quick",
        threads=2,
    ) as reg:
        warped = warp_labels(reg, neh)
        dice = brain_dice(warped, rec.preop_neh)
        error = np.linalg.norm(reg.map_points(y) - truth, axis=1).mean()
        assert reg.warp_file is not None and not reg.quality.flag
    dice_none = brain_dice(neh, rec.preop_neh)
    error_none = np.linalg.norm(y - truth, axis=1).mean()
    print(f"NEH Dice {dice:.3f} (none {dice_none:.3f}); error {error:.2f} mm ({error_none:.2f})")
    assert dice > 0.8 and dice > dice_none + 0.15
    assert error < 1.5 and error < error_none / 2


def test_bad_input_raises_clear_errors():
    shape = (20, 22, 18)
    img = np.zeros(shape, np.float32)
    img[5:15, 5:17, 4:14] = 1.0
    with pytest.raises(RegistrationError, match="moving image.*empty"):
        register(img, np.zeros(shape, np.float32), np.eye(4), np.eye(4), preset="affine")
    with pytest.raises(RegistrationError, match="fixed_mask has shape"):
        register(img, img, np.eye(4), np.eye(4), fixed_mask=np.ones((2, 2, 2)))
    bad = img.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(RegistrationError, match="NaN"):
        register(bad, img, np.eye(4), np.eye(4))
    with pytest.raises(ValueError, match="unknown preset"):
        register(img, img, np.eye(4), np.eye(4), preset="slow")  # type: ignore[arg-type]


def test_ants_failure_is_reported_as_registration_error():
    rng = np.random.default_rng(0)
    shape = (20, 22, 18)
    img = rng.uniform(1, 2, shape).astype(np.float32)
    one_voxel = np.zeros(shape, bool)
    one_voxel[10, 10, 9] = True
    # a one-voxel metric mask leaves nothing to compare: ANTs gives up
    schedule = Schedule(syn_iterations=(5,), syn_shrink=(1,), syn_sigmas=(0,), mask_affine=True)
    with pytest.raises(RegistrationError, match="ANTs|Jacobian|transform"):
        register(img, img, np.eye(4), np.eye(4), fixed_mask=one_voxel, preset=schedule)


def test_threads_are_set_for_the_call_and_restored(monkeypatch):
    monkeypatch.setenv("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "7")
    with itk_threads(2):
        assert os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] == "2"
    assert os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] == "7"
    monkeypatch.delenv("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS")
    with pytest.raises(RuntimeError):
        with itk_threads(1):
            raise RuntimeError("boom")
    assert "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS" not in os.environ
    with pytest.raises(ValueError):
        with itk_threads(0):
            pass


def test_schedule_levels_follow_physical_resolution():
    # written for 1 mm: on 2 mm voxels shrink 4 becomes 2, shrink 2 becomes 1
    assert schedule_levels((40, 20), (4, 2), (2, 1), 2.0) == ("40x20", "2x1", "2x1mm")
    # on 3 mm voxels both levels collapse onto the grid; the coarser one is kept
    assert schedule_levels((40, 20), (4, 2), (2, 1), 3.0) == ("40", "1", "2mm")
    assert schedule_levels((40, 20), (4, 2), (2, 1), 1.0) == ("40x20", "4x2", "2x1mm")
    assert QUICK_SCHEDULE.deformable
    with pytest.raises(ValueError):
        Schedule(syn_iterations=(1, 2), syn_shrink=(1,), syn_sigmas=(0,))


_REGISTER_ONCE = """
import hashlib, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import test_registration as t
from nehmap.validate.registration import register, warp_image
shape = (48, 56, 44)
fa = t._grid(shape, (-70.0, -85.0, -65.0))
ma = t._grid(shape, (-70.0, -76.0, -65.0))
fixed, _ = t._phantom(t._world(shape, fa), np.zeros(3))
moving, _ = t._phantom(t._world(shape, ma), np.array([6.0, 0.0, 0.0]))
with register(fixed, moving, fa, ma, preset="affine", threads=1, seed=0) as reg:
    print(hashlib.sha256(warp_image(reg, moving).tobytes()).hexdigest())
"""


def test_the_same_seed_gives_the_same_registration_in_every_process():
    """Seed 0 included: ANTs reads --random-seed 0 as "seed from the clock", so nehmap
    hands it seed + 1. Each run in a fresh process (as a resumed study does), 1 thread."""
    import subprocess
    import sys
    from pathlib import Path

    from nehmap.validate.registration_schedule import ants_seed

    assert [ants_seed(s) for s in (0, 1, 41)] == [1, 2, 42]
    assert 1 <= ants_seed(2**40) <= 2**31 - 1
    with pytest.raises(ValueError, match="seed"):
        ants_seed(-1)
    here = str(Path(__file__).parent)
    digests = {
        subprocess.run(
            [sys.executable, "-c", _REGISTER_ONCE, here],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for _ in range(2)
    }
    assert len(digests) == 1
