"""``VideoMAETask``: masked-autoencoder pretraining of a video backbone (VideoMAE, MAE-ST).

The task only wires components: a backbone, a masking strategy, a decoder and a reconstruction
objective. Which paper it reproduces is a matter of configuration:

* VideoMAE — ``TubeMasking(0.9)``, ``pos_embed: sincos``, target ``videomae_norm``;
* MAE-ST — ``RandomMasking(0.9)``, ``pos_embed: separable``, target ``maest_norm``.

Optimisation follows VideoMAE: AdamW (β = 0.9, 0.95; weight decay 0.05, none on biases, norms
and learned tokens), ``lr = base_lr × effective batch / 256`` with the effective batch counting
devices and gradient accumulation, and a per-step linear warmup + cosine decay to ``min_lr``
(scaled by the same rule).
"""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only

from vtrep.backbones.video_vit import VideoViT
from vtrep.checks import beta_pair, non_negative, non_negative_int
from vtrep.decoders.mae_decoder import MAEDecoder, MAEDecoderConfig
from vtrep.io.batches import batch_input
from vtrep.io.run_dir import run_dir
from vtrep.layers.tokens import gather_tokens
from vtrep.masking.base import MaskingStrategy, MaskOutput
from vtrep.masking.tube import TubeMasking
from vtrep.objectives.reconstruction import (
    MaskedReconstructionLoss,
    ReconstructionOutput,
)
from vtrep.objectives.targets import PixelTarget, unpatchify_pixels
from vtrep.optim import adamw_warmup_cosine, effective_batch_size, scaled_lr
from vtrep.reports.recon_grid import masked_pixels, reconstruction_grid, save_grid
from vtrep.reports.to_logger import log_image
from vtrep.tasks.base import PretrainTask


