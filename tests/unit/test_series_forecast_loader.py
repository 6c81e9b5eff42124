"""``ForecastingDataModule(test_drop_last_batch=b)``: PatchTST's test loader (last incomplete batch dropped)."""

from __future__ import annotations

import pytest
import torch

from datamodules import ForecastingDataModule


def windows(**kwargs):
    data = ForecastingDataModule(context_length=64, horizon=16, batch_size=8, **kwargs)
    data.setup()
    return data


def test_the_default_test_loader_sees_every_window_in_order():
    data = windows()
    seen = torch.cat([context for context, _ in data.test_dataloader()])
    assert len(seen) == len(data.windows["test"])
    torch.testing.assert_close(seen[-1], data.windows["test"][len(seen) - 1][0])


def test_patchtst_loader_keeps_whole_batches_from_the_start():
    every = windows()
    n = len(every.windows["test"])
    dropped = windows(test_drop_last_batch=32)
    batches = list(dropped.test_dataloader())
    assert all(len(context) == 32 for context, _ in batches) and len(batches) == n // 32
    kept = torch.cat([context for context, _ in batches])
    reference = torch.cat([context for context, _ in every.test_dataloader()])[: n // 32 * 32]
    torch.testing.assert_close(kept, reference)
    assert n % 32 > 0  # the case the option exists for: some windows are left out


def test_bad_patchtst_batches_are_named():
    with pytest.raises(ValueError, match="test_drop_last_batch"):
        ForecastingDataModule(test_drop_last_batch=0)
    data = windows(test_drop_last_batch=100_000)
    with pytest.raises(ValueError, match="every window would be dropped"):
        data.test_dataloader()
