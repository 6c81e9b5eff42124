"""Time-series datamodules on generated data and, when present, the shared archives."""

import numpy as np
import pytest
import torch

from datamodules.series.datamodule import (
    ForecastingDataModule,
    SeriesClassificationDataModule,
)
from datamodules.series.generated import generate_series_classification, waveform


def test_generated_classification_is_balanced_and_deterministic():
    x, y = generate_series_classification(5, 64, channels=2, seed=3)
    assert x.shape == (20, 2, 64) and np.bincount(y).tolist() == [5] * 4
    np.testing.assert_array_equal(x, generate_series_classification(5, 64, channels=2, seed=3)[0])
    with pytest.raises(ValueError, match="unknown waveform"):
        waveform("noise", np.zeros(3))


def test_classification_datamodule_batches():
    data = SeriesClassificationDataModule(batch_size=16, generated_per_class=8, generated_length=32)
    data.setup("fit")
    x, y = next(iter(data.train_dataloader()))
    assert x.shape == (16, 1, 32) and y.dtype == torch.int64 and data.num_classes == 4
    with pytest.raises(ValueError, match="batch_size"):
        SeriesClassificationDataModule(batch_size=0)


def test_forecasting_datamodule_on_generated_table():
    data = ForecastingDataModule(context_length=48, horizon=24, batch_size=4)
    data.setup("fit")
    context, target = next(iter(data.train_dataloader()))
    assert context.shape == (4, 3, 48) and target.shape == (4, 3, 24)
    assert data.split == "ratio"


def test_ucr_datamodule_on_shared_archive(shared_dir):
    root = shared_dir / "data/UCRArchive_2018"
    if not root.is_dir():
        pytest.skip(f"UCR archive not found at {root}")
    data = SeriesClassificationDataModule(str(root), "ItalyPowerDemand", batch_size=32)
    data.setup("fit")
    x, y = next(iter(data.val_dataloader()))
    assert x.shape == (32, 1, 24) and data.num_classes == 2
