"""Lightning's rich progress bar without the ``Epoch 4/-2`` of a run bounded by steps.

A run given ``max_steps`` only has ``max_epochs = -1`` (no bound), and ``RichProgressBar`` prints the
last epoch as ``max_epochs - 1``. Here such a run reads ``Epoch 4``.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar


class StepBoundedRichProgressBar(RichProgressBar):
    """``RichProgressBar`` naming the last epoch only when the run has one."""

    def _get_train_description(self, current_epoch: int) -> str:
        description = super()._get_train_description(current_epoch)
        max_epochs = self.trainer.max_epochs
        if max_epochs is not None and max_epochs < 0:
            description = description.replace(f"/{max_epochs - 1}", "", 1)
        return description


def fix_epoch_display(trainer: L.Trainer) -> None:
    """Swap the class of the trainer's plain ``RichProgressBar`` in place, keeping its options and theme."""
    for callback in trainer.callbacks:
        if type(callback) is RichProgressBar:
            callback.__class__ = StepBoundedRichProgressBar