class VideoMAETask(PretrainTask):
    """Masked video pretraining.

    Args:
        backbone: the encoder (sees visible tokens only).
        masking: strategy choosing visible tokens; default VideoMAE tube masking at 0.9.
        decoder: decoder sizes (VideoMAE: 4 blocks, width 192 for ViT-S).
        target: pixel target; default VideoMAE's per-patch, per-channel normalisation.
        base_lr: learning rate per 256 clips.
        min_lr: final learning rate per 256 clips.
        weight_decay: AdamW weight decay.
        betas: AdamW betas.
        warmup_fraction: fraction of all optimiser steps spent in linear warmup.
        batch_size_for_lr: per-device batch size used for lr scaling; read from the datamodule when ``None``.
        num_viz_clips: clips drawn in the validation reconstruction grid (0 disables it).
        export_encoder: at the end of ``fit``, save the encoder as safetensors + config under the log dir.
    """

    def __init__(
        self,
        backbone: VideoViT,
        masking: MaskingStrategy | None = None,
        decoder: MAEDecoderConfig | None = None,
        target: PixelTarget | None = None,
        base_lr: float = 1.5e-4,
        min_lr: float = 1e-5,
        weight_decay: float = 0.05,
        betas: tuple[float, float] = (0.9, 0.95),
        warmup_fraction: float = 0.05,
        batch_size_for_lr: int | None = None,
        num_viz_clips: int = 4,
        export_encoder: bool = True,
    ) -> None:
        super().__init__(export=export_encoder)
        if base_lr <= 0 or min_lr < 0 or min_lr > base_lr:
            raise ValueError(f"need 0 <= min_lr <= base_lr and base_lr > 0, got base_lr={base_lr}, min_lr={min_lr}")
        if not 0.0 <= warmup_fraction < 1.0:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {warmup_fraction}")
        if batch_size_for_lr is not None and batch_size_for_lr < 1:
            raise ValueError(f"batch_size_for_lr must be a positive integer, got {batch_size_for_lr}")
        non_negative("weight_decay", weight_decay)
        beta_pair("betas", betas)
        non_negative_int("num_viz_clips", num_viz_clips)
        self.save_hyperparameters(ignore=["backbone", "masking", "target"])
        self.backbone = backbone
        self.masking = masking if masking is not None else TubeMasking(0.9)
        self.masking.bind(backbone.embed_dim, backbone.grid)
        pos_kind = backbone.config["pos_embed"]
        self.decoder = MAEDecoder(backbone.embed_dim, backbone.patch_dim, backbone.grid, decoder, pos_kind,
                                  backbone.config["norm_eps"])
        self.objective = MaskedReconstructionLoss(target)
        self._last_step_time: float | None = None

    def eval_encoder(self) -> torch.nn.Module:
        """The encoder evaluated downstream: the backbone (the decoder is pretraining-only)."""
        return self.backbone

    # ------------------------------------------------------------------ forward
    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, MaskOutput, ReconstructionOutput]:
        """Mask, encode, decode: returns ``(pred (B, Nm, P), mask, reconstruction output)``."""
        patches = self.backbone.patch_embed.patchify(video)
        tokens = self.backbone.patch_embed.embed_patches(patches) if self.masking.needs_tokens else None
        mask = self.masking(video.shape[0], self.backbone.grid, video.device, tokens=tokens)
        latent = self.backbone.forward_patches(patches, mask.ids_keep)
        pred = self.decoder(latent, mask)
        return pred, mask, self.objective(pred, patches, mask.ids_mask, mask.valid)

    def loss_parts(self, mask: MaskOutput, rec: ReconstructionOutput) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(total, auxiliary)``: reconstruction plus whatever the masking strategy reports."""
        aux = mask.auxiliary_loss(rec.per_token)
        return (rec.loss if aux is None else rec.loss + aux), aux

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        video = batch_input(batch, "video")
        _, mask, rec = self(video)
        loss, aux = self.loss_parts(mask, rec)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/recon_loss", rec.loss)
        if aux is not None:
            self.log("train/aux_loss", aux)
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], prog_bar=True)
        self._log_throughput(video)
        return loss

    def _log_throughput(self, video: torch.Tensor) -> None:
        now = time.perf_counter()
        if self._last_step_time is not None:
            elapsed = max(now - self._last_step_time, 1e-9)
            clips = video.shape[0] * self.trainer.world_size
            self.log("train/clips_per_s", clips / elapsed, prog_bar=True)
            self.log("train/tokens_per_s", clips * self.backbone.num_tokens / elapsed)
        self._last_step_time = now

    def validation_step(self, batch, batch_idx: int) -> torch.Tensor:
        video = batch_input(batch, "video")
        # Fixed masks per batch index so validation losses are comparable across epochs.
        devices = [video.device.index or 0] if video.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(batch_idx)
            pred, mask, rec = self(video)
        loss, _ = self.loss_parts(mask, rec)
        self.log("val/loss", loss, prog_bar=True, sync_dist=True)
        if batch_idx == 0 and self.hparams.num_viz_clips > 0:
            # every rank asks for the folder: under DDP trainer.log_dir is a collective (rank 0 alone would hang)
            self._write_reconstruction_grid(video, pred, mask, run_dir(self.trainer) / "reconstructions")
        return loss

    # ------------------------------------------------------------------ pictures
    def reconstruct(self, video: torch.Tensor, pred: torch.Tensor, mask: MaskOutput) -> tuple[torch.Tensor, ...]:
        """Original, masked input and reconstruction as [0, 1] clips ``(B, C, T, H, W)``."""
        cfg = self.backbone.config
        target = self.objective.target
        patches = self.backbone.patch_embed.patchify(video)
        pixels = target.pixel_patches(patches)
        masked = masked_pixels(pixels, mask.mask)
        recon = pixels.clone()
        pred_pixels = target.to_pixels(pred, patches, mask.ids_mask).to(recon.dtype)
        ids = mask.ids_mask
        if mask.valid is not None:
            # Tokens the decoder skipped (dual masking) stay blanked, as in the masked input.
            valid = mask.valid[..., None, None]
            pred_pixels = torch.where(valid, pred_pixels, gather_tokens(masked, ids))
        index = ids[..., None, None].expand(-1, -1, *pixels.shape[2:])
        recon.scatter_(1, index, pred_pixels)
        shape = (self.backbone.grid, cfg["patch_size"], cfg["tubelet_size"])
        return tuple(unpatchify_pixels(x, *shape) for x in (pixels, masked, recon))

    @rank_zero_only
    def _write_reconstruction_grid(self, video: torch.Tensor, pred: torch.Tensor, mask: MaskOutput,
                                   out_dir: Path) -> None:
        n = min(self.hparams.num_viz_clips, video.shape[0])
        sub = mask.select(n)
        image = reconstruction_grid(*self.reconstruct(video[:n], pred[:n].detach(), sub))
        save_grid(image, out_dir / f"step_{self.global_step:07d}.png")
        log_image(self.logger, "val/reconstruction", image, self.global_step)

    # ------------------------------------------------------------------ optimisation
    def per_device_batch_size(self) -> int:
        if self.hparams.batch_size_for_lr is not None:
            return self.hparams.batch_size_for_lr
        datamodule = getattr(self.trainer, "datamodule", None)
        size = getattr(datamodule, "batch_size", None)
        if not isinstance(size, int):
            raise ValueError("cannot scale the learning rate: pass model.batch_size_for_lr or use a datamodule with "
                             "an integer `batch_size` attribute")
        return size

    def configure_optimizers(self):
        lr = scaled_lr(self.hparams.base_lr, effective_batch_size(self.trainer, self.per_device_batch_size()))
        return adamw_warmup_cosine(self, lr, self.hparams.weight_decay, self.hparams.warmup_fraction,
                                   betas=tuple(self.hparams.betas),
                                   final_lr_ratio=self.hparams.min_lr / self.hparams.base_lr)
