"""Optimiser helpers shared by the tasks."""

from vtrep.optim.adamw_schedule import adamw_patchtst_epochs, adamw_warmup_cosine
from vtrep.optim.param_groups import weight_decay_groups
from vtrep.optim.schedule import PatchTSTEpochDecay, WarmupCosine, effective_batch_size, scaled_lr

__all__ = ["PatchTSTEpochDecay", "WarmupCosine", "adamw_patchtst_epochs", "adamw_warmup_cosine", "effective_batch_size", "scaled_lr", "weight_decay_groups"]
