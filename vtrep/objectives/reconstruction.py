"""Masked reconstruction objective: MSE between decoder outputs and targets of the masked tokens."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vtrep.objectives.targets import PixelTarget


@dataclass
class ReconstructionOutput:
    """``loss``: scalar mean squared error; ``per_token``: ``(B, Nm)`` error of each reconstructed token."""

    loss: torch.Tensor
    per_token: torch.Tensor


class MaskedReconstructionLoss(nn.Module):
    """MSE over the tokens the decoder reconstructed, and only those.

    The decoder predicts the tokens ``ids_mask`` only (VideoMAE's ``return_token_num``), so
    visible tokens cannot enter the loss; the mean is over masked tokens and patch values,
    which equals VideoMAE's ``MSELoss`` on ``outputs`` vs ``labels``.
    """

    def __init__(self, target: PixelTarget | None = None) -> None:
        super().__init__()
        self.target = target if target is not None else PixelTarget()

    def forward(self, pred: torch.Tensor, patches: torch.Tensor, ids_mask: torch.Tensor,
                valid: torch.Tensor | None = None) -> ReconstructionOutput:
        """``pred (B, Nm, P)`` for tokens ``ids_mask (B, Nm)`` of the patchified clip ``patches (B, N, P)``.

        ``valid (B, Nm)`` marks real slots when ``ids_mask`` is padded (dual masking): the loss is
        the mean over real slots only, and ``per_token`` is zero on padding.
        """
        with torch.no_grad():
            target = self.target(patches, ids_mask)
        if pred.shape != target.shape:
            raise ValueError(f"prediction shape {tuple(pred.shape)} does not match target shape {tuple(target.shape)}")
        # mse_loss's backward is one fused kernel (sub/pow took three passes over the masked patches)
        per_token = F.mse_loss(pred.float(), target, reduction="none").mean(dim=-1)
        if valid is None:
            return ReconstructionOutput(per_token.mean(), per_token)
        per_token = per_token * valid
        return ReconstructionOutput(per_token.sum() / valid.sum().clamp_min(1), per_token)
