"""``eval_encoder()``: the encoder a task's method evaluates, which ``vtrep extract`` loads from a checkpoint.

TS2Vec evaluates the weight average of its iterates (``AveragedModel``), updated once per optimiser step.
"""

from __future__ import annotations

import lightning as L
import pytest
import torch
import yaml

from datamodules import SeriesClassificationDataModule
from vtrep.backbones import DilatedConvEncoder
from vtrep.cli import main
from vtrep.eval.encoders import load_encoder, load_task
from vtrep.tasks import TS2VecTask

DATA = {"class_path": "datamodules.SeriesClassificationDataModule",
        "init_args": {"root": None, "batch_size": 4, "generated_per_class": 8, "generated_length": 32}}
BATCHES_PER_EPOCH = 8  # 4 classes × 8 series / batch 4


def tiny_config(tmp_path):
    config = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "devices": 1, "max_steps": 6, "logger": False},
        "model": {"class_path": "vtrep.tasks.TS2VecTask", "init_args": {
            "encoder": {"class_path": "vtrep.backbones.DilatedConvEncoder",
                        "init_args": {"input_channels": 1, "output_dim": 8, "hidden_dim": 4, "depth": 1}},
            "lr": 1.0e-2}},
        "data": DATA,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def trainer(tmp_path, **kwargs):
    return L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path, **kwargs)


def test_ts2vec_checkpoint_extraction_uses_the_averaged_encoder_not_the_last_iterate(tmp_path):
    from datamodules.features.shards import FeatureShards

    config = tiny_config(tmp_path)
    task, data = load_task(config)
    assert task.eval_encoder() is task.representation_encoder
    fit = trainer(tmp_path, max_steps=6)
    fit.fit(task, datamodule=data)
    ckpt = tmp_path / "last.ckpt"
    fit.save_checkpoint(ckpt)

    module, revin = load_encoder(str(ckpt), config)
    assert not revin and isinstance(module, DilatedConvEncoder)
    data.setup()
    x = data.test_set.tensors[0].float()
    with torch.no_grad():
        averaged = task.representation_encoder.eval()(x)
        raw = task.encoder.eval()(x)
        torch.testing.assert_close(module(x), averaged)
    assert (averaged - raw).abs().max() > 1e-3  # six steps at lr 1e-2: the average lags the iterate

    out = tmp_path / "features"
    main(["extract", "--encoder", str(ckpt), "--fit_config", config, "--output", str(out), "--split", "test",
          "--data.class_path", DATA["class_path"], "--data.init_args.batch_size", "4",
          "--data.init_args.generated_per_class", "8", "--data.init_args.generated_length", "32"])
    features = torch.cat([b["features"] for b in FeatureShards(out, batch_size=1 << 20, shuffle=False)])
    torch.testing.assert_close(features, averaged.reshape(-1, 8))


@pytest.mark.parametrize("accumulate", [1, 2])
def test_ts2vec_average_updates_once_per_optimiser_step(tmp_path, accumulate):
    torch.manual_seed(0)
    task = TS2VecTask(DilatedConvEncoder(1, output_dim=8, hidden_dim=4, depth=1), lr=1e-2)
    data = SeriesClassificationDataModule(**DATA["init_args"])
    fit = trainer(tmp_path, max_epochs=2, accumulate_grad_batches=accumulate)
    fit.fit(task, datamodule=data)
    batches = 2 * BATCHES_PER_EPOCH
    assert fit.global_step == batches // accumulate
    # the initial weights count once, then one update per optimiser step: 16 with accumulate 1, 8 with 2
    assert int(task.averaged.n_averaged) == 1 + batches // accumulate


def test_every_task_names_its_evaluated_encoder():
    from vtrep.backbones.series_transformer import PatchTSTEncoder
    from vtrep.sae import TopKSAE
    from vtrep.tasks import SAETask, SeriesForecastTask, SeriesMAETask

    encoder = PatchTSTEncoder(context_length=32, patch_length=8, stride=8, d_model=8, depth=1, num_heads=2)
    assert SeriesMAETask(encoder).eval_encoder() is encoder
    assert SeriesForecastTask(encoder, horizon=4).eval_encoder() is encoder
    sae = TopKSAE(8, 16, k=2)
    assert SAETask(sae, lr=1e-3).eval_encoder() is sae
