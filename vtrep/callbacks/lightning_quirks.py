"""Library behaviours worked around when ``vtrep`` builds a trainer, each noisy or wrong for the user's run.

* ``fast_dev_run`` promises "checkpointing is suppressed", yet ``ModelCheckpoint(save_last=True)`` still
  writes ``last.ckpt`` at train end (its ``on_train_end`` skips the fast_dev_run check). A fast_dev_run
  has no logger folder, so that file lands in the shared ``<default_root_dir>/checkpoints`` and the next
  run warns "Checkpoint directory ... exists and is not empty".
* Lightning's ``WandbLogger`` always passes ``anonymous=None`` to ``wandb.init``, which wandb >= 0.19
  answers with "The anonymous setting has no effect"; and wandb warns "git root runs does not exist"
  when the logger's ``save_dir`` has not been made yet.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


def no_checkpoints_in_fast_dev_run(trainer: L.Trainer) -> None:
    if not trainer.fast_dev_run:
        return
    for callback in trainer.callbacks:
        if isinstance(callback, ModelCheckpoint):
            callback.save_last = False


def prepare_wandb(trainer: L.Trainer) -> None:
    """Before the lazily made W&B run starts: drop the unset ``anonymous`` and make ``save_dir``."""
    from lightning.pytorch.loggers import WandbLogger  # wandb itself is imported only by the experiment

    for logger in trainer.loggers:
        if not isinstance(logger, WandbLogger) or logger._experiment is not None:
            continue
        init = getattr(logger, "_wandb_init", {})
        if init.get("anonymous", "unset") is None:
            del init["anonymous"]
        if logger.save_dir:  # every rank: exist_ok makes it harmless
            Path(logger.save_dir).mkdir(parents=True, exist_ok=True)


def work_around_quirks(trainer: L.Trainer) -> None:
    no_checkpoints_in_fast_dev_run(trainer)
    prepare_wandb(trainer)
