"""The one optimiser of the tasks, AdamW, with a per-step warmup + cosine schedule (or PatchTST's epoch decay).

Returned as a Lightning ``configure_optimizers`` value. Weight decay skips biases, norms and learned
tokens (:func:`weight_decay_groups`); the fused kernel is used whenever every parameter lives on a
device that has it (CPU, CUDA), as it is faster and, per step, the same update up to rounding.
"""

from __future__ import annotations

import lightning as L
import torch

from vtrep.optim.param_groups import weight_decay_groups
from vtrep.optim.schedule import PatchTSTEpochDecay, WarmupCosine


def _adamw(module: L.LightningModule, lr: float, weight_decay: float, betas: tuple[float, float]):
    groups = weight_decay_groups(module, weight_decay)
    fused = all(p.device.type in ("cpu", "cuda") for group in groups for p in group["params"])
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused)


def adamw_warmup_cosine(module: L.LightningModule, lr: float, weight_decay: float, warmup_fraction: float,
                        betas: tuple[float, float] = (0.9, 0.999), final_lr_ratio: float = 0.0) -> dict:
    """AdamW over ``module``'s decay / no-decay groups; linear warmup, then cosine to ``final_lr_ratio · lr``.

    The schedule spans the fit's optimiser steps (``trainer.estimated_stepping_batches``, which counts
    devices and gradient accumulation).
    """
    optimizer = _adamw(module, lr, weight_decay, betas)
    total = max(1, int(module.trainer.estimated_stepping_batches))
    schedule = WarmupCosine(total, int(warmup_fraction * total), final_lr_ratio)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def adamw_patchtst_epochs(module: L.LightningModule, lr: float, weight_decay: float = 0.0,
                          betas: tuple[float, float] = (0.9, 0.999)) -> dict:
    """AdamW (with ``weight_decay`` 0: PatchTST's Adam) under :class:`PatchTSTEpochDecay`, stepped per epoch.

    PatchTST's own runs have ``betas=(0.95, 0.999)`` (its never-stepped ``OneCycleLR`` set beta1; see
    :class:`~vtrep.tasks.SeriesForecastTask`'s ``adam_betas``).
    """
    optimizer = _adamw(module, lr, weight_decay, betas)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, PatchTSTEpochDecay())
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
