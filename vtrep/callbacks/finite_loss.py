"""Stop training at the first NaN / inf loss, before it reaches the weights or a checkpoint.

The loss is checked in ``on_before_backward``: raising there means the non-finite loss never makes
gradients and the optimiser never steps with it, so the weights in memory are still those of the
previous step. Lightning's ``ModelCheckpoint`` writes only at the end of an epoch (or every N
steps) and has no ``on_exception`` save, so the checkpoint files on disk are left as they were —
the last good one is named in the error. As a second line of defence, a checkpoint whose weights
are not finite (a finite loss with an overflowing gradient can still poison them) is refused
before it is written, so it cannot replace the last good file (``save_top_k`` removes the old file
only after the new one is written).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from vtrep.errors import UserError


class NonFiniteLossError(UserError, RuntimeError):
    """A training loss (or the weights about to be checkpointed) is NaN or infinite."""


def last_good_checkpoint(trainer: L.Trainer) -> str:
    """The newest checkpoint file a ``ModelCheckpoint`` of ``trainer`` has written, or a note that there is none."""
    paths = []
    for callback in trainer.callbacks:
        if isinstance(callback, ModelCheckpoint):
            paths += [p for p in (callback.last_model_path, callback.best_model_path) if p]
    return paths[0] if paths else "none (no checkpoint was written before the fault)"


def non_finite_kind(value: torch.Tensor) -> str:
    """``nan``, ``inf`` or ``-inf`` (the first that occurs, NaN first), for the message."""
    if torch.isnan(value).any():
        return "nan"
    return "inf" if bool((value == float("inf")).any()) else "-inf"


class FiniteLossGuard(L.Callback):
    """Raise :class:`NonFiniteLossError` at the first non-finite training loss, naming the step.

    Under DDP every rank must stop together (a rank that carried on would wait forever in the
    gradient all-reduce), so the decision is reduced over ranks; that is one scalar all-reduce per step.
    """

    def __init__(self) -> None:
        self.batch_idx = 0

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self.batch_idx = batch_idx

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        finite = bool(torch.isfinite(loss.detach()).all())
        if trainer.strategy.reduce_boolean_decision(finite, all=True):
            return
        kind = non_finite_kind(loss.detach()) if not finite else "on another rank"
        raise NonFiniteLossError(
            f"non-finite training loss ({kind}) at global step {trainer.global_step} (epoch {trainer.current_epoch}, "
            f"batch {self.batch_idx}); the weights were not updated with it. The last good checkpoint is "
            f"{last_good_checkpoint(trainer)}; stopping")

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        bad = [name for name, value in checkpoint.get("state_dict", {}).items()
               if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all()]
        if bad:
            shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
            raise NonFiniteLossError(
                f"non-finite weights ({shown}) at global step {trainer.global_step} (epoch {trainer.current_epoch}); "
                f"refusing to write a checkpoint over the last good one ({last_good_checkpoint(trainer)}); stopping")
