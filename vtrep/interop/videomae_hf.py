"""Hugging Face ``transformers`` VideoMAE checkpoints ↔ vtrep ``VideoViT`` / ``MAEDecoder``.

``import_hf_videomae`` takes a ``VideoMAEModel`` / ``VideoMAEForPreTraining`` (or
``VideoMAEForVideoClassification``, whose head is left out) as a model, a saved folder, or a state
dict with its config; ``vtrep_to_hf`` / ``save_hf_videomae`` write the ``transformers`` layout back.
``transformers`` itself is not needed for either direction.

The two models compute the same function (parity tests: ``tests/unit/test_interop_videomae.py``):

* input: ``transformers`` takes ``pixel_values (B, T, C, H, W)``, vtrep ``(B, C, T, H, W)``
  (:func:`to_hf_pixels`); tokens are t-major over ``(t, h, w)`` in both (Conv3d output flattened).
* blocks: pre-norm ViT blocks; separate ``query`` / ``key`` / ``value`` become timm's fused ``qkv``
  (rows stacked q, k, v); the q and v biases (``qv_bias``; named ``q_bias`` / ``v_bias`` in files
  written before ``transformers`` 5) become ``qkv.bias = [q, 0, v]``.
* position: both use the same fixed sinusoid table, which neither stores.
* ``use_mean_pooling=False`` → a final LayerNorm (``videomae.layernorm`` → ``norm``);
  ``use_mean_pooling=True`` → none (``VideoViT(final_norm=False)``).
* LayerNorm eps: ``layer_norm_eps`` (default 1e-12) everywhere except the decoder's last norm,
  which ``transformers`` leaves at PyTorch's 1e-5 (``MAEDecoderConfig.final_norm_eps``).
* pretraining: the mask ``bool_masked_pos (B, N)`` (True = masked, the same count per sample) is
  :func:`mask_from_bool`; visible and masked tokens keep grid order on both sides, the decoder
  predicts the masked ones after ``[visible, masked]``, and ``norm_pix_loss`` is vtrep's
  ``videomae_norm`` target (:func:`pixel_target_from_hf`).

Key mapping (``P`` = ``videomae.`` in ``VideoMAEForPreTraining`` / classification files, empty in
``VideoMAEModel`` files; block sub-keys as in ``HF_BLOCK_NAMES``)::

    P embeddings.patch_embeddings.projection.*      backbone  patch_embed.proj.*
    P encoder.layer.{i}.<sub>                       backbone  blocks.{i}.<vtrep sub>
    P layernorm.*                                   backbone  norm.*
    encoder_to_decoder.weight, mask_token           decoder   encoder_to_decoder.weight, mask_token
    decoder.decoder_layers.{i}.<sub>                decoder   blocks.{i}.<vtrep sub>
    decoder.norm.*, decoder.head.*                  decoder   norm.*, head.*
    fc_norm.*, classifier.*                         ignored (classification head)
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from vtrep.attention.blocks import PatternBlock
from vtrep.backbones.video_vit import VideoViT
from vtrep.decoders.mae_decoder import MAEDecoder, MAEDecoderConfig
from vtrep.interop.checkpoint import (
    ConversionReport,
    Converted,
    build_and_load,
    fuse_qv_bias,
    mlp_ratio_for,
    route_keys,
    split_qkv_bias,
)
from vtrep.io.atomic_write import atomic_write
from vtrep.io.torch_files import read_state_dict
from vtrep.layers.pos_embed import SinCosPosEmbed
from vtrep.objectives.targets import IMAGENET_MEAN, IMAGENET_STD, PixelTarget

# transformers' VideoMAEConfig defaults, for config.json files that leave fields out.
HF_DEFAULTS: dict[str, Any] = dict(
    image_size=224, patch_size=16, num_channels=3, num_frames=16, tubelet_size=2, hidden_size=768,
    num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, hidden_act="gelu",
    hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, layer_norm_eps=1e-12, qv_bias=True,
    use_mean_pooling=True, decoder_num_attention_heads=6, decoder_hidden_size=384, decoder_num_hidden_layers=4,
    decoder_intermediate_size=1536, norm_pix_loss=True,
)
HF_DECODER_NORM_EPS = 1e-5  # transformers builds the decoder's last LayerNorm without its layer_norm_eps
HF_BLOCK_NAMES = {  # transformers block sub-module -> vtrep (timm) block sub-module
    "layernorm_before": "norm1", "attention.output.dense": "attn.proj", "layernorm_after": "norm2",
    "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2",
}
HF_QKV = ("attention.attention.query", "attention.attention.key", "attention.attention.value")
HF_LEGACY_BIAS = {"attention.attention.q_bias": "attention.attention.query.bias",
                  "attention.attention.v_bias": "attention.attention.value.bias"}
HF_HEAD_PREFIXES = ("fc_norm.", "classifier.")


# ---------------------------------------------------------------------------------------- config
def hf_config_dict(config: Any) -> dict[str, Any]:
    """A ``VideoMAEConfig`` or its ``config.json`` dict as a plain dict with every field filled."""
    raw = dict(config.to_dict() if hasattr(config, "to_dict") else config)
    if raw.get("model_type", "videomae") != "videomae":
        raise ValueError(f"config is for model_type {raw['model_type']!r}, not 'videomae'")
    if "qv_bias" not in raw and "qkv_bias" in raw:  # the name before transformers 5
        raw["qv_bias"] = raw["qkv_bias"]
    return {**HF_DEFAULTS, **{k: raw[k] for k in HF_DEFAULTS if k in raw}}


def _square(name: str, value: Any) -> int:
    if isinstance(value, (list, tuple)):
        if len(set(value)) != 1:
            raise ValueError(f"{name}={value}: vtrep models have square frames and patches")
        value = value[0]
    return int(value)


def config_from_hf(config: Any) -> tuple[dict[str, Any], MAEDecoderConfig]:
    """``VideoViT`` keyword arguments and the ``MAEDecoderConfig`` of a ``transformers`` VideoMAE config.

    Raises ``ValueError`` for options vtrep cannot represent (another activation, dropout, non-square sizes).
    """
    c = hf_config_dict(config)
    if c["hidden_act"] != "gelu":
        raise ValueError(f"hidden_act={c['hidden_act']!r}: vtrep blocks use exact GELU ('gelu') only")
    if c["hidden_dropout_prob"] or c["attention_probs_dropout_prob"]:
        raise ValueError("vtrep VideoMAE blocks have no dropout; hidden_dropout_prob and attention_probs_dropout_prob "
                         f"must be 0, got {c['hidden_dropout_prob']} and {c['attention_probs_dropout_prob']}")
    backbone = dict(
        img_size=_square("image_size", c["image_size"]), num_frames=c["num_frames"],
        patch_size=_square("patch_size", c["patch_size"]), tubelet_size=c["tubelet_size"], in_chans=c["num_channels"],
        embed_dim=c["hidden_size"], depth=c["num_hidden_layers"], num_heads=c["num_attention_heads"],
        mlp_ratio=mlp_ratio_for(c["hidden_size"], c["intermediate_size"]), qkv_bias=bool(c["qv_bias"]),
        pos_embed="sincos", norm_eps=float(c["layer_norm_eps"]), final_norm=not c["use_mean_pooling"],
    )
    decoder = MAEDecoderConfig(
        dim=c["decoder_hidden_size"], depth=c["decoder_num_hidden_layers"], num_heads=c["decoder_num_attention_heads"],
        mlp_ratio=mlp_ratio_for(c["decoder_hidden_size"], c["decoder_intermediate_size"]),
        final_norm_eps=HF_DECODER_NORM_EPS,
    )
    return backbone, decoder


def pixel_target_from_hf(config: Any) -> PixelTarget:
    """The vtrep target ``transformers``' loss uses: ImageNet un-normalisation for RGB (none otherwise),
    then per-patch, per-channel normalisation when ``norm_pix_loss``."""
    c = hf_config_dict(config)
    channels = c["num_channels"]
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else ((0.0,) * channels, (1.0,) * channels)
    return PixelTarget("videomae_norm" if c["norm_pix_loss"] else "raw", mean=mean, std=std)


# ---------------------------------------------------------------------------------------- import
def _hf_block(sub: Mapping[str, tuple[torch.Tensor, str]], dst: str, out: Converted, unused: list[str]) -> None:
    """Convert one ``transformers`` block's tensors into ``out`` under ``dst`` (``"blocks.{i}."``)."""
    sub = {HF_LEGACY_BIAS.get(k, k): v for k, v in sub.items()}
    parts = [sub.pop(f"{name}.weight", None) for name in HF_QKV]
    if all(p is not None for p in parts):
        out[f"{dst}attn.qkv.weight"] = (torch.cat([p[0] for p in parts]), tuple(p[1] for p in parts))
    else:
        unused.extend(p[1] for p in parts if p is not None)
    q_bias, v_bias = sub.pop(f"{HF_QKV[0]}.bias", None), sub.pop(f"{HF_QKV[2]}.bias", None)
    if q_bias is not None and v_bias is not None:
        out[f"{dst}attn.qkv.bias"] = (fuse_qv_bias(q_bias[0], v_bias[0]), (q_bias[1], v_bias[1]))
    else:
        unused.extend(b[1] for b in (q_bias, v_bias) if b is not None)
    for key, (value, source) in sub.items():
        module, _, leaf = key.rpartition(".")
        if module in HF_BLOCK_NAMES:
            out[f"{dst}{HF_BLOCK_NAMES[module]}.{leaf}"] = (value, (source,))
        else:
            unused.append(source)


