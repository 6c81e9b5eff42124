"""VideoMAE checkpoints in and out of vtrep: parity with ``transformers`` models built locally (no network).

Every HF model is randomly initialised from a config, with biases, LayerNorm affines and the mask
token perturbed so that none of them is trivially 0 or 1. The same clip goes to both sides
(``(B, C, T, H, W)`` to vtrep, permuted to ``(B, T, C, H, W)`` for HF) with the same boolean mask.
"""

from __future__ import annotations

import argparse

import pytest
import torch

transformers = pytest.importorskip("transformers")
from transformers import VideoMAEConfig, VideoMAEForPreTraining  # noqa: E402

from vtrep.backbones import VideoViT  # noqa: E402
from vtrep.decoders import MAEDecoder, MAEDecoderConfig  # noqa: E402
from vtrep.interop import (  # noqa: E402
    hf_to_vtrep,
    import_hf_videomae,
    import_original_videomae,
    pixel_target_from_hf,
    read_state_dict,
    save_hf_videomae,
    to_hf_pixels,
    vtrep_to_hf,
)
from vtrep.masking import FixedMask, mask_from_bool  # noqa: E402
from vtrep.tasks.video_mae import VideoMAETask  # noqa: E402

TOL = 1e-5
TINY = dict(image_size=32, patch_size=8, num_frames=4, tubelet_size=2, hidden_size=32, num_hidden_layers=2,
            num_attention_heads=2, intermediate_size=64, decoder_hidden_size=16, decoder_num_hidden_layers=1,
            decoder_num_attention_heads=2, decoder_intermediate_size=32, norm_pix_loss=True)


def perturb_(module: torch.nn.Module, seed: int = 1) -> None:
    """Add noise to every 1-D parameter (biases, LayerNorm affines) and the mask token."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim == 1 or name.endswith("mask_token"):
                p.add_(0.2 * torch.randn(p.shape, generator=gen))
            if name.endswith("attn.qkv.bias"):  # VideoMAE layouts have no k bias
                p[p.shape[0] // 3: 2 * p.shape[0] // 3] = 0


def make_hf(**overrides) -> VideoMAEForPreTraining:
    torch.manual_seed(0)
    model = VideoMAEForPreTraining(VideoMAEConfig(**{**TINY, **overrides})).eval()
    perturb_(model)
    return model


def clip_and_mask(config, batch: int = 2, masked: int = 20, seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """A normalised clip ``(B, C, T, H, W)`` and a mask ``(B, N)`` with ``masked`` True per sample."""
    gen = torch.Generator().manual_seed(seed)
    size = config.image_size
    video = torch.randn(batch, config.num_channels, config.num_frames, size, size, generator=gen)
    num_tokens = (config.num_frames // config.tubelet_size) * (size // config.patch_size) ** 2
    mask = torch.zeros(batch, num_tokens, dtype=torch.bool)
    for row in mask:
        row[torch.randperm(num_tokens, generator=gen)[:masked]] = True
    return video, mask


def vtrep_pretraining(backbone, decoder, report, video, mask, hf_config):
    """Predictions and loss through ``VideoMAETask``'s own forward and loss, on the given mask."""
    task = VideoMAETask(backbone, masking=FixedMask(mask), decoder=report.decoder_config,
                        target=pixel_target_from_hf(hf_config), export_encoder=False).eval()
    task.decoder.load_state_dict(decoder.state_dict())
    pred, mask_out, rec = task(video)
    return pred, task.loss_parts(mask_out, rec)[0]


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


