"""Instance-level representations of series from a frozen patch encoder."""

from __future__ import annotations

import torch

from vtrep.layers.revin import RevIN
from vtrep.layers.series_patch import encoder_patches


@torch.no_grad()
def series_representations(encoder: torch.nn.Module, x: torch.Tensor, batch_size: int = 256,
                           revin: bool = True) -> torch.Tensor:
    """``x (n, C, T)`` → ``(n, C·D)``: tokens max-pooled over patches (TS2Vec's instance pooling), channels concatenated.

    The encoder sees unmasked patches; ``revin`` normalises each series first, as in pretraining.
    """
    encoder = encoder.eval()
    norm = RevIN(affine=False) if revin else None
    out = []
    for chunk in x.split(batch_size):
        tokens = encoder(encoder_patches(chunk, encoder, norm))  # (B, C, Np, D)
        out.append(tokens.amax(dim=2).flatten(1).float())
    return torch.cat(out)
