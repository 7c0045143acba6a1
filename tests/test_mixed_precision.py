"""The mixed-precision code paths (float16 autocast, gradient scaler), run on the CPU.

On a GPU nehmap turns them on by default; PyTorch's CPU autocast and CPU gradient
scaler run the same code here, so its logic is checked without a GPU.
"""

from __future__ import annotations

import numpy as np
import torch

from nehmap.infer import sliding_window_logits, softmax
from nehmap.models import create_model
from nehmap.train.loss import DeepSupervisionLoss, DiceCELoss
from nehmap.train.step import make_optimizer, train_step


def _tiny_paunet() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("paunet", preset="demo", patch_size=16, n_stages=3)


def test_inference_in_float16_agrees_with_float32() -> None:
    model = _tiny_paunet().eval()
    image = np.random.default_rng(0).normal(size=(4, 26, 22, 20)).astype(np.float32)
    full = softmax(sliding_window_logits(model, image, (16, 16, 16), amp=False, device="cpu"))
    half = softmax(sliding_window_logits(model, image, (16, 16, 16), amp=True, device="cpu"))
    assert half.dtype == np.float32 and half.shape == full.shape
    np.testing.assert_allclose(half.sum(axis=0), 1.0, atol=1e-5)
    assert np.abs(half - full).max() < 5e-3  # float16 rounding, not a different result
    assert (half.argmax(0) == full.argmax(0)).mean() > 0.99


def test_mixed_precision_step_learns_and_skips_overflowing_steps() -> None:
    net = _tiny_paunet().train()
    x = torch.randn(2, 4, 16, 16, 16)
    y = torch.zeros(2, 16, 16, 16, dtype=torch.long)
    y[:, 4:12, 4:12, 4:12] = 3
    loss_fn = DeepSupervisionLoss(DiceCELoss(5), net.deep_supervision_weights)
    optimizer = make_optimizer(net, "adamw", 3e-3, 1e-2)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    losses = [train_step(net, x, y, optimizer, scaler, loss_fn, amp=True) for _ in range(12)]
    assert all(np.isfinite(losses)) and losses[-1] < 0.8 * losses[0]

    # an overflowing step changes no weight and halves the loss scale
    before = {k: v.clone() for k, v in net.state_dict().items()}
    scale = scaler.get_scale()

    def overflowing(outputs: object, target: torch.Tensor) -> torch.Tensor:
        return loss_fn(outputs, target) * torch.tensor(float("inf"))

    loss = train_step(net, x, y, optimizer, scaler, overflowing, amp=True)
    assert not np.isfinite(loss)
    assert scaler.get_scale() == scale / 2
    for key, value in net.state_dict().items():
        if value.is_floating_point() and "running" not in key:
            torch.testing.assert_close(value, before[key], rtol=0, atol=0)
