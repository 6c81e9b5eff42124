"""Token features of a frozen encoder at one or several of its layers, with each token's grid position.

Layers are numbered as the encoder's ``forward_layers`` lists them: 0 is the embedding (with positions),
``i`` the residual stream after block ``i``, and the last (``-1``, the default) the encoder's output —
what ``vtrep extract`` writes (after the final norm for a ``VideoViT``). Negative numbers count from
the end, as in Python. An encoder without ``forward_layers`` (TS2Vec's dilated convolutions, the patch
MLP) offers its output only.
"""

from __future__ import annotations

import torch
from torch import nn

from vtrep.errors import UsageError
from vtrep.eval.extract import grid_cells, series_tokens
from vtrep.layers.revin import RevIN
from vtrep.layers.series_patch import encoder_patches


def layer_count(encoder: nn.Module) -> int:
    """How many layers :func:`layer_tokens` can read: ``depth + 1``, or 1 without ``forward_layers``."""
    return len(encoder.blocks) + 1 if hasattr(encoder, "forward_layers") and hasattr(encoder, "blocks") else 1


def resolve_layers(encoder: nn.Module, layers: list[int]) -> list[int]:
    """``layers`` as non-negative positions in the encoder's layer list, checked (none twice, all in range)."""
    count = layer_count(encoder)
    if not layers:
        raise UsageError("layers must name at least one layer (-1: the encoder's output)")
    if count == 1 and len(layers) > 1:
        raise UsageError(f"layers {layers}: {type(encoder).__name__} has no forward_layers, which offers only its "
                         "output (-1)")
    resolved = []
    for layer in layers:
        if not isinstance(layer, int) or not -count <= layer < count:
            where = "only its output (-1)" if count == 1 else f"layers -{count}..{count - 1}"
            raise UsageError(f"layer {layer!r} is not a layer of {type(encoder).__name__}, which offers {where}")
        resolved.append(layer % count)
    if len(set(resolved)) != len(resolved):
        raise UsageError(f"layers {layers} name the same layer twice")
    return resolved


def layer_names(encoder: nn.Module, layers: list[int]) -> list[str]:
    """Readable names: ``embedding``, ``block<i>``, ``output`` (the last layer)."""
    count = layer_count(encoder)
    names = {0: "embedding", count - 1: "output"}
    return [names.get(layer, f"block{layer}") for layer in resolve_layers(encoder, layers)]


def feature_width(encoder: nn.Module) -> int:
    """The encoder's token width ``D`` (from its recorded constructor arguments)."""
    config = getattr(encoder, "config", None) or {}
    for key in ("embed_dim", "d_model", "output_dim"):
        if key in config:
            return int(config[key])
    raise ValueError(f"{type(encoder).__name__} records no token width (embed_dim, d_model or output_dim)")


def layer_tokens(encoder: nn.Module, x: torch.Tensor, kind: str, layers: list[int],
                 revin: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens ``(B, M, L, D)`` of ``x`` at ``layers`` (resolved) and each token's grid cell ``(M, c)``.

    Video ``x (B, C, T, H, W)``: cells ``(t, h, w)`` in the encoder's t-major order. Series ``x (B, C, T)``:
    cells ``(channel, patch)``, or ``(-1, step)`` for a step encoder (see :func:`vtrep.eval.extract.series_tokens`).
    """
    last = layer_count(encoder) - 1
    if kind == "video":
        if layers == [last]:
            tokens = encoder.forward_features(x)[:, :, None]
        else:
            every = encoder.forward_layers(x)
            tokens = torch.stack([every[layer] for layer in layers], dim=2)
        return tokens, grid_cells(*encoder.grid)
    if layers == [last]:
        tokens, cells = series_tokens(encoder, x, revin)
        return tokens[:, :, None], cells
    every = encoder.forward_layers(encoder_patches(x, encoder, RevIN(affine=False) if revin else None))
    b, c, p, d = every[0].shape
    tokens = torch.stack([every[layer] for layer in layers], dim=3)  # (B, C, Np, L, D)
    return tokens.reshape(b, c * p, len(layers), d), grid_cells(c, p)
