"""Networks of nehmap.models: shapes, deep supervision, gradients, blocks, registry."""

from __future__ import annotations

import argparse
import math

import pytest
import torch

from nehmap.models import (
    UNETRPP,
    PAUNet,
    UnknownModelError,
    available_models,
    count_parameters,
    create_model,
    describe_models,
    model_presets,
    register,
    registry,
    unetrpp_reference_config,
)
from nehmap.models.blocks import AttentionGate, halving_weights
from nehmap.models.unetrpp import EfficientPairedAttention, TransformerBlock

torch.set_num_threads(1)

TINY_PAUNET = {
    "base_features": 4,
    "n_stages": 4,
    "max_features": 16,
    "highres_features": 2,
    "patch_size": 16,
}
TINY_UNETRPP = {
    "patch_size": 32,
    "stem_stride": 2,
    "feature_sizes": (8, 16, 32, 64),
    "depths": 1,
    "num_heads": 4,
    "proj_sizes": (16, 16, 16, 4),
}


def _tiny(name: str, **kwargs: object) -> torch.nn.Module:
    torch.manual_seed(0)
    base = TINY_PAUNET if name == "paunet" else TINY_UNETRPP
    return create_model(name, **{**base, **kwargs})


def test_registry_lists_the_networks_and_presets() -> None:
    assert {"paunet", "unetrpp", "unetrpp-consensus"} <= set(available_models())
    for name in ("paunet", "unetrpp", "unetrpp-consensus"):
        assert {"demo", "paper"} <= set(model_presets(name))
    rows = {(r["name"], r["preset"]): r for r in describe_models()}
    assert rows[("paunet", "demo")]["patch_size"] == [64, 64, 64]
    assert rows[("unetrpp-consensus", "paper")]["n_classes"] == 3
    assert rows[("unetrpp", "paper")]["class_names"] == ["background", "NC", "ED", "NEH", "ET"]
    for (_, preset), row in rows.items():
        if preset == "demo":
            assert 2e5 < row["n_parameters"] < 2.5e6


def test_unknown_network_and_preset_are_explained() -> None:
    with pytest.raises(UnknownModelError, match="Known architectures: .*paunet.*unetrpp"):
        create_model("segformer")
    with pytest.raises(ValueError, match="no preset 'huge'; presets: demo, paper"):
        create_model("paunet", preset="huge")
    with pytest.raises(ValueError, match="already registered"):
        register("paunet")(PAUNet)


def test_custom_network_can_be_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    available_models()  # built-ins loaded, then registered into a throw-away copy
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @register("test-tiny-paunet", presets={"demo": TINY_PAUNET}, overwrite=True)
    def factory(**kwargs: object) -> PAUNet:
        return PAUNet(**kwargs)  # type: ignore[arg-type]

    model = create_model("test-tiny-paunet", preset="demo", n_classes=2)
    assert model.architecture == "test-tiny-paunet" and model.n_classes == 2


