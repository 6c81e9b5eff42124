"""``SeriesMAETask``: masked patch pretraining of a series encoder, PatchTST- or PITS-style.

RevIN per instance and channel → patches that end at the last step → random patches masked per
channel, zero-filled and kept in the sequence → channel-independent encoder → ``Linear(D, P)``
head → MSE on masked patches only. PITS-style: ``PatchMLPEncoder`` with
``ComplementaryPatchMasking`` (two views, each reconstructing what it cannot see) and optionally
TS2Vec's hierarchical contrastive loss between the two views' representations. Optimiser: AdamW
with per-step warmup + cosine (PatchTST uses Adam with a one-cycle schedule; the difference is in
the schedule shape, not the objective).
"""

from __future__ import annotations

import torch
from torch import nn

from vtrep.backbones.series_mlp import PatchMLPEncoder
from vtrep.backbones.series_transformer import PatchTSTEncoder
from vtrep.checks import fraction, non_negative, positive
from vtrep.io.batches import batch_input
from vtrep.layers.revin import RevIN
from vtrep.layers.series_patch import encoder_patches
from vtrep.masking.series import SeriesPatchMasking
from vtrep.objectives.contrastive import hierarchical_contrastive_loss
from vtrep.objectives.series import MaskedPatchMSE
from vtrep.optim import adamw_warmup_cosine
from vtrep.tasks.base import PretrainTask


def check_optimiser_args(lr: float, weight_decay: float, warmup_fraction: float) -> None:
    """The AdamW + warmup-cosine arguments the series tasks share (:func:`adamw_warmup_cosine`)."""
    positive("lr", lr)
    non_negative("weight_decay", weight_decay)
    fraction("warmup_fraction", warmup_fraction)


class SeriesMAETask(PretrainTask):
    """Masked patch pretraining on series batches ``(x (B, C, T), ...)``.

    Args:
        encoder: the patch encoder (PatchTST transformer or PITS MLP); its ``context_length`` must equal ``T``.
        masking: per-channel patch masking (default PatchTST's, ratio 0.4), or complementary (PITS).
        revin: normalise each series per instance and channel before patching.
        head_dropout: dropout before the ``Linear(D, P)`` pretraining head.
        lr: peak learning rate (not scaled by batch size).
        weight_decay: AdamW weight decay (none on biases, norms and positions).
        warmup_fraction: fraction of steps in linear warmup.
        contrastive_weight: weight of the hierarchical contrastive loss between two views (PITS); 0 disables.
        export_encoder: at the end of ``fit``, save the encoder as safetensors + config (with ``revin``)
            under the log dir, for ``vtrep probe``-style evaluation and ``vtrep extract``.
    """

    def __init__(self, encoder: PatchTSTEncoder | PatchMLPEncoder, masking: SeriesPatchMasking | None = None,
                 revin: bool = True, head_dropout: float = 0.0, lr: float = 1e-4, weight_decay: float = 0.0,
                 warmup_fraction: float = 0.1, contrastive_weight: float = 0.0, export_encoder: bool = True) -> None:
        super().__init__(export=export_encoder)
        check_optimiser_args(lr, weight_decay, warmup_fraction)
        fraction("head_dropout", head_dropout)
        non_negative("contrastive_weight", contrastive_weight)
        self.save_hyperparameters(ignore=["encoder", "masking"])
        self.encoder = encoder
        self.masking = masking if masking is not None else SeriesPatchMasking(0.4)
        self.revin = RevIN(affine=False) if revin else None
        self.head = nn.Sequential(nn.Dropout(head_dropout), nn.Linear(encoder.embed_dim, encoder.patch_length))
        self.objective = MaskedPatchMSE()

    def eval_encoder(self) -> nn.Module:
        """The encoder evaluated downstream (the reconstruction head is pretraining-only)."""
        return self.encoder

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]]:
        """``x (B, C, T)`` → target patches ``(B, C, Np, P)`` and per view ``(pred, masked, tokens)``.

        ``pred`` is ``(B, C, Np, P)``, ``masked`` ``(B, C, Np)``, ``tokens`` the encoder output ``(B, C, Np, D)``.
        """
        target = encoder_patches(x, self.encoder, self.revin)
        outputs = []
        for inputs, masked in self.masking.views(target):
            tokens = self.encoder(inputs)
            outputs.append((self.head(tokens), masked, tokens))
        return target, outputs

    def loss(self, target: torch.Tensor, outputs: list) -> torch.Tensor:
        """Mean masked-patch MSE over views, plus the weighted contrastive term between two views."""
        loss = sum(self.objective(pred, target, masked) for pred, masked, _ in outputs) / len(outputs)
        if self.hparams.contrastive_weight > 0:
            if len(outputs) != 2:
                raise ValueError("contrastive_weight > 0 needs two views (ComplementaryPatchMasking)")
            z1, z2 = (tokens.flatten(0, 1) for _, _, tokens in outputs)
            loss = loss + self.hparams.contrastive_weight * hierarchical_contrastive_loss(z1, z2)
        return loss

    def _step(self, batch, stage: str) -> torch.Tensor:
        loss = self.loss(*self(batch_input(batch, "series")))
        self.log(f"{stage}/loss", loss, prog_bar=True, sync_dist=stage != "train")
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val")

    def configure_optimizers(self):
        hp = self.hparams
        return adamw_warmup_cosine(self, hp.lr, hp.weight_decay, hp.warmup_fraction)

    def export_extra(self) -> dict:
        # RevIN has no weights; extraction must know whether the encoder saw normalised series
        return {"revin": self.revin is not None}
