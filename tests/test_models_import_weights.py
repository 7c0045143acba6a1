"""Importing reference UNETR++ checkpoints (nnU-Net v1 ``.model`` files).

The test builds, independently of nehmap, a small network in the reference
implementation's module layout (github.com/Amshaker/unetr_plus_plus, tumour variant):
its EPA written here from the reference's forward pass (including the spatial branch's
``permute(0, 3, 1, 2).reshape(B, N, C)``), its convolutional blocks from MONAI as the
reference uses them. Its state dict, saved the way nnU-Net v1 saves checkpoints, is
imported with ``nehmap import-weights``; nehmap's network must then give the reference
network's outputs.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from monai.networks.blocks.dynunet_block import UnetOutBlock, UnetResBlock, get_conv_layer
from torch import nn

from nehmap.cli import main
from nehmap.models import create_model, load_checkpoint
from nehmap.models.import_weights import (
    WeightsImportError,
    convert_reference_state,
    identity_norms,
    import_unetrpp_weights,
    read_nnunet_v1_state_dict,
    reference_key_map,
)

# A small configuration of the reference's tumour network: 4 inputs, stem 4, 64^3 patch.
DIMS = (8, 16, 32, 64)
PATCH = 64
PROJ = (16, 16, 16, 8)
DEC_PROJ = 16
DEPTHS = (2, 1, 1, 1)
DEC_DEPTH = 1
HEADS = 4
HR = 8
N_CLASSES = 4

NEHMAP_CONFIG = {
    "patch_size": [PATCH] * 3,
    "stem_stride": 4,
    "feature_sizes": list(DIMS),
    "depths": list(DEPTHS),
    "decoder_depths": [DEC_DEPTH] * 3,
    "num_heads": HEADS,
    "proj_sizes": list(PROJ),
    "decoder_proj_sizes": [DEC_PROJ] * 3,
    "highres_features": HR,
}


class RefEPA(nn.Module):
    """The reference EPA: shared q/k, channel and spatial attention, reference reshape."""

    def __init__(self, n_tokens: int, c: int, p: int, heads: int) -> None:
        super().__init__()
        self.num_heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.temperature2 = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkvv = nn.Linear(c, 4 * c, bias=False)
        self.EF = nn.Parameter(torch.zeros(n_tokens, p))
        self.attn_drop = nn.Dropout(0.1)
        self.attn_drop_2 = nn.Dropout(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        h = self.num_heads
        parts = self.qkvv(x).view(b, n, 4, h, c // h)
        # each (B, h, d, N)
        q, k, v_ca, v_sa = (parts[:, :, i].permute(0, 2, 3, 1) for i in range(4))
        k_p = torch.einsum("bhdn,np->bhdp", k, self.EF)
        v_p = torch.einsum("bhdn,np->bhdp", v_sa, self.EF)
        q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        k = k / k.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        a_ca = torch.softmax(torch.einsum("bhin,bhjn->bhij", q, k) * self.temperature, dim=-1)
        x_ca = torch.einsum("bhij,bhjn->bhin", self.attn_drop(a_ca), v_ca)  # (B, h, d, N)
        x_ca = x_ca.permute(0, 3, 1, 2).reshape(b, n, c)
        a_sa = torch.softmax(torch.einsum("bhdn,bhdp->bhnp", q, k_p) * self.temperature2, -1)
        x_sa = torch.einsum("bhnp,bhdp->bhnd", self.attn_drop_2(a_sa), v_p)  # (B, h, N, d)
        x_sa = x_sa.permute(0, 3, 1, 2).reshape(b, n, c)  # the reference's layout
        return x_ca + x_sa


class RefBlock(nn.Module):
    def __init__(self, n_tokens: int, c: int, p: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(c)
        self.gamma = nn.Parameter(1e-6 * torch.ones(c))
        self.epa_block = RefEPA(n_tokens, c, p, HEADS)
        self.conv51 = UnetResBlock(3, c, c, kernel_size=3, stride=1, norm_name="batch")
        self.conv8 = nn.Sequential(nn.Dropout3d(0.1, False), nn.Conv3d(c, c, 1))
        self.pos_embed = nn.Parameter(torch.zeros(1, n_tokens, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, d0, d1, d2 = x.shape
        t = x.reshape(b, c, -1).permute(0, 2, 1) + self.pos_embed
        t = t + self.gamma * self.epa_block(self.norm(t))
        skip = t.reshape(b, d0, d1, d2, c).permute(0, 4, 1, 2, 3)
        return skip + self.conv8(self.conv51(skip))


class RefEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        grid = PATCH // 4
        self.downsample_layers = nn.ModuleList(
            [
                nn.Sequential(
                    get_conv_layer(3, 4, DIMS[0], kernel_size=4, stride=4, conv_only=True),
                    nn.GroupNorm(4, DIMS[0]),
                )
            ]
            + [
                nn.Sequential(
                    get_conv_layer(3, DIMS[i], DIMS[i + 1], kernel_size=2, stride=2),
                    nn.GroupNorm(DIMS[i], DIMS[i + 1]),
                )
                for i in range(3)
            ]
        )
        self.stages = nn.ModuleList(
            nn.Sequential(*(RefBlock((grid >> i) ** 3, DIMS[i], PROJ[i]) for _ in range(DEPTHS[i])))
            for i in range(4)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        states = []
        for down, stage in zip(self.downsample_layers, self.stages, strict=True):
            x = stage(down(x))
            states.append(x)
        return states


class RefUp(nn.Module):
    def __init__(self, c_in: int, c_out: int, up: int, n_tokens: int, conv: bool) -> None:
        super().__init__()
        self.transp_conv = get_conv_layer(
            3, c_in, c_out, kernel_size=up, stride=up, conv_only=True, is_transposed=True
        )
        block = (
            UnetResBlock(3, c_out, c_out, kernel_size=3, stride=1, norm_name="instance")
            if conv
            else nn.Sequential(*(RefBlock(n_tokens, c_out, DEC_PROJ) for _ in range(DEC_DEPTH)))
        )
        self.decoder_block = nn.ModuleList([block])

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.decoder_block[0](self.transp_conv(x) + skip)


class RefUNETRPP(nn.Module):
    """The reference tumour network's layout and forward pass (deep supervision off)."""

    def __init__(self) -> None:
        super().__init__()
        g = PATCH // 4
        self.unetr_pp_encoder = RefEncoder()
        self.encoder1 = UnetResBlock(3, 4, HR, kernel_size=3, stride=1, norm_name="instance")
        self.decoder5 = RefUp(DIMS[3], DIMS[2], 2, (g // 4) ** 3, False)
        self.decoder4 = RefUp(DIMS[2], DIMS[1], 2, (g // 2) ** 3, False)
        self.decoder3 = RefUp(DIMS[1], DIMS[0], 2, g**3, False)
        self.decoder2 = RefUp(DIMS[0], HR, 4, PATCH**3, True)
        self.out1 = UnetOutBlock(3, HR, N_CLASSES)
        self.out2 = UnetOutBlock(3, DIMS[0], N_CLASSES)
        self.out3 = UnetOutBlock(3, DIMS[1], N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        enc1, enc2, enc3, enc4 = self.unetr_pp_encoder(x)
        dec3 = self.decoder5(enc4, enc3)
        dec2 = self.decoder4(dec3, enc2)
        dec1 = self.decoder3(dec2, enc1)
        return self.out1(self.decoder2(dec1, self.encoder1(x)))


def _reference_network(seed: int = 0) -> RefUNETRPP:
    """The reference network with random weights in every tensor, the layer scales
    included (near 1, so that the attention matters), and non-trivial BN statistics."""
    torch.manual_seed(seed)
    net = RefUNETRPP()
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if (
                name.endswith("running_var")
                or name.endswith("temperature")
                or "temperature2" in name
            ):
                t.uniform_(0.5, 1.5)
            elif name.endswith("gamma") or name.endswith("norm.weight"):
                t.normal_(1.0, 0.2)
            elif name.endswith("EF"):
                t.uniform_(-1 / math.sqrt(t.shape[-1]), 1 / math.sqrt(t.shape[-1]))
            else:
                fan_in = max(1, t[0].numel()) if t.ndim > 1 else 4
                t.normal_(0.0, 1.0 / math.sqrt(fan_in))
    return net.eval()


def _save_model_file(state: dict, path) -> None:
    """Save as nnU-Net v1 does: a dict with the state dict, optimiser and training curves."""
    torch.save(
        {
            "epoch": 1000,
            "state_dict": state,
            "optimizer_state_dict": {"state": {}, "param_groups": [{"lr": 0.01, "params": [0]}]},
            "plot_stuff": ([np.float64(0.5), np.float64(0.4)], [np.float32(0.6)], [], [0.7]),
            "best_stuff": (999, np.float64(0.3), np.float64(0.8)),
        },
        path,
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    net = _reference_network()
    path = tmp_path_factory.mktemp("ref") / "model_final_checkpoint.model"
    _save_model_file(net.state_dict(), path)
    torch.manual_seed(1)
    x = torch.randn(1, 4, PATCH, PATCH, PATCH)
    with torch.no_grad():
        expected = net(x)
    return path, net, x, expected


def _import_args(out, path, *extra: str) -> list[str]:
    return [
        "import-weights",
        str(path),
        "-o",
        str(out),
        "--class-names",
        "background,ED,NCR-NET,ET",
        "--class-labels",
        "0,2,null,4",
        "--modalities",
        "flair,t1,t1c,t2",
        "--config",
        json.dumps(NEHMAP_CONFIG),
        *extra,
    ]


def test_imported_reference_checkpoint_gives_the_reference_outputs(reference, tmp_path) -> None:
    path, _, x, expected = reference
    out = tmp_path / "unetrpp-brats"
    assert main(_import_args(out, path)) == 0
    model, card = load_checkpoint(out)
    assert card.config["epa_layout"] == "reference"
    assert card.modalities == ["flair", "t1", "t1c", "t2"]
    assert card.class_labels == [0, 2, None, 4]
    assert card.extra["imported_from"]["file"] == str(path.resolve())
    with torch.no_grad():
        got = model(x)
    scale = expected.abs().max().item()
    assert scale > 0.1
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5 * scale)

    # The same weights with nehmap's clean EPA layout give other outputs: the layout
    # option is what makes the reference checkpoint usable.
    clean = create_model("unetrpp", **{**card.config, "epa_layout": "clean"}).eval()
    clean.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert (clean(x) - expected).abs().max().item() > 1e-2 * scale


def test_key_map_is_one_to_one_and_covers_the_reference(reference) -> None:
    _, net, _, _ = reference
    model = create_model("unetrpp", n_classes=N_CLASSES, epa_layout="reference", **NEHMAP_CONFIG)
    mapping = reference_key_map(model)
    assert set(mapping) == set(net.state_dict())
    assert len(set(mapping.values())) == len(mapping)
    # nehmap's only extra tensors: the affine parameters of its 5 instance norms
    extra = set(model.state_dict()) - set(mapping.values())
    assert extra == identity_norms(model)
    assert len(extra) == 10


def test_paper_sized_reference_layout_maps_every_tensor() -> None:
    """The tumour configuration: the reference's 42.6 M-parameter network, 4 outputs."""
    with torch.device("meta"):
        model = create_model("unetrpp", preset="reference", n_classes=4)
    mapping = reference_key_map(model)
    names = set(mapping)
    assert "unetr_pp_encoder.stages.3.2.epa_block.EF" in names
    assert "decoder5.decoder_block.0.2.conv51.norm2.running_var" in names
    assert "decoder2.decoder_block.0.conv2.conv.weight" in names
    assert {"out1.conv.conv.weight", "out2.conv.conv.bias", "out3.conv.conv.weight"} <= names
    assert model.state_dict()[mapping["unetr_pp_encoder.stages.3.0.epa_block.EF"]].shape == (
        64,
        32,
    )


def test_checkpoint_with_other_class_count_is_refused_naming_key_and_shapes(
    reference, tmp_path, capsys
) -> None:
    path, _, _, _ = reference
    out = tmp_path / "wrong"
    args = _import_args(out, path)
    i = args.index("--class-names")
    args[i + 1 : i + 4] = ["background,NC,ED,NEH,ET", "--class-labels", "0,1,2,3,4"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert str(path) in err
    assert "'out1.conv.conv.weight' has shape (4, 8, 1, 1, 1)" in err
    assert "needs (5, 8, 1, 1, 1)" in err
    assert not out.with_suffix(".json").exists()


def test_missing_and_unexpected_tensors_are_named(reference, tmp_path) -> None:
    _, net, _, _ = reference
    model = create_model("unetrpp", n_classes=N_CLASSES, epa_layout="reference", **NEHMAP_CONFIG)
    state = dict(net.state_dict())
    del state["decoder4.decoder_block.0.0.epa_block.EF"]
    with pytest.raises(WeightsImportError, match=r"does not hold tensor 'decoder4\.decoder_block"):
        convert_reference_state(state, model, tmp_path / "x.model")
    state = dict(net.state_dict())
    state["extra_head.weight"] = torch.zeros(2, 2)
    with pytest.raises(WeightsImportError, match=r"'extra_head\.weight' of shape \(2, 2\)"):
        convert_reference_state(state, model)


def test_unreadable_or_foreign_files_are_refused(tmp_path) -> None:
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsImportError, match="bad.model"):
        read_nnunet_v1_state_dict(bad)
    no_state = tmp_path / "nostate.model"
    torch.save({"weights": {}}, no_state)
    with pytest.raises(WeightsImportError, match="holds no 'state_dict'"):
        read_nnunet_v1_state_dict(no_state)

    class Evil:
        def __reduce__(self):
            return (print, ("ran pickled code",))

    evil = tmp_path / "evil.model"
    torch.save({"state_dict": {}, "x": Evil()}, evil)
    with pytest.raises(WeightsImportError, match="evil.model"):
        read_nnunet_v1_state_dict(evil)
    with pytest.raises(WeightsImportError, match="not found"):
        read_nnunet_v1_state_dict(tmp_path / "missing.model")


def test_numpy_1_pickles_are_read(tmp_path) -> None:
    """nnU-Net v1 ran on numpy 1, whose scalars pickle as numpy.core.multiarray.scalar."""
    import zipfile

    new = tmp_path / "numpy2.model"
    _save_model_file({"w": torch.arange(3.0)}, new)
    old = tmp_path / "numpy1.model"
    with zipfile.ZipFile(new) as zin, zipfile.ZipFile(old, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith("data.pkl"):
                assert b"numpy._core.multiarray" in data
                data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            zout.writestr(item, data)
    torch.testing.assert_close(read_nnunet_v1_state_dict(old)["w"], torch.arange(3.0))


def test_ddp_prefix_is_removed(reference, tmp_path) -> None:
    _, net, _, _ = reference
    path = tmp_path / "ddp.model"
    _save_model_file({f"module.{k}": v for k, v in net.state_dict().items()}, path)
    assert set(read_nnunet_v1_state_dict(path)) == set(net.state_dict())


def test_python_api_refuses_other_class_counts_and_architectures(reference, tmp_path) -> None:
    path, _, _, _ = reference
    with pytest.raises(WeightsImportError, match=r"'out1\.conv\.conv\.weight' has shape"):
        import_unetrpp_weights(
            path, tmp_path / "c", architecture="unetrpp-consensus", overrides=NEHMAP_CONFIG
        )
    with pytest.raises(WeightsImportError, match="cannot import weights for architecture"):
        import_unetrpp_weights(path, tmp_path / "p", architecture="paunet")
