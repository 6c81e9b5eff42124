"""Weight initialisation shared by the encoders, decoders and AdaMAE's sampler."""

from __future__ import annotations

from torch import nn


def init_vit_weights(module: nn.Module) -> None:
    """MAE / VideoMAE initialisation: xavier-uniform linears with zero bias, unit LayerNorms."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
