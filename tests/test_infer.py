import numpy as np
import pytest
import torch
from monai.inferers import sliding_window_inference

from nehmap.infer import (
    gaussian_importance_map,
    select_device,
    sliding_window_logits,
    sliding_window_probabilities,
    window_starts,
)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv3d(4, 6, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv3d(6, 3, 3, padding=1)
    ).eval()


@pytest.mark.parametrize("shape", [(4, 40, 33, 29), (4, 20, 26, 17), (4, 12, 30, 16)])
def test_matches_monai_sliding_window(net, shape):
    img = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    ours = sliding_window_logits(net, img, (16, 16, 16), overlap=0.5, batch_size=3)
    with torch.no_grad():
        ref = sliding_window_inference(
            torch.from_numpy(img)[None], (16, 16, 16), 3, net, overlap=0.5, mode="gaussian"
        )[0].numpy()
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_window_starts_cover_the_axis():
    for size, patch in [(100, 32), (32, 32), (33, 32), (155, 64)]:
        starts = window_starts(size, patch)
        assert starts[0] == 0 and starts[-1] == size - patch
        assert all(b - a <= patch // 2 for a, b in zip(starts, starts[1:], strict=False))


def test_gaussian_map_is_centred_and_positive():
    w = gaussian_importance_map((16, 16, 8))
    assert w.shape == (16, 16, 8)
    assert w.min() >= 1e-3
    assert (
        np.unravel_index(w.argmax(), w.shape) in [(7, 7, 3), (8, 8, 4), (7, 8, 4)]
        or (w[7:9, 7:9, 3:5] == w.max()).all()
    )


def test_mirroring_of_an_equivariant_model_changes_nothing(net):
    identity = torch.nn.Conv3d(4, 4, 1, bias=False)
    with torch.no_grad():
        identity.weight.copy_(torch.eye(4).reshape(4, 4, 1, 1, 1))
    img = np.random.default_rng(2).normal(size=(4, 20, 20, 20)).astype(np.float32)
    a = sliding_window_logits(identity, img, (16, 16, 16))
    b = sliding_window_logits(identity, img, (16, 16, 16), mirror_axes=(0, 1, 2))
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(a, img, atol=1e-5)


def test_probabilities_sum_to_one(net):
    img = np.random.default_rng(3).normal(size=(4, 20, 18, 16)).astype(np.float32)
    p = sliding_window_probabilities(net, img, (16, 16, 16), mirror_axes=(0,))
    assert p.dtype == np.float32
    np.testing.assert_allclose(p.sum(0), 1, rtol=1e-5)


def test_device_selection():
    assert select_device("cpu").type == "cpu"
    assert select_device().type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            select_device("cuda")