# ---------------------------------------------------------------------------------------- import parity
@pytest.mark.parametrize("pooling", [False, True])
@pytest.mark.parametrize("norm_pix_loss", [True, False])
@torch.no_grad()
def test_hf_import_matches_features_and_loss(pooling, norm_pix_loss):
    hf = make_hf(use_mean_pooling=pooling, norm_pix_loss=norm_pix_loss)
    backbone, decoder, report = hf_to_vtrep(hf.state_dict(), hf.config)
    assert report.ok and backbone.config["final_norm"] is (not pooling)
    assert backbone.config["pos_embed"] == "sincos" and backbone.config["norm_eps"] == 1e-12
    backbone.eval()
    video, mask = clip_and_mask(hf.config)
    assert max_diff(backbone.forward_features(video), hf.videomae(to_hf_pixels(video)).last_hidden_state) <= TOL
    visible = hf.videomae(to_hf_pixels(video), bool_masked_pos=mask).last_hidden_state
    assert max_diff(backbone.forward_features(video, mask_from_bool(mask).ids_keep), visible) <= TOL
    out = hf(to_hf_pixels(video), bool_masked_pos=mask)
    pred, loss = vtrep_pretraining(backbone, decoder, report, video, mask, hf.config)
    assert max_diff(pred, out.logits) <= TOL
    assert abs(float(loss - out.loss)) <= TOL


@torch.no_grad()
def test_hf_import_without_qv_bias_and_from_a_saved_folder(tmp_path):
    hf = make_hf(qv_bias=False, use_mean_pooling=False)
    hf.save_pretrained(tmp_path / "hf")
    backbone, decoder, report = import_hf_videomae(tmp_path / "hf")
    assert report.ok and not backbone.config["qkv_bias"]
    assert all(not b.attn.qkv.bias.any() for b in decoder.blocks)  # zero bias = no bias
    video, mask = clip_and_mask(hf.config)
    assert max_diff(backbone.eval().forward_features(video), hf.videomae(to_hf_pixels(video)).last_hidden_state) <= TOL
    pred, loss = vtrep_pretraining(backbone, decoder, report, video, mask, hf.config)
    assert abs(float(loss - hf(to_hf_pixels(video), bool_masked_pos=mask).loss)) <= TOL


def test_encoder_only_and_legacy_key_names():
    hf = make_hf(use_mean_pooling=False)
    encoder_state = {k[len("videomae."):]: v for k, v in hf.state_dict().items() if k.startswith("videomae.")}
    legacy = {k.replace("query.bias", "q_bias").replace("value.bias", "v_bias"): v for k, v in encoder_state.items()}
    backbone, decoder, report = hf_to_vtrep(legacy, hf.config)  # a VideoMAEModel file from transformers < 5
    assert decoder is None and report.ok
    reference, _, _ = hf_to_vtrep(hf.state_dict(), hf.config)
    for key, value in reference.state_dict().items():
        assert torch.equal(value, backbone.state_dict()[key]), key


# ---------------------------------------------------------------------------------------- export parity
def make_vtrep(final_norm: bool = True):
    torch.manual_seed(3)
    backbone = VideoViT(img_size=32, num_frames=4, patch_size=8, embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0,
                        norm_eps=1e-6, final_norm=final_norm)
    decoder = MAEDecoder(32, backbone.patch_dim, backbone.grid, MAEDecoderConfig(16, 1, 2, 2.0, final_norm_eps=1e-5))
    perturb_(backbone, 4)
    perturb_(decoder, 5)
    return backbone.eval(), decoder.eval()


@pytest.mark.parametrize("final_norm", [True, False])
@torch.no_grad()
def test_export_to_hf_matches(final_norm):
    backbone, decoder = make_vtrep(final_norm)
    state, config = vtrep_to_hf(backbone, decoder)
    hf_config = VideoMAEConfig(**config)
    hf = VideoMAEForPreTraining(hf_config).eval()
    hf.load_state_dict(state, strict=True)
    video, mask = clip_and_mask(hf_config)
    assert max_diff(backbone.forward_features(video), hf.videomae(to_hf_pixels(video)).last_hidden_state) <= TOL
    _, _, report = hf_to_vtrep(state, config)
    pred, loss = vtrep_pretraining(backbone, decoder, report, video, mask, hf_config)
    out = hf(to_hf_pixels(video), bool_masked_pos=mask)
    assert max_diff(pred, out.logits) <= TOL and abs(float(loss - out.loss)) <= TOL


@pytest.mark.parametrize("legacy", [False, True])
@torch.no_grad()
def test_saved_export_loads_with_transformers_from_pretrained(tmp_path, monkeypatch, legacy):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    backbone, decoder = make_vtrep()
    save_hf_videomae(tmp_path / "out", backbone, decoder, legacy_bias_names=legacy)
    hf = VideoMAEForPreTraining.from_pretrained(tmp_path / "out").eval()
    expected, _ = vtrep_to_hf(backbone, decoder)
    loaded = hf.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in expected.items())


