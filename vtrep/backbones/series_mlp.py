"""PITS-style patch-independent encoder (Lee et al., ICLR 2024): an MLP on each patch, no mixing."""

from __future__ import annotations

import torch
from torch import nn

from vtrep.checks import fraction, positive_int
from vtrep.io.init_args import RecordsInitArgs
from vtrep.layers.series_patch import patch_geometry


class PatchMLPEncoder(RecordsInitArgs, nn.Module):
    """``Linear(P, D) → ReLU → Linear(D, D)`` on every patch of every channel, shared weights.

    Patches ``(B, C, Np, P)`` → tokens ``(B, C, Np, D)``. No attention and no positional embedding:
    PITS argues patch-independent representations suffice for masked pretraining of series.

    Args:
        context_length: series length ``T`` (sets ``Np``).
        patch_length: ``P``.
        stride: ``S``.
        d_model: width ``D``.
        dropout: dropout after the hidden activation.
    """

    def __init__(self, context_length: int = 336, patch_length: int = 12, stride: int = 12, d_model: int = 128,
                 dropout: float = 0.2) -> None:
        super().__init__()
        patch_geometry(self, context_length, patch_length, stride)
        positive_int("d_model", d_model)
        fraction("dropout", dropout)
        self.embed_dim = d_model
        self.mlp = nn.Sequential(nn.Linear(patch_length, d_model), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(d_model, d_model))

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        if patches.shape[-2:] != (self.num_patches, self.patch_length):
            raise ValueError(f"expected {self.num_patches} patches of length {self.patch_length}, "
                             f"got {tuple(patches.shape[-2:])}")
        return self.mlp(patches)
