"""Checkpoints in the original VideoMAE / VideoMAE V2 layout (MCG-NJU ``.pth``) → vtrep.

The original code is timm-style, so block names are vtrep's except the attention biases. Key
mapping, with ``E`` = ``encoder.`` in pretraining checkpoints and empty in fine-tuned ones
(``transformers`` column: ``P`` = ``videomae.`` or empty, see :mod:`vtrep.interop.videomae_hf`)::

    original                         vtrep                                transformers (L = P encoder.layer.{i}.)
    E patch_embed.proj.*             backbone patch_embed.proj.*          P embeddings.patch_embeddings.projection.*
    E blocks.{i}.norm1.*             backbone blocks.{i}.norm1.*          L layernorm_before.*
    E blocks.{i}.attn.qkv.weight     blocks.{i}.attn.qkv.weight (q;k;v)   L attention.attention.{query,key,value}.weight
    E blocks.{i}.attn.q_bias, v_bias blocks.{i}.attn.qkv.bias = [q,0,v]   L attention.attention.{query,value}.bias
    E blocks.{i}.attn.proj.*         blocks.{i}.attn.proj.*               L attention.output.dense.*
    E blocks.{i}.norm2.*             blocks.{i}.norm2.*                   L layernorm_after.*
    E blocks.{i}.mlp.fc1.*           blocks.{i}.mlp.fc1.*                 L intermediate.dense.*
    E blocks.{i}.mlp.fc2.*           blocks.{i}.mlp.fc2.*                 L output.dense.*
    E norm.*                         backbone norm.* (final_norm=True)    P layernorm.*
    fc_norm.*, head.* (fine-tuned)   ignored: classification head         fc_norm.*, classifier.*
    encoder_to_decoder.weight        decoder encoder_to_decoder.weight    encoder_to_decoder.weight
    mask_token                       decoder mask_token                   mask_token
    decoder.blocks.{i}.<as above>    decoder blocks.{i}.*                 decoder.decoder_layers.{i}.<as L>
    decoder.norm.*, decoder.head.*   decoder norm.*, head.*               decoder.norm.*, decoder.head.*

Checkpoints often wrap the state dict as ``{"model": ...}`` or ``{"module": ...}`` (V2); both, and a
DDP ``module.`` key prefix, are unwrapped. ``.pth`` files are read with ``weights_only=True``.

What the weights do not say, and the defaults used:

* input order — the original models and vtrep take ``(B, C, T, H, W)``; ``transformers`` takes
  ``(B, T, C, H, W)`` (``vtrep.interop.videomae_hf.to_hf_pixels``).
* ``img_size`` / ``num_frames`` (224 / 16): the sinusoid table is a function of the token count
  and is not stored. A stored ``pos_embed`` is checked against it (a learned one is refused:
  vtrep's learned table is MAE-ST's separable one).
* heads: ``KNOWN_HEADS`` for the published widths, else pass ``num_heads`` / ``decoder_num_heads``.
* LayerNorm eps: 1e-6 throughout, as in the original code (``transformers``' converted copies
  use 1e-12, and 1e-5 for the decoder's last norm).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch

from vtrep.backbones.video_vit import VideoViT
from vtrep.decoders.mae_decoder import MAEDecoder, MAEDecoderConfig
from vtrep.interop.checkpoint import (
    ConversionReport,
    Converted,
    build_and_load,
    fuse_qv_bias,
    mlp_ratio_for,
    route_keys,
)
from vtrep.io.torch_files import read_state_dict, unwrap_state_dict
from vtrep.layers.pos_embed import sincos_table

# Heads of the published VideoMAE / V2 widths (ViT-S/B/L/H/g encoders; 192…640-wide decoders).
KNOWN_HEADS = {192: 3, 384: 6, 512: 8, 640: 8, 768: 12, 1024: 16, 1280: 16, 1408: 16}
ORIGINAL_HEAD_PREFIXES = ("fc_norm.", "head.", "encoder.head.")


def _prefix(state: Mapping[str, torch.Tensor]) -> str:
    for prefix in ("encoder.", ""):
        if f"{prefix}patch_embed.proj.weight" in state:
            return prefix
    hint = " (it looks like the transformers layout: use import_hf_videomae)" if any(
        "embeddings.patch_embeddings" in k for k in state) else ""
    raise ValueError("not an original VideoMAE state dict: neither 'encoder.patch_embed.proj.weight' nor "
                     f"'patch_embed.proj.weight' found{hint}; first keys: {list(state)[:8]}")


def _depth(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    indices = {int(k[len(prefix):].split(".")[0]) for k in state
               if k.startswith(prefix) and k[len(prefix):].split(".")[0].isdigit()}
    return max(indices) + 1 if indices else 0


def _heads(width: int, given: int | None, name: str) -> int:
    if given is not None:
        return given
    if width not in KNOWN_HEADS:
        raise ValueError(f"width {width} is not a published VideoMAE width; pass {name}= "
                         "(head counts are not in the weights)")
    return KNOWN_HEADS[width]


def _mlp_ratio(state: Mapping[str, torch.Tensor], prefix: str, width: int) -> float:
    fc1 = state.get(f"{prefix}0.mlp.fc1.weight")
    return 4.0 if fc1 is None else mlp_ratio_for(width, fc1.shape[0])


def config_from_original(state: Mapping[str, torch.Tensor], img_size: int = 224, num_frames: int = 16,
                         num_heads: int | None = None, decoder_num_heads: int | None = None,
                         norm_eps: float = 1e-6) -> tuple[dict[str, Any], MAEDecoderConfig | None]:
    """``VideoViT`` keyword arguments and ``MAEDecoderConfig`` (``None`` without a decoder) from tensor shapes."""
    e = _prefix(state)
    proj = state[f"{e}patch_embed.proj.weight"]
    if proj.ndim != 5 or proj.shape[3] != proj.shape[4]:
        raise ValueError(f"{e}patch_embed.proj.weight has shape {tuple(proj.shape)}; a VideoMAE tubelet embedding "
                         "is (D, C, tubelet, patch, patch) — is this an image model?")
    width, channels, tubelet, patch = proj.shape[0], proj.shape[1], proj.shape[2], proj.shape[3]
    backbone = dict(
        img_size=img_size, num_frames=num_frames, patch_size=patch, tubelet_size=tubelet, in_chans=channels,
        embed_dim=width, depth=_depth(state, f"{e}blocks."), num_heads=_heads(width, num_heads, "num_heads"),
        mlp_ratio=_mlp_ratio(state, f"{e}blocks.", width),
        qkv_bias=f"{e}blocks.0.attn.q_bias" in state or f"{e}blocks.0.attn.qkv.weight" not in state,
        pos_embed="sincos", norm_eps=norm_eps, final_norm=f"{e}norm.weight" in state,
    )
    if "decoder.norm.weight" not in state:
        return backbone, None
    dim = state["decoder.norm.weight"].shape[0]
    decoder = MAEDecoderConfig(dim=dim, depth=_depth(state, "decoder.blocks."),
                               num_heads=_heads(dim, decoder_num_heads, "decoder_num_heads"),
                               mlp_ratio=_mlp_ratio(state, "decoder.blocks.", dim))
    return backbone, decoder


def _original_block(sub: Mapping[str, tuple[torch.Tensor, str]], dst: str, out: Converted) -> None:
    """One block: names carry over; ``attn.q_bias`` + ``attn.v_bias`` become ``attn.qkv.bias``."""
    sub = dict(sub)
    q_bias, v_bias = sub.pop("attn.q_bias", None), sub.pop("attn.v_bias", None)
    if q_bias is not None and v_bias is not None:
        out[f"{dst}attn.qkv.bias"] = (fuse_qv_bias(q_bias[0], v_bias[0]), (q_bias[1], v_bias[1]))
    else:  # a lone bias cannot be placed; keep it so it is reported, not dropped
        sub.update({f"attn.{n}": b for n, b in (("q_bias", q_bias), ("v_bias", v_bias)) if b is not None})
    for key, (value, source) in sub.items():
        out[f"{dst}{key}"] = (value, (source,))


def _check_pos_embed(state: Mapping[str, torch.Tensor], key: str, num_tokens: int, report: ConversionReport) -> None:
    """A stored encoder ``pos_embed`` must be the sinusoid table vtrep regenerates; then it is skipped."""
    table = state[key].float().reshape(-1, state[key].shape[-1])
    if table.shape[0] != num_tokens:
        raise ValueError(f"{key} has {table.shape[0]} positions but img_size / num_frames give {num_tokens} tokens; "
                         "pass the img_size and num_frames the checkpoint was trained with")
    if not torch.allclose(table, sincos_table(num_tokens, table.shape[1]), atol=1e-5):
        raise ValueError(f"{key} is a learned position table (use_learnable_pos_emb); vtrep's VideoMAE backbone "
                         "uses the fixed sinusoid table and its learned one is MAE-ST's separable form")
    report.ignored.append(key)
    report.notes.append(f"{key} equals the sinusoid table; it is regenerated, not stored")


def original_to_vtrep(state: Mapping[str, torch.Tensor], *, img_size: int = 224, num_frames: int = 16,
                      num_heads: int | None = None, decoder_num_heads: int | None = None, norm_eps: float = 1e-6,
                      strict: bool = True) -> tuple[VideoViT, MAEDecoder | None, ConversionReport]:
    """Build vtrep models from an original-layout state dict; returns ``(backbone, decoder or None, report)``.

    ``strict`` raises ``ValueError`` listing every unmatched key (V2's layer scale ``gamma_*`` or
    ``cos_attn`` scales, for instance, have no place in vtrep blocks and are reported).
    """
    backbone_kwargs, decoder_config = config_from_original(state, img_size, num_frames, num_heads,
                                                           decoder_num_heads, norm_eps)
    e = _prefix(state)
    singles = {f"{e}patch_embed.proj.{leaf}": ("backbone", f"patch_embed.proj.{leaf}") for leaf in ("weight", "bias")}
    singles.update({f"{e}norm.{leaf}": ("backbone", f"norm.{leaf}") for leaf in ("weight", "bias")})
    singles.update({"encoder_to_decoder.weight": ("decoder", "encoder_to_decoder.weight"),
                    "mask_token": ("decoder", "mask_token")})
    singles.update({f"decoder.{m}.{leaf}": ("decoder", f"{m}.{leaf}") for m in ("norm", "head")
                    for leaf in ("weight", "bias")})
    pos_key = f"{e}pos_embed"
    rest = {k: v for k, v in state.items() if k != pos_key}
    routed = route_keys(rest, singles, {f"{e}blocks.": "backbone", "decoder.blocks.": "decoder"},
                        ORIGINAL_HEAD_PREFIXES)
    report = ConversionReport("original", unexpected=routed.unexpected, ignored=routed.ignored)
    if pos_key in state:
        grid_tokens = (num_frames // backbone_kwargs["tubelet_size"]) * (img_size // backbone_kwargs["patch_size"]) ** 2
        _check_pos_embed(state, pos_key, grid_tokens, report)
    converted = {scope: dict(routed.singles.get(scope, {})) for scope in ("backbone", "decoder")}
    for scope, blocks in routed.blocks.items():
        for i, sub in blocks.items():
            _original_block(sub, f"blocks.{i}.", converted[scope])
    if decoder_config is None and converted["decoder"]:
        report.unexpected.extend(s for _, sources in converted["decoder"].values() for s in sources)
    backbone, decoder = build_and_load(backbone_kwargs, decoder_config, converted, report, strict)
    return backbone, decoder, report


def import_original_videomae(source: str | os.PathLike | Mapping[str, torch.Tensor],
                             **kwargs: Any) -> tuple[VideoViT, MAEDecoder | None, ConversionReport]:
    """:func:`original_to_vtrep` from a ``.pth`` / ``.safetensors`` file or a (possibly wrapped) state dict."""
    state = unwrap_state_dict(source) if isinstance(source, Mapping) else read_state_dict(source)
    return original_to_vtrep(state, **kwargs)