@pytest.mark.parametrize("name", ["paunet", "unetrpp", "unetrpp-consensus"])
def test_shapes_eval_and_deep_supervision(name: str) -> None:
    model = _tiny(name)
    size = model.patch_size
    x = torch.randn(2, 4, *size)
    n_classes = 3 if name == "unetrpp-consensus" else 5
    model.eval()
    with torch.no_grad():
        y = model(x)
    assert isinstance(y, torch.Tensor) and y.shape == (2, n_classes, *size)
    model.train()
    outs = model(x)
    assert isinstance(outs, list) and len(outs) == len(model.deep_supervision_weights) == 3
    for out, scale in zip(outs, model.deep_supervision_scales, strict=True):
        assert out.shape == (2, n_classes, *(s // scale for s in size))
    assert math.isclose(sum(model.deep_supervision_weights), 1.0)
    assert model.deep_supervision_weights == pytest.approx((4 / 7, 2 / 7, 1 / 7))
    plain = _tiny(name, deep_supervision=False).train()
    assert isinstance(plain(x), torch.Tensor)


def test_unetrpp_deep_supervision_scales_follow_the_stem() -> None:
    assert _tiny("unetrpp").deep_supervision_scales == (1, 2, 4)
    assert create_model("unetrpp", preset="paper").deep_supervision_scales == (1, 4, 8)
    assert create_model("paunet", preset="demo").deep_supervision_scales == (1, 2, 4)


@pytest.mark.parametrize("name", ["paunet", "unetrpp"])
def test_demo_presets_at_64(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, preset="demo").eval()
    with torch.no_grad():
        y = model(torch.randn(1, 4, 64, 64, 64))
    assert y.shape == (1, 5, 64, 64, 64) and torch.isfinite(y).all()


@pytest.mark.parametrize("name", ["paunet", "unetrpp", "unetrpp-consensus"])
def test_paper_presets_on_the_meta_device(name: str) -> None:
    """Shapes of the paper-size networks at 128^3, checked without computing anything."""
    with torch.device("meta"):
        model = create_model(name, preset="paper")
        x = torch.empty(2, 4, 128, 128, 128)
        y = model.eval()(x)
        outs = model.train()(x)
    n = 3 if name == "unetrpp-consensus" else 5
    assert y.shape == (2, n, 128, 128, 128)
    scales = model.deep_supervision_scales
    assert [tuple(o.shape) for o in outs] == [(2, n, *(3 * [128 // s])) for s in scales]


@pytest.mark.parametrize("name", ["paunet", "unetrpp"])
def test_every_parameter_gets_a_gradient(name: str) -> None:
    model = _tiny(name).train()
    x = torch.randn(2, 4, *model.patch_size)
    outs = model(x)
    sum(
        w * o.square().mean() for w, o in zip(model.deep_supervision_weights, outs, strict=True)
    ).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert no_grad == []
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_attention_gate_weights_skip_features() -> None:
    torch.manual_seed(0)
    gate = AttentionGate(skip_channels=6, gating_channels=12)
    x = torch.randn(2, 6, 8, 8, 8)
    g = torch.randn(2, 12, 4, 4, 4)
    gated, alpha = gate(x, g, return_attention=True)
    assert alpha.shape == (2, 1, 8, 8, 8)
    assert alpha.min() >= 0 and alpha.max() <= 1
    assert torch.allclose(gated, x * alpha)
    assert not torch.allclose(gated, x)
    # the gating signal matters
    assert not torch.allclose(gate(x, torch.randn(2, 12, 4, 4, 4)), gated)


def test_paunet_uses_gates_and_high_resolution_branch() -> None:
    model = _tiny("paunet")
    assert all(isinstance(g, AttentionGate) for g in model.gates)
    assert model.highres is not None
    plain = _tiny("paunet", attention_gates=False, highres_features=0)
    assert plain.highres is None and plain.n_parameters() < model.n_parameters()
    x = torch.randn(1, 4, 16, 16, 16)
    assert plain.eval()(x).shape == (1, 5, 16, 16, 16)


def test_epa_spatial_branch_is_linear_in_tokens_and_channel_branch_is_d_by_d() -> None:
    torch.manual_seed(0)
    channels, heads, p = 16, 4, 8
    sizes = {}
    for n in (64, 512):
        epa = EfficientPairedAttention(n, channels, p, heads).eval()
        assert epa.projection.shape == (n, p)  # N tokens -> P
        x = torch.randn(2, n, channels)
        out, attn_c, attn_s = epa(x, return_attention=True)
        assert out.shape == (2, n, channels)
        d = channels // heads
        assert attn_c.shape == (2, heads, d, d)  # channel attention: d x d per head
        assert attn_s.shape == (2, heads, n, p)  # spatial attention: N x P, not N x N
        assert torch.allclose(attn_c.sum(-1), torch.ones(2, heads, d))
        assert torch.allclose(attn_s.sum(-1), torch.ones(2, heads, n))
        sizes[n] = (attn_s.numel(), sum(t.numel() for t in epa.parameters()))
    # attention memory and parameters grow linearly with N
    assert sizes[512][0] == 8 * sizes[64][0]
    assert sizes[512][1] - sizes[64][1] == (512 - 64) * p
    assert sizes[64][1] == 4 * channels**2 + 64 * p + 2 * heads


def test_transformer_block_starts_as_a_near_identity_attention() -> None:
    block = TransformerBlock((4, 4, 4), 8, 8, num_heads=4)
    assert torch.all(block.gamma == 1e-6) and torch.all(block.pos_embed == 0)
    assert block(torch.randn(2, 8, 4, 4, 4)).shape == (2, 8, 4, 4, 4)


def test_unetrpp_reference_configuration_has_42_6_million_parameters() -> None:
    n = count_parameters("unetrpp", **unetrpp_reference_config(n_classes=4))
    assert abs(n - 42.65e6) / 42.65e6 < 0.02
    paper = model_presets("unetrpp")["paper"]
    assert {**paper, "n_classes": 5} == unetrpp_reference_config()
    with torch.device("meta"):
        model = create_model("unetrpp", preset="paper")
    assert model.grids == [(32, 32, 32), (16, 16, 16), (8, 8, 8), (4, 4, 4)]
    assert model.encoder[0][0].attention.projection.shape == (32**3, 64)
    assert model.no_weight_decay() and all("temperature" in n for n in model.no_weight_decay())


def test_unetrpp_refuses_other_input_sizes() -> None:
    model = _tiny("unetrpp").eval()
    with pytest.raises(ValueError) as info:
        model(torch.randn(1, 4, 48, 48, 48))
    message = str(info.value)
    assert "(32, 32, 32)" in message and "(48, 48, 48)" in message
    assert "sliding-window inference" in message and "patch size" in message
    with pytest.raises(ValueError, match="4 input channels, got 3"):
        model(torch.randn(1, 3, 32, 32, 32))


def test_unetrpp_requires_patch_size_and_checks_it() -> None:
    with pytest.raises(TypeError, match="patch_size"):
        UNETRPP()  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="multiple of"):
        create_model("unetrpp", patch_size=40, stem_stride=4)
    with pytest.raises(ValueError, match="exceeds the 8 tokens"):
        create_model("unetrpp", **{**TINY_UNETRPP, "proj_sizes": (16, 16, 16, 16)})
    with pytest.raises(ValueError, match="3 outputs"):
        create_model("unetrpp-consensus", **TINY_UNETRPP, n_classes=5)


def test_paunet_input_must_fit_its_down_samplings() -> None:
    model = _tiny("paunet").eval()
    with pytest.raises(ValueError, match="multiples of 8"):
        model(torch.randn(1, 4, 16, 16, 12))
    assert model(torch.randn(1, 4, 24, 16, 32)).shape == (1, 5, 24, 16, 32)


def test_halving_weights() -> None:
    assert halving_weights(1) == (1.0,)
    assert halving_weights(4) == pytest.approx((8 / 15, 4 / 15, 2 / 15, 1 / 15))


def test_models_command_prints_networks(capsys: pytest.CaptureFixture[str]) -> None:
    from nehmap.models import command

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    assert command.run(parser.parse_args([])) == 0
    out = capsys.readouterr().out
    assert "unetrpp-consensus" in out and "42,647,879" in out and "demo" in out


@pytest.mark.parametrize("name", ["paunet", "unetrpp"])
def test_a_few_optimiser_steps_reduce_the_loss(name: str) -> None:
    model = _tiny(name).train()
    x = torch.randn(2, 4, *model.patch_size)
    target = (x[:, 1] > 0.5).long() + (x[:, 2] > 1.0).long()
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        outs = model(x)
        loss = sum(
            w * torch.nn.functional.cross_entropy(o, target[:, ::s, ::s, ::s])
            for w, o, s in zip(
                model.deep_supervision_weights, outs, model.deep_supervision_scales, strict=True
            )
        )
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]
