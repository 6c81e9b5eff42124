"""What every checkpoint importer shares: safe file reading, key routing, loading, the report.

Importers turn a foreign state dict into vtrep keys (:data:`Converted`: vtrep key → tensor and the
checkpoint keys it came from), then :func:`build_and_load` builds ``VideoViT`` / ``MAEDecoder`` and
copies the tensors in. Nothing is loaded half-way silently: every checkpoint key that found no
place, every model parameter left without a value and every shape disagreement is listed in a
:class:`ConversionReport`, and with ``strict=True`` (the default) any of them raises before a model
is returned.

Files are read without running pickled code: ``.safetensors`` with ``safetensors``, ``.pth`` /
``.pt`` / ``.bin`` / ``.ckpt`` with ``torch.load(weights_only=True)`` (:func:`load_torch_checkpoint`, which
every other vtrep loader of torch files uses too, as it does :func:`load_matching_state`).
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from vtrep.backbones.registry import DECODER_PRESETS, PRESETS
from vtrep.backbones.video_vit import VideoViT
from vtrep.decoders.mae_decoder import MAEDecoder, MAEDecoderConfig

Converted = dict[str, tuple[torch.Tensor, tuple[str, ...]]]
"""vtrep key → (tensor, the checkpoint keys it was made from)."""

PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
WRAPPER_KEYS = ("model", "module", "state_dict", "model_state")  # training-script wrappers, tried in order


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


# ---------------------------------------------------------------------------------------- files
def sniff_format(path: Path) -> str:
    """``"safetensors"``, ``"torch-zip"`` (``torch.save``), ``"pickle"`` (legacy ``torch.save``) or ``"unknown"``."""
    with path.open("rb") as handle:
        head = handle.read(16)
    if head[:4] == b"PK\x03\x04":
        return "torch-zip"
    if head[:1] == b"\x80":  # pickle protocol >= 2 opcode
        return "pickle"
    if len(head) >= 9 and head[8:9] == b"{":  # 8-byte header length, then the JSON header
        return "safetensors"
    return "unknown"


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except Exception as err:  # safetensors raises several types for truncated or foreign files
        raise ValueError(f"{path} is not a readable safetensors file (truncated or corrupt?): {err}") from err


def _first_sentence(err: BaseException) -> str:
    """``Type: first sentence`` of an error, for messages that must stay one readable line."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    text = text.split(". ")[0].rstrip(".")
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def load_torch_checkpoint(path: str | os.PathLike) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with errors that name the file and the problem.

    A file that would unpickle anything but tensors and plain containers (a class, a function — what a
    malicious ``__reduce__`` needs) is refused before any of it runs; a truncated or foreign file is
    reported as such. The original VideoMAE scripts save their argparse ``Namespace`` beside the
    weights; it is plain data and allowed.
    """
    path = Path(path)
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only" not in str(err).lower():
            raise ValueError(f"{path} is not a readable torch checkpoint (truncated or corrupt?): "
                             f"{_first_sentence(err)}") from err
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        what = found.group(1) if found else "objects other than tensors and plain containers"
        raise ValueError(f"{path} refers to {what}, which is not a tensor or plain container; unpickling it could "
                         "run code, so vtrep reads checkpoints with torch.load(weights_only=True) and will not "
                         "unpickle them. If you trust the file, re-save its state dict (or convert it to "
                         "safetensors)") from err
    except Exception as err:  # torch raises RuntimeError, EOFError, KeyError ... for cut or foreign bytes
        raise ValueError(f"{path} is not a readable torch checkpoint (truncated or corrupt?): "
                         f"{_first_sentence(err)}") from err


def state_dict_mismatch(module: nn.Module, state: Mapping[str, torch.Tensor]) -> str:
    """What keeps ``state`` from loading strictly into ``module`` (empty when it fits).

    ``"missing keys [...], unexpected keys [...]"``, plus ``", shape mismatches [...]"`` with
    ``"key: checkpoint (a, b) vs model (c, d)"`` entries when there are any.
    """
    own = module.state_dict()
    missing = [key for key in own if key not in state]
    unexpected = [key for key in state if key not in own]
    mismatched = [f"{key}: checkpoint {tuple(value.shape)} vs model {tuple(own[key].shape)}"
                  for key, value in state.items() if key in own and tuple(value.shape) != tuple(own[key].shape)]
    if not (missing or unexpected or mismatched):
        return ""
    text = f"missing keys {missing}, unexpected keys {unexpected}"
    return text + (f", shape mismatches {mismatched}" if mismatched else "")


def load_matching_state(module: nn.Module, state: Mapping[str, torch.Tensor], source: str, target: str) -> None:
    """Load ``state`` strictly, or raise ``ValueError`` naming ``source`` (the file) and what does not match."""
    problem = state_dict_mismatch(module, state)
    if problem:
        raise ValueError(f"{source} does not match {target}: {problem}")
    module.load_state_dict(state)


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file, unwrapped from ``{"model": ...}``-style containers.

    A file named ``.safetensors`` must be safetensors: pickle bytes under that name are refused
    unread (unpickling can run code, and whoever chose the name expected none).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    kind = sniff_format(path)
    if path.suffix == ".safetensors":
        if kind in ("torch-zip", "pickle"):
            raise ValueError(f"{path} is named .safetensors but holds a pickle (torch.save) archive; refusing to "
                             "unpickle a file given as safetensors. Rename it to .pth to read it with "
                             "torch.load(weights_only=True), or convert it to safetensors")
        return _load_safetensors(path)
    if path.suffix in PICKLE_SUFFIXES:
        obj = _load_safetensors(path) if kind == "safetensors" else load_torch_checkpoint(path)
        return unwrap_state_dict(obj, str(path))
    raise ValueError(f"{path}: unknown checkpoint format; expected .safetensors or one of {PICKLE_SUFFIXES}")


def unwrap_state_dict(obj: Any, name: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The state dict inside ``obj``: ``{"model": ...}``, ``{"module": ...}`` … wrappers and a DDP
    ``module.`` prefix are removed; anything else that is not a tensor is an error."""
    while isinstance(obj, Mapping) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            odd = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)][:10]
            raise ValueError(f"{name}: no state dict found; entries {odd} are not tensors and none of "
                             f"{list(WRAPPER_KEYS)} holds one")
        obj = inner
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(f"{name}: expected a non-empty mapping of tensors, got {type(obj).__name__}")
    state = dict(obj)
    if all(k.startswith("module.") for k in state):  # saved from a DistributedDataParallel wrapper
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


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
