"""``SeriesForecastTask``: forecasting with a patch encoder and PatchTST's flatten head.

Context ``(B, C, L)`` → RevIN → patches → encoder ``(B, C, Np, D)`` → flatten ``Np·D`` → dropout →
``Linear(Np·D, H)`` shared by all channels → RevIN inverse → forecast ``(B, C, H)``. With
``freeze_encoder`` it is a linear probe (encoder frozen and kept in eval mode, so BatchNorm
statistics do not move); otherwise it fine-tunes everything. MSE and MAE are reported on the
standardised scale, as the ETT literature reports them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from torch import nn

from vtrep.backbones.series_mlp import PatchMLPEncoder
from vtrep.backbones.series_transformer import PatchTSTEncoder
from vtrep.checks import beta_pair, fraction, positive_int
from vtrep.layers.revin import RevIN
from vtrep.layers.series_patch import encoder_patches
from vtrep.optim import adamw_patchtst_epochs, adamw_warmup_cosine
from vtrep.tasks.base import PretrainTask
from vtrep.tasks.series_mae import check_optimiser_args


def load_encoder_weights(encoder: nn.Module, source: str) -> None:
    """Pretrained weights for ``encoder``: an exported encoder folder (``<run>/encoder``, the encoder the
    pretraining method evaluates) or a ``SeriesMAETask`` fit checkpoint (its ``encoder.*`` weights).

    Either way the weights must fit the encoder exactly (names and shapes), else the error names the source.
    """
    from vtrep.io.lightning_checkpoint import load_submodule_weights
    from vtrep.io.pretrained import WEIGHTS_NAME
    from vtrep.io.torch_files import load_matching_state, read_state_dict

    path = Path(source)
    if path.is_dir():
        load_matching_state(encoder, read_state_dict(path / WEIGHTS_NAME), str(path), f"the {type(encoder).__name__}")
    else:
        load_submodule_weights(encoder, path, "encoder", name="encoder_checkpoint")


class SeriesForecastTask(PretrainTask):
    """Forecast ``H`` steps from a context of ``encoder.context_length`` steps.

    Args:
        encoder: a patch encoder (PatchTST transformer or PITS MLP).
        horizon: ``H``.
        encoder_checkpoint: pretrained encoder weights: an exported encoder folder or a ``SeriesMAETask`` ``.ckpt``.
        head_checkpoint: the ``head.*`` weights of a ``SeriesForecastTask`` fit checkpoint to start from (with
            ``encoder_checkpoint`` the same file: PatchTST's fine-tuning from the linear probe).
        freeze_encoder: linear probe (frozen encoder) instead of fine-tuning.
        revin: per-instance normalisation of the context, inverted on the forecast.
        head_dropout: dropout before the linear head.
        lr: peak learning rate.
        weight_decay: AdamW weight decay.
        warmup_fraction: fraction of steps in linear warmup (``warmup_cosine`` only).
        schedule: ``warmup_cosine`` (per step, vtrep's default) or ``patchtst_epochs`` (PatchTST's supervised
            ``lradj='type3'`` per-epoch decay, :class:`~vtrep.optim.PatchTSTEpochDecay`; the PatchTST/64 recipe).
        adam_betas: AdamW's ``(beta1, beta2)``. PatchTST's supervised code trains with ``(0.95, 0.999)``: its
            ``OneCycleLR``, built but never stepped under ``type3``, sets Adam's beta1 to its ``max_momentum``
            0.95 at construction. The default stays ``(0.9, 0.999)``, with which the README's tables were made.
        export_encoder: at the end of ``fit``, also save the (fine-tuned) encoder under the run folder; off by
            default, as a forecaster's product is its forecasts and checkpoint.
    """

    def __init__(self, encoder: PatchTSTEncoder | PatchMLPEncoder, horizon: int = 96,
                 encoder_checkpoint: str | None = None, freeze_encoder: bool = False, revin: bool = True,
                 head_dropout: float = 0.0, lr: float = 1e-4, weight_decay: float = 0.0,
                 warmup_fraction: float = 0.1, export_encoder: bool = False,
                 head_checkpoint: str | None = None,
                 schedule: Literal["warmup_cosine", "patchtst_epochs"] = "warmup_cosine",
                 adam_betas: tuple[float, float] = (0.9, 0.999)) -> None:
        super().__init__(export=export_encoder)
        positive_int("horizon", horizon)
        check_optimiser_args(lr, weight_decay, warmup_fraction)
        beta_pair("adam_betas", adam_betas)
        fraction("head_dropout", head_dropout)
        if schedule not in ("warmup_cosine", "patchtst_epochs"):
            raise ValueError(f"schedule must be 'warmup_cosine' or 'patchtst_epochs', got {schedule!r}")
        self.save_hyperparameters(ignore=["encoder"])
        self.encoder = encoder
        if encoder_checkpoint is not None:
            load_encoder_weights(encoder, encoder_checkpoint)
        if freeze_encoder:
            encoder.requires_grad_(False)
        self.revin = RevIN(affine=False) if revin else None
        self.head = nn.Sequential(nn.Flatten(start_dim=-2), nn.Dropout(head_dropout),
                                  nn.Linear(encoder.num_patches * encoder.embed_dim, horizon))
        if head_checkpoint is not None:
            from vtrep.io.lightning_checkpoint import load_submodule_weights

            load_submodule_weights(self.head, head_checkpoint, "head", name="head_checkpoint")

    def eval_encoder(self) -> nn.Module:
        """The (fine-tuned or frozen) patch encoder under the forecasting head."""
        return self.encoder

    def train(self, mode: bool = True):
        super().train(mode)
        if self.hparams.freeze_encoder:
            self.encoder.eval()
        return self

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        """``context (B, C, L)`` → forecast ``(B, C, H)``."""
        tokens = self.encoder(encoder_patches(context, self.encoder, self.revin, name="context"))
        forecast = self.head(tokens)
        return self.revin.denormalise(forecast) if self.revin is not None else forecast

    def _step(self, batch, stage: str) -> torch.Tensor:
        context, target = batch
        forecast = self(context)
        mse = (forecast - target).pow(2).mean()
        self.log(f"{stage}/mse", mse, prog_bar=True, sync_dist=stage != "train")
        if stage != "train":
            self.log(f"{stage}/mae", (forecast - target).abs().mean(), sync_dist=True)
        return mse

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "test")

    def export_extra(self) -> dict:
        return {"revin": self.revin is not None}

    def configure_optimizers(self):
        hp = self.hparams
        if hp.schedule == "patchtst_epochs":
            return adamw_patchtst_epochs(self, hp.lr, hp.weight_decay, tuple(hp.adam_betas))
        return adamw_warmup_cosine(self, hp.lr, hp.weight_decay, hp.warmup_fraction, tuple(hp.adam_betas))
