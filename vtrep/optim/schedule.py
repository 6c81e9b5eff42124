"""Learning-rate scaling and the per-step warmup + cosine schedule of MAE / VideoMAE."""

from __future__ import annotations

import math

import lightning as L


def effective_batch_size(trainer: L.Trainer, per_device_batch: int) -> int:
    """Clips per optimiser step: per-device batch × devices × nodes × gradient accumulation."""
    return per_device_batch * trainer.world_size * trainer.accumulate_grad_batches


def scaled_lr(base_lr: float, effective_batch: int) -> float:
    """The linear scaling rule ``lr = base_lr × effective_batch / 256`` (MAE, VideoMAE)."""
    return base_lr * effective_batch / 256


class WarmupCosine:
    """Multiplier for ``LambdaLR``, evaluated every optimiser step.

    Linear warmup from 0 to 1 over ``warmup_steps`` (VideoMAE warms up from ~0), then a half
    cosine from 1 down to ``min_ratio`` at ``total_steps``. Picklable, so it survives checkpoints.
    """

    def __init__(self, total_steps: int, warmup_steps: int, min_ratio: float = 0.0) -> None:
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        if not 0 <= warmup_steps <= total_steps:
            raise ValueError(f"warmup_steps must be in [0, total_steps={total_steps}], got {warmup_steps}")
        if not 0 <= min_ratio <= 1:
            raise ValueError(f"min_ratio must be in [0, 1] (the final fraction of the peak rate), got {min_ratio}")
        self.total_steps, self.warmup_steps, self.min_ratio = total_steps, warmup_steps, min_ratio

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return step / self.warmup_steps
        decay_steps = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / decay_steps)
        return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class PatchTSTEpochDecay:
    """Per-epoch multiplier of PatchTST's supervised runs (``lradj='type3'``), as its code applies it.

    Epoch 0 trains at ``1/25`` of the rate: PatchTST builds a ``OneCycleLR`` (``div_factor`` 25) whose
    construction sets that rate, and with ``type3`` it is never stepped; the first end-of-epoch adjustment then
    sets the full rate. Epochs 1 and 2 train at the full rate, epoch ``e ≥ 3`` at ``0.9^(e − 3)`` of it.
    """

    def __init__(self, first_epoch_ratio: float = 1 / 25, decay: float = 0.9, flat_epochs: int = 3) -> None:
        self.first_epoch_ratio, self.decay, self.flat_epochs = first_epoch_ratio, decay, flat_epochs

    def __call__(self, epoch: int) -> float:
        if epoch == 0:
            return self.first_epoch_ratio
        return 1.0 if epoch < self.flat_epochs else self.decay ** (epoch - self.flat_epochs)
