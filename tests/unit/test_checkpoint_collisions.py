"""The best-validation checkpoint survives the ``last.ckpt`` callbacks beside it.

A monitor-less ``ModelCheckpoint`` (save_top_k 1) deletes its previous ``epoch=E-step=S.ckpt`` each epoch, and
with it the file of the same name a monitored one kept as its best: the ETT benchmark tested the last epoch as
"best" that way. The forecast config's callbacks must keep the lowest-``val/mse`` epoch, and vtrep refuses
the colliding pair when it builds a trainer.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn

from vtrep.callbacks.lightning_quirks import refuse_colliding_checkpoints

ROOT = Path(__file__).resolve().parents[2]
VAL_MSE = [0.9, 0.5, 0.7, 0.8, 0.6]  # best at epoch 1; early stopping (patience 3) ends after epoch 4


class ScriptedValidation(L.LightningModule):
    """One training step an epoch; ``val/mse`` follows ``VAL_MSE`` whatever the weights."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val/mse", VAL_MSE[self.current_epoch])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(4, 2)), batch_size=4)

    val_dataloader = train_dataloader


def forecast_callbacks() -> list:
    """The callbacks of ``configs/experiment/etth1_forecast.yaml``, built from its YAML."""
    specs = yaml.safe_load((ROOT / "configs/experiment/etth1_forecast.yaml").read_text())["trainer"]["callbacks"]
    built = []
    for spec in specs:
        module, name = spec["class_path"].rsplit(".", 1)
        built.append(getattr(importlib.import_module(module), name)(**spec.get("init_args", {})))
    return built


def fit(tmp_path: Path, callbacks: list) -> L.Trainer:
    trainer = L.Trainer(default_root_dir=tmp_path, max_epochs=len(VAL_MSE), callbacks=callbacks, logger=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    refuse_colliding_checkpoints(trainer)
    trainer.fit(ScriptedValidation())
    return trainer


def test_the_forecast_config_keeps_the_lowest_val_mse_epoch(tmp_path):
    trainer = fit(tmp_path, forecast_callbacks())
    assert trainer.current_epoch == 5 and trainer.early_stopping_callback.stopped_epoch == 4
    kept = sorted(p.name for p in (tmp_path / "checkpoints").glob("*.ckpt"))
    assert kept == ["epoch=1-step=2.ckpt", "last.ckpt", "newest.ckpt"]
    assert Path(trainer.checkpoint_callback.best_model_path).name == "epoch=1-step=2.ckpt"


def test_a_rolling_checkpoint_beside_a_monitored_one_is_refused(tmp_path):
    best = ModelCheckpoint(monitor="val/mse", mode="min", save_top_k=1)
    rolling = ModelCheckpoint(save_last=True)  # monitor None, save_top_k 1: the collision
    with pytest.raises(ValueError, match=r"ModelCheckpoint\(monitor='val/mse'\).*save_top_k: 0"):
        fit(tmp_path, [best, rolling])


def test_a_rolling_checkpoint_in_its_own_folder_or_alone_is_fine(tmp_path):
    trainer = L.Trainer(default_root_dir=tmp_path, callbacks=[ModelCheckpoint(monitor="val/mse"),
                                                               ModelCheckpoint(dirpath=tmp_path / "own")],
                        logger=False, enable_progress_bar=False)
    refuse_colliding_checkpoints(trainer)
    refuse_colliding_checkpoints(L.Trainer(default_root_dir=tmp_path, logger=False, enable_progress_bar=False))