@pytest.mark.parametrize("final_norm", [True, False])
def test_round_trip_vtrep_hf_vtrep_is_bit_identical(final_norm):
    backbone, decoder = make_vtrep(final_norm)
    state, config = vtrep_to_hf(backbone, decoder)
    back, back_decoder, report = hf_to_vtrep(state, config)
    assert report.ok
    for original, returned in ((backbone, back), (decoder, back_decoder)):
        ours, theirs = original.state_dict(), returned.state_dict()
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    again, _ = vtrep_to_hf(back, back_decoder)  # and HF -> vtrep -> HF
    assert again.keys() == state.keys() and all(torch.equal(again[k], state[k]) for k in state)


# ---------------------------------------------------------------------------------------- original layout
def original_layout(hf_state: dict, encoder_prefix: str) -> dict:
    """The MCG-NJU layout of an HF state dict, by the table in ``vtrep.interop.videomae_original``."""
    names = {"layernorm_before": "norm1", "attention.output.dense": "attn.proj", "layernorm_after": "norm2",
             "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2"}
    out = {}
    for key, value in hf_state.items():
        key = key.replace("videomae.embeddings.patch_embeddings.projection", f"{encoder_prefix}patch_embed.proj")
        key = key.replace("videomae.encoder.layer.", f"{encoder_prefix}blocks.").replace("decoder.decoder_layers.",
                                                                                            "decoder.blocks.")
        key = key.replace("videomae.layernorm.", f"{encoder_prefix}norm.").replace("classifier.", "head.")
        key = key.replace("attention.attention.query.bias", "attn.q_bias").replace("attention.attention.value.bias",
                                                                                    "attn.v_bias")
        for hf_name, name in names.items():
            key = key.replace(f".{hf_name}.", f".{name}.")
        out[key] = value
    for key in [k for k in out if k.endswith("attention.attention.query.weight")]:
        stem = key[: -len("attention.attention.query.weight")]
        out[f"{stem}attn.qkv.weight"] = torch.cat([out.pop(f"{stem}attention.attention.{n}.weight")
                                                   for n in ("query", "key", "value")])
    return out


@torch.no_grad()
def test_original_pretraining_layout_imports_to_the_same_model(tmp_path):
    hf = make_hf(use_mean_pooling=False)
    checkpoint = {"model": original_layout(hf.state_dict(), "encoder."), "epoch": 3,
                  "args": argparse.Namespace(model="pretrain_videomae_small_patch16_224")}
    torch.save(checkpoint, tmp_path / "checkpoint-799.pth")
    backbone, decoder, report = import_original_videomae(tmp_path / "checkpoint-799.pth", img_size=32, num_frames=4,
                                                         num_heads=2, decoder_num_heads=2, norm_eps=1e-12)
    assert report.ok, report
    reference, reference_decoder, _ = hf_to_vtrep(hf.state_dict(), hf.config)
    for ours, theirs in ((backbone, reference), (decoder, reference_decoder)):
        assert all(torch.equal(v, theirs.state_dict()[k]) for k, v in ours.state_dict().items())
    video, _ = clip_and_mask(hf.config)
    assert max_diff(backbone.eval().forward_features(video), hf.videomae(to_hf_pixels(video)).last_hidden_state) <= TOL


@torch.no_grad()
def test_original_finetuned_layout_leaves_the_head_out():
    hf = make_hf(use_mean_pooling=True)
    state = original_layout({k: v for k, v in hf.state_dict().items() if k.startswith("videomae.")}, "")
    state.update({"fc_norm.weight": torch.ones(32), "fc_norm.bias": torch.zeros(32), "head.weight": torch.zeros(5, 32),
                  "head.bias": torch.zeros(5)})
    backbone, decoder, report = import_original_videomae({"module": state}, img_size=32, num_frames=4, num_heads=2,
                                                         norm_eps=1e-12)
    assert decoder is None and report.ok and not backbone.config["final_norm"]
    assert sorted(report.ignored) == ["fc_norm.bias", "fc_norm.weight", "head.bias", "head.weight"]
    video, _ = clip_and_mask(hf.config)
    assert max_diff(backbone.eval().forward_features(video), hf.videomae(to_hf_pixels(video)).last_hidden_state) <= TOL


