"""Instance-level representations of series from a frozen patch encoder."""

from __future__ import annotations

from typing import Literal

import torch

from vtrep.errors import UsageError
from vtrep.layers.revin import RevIN
from vtrep.layers.series_patch import encoder_patches

LayerChoice = Literal["last", "all"]
# A step encoder holds (B, T, D) activations at once: its batches are capped at this many steps (B·T), so
# 8 000 series of length 3 000 are encoded in bounded memory (~0.3 GB for TS2Vec's 320-d output).
MAX_BATCH_STEPS = 2 ** 18


def _tokens(encoder: torch.nn.Module, patches: torch.Tensor, layers: LayerChoice) -> torch.Tensor:
    """Tokens ``(B, C, Np, D)`` of the last block, or ``(B, C, Np, (depth+1)·D)`` of every layer side by side."""
    if layers == "last":
        return encoder(patches)
    if layers == "all":
        if not hasattr(encoder, "forward_layers"):
            raise UsageError(f"layers='all' needs an encoder with forward_layers; {type(encoder).__name__} has none")
        return torch.cat(encoder.forward_layers(patches), dim=-1)
    raise UsageError(f"layers must be 'last' or 'all', got {layers!r}")


@torch.no_grad()
def series_representations(encoder: torch.nn.Module, x: torch.Tensor, batch_size: int = 256,
                           revin: bool = True, layers: LayerChoice = "last") -> torch.Tensor:
    """``x (n, C, T)`` → ``(n, F)``: tokens max-pooled over patches or steps (TS2Vec's instance pooling).

    Patch encoders (those with a ``patch_length``) see unmasked patches, normalised by ``revin`` as
    in pretraining, and their channels' pooled tokens are concatenated (``F = C·D'``);
    ``layers="all"`` concatenates the pooled tokens of the embedding and of every block
    (``D' = (depth + 1)·D``): early layers keep the local shape of patches that the last block
    has mixed away. A step encoder (:class:`~vtrep.backbones.DilatedConvEncoder`) encodes the raw
    series, NaN padding included, and is max-pooled over all steps (``F = D``), as TS2Vec's
    ``encoding_window="full_series"``. Step encoders see at most ``MAX_BATCH_STEPS`` steps a batch
    (at least one series): the pooled result does not depend on the batch.
    """
    encoder = encoder.eval()
    norm = RevIN(affine=False) if revin else None
    steps = getattr(encoder, "patch_length", None) is None
    if steps:
        batch_size = max(1, min(batch_size, MAX_BATCH_STEPS // max(1, x.shape[-1])))
    out = []
    for chunk in x.split(batch_size):
        if steps:
            out.append(encoder(chunk).amax(dim=1).float())
            continue
        tokens = _tokens(encoder, encoder_patches(chunk, encoder, norm), layers)
        out.append(tokens.amax(dim=2).flatten(1).float())
    return torch.cat(out)