def _hf_prefix(state: Mapping[str, torch.Tensor]) -> str:
    for prefix in ("videomae.", ""):
        if f"{prefix}embeddings.patch_embeddings.projection.weight" in state:
            return prefix
    hint = " (it looks like the original VideoMAE layout: use import_original_videomae)" if any(
        k.endswith("patch_embed.proj.weight") for k in state) else ""
    raise ValueError("not a transformers VideoMAE state dict: no 'videomae.embeddings.patch_embeddings.projection."
                     f"weight' or 'embeddings.patch_embeddings.projection.weight'{hint}; first keys: {list(state)[:8]}")


def hf_to_vtrep(state: Mapping[str, torch.Tensor], config: Any,
                strict: bool = True) -> tuple[VideoViT, MAEDecoder | None, ConversionReport]:
    """Build vtrep models from a ``transformers`` VideoMAE state dict and its config.

    Returns ``(backbone, decoder or None, report)``; the decoder is built when the state dict holds
    one (``VideoMAEForPreTraining``). ``strict`` raises ``ValueError`` listing every unmatched key.
    """
    backbone_kwargs, decoder_config = config_from_hf(config)
    prefix = _hf_prefix(state)
    singles = {f"{prefix}embeddings.patch_embeddings.projection.{leaf}": ("backbone", f"patch_embed.proj.{leaf}")
               for leaf in ("weight", "bias")}
    singles.update({f"{prefix}layernorm.{leaf}": ("backbone", f"norm.{leaf}") for leaf in ("weight", "bias")})
    singles.update({"encoder_to_decoder.weight": ("decoder", "encoder_to_decoder.weight"),
                    "mask_token": ("decoder", "mask_token")})
    singles.update({f"decoder.{m}.{leaf}": ("decoder", f"{m}.{leaf}") for m in ("norm", "head")
                    for leaf in ("weight", "bias")})
    routed = route_keys(state, singles, {f"{prefix}encoder.layer.": "backbone", "decoder.decoder_layers.": "decoder"},
                        HF_HEAD_PREFIXES)
    report = ConversionReport("transformers", unexpected=routed.unexpected, ignored=routed.ignored)
    converted = {scope: dict(routed.singles.get(scope, {})) for scope in ("backbone", "decoder")}
    for scope, blocks in routed.blocks.items():
        for i, sub in blocks.items():
            _hf_block(sub, f"blocks.{i}.", converted[scope], report.unexpected)
    if not converted["decoder"]:
        decoder_config = None
    if not backbone_kwargs["final_norm"]:
        report.notes.append("use_mean_pooling=True: tokens leave the encoder without a final LayerNorm")
    if report.ignored:
        report.notes.append("classification head (fc_norm after pooling, classifier) not imported")
    backbone, decoder = build_and_load(backbone_kwargs, decoder_config, converted, report, strict)
    return backbone, decoder, report


