"""PatchTST's pretraining loss: MSE on masked patches only."""

from __future__ import annotations

import torch
from torch import nn


class MaskedPatchMSE(nn.Module):
    """``mean over masked patches of mean_P (pred − target)²`` (PatchTST ``masked_mse``).

    ``pred`` and ``target`` are ``(B, C, Np, P)``; ``masked (B, C, Np)`` is True where a patch was hidden.
    """

    def forward(self, pred: torch.Tensor, target: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        if pred.shape != target.shape or masked.shape != pred.shape[:-1]:
            raise ValueError(f"shapes do not match: pred {tuple(pred.shape)}, target {tuple(target.shape)}, "
                             f"mask {tuple(masked.shape)}")
        per_patch = (pred.float() - target.float()).pow(2).mean(dim=-1)
        weight = masked.to(per_patch.dtype)
        return (per_patch * weight).sum() / weight.sum().clamp_min(1.0)
