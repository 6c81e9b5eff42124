"""What every checkpoint importer shares: safe file reading, key routing, loading, the report.

Importers turn a foreign state dict into vtrep keys (:data:`Converted`: vtrep key → tensor and the
checkpoint keys it came from), then :func:`build_and_load` builds ``VideoViT`` / ``MAEDecoder`` and
copies the tensors in. Nothing is loaded half-way silently: every checkpoint key that found no
place, every model parameter left without a value and every shape disagreement is listed in a
:class:`ConversionReport`, and with ``strict=True`` (the default) any of them raises before a model
is returned.

Files are read without running pickled code, through :mod:`vtrep.io.torch_files`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from vtrep.backbones.registry import DECODER_PRESETS, PRESETS
from vtrep.backbones.video_vit import VideoViT
from vtrep.decoders.mae_decoder import MAEDecoder, MAEDecoderConfig

Converted = dict[str, tuple[torch.Tensor, tuple[str, ...]]]
"""vtrep key → (tensor, the checkpoint keys it was made from)."""



@dataclass
class ConversionReport:
    """What an import did with every key.

    Attributes:
        source: the checkpoint layout (``"transformers"`` or ``"original"``).
        missing: vtrep parameters the checkpoint gave no value for (``backbone.`` / ``decoder.`` prefixed).
        unexpected: checkpoint keys that map to nothing in the built model.
        mismatched: ``"checkpoint key (shape) -> vtrep key (shape)"`` for shape disagreements.
        ignored: known keys deliberately not imported (classification heads: ``fc_norm``, ``classifier`` / ``head``).
        notes: how the model was configured where that is not obvious.
        preset / decoder_preset: the vtrep preset of the same sizes, if any.
        backbone_config: the ``VideoViT`` keyword arguments used.
        decoder_config: the ``MAEDecoderConfig`` used (``None`` without a decoder); pass it to
            ``VideoMAETask(decoder=...)`` to continue pretraining.
    """

    source: str
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    preset: str | None = None
    decoder_preset: str | None = None
    backbone_config: dict[str, Any] = field(default_factory=dict)
    decoder_config: MAEDecoderConfig | None = None

    @property
    def ok(self) -> bool:
        """Every parameter got a value of the right shape and every checkpoint key was used."""
        return not (self.missing or self.unexpected or self.mismatched)

    def __str__(self) -> str:
        lines = [f"{self.source} checkpoint: preset {self.preset!r}, decoder preset {self.decoder_preset!r}"]
        for name in ("missing", "unexpected", "mismatched", "ignored", "notes"):
            values = getattr(self, name)
            if values:
                shown = ", ".join(values[:20]) + (f", ... ({len(values) - 20} more)" if len(values) > 20 else "")
                lines.append(f"  {name} ({len(values)}): {shown}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------- keys
@dataclass
class Routed:
    """A checkpoint's keys sorted by destination.

    ``singles[scope]`` holds top-level tensors already renamed; ``blocks[scope][i]`` the sub-keys of
    transformer block ``i`` (``scope`` is ``"backbone"`` or ``"decoder"``), still in the source naming.
    """

    singles: dict[str, Converted] = field(default_factory=lambda: defaultdict(dict))
    blocks: dict[str, dict[int, dict[str, tuple[torch.Tensor, str]]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(dict)))
    unexpected: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def route_keys(state: Mapping[str, torch.Tensor], singles: Mapping[str, tuple[str, str]],
               stacks: Mapping[str, str], ignore: tuple[str, ...]) -> Routed:
    """Sort ``state``: ``singles`` maps a key to ``(scope, vtrep key)``; ``stacks`` maps a block-list
    prefix (``"...layer."``) to a scope; keys starting with ``ignore`` are head keys left out."""
    routed = Routed()
    for key, value in state.items():
        if key in singles:
            scope, target = singles[key]
            routed.singles[scope][target] = (value, (key,))
            continue
        for prefix, scope in stacks.items():
            index, _, sub = key[len(prefix):].partition(".")
            if key.startswith(prefix) and index.isdigit() and sub:
                routed.blocks[scope][int(index)][sub] = (value, key)
                break
        else:
            (routed.ignored if key.startswith(ignore) else routed.unexpected).append(key)
    return routed


def fuse_qv_bias(q_bias: torch.Tensor, v_bias: torch.Tensor) -> torch.Tensor:
    """timm's fused ``qkv.bias`` from VideoMAE's separate q and v biases: ``[q, 0, v]``.

    VideoMAE has no k bias because it cannot change attention: ``q·(k_j + b)`` shifts every logit
    of a query by the same ``q·b``, which softmax removes. A zero k bias is therefore exact.
    """
    return torch.cat([q_bias, torch.zeros_like(q_bias), v_bias])


def split_qkv_bias(bias: torch.Tensor, where: str, drop_key_bias: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(q_bias, v_bias)`` of a fused ``qkv.bias (3D,)``; its k part must be zero unless ``drop_key_bias``."""
    q_bias, k_bias, v_bias = bias.chunk(3)
    largest = float(k_bias.abs().max()) if k_bias.numel() else 0.0
    if largest != 0.0 and not drop_key_bias:
        raise ValueError(f"{where} has a non-zero key bias (max |b_k| = {largest:.3g}), which VideoMAE layouts cannot "
                         "store. It has no effect on attention (softmax is shift-invariant per query), so "
                         "drop_key_bias=True exports the same function up to float rounding")
    return q_bias, v_bias


