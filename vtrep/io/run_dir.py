"""Where a run's own artefacts (exported encoder or SAE, reconstruction grids) go."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger


def run_dir(trainer: L.Trainer) -> Path:
    """The run's versioned folder, so two runs never write their artefacts over each other.

    CSV / TensorBoard: the logger's ``log_dir`` (``<save_dir>/<name>/version_<n>``). Other loggers
    (W&B, MLflow): ``<save_dir>/<name>/<version>``, the folder Lightning puts their checkpoints in —
    ``trainer.log_dir`` there is the bare ``save_dir`` shared by every run. No logger: ``default_root_dir``.

    Under DDP ``trainer.log_dir`` broadcasts rank 0's answer, so every rank must call this together:
    a caller that writes on rank 0 only asks first on all ranks and passes the folder in.
    """
    logger = trainer.logger
    if logger is None:
        return Path(trainer.default_root_dir)
    if isinstance(logger, (CSVLogger, TensorBoardLogger)):
        return Path(trainer.log_dir)
    root = Path(logger.save_dir or trainer.default_root_dir)
    return root / str(logger.name) / str(logger.version)