def import_hf_videomae(source: Any, config: Any = None,
                       strict: bool = True) -> tuple[VideoViT, MAEDecoder | None, ConversionReport]:
    """:func:`hf_to_vtrep` from a ``transformers`` model, a ``save_pretrained`` folder
    (``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``), a weights file, or a state dict.

    ``config`` (a ``VideoMAEConfig`` or dict) is required for a bare file or state dict.
    """
    if isinstance(source, nn.Module):
        state, config = source.state_dict(), config if config is not None else getattr(source, "config", None)
    elif isinstance(source, Mapping):
        state = source
    else:
        path = Path(source)
        if path.is_dir():
            if config is None:
                config_path = path / "config.json"
                if not config_path.is_file():
                    raise FileNotFoundError(f"{config_path} not found: a transformers folder has config.json")
                config = json.loads(config_path.read_text())
            found = [path / n for n in ("model.safetensors", "pytorch_model.bin") if (path / n).is_file()]
            if not found:
                raise FileNotFoundError(f"{path} holds neither model.safetensors nor pytorch_model.bin "
                                        "(sharded checkpoints are not supported)")
            path = found[0]
        state = read_state_dict(path)
    if config is None:
        raise ValueError("a transformers VideoMAE config is needed with a bare state dict or weights file")
    return hf_to_vtrep(state, config, strict)