# ---------------------------------------------------------------------------------------- bad input
def test_another_architecture_is_refused():
    vit = transformers.ViTModel(transformers.ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                                       intermediate_size=64, image_size=32, patch_size=8))
    with pytest.raises(ValueError, match="does not match the model") as err:  # shares one key name, no more
        hf_to_vtrep(vit.state_dict(), make_hf().config)
    assert "layers.0.attention.q_proj.weight" in str(err.value) and "(32, 3, 8, 8) ->" in str(err.value)
    with pytest.raises(ValueError, match="not a transformers VideoMAE state dict"):
        hf_to_vtrep({f"vit.{k}": v for k, v in vit.state_dict().items()}, make_hf().config)
    image_vit = {"patch_embed.proj.weight": torch.zeros(32, 3, 8, 8), "patch_embed.proj.bias": torch.zeros(32)}
    with pytest.raises(ValueError, match="is this an image model"):
        import_original_videomae(image_vit, num_heads=2)
    with pytest.raises(ValueError, match="looks like the transformers layout"):
        import_original_videomae(make_hf().state_dict())


def test_wrong_depth_and_width_are_listed_and_nothing_is_returned():
    hf = make_hf()
    with pytest.raises(ValueError, match=r"missing \(\d+\): backbone\.blocks\.2\."):
        hf_to_vtrep(hf.state_dict(), VideoMAEConfig(**{**TINY, "num_hidden_layers": 3}))
    with pytest.raises(ValueError, match=r"unexpected \(\d+\): videomae\.encoder\.layer\.1\."):
        hf_to_vtrep(hf.state_dict(), VideoMAEConfig(**{**TINY, "num_hidden_layers": 1}))
    _, _, report = hf_to_vtrep(hf.state_dict(), VideoMAEConfig(**{**TINY, "intermediate_size": 96}), strict=False)
    assert not report.ok and any("intermediate.dense.weight (64, 32) -> backbone.blocks.0.mlp.fc1.weight (96, 32)"
                                 in m for m in report.mismatched)


def test_unrepresentable_hf_options_are_named():
    with pytest.raises(ValueError, match="hidden_act='relu'"):
        hf_to_vtrep({}, VideoMAEConfig(**{**TINY, "hidden_act": "relu"}))


def test_bad_files_raise_naming_the_file(tmp_path):
    hf = make_hf()
    hf.save_pretrained(tmp_path / "hf")
    weights = tmp_path / "hf" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:2000])
    with pytest.raises(ValueError, match=r"model\.safetensors is not a readable safetensors file"):
        import_hf_videomae(tmp_path / "hf")
    torch.save(hf.state_dict(), weights)  # pickle bytes under the safetensors name
    with pytest.raises(ValueError, match="named .safetensors but holds a pickle"):
        import_hf_videomae(tmp_path / "hf")
    pth = tmp_path / "ckpt.pth"
    torch.save({"model": original_layout(hf.state_dict(), "encoder.")}, pth)
    pth.write_bytes(pth.read_bytes()[:5000])
    with pytest.raises(ValueError, match=r"ckpt\.pth is not a readable torch checkpoint"):
        import_original_videomae(pth, num_heads=2)
    torch.save({"model": {"w": torch.zeros(1)}, "hook": argparse.ArgumentParser}, pth)  # a class: not plain data
    with pytest.raises(ValueError, match="will not unpickle"):
        read_state_dict(pth)


def test_unequal_mask_counts_are_refused():
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[0, :3], mask[1, :4] = True, True
    with pytest.raises(ValueError, match=r"same number of tokens.*\[3, 4\]"):
        mask_from_bool(mask)


