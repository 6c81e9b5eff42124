"""AdamW with a per-step warmup + cosine schedule, as a Lightning ``configure_optimizers`` return value."""

from __future__ import annotations

import lightning as L
import torch

from vtrep.optim.param_groups import weight_decay_groups
from vtrep.optim.schedule import WarmupCosine


def adamw_warmup_cosine(module: L.LightningModule, lr: float, weight_decay: float, warmup_fraction: float) -> dict:
    """AdamW over ``module``'s decay / no-decay groups, warmup then cosine to 0 over the fit's steps."""
    optimizer = torch.optim.AdamW(weight_decay_groups(module, weight_decay), lr=lr)
    total = max(1, int(module.trainer.estimated_stepping_batches))
    schedule = WarmupCosine(total, int(warmup_fraction * total), 0.0)
    return {"optimizer": optimizer,
            "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(optimizer, schedule), "interval": "step"}}
