"""Forecasting head on a patch encoder: shapes, RevIN equivariance, linear probe, loading pretrained weights."""

import lightning as L
import pytest
import torch

from vtrep.backbones import PatchTSTEncoder
from vtrep.masking import SeriesPatchMasking
from vtrep.tasks import SeriesForecastTask, SeriesMAETask


def encoder() -> PatchTSTEncoder:
    return PatchTSTEncoder(context_length=32, patch_length=8, stride=8, d_model=16, depth=1, num_heads=2,
                           dropout=0.0)


def test_forecast_shape_and_revin_equivariance():
    task = SeriesForecastTask(encoder(), horizon=12).eval()
    x = torch.randn(3, 2, 32)
    y = task(x)
    assert y.shape == (3, 2, 12)
    torch.testing.assert_close(task(5 * x + 3), 5 * y + 3, rtol=1e-3, atol=1e-3)
    with pytest.raises(ValueError, match=r"expected context \(B, C, 32\)"):
        task(torch.randn(1, 1, 30))


def test_linear_probe_freezes_encoder_and_its_batchnorm():
    task = SeriesForecastTask(encoder(), horizon=4, freeze_encoder=True).train()
    assert not task.encoder.training and task.head.training
    norm = task.encoder.blocks[0].norm_attn.norm
    before = norm.running_mean.clone()
    loss = (task(torch.randn(8, 1, 32) * 3 + 1) - torch.randn(8, 1, 4)).pow(2).mean()
    loss.backward()
    assert torch.equal(norm.running_mean, before)
    assert all(p.grad is None for p in task.encoder.parameters())
    assert task.head[-1].weight.grad is not None


def test_loads_encoder_from_pretraining_checkpoint(tmp_path):
    pretrain = SeriesMAETask(encoder(), SeriesPatchMasking(0.4))
    trainer = L.Trainer(max_steps=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path)
    trainer.fit(pretrain, torch.utils.data.DataLoader(torch.randn(8, 1, 32), batch_size=4))
    path = tmp_path / "pretrain.ckpt"
    trainer.save_checkpoint(path)
    task = SeriesForecastTask(encoder(), horizon=4, encoder_checkpoint=str(path))
    for name, value in pretrain.encoder.state_dict().items():
        torch.testing.assert_close(task.encoder.state_dict()[name], value)
    with pytest.raises(FileNotFoundError, match="encoder_checkpoint"):
        SeriesForecastTask(encoder(), encoder_checkpoint=str(tmp_path / "missing.ckpt"))
