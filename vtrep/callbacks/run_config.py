"""The run's ``config.yaml`` in that run's own folder, whichever logger the run has.

Lightning's ``SaveConfigCallback`` writes to ``trainer.log_dir``, which for W&B, MLflow and other
non-file loggers is the bare ``save_dir`` shared by every run (``runs/config.yaml``), so each run
overwrote the previous run's config. This one writes to :func:`vtrep.io.run_dir.run_dir`, the folder
the run's checkpoints, exported encoder and reconstructions already go to.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.cli import SaveConfigCallback

from vtrep.io.run_dir import run_dir


class RunDirSaveConfig(SaveConfigCallback):
    """``SaveConfigCallback`` that saves into :func:`~vtrep.io.run_dir.run_dir` (same options)."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.already_saved:
            return
        if self.save_to_log_dir:
            folder = run_dir(trainer)  # on every rank: trainer.log_dir inside it broadcasts rank 0's answer
            path = folder / self.config_filename
            exists = trainer.strategy.broadcast(path.is_file() if trainer.is_global_zero else False)
            if exists and not self.overwrite:
                raise RuntimeError(f"{path} exists; refusing to overwrite a previous run's config")
            if trainer.is_global_zero:  # one writer, no race between ranks
                folder.mkdir(parents=True, exist_ok=True)
                self.parser.save(self.config, str(path), skip_none=False, overwrite=self.overwrite,
                                 multifile=self.multifile)
        if trainer.is_global_zero:
            self.save_config(trainer, pl_module, stage)
            self.already_saved = True
        self.already_saved = trainer.strategy.broadcast(self.already_saved)