def mlp_ratio_for(dim: int, hidden: int) -> float:
    """An ``mlp_ratio`` for which timm's ``int(dim * ratio)`` gives exactly ``hidden``."""
    ratio = hidden / dim
    for candidate in (ratio, math.nextafter(ratio, math.inf)):  # hidden / dim may round just below
        if int(dim * candidate) == hidden:
            return candidate
    raise ValueError(f"no mlp_ratio gives an MLP of width {hidden} for width {dim}")


def match_preset(table: Mapping[str, Mapping[str, Any]], **sizes: Any) -> str | None:
    """The name of the preset in ``table`` with exactly these sizes, or ``None``."""
    return next((name for name, preset in table.items() if all(preset.get(k) == v for k, v in sizes.items())), None)


# ---------------------------------------------------------------------------------------- loading
def load_converted(module: nn.Module, converted: Converted, report: ConversionReport, scope: str) -> int:
    """Copy ``converted`` into ``module``, recording problems under ``scope``; returns how many tensors loaded."""
    own = module.state_dict()
    accepted = {}
    for key, (value, sources) in converted.items():
        if key not in own:
            report.unexpected.extend(sources)
        elif value.shape != own[key].shape:
            report.mismatched.append(f"{'+'.join(sources)} {tuple(value.shape)} -> "
                                     f"{scope}{key} {tuple(own[key].shape)}")
        else:
            accepted[key] = value
    report.missing.extend(f"{scope}{key}" for key in own if key not in converted)
    module.load_state_dict(accepted, strict=False)  # copies, casting to the model's dtype
    return len(accepted)


def zero_missing_qkv_bias(decoder_state: Converted, depth: int) -> None:
    """``MAEDecoder`` blocks always have a qkv bias; for a checkpoint without q/v biases it is zero (exact)."""
    for i in range(depth):
        key = f"blocks.{i}.attn.qkv.weight"
        if key in decoder_state and f"blocks.{i}.attn.qkv.bias" not in decoder_state:
            weight = decoder_state[key][0]
            decoder_state[f"blocks.{i}.attn.qkv.bias"] = (weight.new_zeros(weight.shape[0]), ("(no q/v bias)",))


def build_and_load(backbone_kwargs: dict[str, Any], decoder_config: MAEDecoderConfig | None,
                   converted: Mapping[str, Converted], report: ConversionReport,
                   strict: bool) -> tuple[VideoViT, MAEDecoder | None]:
    """Build the backbone (and the decoder when ``decoder_config``), load ``converted[scope]``, check.

    Raises ``ValueError`` when nothing matched, or with ``strict`` when ``report`` is not ``ok``.
    """
    backbone = VideoViT(**backbone_kwargs)
    decoder = None
    if decoder_config is not None:
        decoder = MAEDecoder(backbone.embed_dim, backbone.patch_dim, backbone.grid, decoder_config,
                             backbone_kwargs["pos_embed"], backbone_kwargs["norm_eps"])
    report.backbone_config, report.decoder_config = dict(backbone_kwargs), decoder_config
    report.preset = match_preset(PRESETS, embed_dim=backbone.embed_dim, depth=len(backbone.blocks),
                                 num_heads=backbone_kwargs["num_heads"])
    matched = load_converted(backbone, converted.get("backbone", {}), report, "backbone.")
    if decoder is not None:
        zero_missing_qkv_bias(converted.setdefault("decoder", {}), decoder_config.depth)
        matched += load_converted(decoder, converted["decoder"], report, "decoder.")
        report.decoder_preset = match_preset(DECODER_PRESETS, dim=decoder_config.dim, depth=decoder_config.depth,
                                             num_heads=decoder_config.num_heads)
    if matched == 0:
        raise ValueError(f"nothing in this {report.source} checkpoint matched a VideoMAE model:\n{report}")
    if strict and not report.ok:
        raise ValueError(f"the {report.source} checkpoint does not match the model it describes "
                         f"(strict=False returns the report instead):\n{report}")
    return backbone, decoder