# ---------------------------------------------------------------------------------------- export
def _check_exportable(backbone: VideoViT, decoder: MAEDecoder | None) -> None:
    cfg = backbone.config
    if cfg["pos_embed"] != "sincos":
        raise ValueError(f"pos_embed={cfg['pos_embed']!r}: transformers VideoMAE has only the fixed sincos table")
    if cfg["attention_pattern"] is not None:
        raise ValueError("this backbone attends with a sparse pattern and transformers VideoMAE attends densely, so "
                         "the export would not reproduce it; load its state dict into a dense VideoViT (same "
                         "weights) and export that if dense attention is meant")
    if decoder is None:
        return
    if not isinstance(decoder.pos_embed, SinCosPosEmbed) or isinstance(decoder.blocks[0], PatternBlock):
        raise ValueError("transformers' VideoMAE decoder has the sincos table and dense attention only")
    if decoder.blocks[0].norm1.eps != cfg["norm_eps"]:
        raise ValueError(f"decoder blocks use LayerNorm eps {decoder.blocks[0].norm1.eps} but the encoder "
                         f"{cfg['norm_eps']}; transformers has one layer_norm_eps for both")
    if decoder.norm.eps != HF_DECODER_NORM_EPS:
        raise ValueError(f"transformers' VideoMAE decoder has LayerNorm eps {HF_DECODER_NORM_EPS} before its head; "
                         f"this decoder has {decoder.norm.eps}, so the export would change its outputs. Build it with "
                         f"MAEDecoderConfig(final_norm_eps={HF_DECODER_NORM_EPS}) or export the encoder alone")


def hf_config_from_vtrep(backbone: VideoViT, decoder: MAEDecoder | None = None,
                         norm_pix_loss: bool = True) -> dict[str, Any]:
    """The ``transformers`` ``config.json`` dict describing ``backbone`` (and ``decoder``)."""
    cfg = backbone.config
    mlp = int(cfg["embed_dim"] * cfg["mlp_ratio"])
    out = dict(
        HF_DEFAULTS, model_type="videomae",
        architectures=["VideoMAEForPreTraining" if decoder is not None else "VideoMAEModel"],
        image_size=cfg["img_size"], patch_size=cfg["patch_size"], num_channels=cfg["in_chans"],
        num_frames=cfg["num_frames"], tubelet_size=cfg["tubelet_size"], hidden_size=cfg["embed_dim"],
        num_hidden_layers=cfg["depth"], num_attention_heads=cfg["num_heads"], intermediate_size=mlp,
        layer_norm_eps=cfg["norm_eps"], qv_bias=cfg["qkv_bias"], qkv_bias=cfg["qkv_bias"],  # both names: any version
        use_mean_pooling=not cfg.get("final_norm", True), norm_pix_loss=norm_pix_loss,
    )
    if decoder is not None:
        block = decoder.blocks[0]
        out.update(decoder_hidden_size=decoder.mask_token.shape[-1], decoder_num_hidden_layers=len(decoder.blocks),
                   decoder_num_attention_heads=block.attn.num_heads,
                   decoder_intermediate_size=block.mlp.fc1.out_features)
    return out


