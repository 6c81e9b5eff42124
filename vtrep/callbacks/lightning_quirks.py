"""Library behaviours worked around when ``vtrep`` builds a trainer, each noisy or wrong for the user's run.

* ``fast_dev_run`` promises "checkpointing is suppressed", yet ``ModelCheckpoint(save_last=True)`` still
  writes ``last.ckpt`` at train end (its ``on_train_end`` skips the fast_dev_run check). A fast_dev_run
  has no logger folder, so that file lands in the shared ``<default_root_dir>/checkpoints`` and the next
  run warns "Checkpoint directory ... exists and is not empty".
* Lightning's ``WandbLogger`` always passes ``anonymous=None`` to ``wandb.init``, which wandb >= 0.19
  answers with "The anonymous setting has no effect"; and wandb warns "git root runs does not exist"
  when the logger's ``save_dir`` has not been made yet.
* A monitor-less ``ModelCheckpoint`` with ``save_top_k`` 1 (its default) keeps only its newest ``epoch=E-step=S``
  file and deletes the previous one each epoch. Beside a monitored one in the same folder with the same names,
  it deletes the monitored one's best file the epoch after it was saved (both wrote that name), so the
  "best" checkpoint left is the last epoch's. Refused when the trainer is built.
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


def refuse_colliding_checkpoints(trainer: L.Trainer) -> None:
    """A monitored ``ModelCheckpoint`` whose best file a monitor-less one beside it would delete is refused."""
    checkpoints = [c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)]
    for best in (c for c in checkpoints if c.monitor is not None and c.save_top_k != 0):
        for rolling in (c for c in checkpoints if c.monitor is None and c.save_top_k == 1):
            if (best.dirpath, best.filename) == (rolling.dirpath, rolling.filename):
                raise ValueError(
                    f"trainer.callbacks: ModelCheckpoint(monitor={best.monitor!r}) keeps its best epoch as "
                    "epoch=E-step=S.ckpt, and a ModelCheckpoint without a monitor (save_top_k 1) in the same folder "
                    "keeps its newest epoch under the same name and deletes it an epoch later, the best one included; "
                    "give the one without a monitor save_top_k: 0 "
                    "(then it writes last.ckpt at train end and on its step trigger only) or a filename of its own "
                    "(configs/trainer/checkpoint_last.yaml: filename: newest)")


def work_around_quirks(trainer: L.Trainer) -> None:
    refuse_colliding_checkpoints(trainer)
    no_checkpoints_in_fast_dev_run(trainer)
    prepare_wandb(trainer)