def test_export_refuses_what_transformers_cannot_hold():
    backbone, decoder = make_vtrep()
    with torch.no_grad():
        backbone.blocks[1].attn.qkv.bias[40] = 0.5  # a k bias, as vtrep training leaves them
    with pytest.raises(ValueError, match=r"blocks\.1 has a non-zero key bias"):
        vtrep_to_hf(backbone, decoder)
    state, config = vtrep_to_hf(backbone, decoder, drop_key_bias=True)
    hf = VideoMAEForPreTraining(VideoMAEConfig(**config)).eval()
    hf.load_state_dict(state)
    video, _ = clip_and_mask(hf.config)
    with torch.no_grad():  # dropping it does not change the function
        assert max_diff(backbone.forward_features(video), hf.videomae(to_hf_pixels(video)).last_hidden_state) <= TOL
    native = MAEDecoder(32, backbone.patch_dim, backbone.grid, MAEDecoderConfig(16, 1, 2, 2.0))
    with pytest.raises(ValueError, match="final_norm_eps=1e-05"):
        vtrep_to_hf(backbone, native, drop_key_bias=True)
    with pytest.raises(ValueError, match="only the fixed sincos table"):
        vtrep_to_hf(VideoViT(img_size=32, num_frames=4, patch_size=8, embed_dim=32, depth=1, num_heads=2,
                             pos_embed="separable"))


# ---------------------------------------------------------------------------------------- full sizes
@pytest.mark.slow
@pytest.mark.parametrize("sizes,preset", [
    (dict(hidden_size=384, num_attention_heads=6, intermediate_size=1536, decoder_hidden_size=192,
          decoder_num_attention_heads=3, decoder_intermediate_size=768), "small"),
    (dict(hidden_size=768, num_attention_heads=12, intermediate_size=3072, decoder_hidden_size=384,
          decoder_num_attention_heads=6, decoder_intermediate_size=1536), "base"),
])
@torch.no_grad()
def test_full_size_parity(sizes, preset):
    hf = make_hf(image_size=224, patch_size=16, num_frames=16, num_hidden_layers=12, decoder_num_hidden_layers=4,
                 use_mean_pooling=False, **sizes)
    backbone, decoder, report = hf_to_vtrep(hf.state_dict(), hf.config)
    assert report.ok and (report.preset, report.decoder_preset) == (preset, preset)
    video, mask = clip_and_mask(hf.config, batch=1, masked=int(0.9 * 196) * 8)
    features = max_diff(backbone.eval().forward_features(video), hf.videomae(to_hf_pixels(video)).last_hidden_state)
    out = hf(to_hf_pixels(video), bool_masked_pos=mask)
    pred, loss = vtrep_pretraining(backbone, decoder, report, video, mask, hf.config)
    print(f"{preset}: features {features:.2e} logits {max_diff(pred, out.logits):.2e} "
          f"loss {abs(float(loss - out.loss)):.2e}")
    assert features <= TOL and max_diff(pred, out.logits) <= TOL and abs(float(loss - out.loss)) <= TOL
    state, _ = vtrep_to_hf(backbone, decoder)
    assert all(torch.equal(state[k], v) for k, v in hf.state_dict().items())


def test_import_command_writes_an_encoder_folder_that_vtrep_loads(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("VTREP_DEBUG", raising=False)
    from vtrep.cli import main
    from vtrep.io.pretrained import from_pretrained

    hf = make_hf()
    hf.save_pretrained(tmp_path / "hf")
    main(["import-videomae", "--source", str(tmp_path / "hf"), "--output", str(tmp_path / "imported")])
    encoder = from_pretrained(tmp_path / "imported" / "encoder").eval()
    video, _ = clip_and_mask(hf.config)
    with torch.no_grad():
        expected = hf.videomae(to_hf_pixels(video)).last_hidden_state
    assert max_diff(encoder.forward_features(video), expected) <= TOL
    assert (tmp_path / "imported" / "decoder.safetensors").is_file()
    assert "preset" in (tmp_path / "imported" / "conversion_report.txt").read_text()
    with pytest.raises(SystemExit) as refused:  # one error line, the folder untouched
        main(["import-videomae", "--source", str(tmp_path / "hf"), "--output", str(tmp_path / "imported")])
    assert refused.value.code == 2 and "import into a new folder" in capsys.readouterr().err