def _export_blocks(state: Mapping[str, torch.Tensor], src: str, dst: str, qv_bias: bool, drop_key_bias: bool,
                   legacy: bool, out: dict[str, torch.Tensor]) -> None:
    """Write the vtrep block tensors ``src{i}.*`` of ``state`` as ``transformers`` keys ``dst{i}.*``."""
    to_hf = {v: k for k, v in HF_BLOCK_NAMES.items()}
    bias_names = {v: k for k, v in HF_LEGACY_BIAS.items()} if legacy else {}
    for key, value in state.items():
        if not key.startswith(src):
            continue
        index, _, sub = key[len(src):].partition(".")
        block = f"{dst}{index}."
        if sub == "attn.qkv.weight":
            for name, part in zip(HF_QKV, value.chunk(3)):
                out[f"{block}{name}.weight"] = part
        elif sub == "attn.qkv.bias":
            q_bias, v_bias = split_qkv_bias(value, f"{src}{index}", drop_key_bias)
            if qv_bias:
                for name, part in ((f"{HF_QKV[0]}.bias", q_bias), (f"{HF_QKV[2]}.bias", v_bias)):
                    out[block + bias_names.get(name, name)] = part
            elif q_bias.any() or v_bias.any():
                raise ValueError(f"{src}{index} has q/v biases but the encoder has none (qkv_bias=False); "
                                 "transformers has one qv_bias switch for encoder and decoder")
        else:
            module, _, leaf = sub.rpartition(".")
            out[f"{block}{to_hf[module]}.{leaf}"] = value


def vtrep_to_hf(backbone: VideoViT, decoder: MAEDecoder | None = None, *, norm_pix_loss: bool = True,
                drop_key_bias: bool = False, legacy_bias_names: bool = False) -> tuple[dict[str, torch.Tensor], dict]:
    """``(state_dict, config dict)`` in the ``transformers`` layout: ``VideoMAEModel`` for a backbone,
    ``VideoMAEForPreTraining`` with a decoder.

    ``legacy_bias_names`` writes ``q_bias`` / ``v_bias`` as ``transformers`` < 5 expects. Non-zero k
    biases (vtrep training moves them; they do nothing) raise unless ``drop_key_bias``.
    """
    _check_exportable(backbone, decoder)
    config = hf_config_from_vtrep(backbone, decoder, norm_pix_loss)
    prefix = "videomae." if decoder is not None else ""
    qv_bias = backbone.config["qkv_bias"]
    own = backbone.state_dict()
    out: dict[str, torch.Tensor] = {}
    for leaf in ("weight", "bias"):
        out[f"{prefix}embeddings.patch_embeddings.projection.{leaf}"] = own[f"patch_embed.proj.{leaf}"]
        if f"norm.{leaf}" in own:
            out[f"{prefix}layernorm.{leaf}"] = own[f"norm.{leaf}"]
    _export_blocks(own, "blocks.", f"{prefix}encoder.layer.", qv_bias, drop_key_bias, legacy_bias_names, out)
    if decoder is not None:
        dec = decoder.state_dict()
        out.update({"encoder_to_decoder.weight": dec["encoder_to_decoder.weight"], "mask_token": dec["mask_token"]})
        out.update({f"decoder.{m}.{leaf}": dec[f"{m}.{leaf}"] for m in ("norm", "head") for leaf in ("weight", "bias")})
        _export_blocks(dec, "blocks.", "decoder.decoder_layers.", qv_bias, drop_key_bias, legacy_bias_names, out)
    return {k: v.detach().contiguous().clone() for k, v in out.items()}, config


def save_hf_videomae(path: str | os.PathLike, backbone: VideoViT, decoder: MAEDecoder | None = None,
                     **kwargs: Any) -> Path:
    """Write ``config.json`` + ``model.safetensors`` that ``transformers``' ``from_pretrained`` reads.

    ``kwargs`` go to :func:`vtrep_to_hf`. Each file is replaced atomically, weights first, so a failure
    leaves an existing folder as it was.
    """
    state, config = vtrep_to_hf(backbone, decoder, **kwargs)
    text = json.dumps(config, indent=2)
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    # transformers checks the "format" metadata
    atomic_write(out / "model.safetensors", lambda p: save_file(state, str(p), metadata={"format": "pt"}))
    atomic_write(out / "config.json", lambda p: p.write_text(text))
    return out


# ---------------------------------------------------------------------------------------- inputs
def to_hf_pixels(video: torch.Tensor) -> torch.Tensor:
    """vtrep / original VideoMAE clip ``(B, C, T, H, W)`` → ``transformers`` ``pixel_values (B, T, C, H, W)``."""
    if video.ndim != 5:
        raise ValueError(f"expected a clip (B, C, T, H, W), got shape {tuple(video.shape)}")
    return video.transpose(1, 2)
