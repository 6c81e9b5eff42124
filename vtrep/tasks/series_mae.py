"""``SeriesMAETask``: PatchTST-style masked patch pretraining of a series encoder.

RevIN per instance and channel → patches that end at the last step → random patches masked per
channel, zero-filled and kept in the sequence → channel-independent encoder → ``Linear(D, P)``
head → MSE on masked patches only. Optimiser: AdamW with per-step warmup + cosine (PatchTST uses
Adam with a one-cycle schedule; the difference is in the schedule shape, not the objective).
"""

from __future__ import annotations

import lightning as L
import torch
from torch import nn

from vtrep.backbones.series_transformer import PatchTSTEncoder
from vtrep.layers.revin import RevIN
from vtrep.layers.series_patch import patchify_series
from vtrep.masking.series import SeriesPatchMasking
from vtrep.objectives.series import MaskedPatchMSE
from vtrep.optim import WarmupCosine, weight_decay_groups


class SeriesMAETask(L.LightningModule):
    """Masked patch pretraining on series batches ``(x (B, C, T), ...)``.

    Args:
        encoder: the patch encoder; its ``context_length`` must equal ``T``.
        masking: per-channel patch masking (default ratio 0.4).
        revin: normalise each series per instance and channel before patching.
        head_dropout: dropout before the ``Linear(D, P)`` pretraining head.
        lr: peak learning rate (not scaled by batch size).
        weight_decay: AdamW weight decay (none on biases, norms and positions).
        warmup_fraction: fraction of steps in linear warmup.
    """

    def __init__(self, encoder: PatchTSTEncoder, masking: SeriesPatchMasking | None = None, revin: bool = True,
                 head_dropout: float = 0.0, lr: float = 1e-4, weight_decay: float = 0.0,
                 warmup_fraction: float = 0.1) -> None:
        super().__init__()
        if lr <= 0 or weight_decay < 0 or not 0 <= warmup_fraction < 1:
            raise ValueError(f"need lr > 0, weight_decay >= 0, 0 <= warmup_fraction < 1; got {lr}, {weight_decay}, "
                             f"{warmup_fraction}")
        self.save_hyperparameters(ignore=["encoder", "masking"])
        self.encoder = encoder
        self.masking = masking if masking is not None else SeriesPatchMasking(0.4)
        self.revin = RevIN(affine=False) if revin else None
        self.head = nn.Sequential(nn.Dropout(head_dropout), nn.Linear(encoder.embed_dim, encoder.patch_length))
        self.objective = MaskedPatchMSE()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x (B, C, T)`` → ``(pred, target, masked)``: patches ``(B, C, Np, P)`` and mask ``(B, C, Np)``."""
        if x.ndim != 3 or x.shape[-1] != self.encoder.context_length:
            raise ValueError(f"expected series (B, C, {self.encoder.context_length}), got {tuple(x.shape)}")
        if torch.isnan(x).any():
            raise ValueError("series contain NaN (variable-length padding?); load them with nan_to_zero=True")
        if self.revin is not None:
            x = self.revin.normalise(x)
        target = patchify_series(x, self.encoder.patch_length, self.encoder.stride)
        inputs, mask = self.masking.mask_patches(target)
        pred = self.head(self.encoder(inputs))
        return pred, target, mask.mask.view(target.shape[:3])

    def _step(self, batch, stage: str) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        pred, target, masked = self(x)
        loss = self.objective(pred, target, masked)
        self.log(f"{stage}/loss", loss, prog_bar=True, sync_dist=stage != "train")
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val")

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(weight_decay_groups(self, self.hparams.weight_decay), lr=self.hparams.lr)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        schedule = WarmupCosine(total, int(self.hparams.warmup_fraction * total), 0.0)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(optimizer, schedule), "interval": "step"}}
