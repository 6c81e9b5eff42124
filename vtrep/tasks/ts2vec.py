"""``TS2VecTask``: TS2Vec's contrastive pretraining of a series encoder (Yue et al., AAAI 2022).

Per batch ``x (B, C, T)``: two overlapping random crops (:func:`overlapping_crops`), each encoded
with its own random timestamp mask (p = 0.5) → the overlap's per-step representations of both
views → hierarchical contrastive loss (instance- and time-wise at every max-pooled scale, α = 0.5).
As in the reference code the representation used downstream is a running average of every
iterate's weights (``torch.optim.swa_utils.AveragedModel``, updated after each optimiser step),
AdamW at lr 1e-3 with torch's default weight decay and no schedule.

Long series follow TS2Vec's ``max_train_length`` (3000 in ``configs/model/ts2vec.yaml``, as its
``train.py``) in two places, as in the reference: the datamodule cuts training series of at least
twice that length into pieces (:mod:`datamodules.series.fit_series`, which also centres NaN
padding), and this task crops each longer batch to that length at one random offset. NaN steps
(padding, missing values) reach only the encoder, which zeroes them after its input projection,
so the loss sees finite representations.
"""

from __future__ import annotations

import torch
from torch.optim.swa_utils import AveragedModel

from vtrep.backbones.dilated_conv import DilatedConvEncoder
from vtrep.io.batches import batch_input
from vtrep.checks import non_negative, non_negative_int, positive
from vtrep.masking.timestamp import TimestampMasking, overlapping_crops
from vtrep.objectives.contrastive import hierarchical_contrastive_loss
from vtrep.tasks.base import PretrainTask


class TS2VecTask(PretrainTask):
    """Contrastive pretraining on series batches ``(x (B, C, T), ...)``.

    Args:
        encoder: a :class:`DilatedConvEncoder` (or any module mapping ``(x, keep)`` to ``(B, T, D)``).
        mask_prob: probability that a timestamp is masked in each view (TS2Vec: 0.5).
        alpha: weight of the instance-wise term against the temporal one (0.5).
        temporal_unit: first scale with a temporal term (0).
        max_train_length: crop longer batches to this length at one random offset (TS2Vec: 3000; None: never).
        lr: AdamW learning rate (TS2Vec: 1e-3, constant).
        weight_decay: AdamW weight decay (TS2Vec: torch's default, 0.01).
        export_encoder: at the end of ``fit``, save the weight-averaged encoder (the one TS2Vec evaluates) as
            safetensors + config under the run folder, like the other tasks.
    """

    def __init__(self, encoder: DilatedConvEncoder, mask_prob: float = 0.5, alpha: float = 0.5,
                 temporal_unit: int = 0, max_train_length: int | None = None, lr: float = 1e-3,
                 weight_decay: float = 0.01, export_encoder: bool = True) -> None:
        super().__init__(export=export_encoder)
        positive("lr", lr)
        non_negative("weight_decay", weight_decay)
        non_negative_int("temporal_unit", temporal_unit)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if max_train_length is not None and max_train_length < 2 ** (temporal_unit + 1):
            raise ValueError(f"max_train_length must be >= {2 ** (temporal_unit + 1)}, got {max_train_length}")
        self.save_hyperparameters(ignore=["encoder"])
        self.encoder = encoder
        self.masking = TimestampMasking(mask_prob)
        self.averaged = AveragedModel(encoder)
        self.averaged.requires_grad_(False)  # updated by averaging, never by the optimiser
        self.averaged.update_parameters(encoder)  # the reference averages the initial weights in too
        self._averaged_at_step: int | None = None  # trainer.global_step the average last saw (None: no trainer)

    @property
    def representation_encoder(self) -> torch.nn.Module:
        """The weight-averaged encoder that TS2Vec evaluates (``AveragedModel.module``)."""
        return self.averaged.module

    def eval_encoder(self) -> torch.nn.Module:
        """The encoder TS2Vec evaluates: the weight average, not the raw iterate."""
        return self.representation_encoder

    def _encode_view(self, view: torch.Tensor, encoder: torch.nn.Module) -> torch.Tensor:
        keep = self.masking(view.shape[0], view.shape[-1], view.device)
        return encoder(view, keep)

    def loss(self, x: torch.Tensor, encoder: torch.nn.Module | None = None) -> torch.Tensor:
        """Hierarchical contrastive loss of two cropped, masked views of ``x (B, C, T)`` (default: the iterate)."""
        encoder = self.encoder if encoder is None else encoder
        hp = self.hparams
        if hp.max_train_length is not None and x.shape[-1] > hp.max_train_length:
            start = int(torch.randint(0, x.shape[-1] - hp.max_train_length + 1, ()))
            x = x[..., start:start + hp.max_train_length]
        crops = overlapping_crops(x, 2 ** (hp.temporal_unit + 1))
        first = self._encode_view(crops.first, encoder)[:, -crops.overlap:]
        second = self._encode_view(crops.second, encoder)[:, :crops.overlap]
        return hierarchical_contrastive_loss(first, second, hp.alpha, hp.temporal_unit)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self.loss(batch_input(batch, "series"))
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> torch.Tensor:
        """The loss of the evaluated (averaged) encoder, on crops and masks fixed per batch index.

        The draws come from a forked generator, so validating does not change the training trajectory,
        and every validation sees the same views, so its losses are comparable across the fit.
        """
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(batch_idx)
            loss = self.loss(batch_input(batch, "series"), self.representation_encoder)
        self.log("val/loss", loss, prog_bar=True, sync_dist=True)
        return loss

    def update_average(self) -> None:
        """Fold the encoder's current weights into the running average (after every optimiser step)."""
        self.averaged.update_parameters(self.encoder)

    def on_train_start(self) -> None:
        self._averaged_at_step = self.trainer.global_step  # a resumed fit restores its step count

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        """Average once per optimiser step: under gradient accumulation most batches do not step.

        ``trainer.global_step`` counts optimiser steps, so the average is updated only when it moved
        since the last update. Called without a trainer (a hand-written loop) every call is a step.
        """
        trainer = self._trainer
        if trainer is None:
            self.update_average()
            return
        step = trainer.global_step
        if step > (self._averaged_at_step or 0):
            self.update_average()
        self._averaged_at_step = step

    def export_extra(self) -> dict:
        return {"revin": False}  # TS2Vec encodes the series as given (the datamodule may have normalised it)

    def configure_optimizers(self):
        # TS2Vec's own optimiser: AdamW over the iterate's weights, one constant lr, no schedule
        return torch.optim.AdamW(self.encoder.parameters(), lr=self.hparams.lr,
                                 weight_decay=self.hparams.weight_decay)
