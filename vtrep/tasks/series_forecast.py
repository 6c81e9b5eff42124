"""``SeriesForecastTask``: forecasting with a patch encoder and PatchTST's flatten head.

Context ``(B, C, L)`` → RevIN → patches → encoder ``(B, C, Np, D)`` → flatten ``Np·D`` → dropout →
``Linear(Np·D, H)`` shared by all channels → RevIN inverse → forecast ``(B, C, H)``. With
``freeze_encoder`` it is a linear probe (encoder frozen and kept in eval mode, so BatchNorm
statistics do not move); otherwise it fine-tunes everything. MSE and MAE are reported on the
standardised scale, as the ETT literature reports them.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch import nn

from vtrep.backbones.series_mlp import PatchMLPEncoder
from vtrep.backbones.series_transformer import PatchTSTEncoder
from vtrep.checks import fraction, positive_int
from vtrep.layers.revin import RevIN
from vtrep.layers.series_patch import encoder_patches
from vtrep.optim.adamw_schedule import adamw_warmup_cosine
from vtrep.tasks.series_mae import check_optimiser_args


def load_encoder_weights(encoder: nn.Module, checkpoint: str) -> None:
    """Copy ``encoder.*`` weights of a pretraining checkpoint (Lightning ``.ckpt``) into ``encoder``.

    Read with ``torch.load(weights_only=True)`` (a pickle that would run code is refused); the weights
    must fit the encoder exactly (names and shapes), else the error names the file and the keys.
    """
    from vtrep.io.torch_files import load_matching_state, load_torch_checkpoint

    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"encoder_checkpoint={checkpoint!r} does not exist")
    state = load_torch_checkpoint(path)
    state = state.get("state_dict", state) if isinstance(state, dict) else {}
    weights = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    if not weights:
        raise ValueError(f"{path} holds no 'encoder.*' weights; is it a SeriesMAETask checkpoint?")
    load_matching_state(encoder, weights, str(path), f"the {type(encoder).__name__} encoder")


class SeriesForecastTask(L.LightningModule):
    """Forecast ``H`` steps from a context of ``encoder.context_length`` steps.

    Args:
        encoder: a patch encoder (PatchTST transformer or PITS MLP).
        horizon: ``H``.
        encoder_checkpoint: a ``SeriesMAETask`` checkpoint whose encoder weights are loaded.
        freeze_encoder: linear probe (frozen encoder) instead of fine-tuning.
        revin: per-instance normalisation of the context, inverted on the forecast.
        head_dropout: dropout before the linear head.
        lr: peak learning rate.
        weight_decay: AdamW weight decay.
        warmup_fraction: fraction of steps in linear warmup.
    """

    def __init__(self, encoder: PatchTSTEncoder | PatchMLPEncoder, horizon: int = 96,
                 encoder_checkpoint: str | None = None, freeze_encoder: bool = False, revin: bool = True,
                 head_dropout: float = 0.0, lr: float = 1e-4, weight_decay: float = 0.0,
                 warmup_fraction: float = 0.1) -> None:
        super().__init__()
        positive_int("horizon", horizon)
        check_optimiser_args(lr, weight_decay, warmup_fraction)
        fraction("head_dropout", head_dropout)
        self.save_hyperparameters(ignore=["encoder"])
        self.encoder = encoder
        if encoder_checkpoint is not None:
            load_encoder_weights(encoder, encoder_checkpoint)
        if freeze_encoder:
            encoder.requires_grad_(False)
        self.revin = RevIN(affine=False) if revin else None
        self.head = nn.Sequential(nn.Flatten(start_dim=-2), nn.Dropout(head_dropout),
                                  nn.Linear(encoder.num_patches * encoder.embed_dim, horizon))

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

    def configure_optimizers(self):
        hp = self.hparams
        return adamw_warmup_cosine(self, hp.lr, hp.weight_decay, hp.warmup_fraction)
