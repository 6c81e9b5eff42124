"""ETT-layout CSVs: splits, train-only standardisation, windows that never leak test targets."""

from datetime import datetime, timedelta

import numpy as np
import pytest

from datamodules.series.forecasting_csv import (
    ForecastingWindows,
    forecasting_splits,
    read_forecasting_csv,
    split_borders,
)


def write_csv(path, rows: int, channels=("A", "OT")):
    start = datetime(2016, 7, 1)
    lines = ["date," + ",".join(channels)]
    for i in range(rows):
        values = ",".join(str(float(i * (c + 1))) for c in range(len(channels)))
        lines.append(f"{(start + timedelta(hours=i)).isoformat(sep=' ')},{values}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_ett_hourly_borders():
    borders = split_borders(17420, "ett_hourly")
    assert borders == {"train": (0, 8640), "val": (8640, 11520), "test": (11520, 14400)}
    with pytest.raises(ValueError, match="20 months"):
        split_borders(1000, "ett_hourly")


def test_standardisation_uses_train_rows_only(tmp_path):
    table = read_forecasting_csv(write_csv(tmp_path / "s.csv", 100))
    windows, mean, std = forecasting_splits(table, "ratio", context_length=8, horizon=4)
    train = table.values[:60]
    np.testing.assert_allclose(mean, train.mean(0), rtol=1e-6)
    # changing test rows does not change the statistics
    table.values[80:] = 1e6
    _, mean2, _ = forecasting_splits(table, "ratio", context_length=8, horizon=4)
    np.testing.assert_allclose(mean, mean2)


def test_windows_keep_targets_inside_their_split(tmp_path):
    table = read_forecasting_csv(write_csv(tmp_path / "w.csv", 100))
    windows, _, _ = forecasting_splits(table, "ratio", context_length=8, horizon=4)
    train_targets = set()
    for i in range(len(windows["train"])):
        train_targets.update(windows["train"].target_rows(i))
    assert max(train_targets) < 60
    test = windows["test"]
    assert min(test.target_rows(0)) == 80 and max(test.target_rows(len(test) - 1)) == 99
    assert not train_targets & set(test.target_rows(0))
    context, target = test[0]
    assert context.shape == (2, 8) and target.shape == (2, 4)
    with pytest.raises(ValueError, match="no window"):
        ForecastingWindows(table.values, 0, 5, 8, 4)


def test_missing_columns_are_named(tmp_path):
    path = write_csv(tmp_path / "m.csv", 10)
    with pytest.raises(ValueError, match=r"m.csv: no column\(s\) \['OT2'\]"):
        read_forecasting_csv(path, channels=["OT2"])
    with pytest.raises(ValueError, match="no date column 'time'"):
        read_forecasting_csv(path, date_column="time")


def test_real_etth1(shared_dir):
    path = shared_dir / "data/ETT-small/ETTh1.csv"
    if not path.is_file():
        pytest.skip(f"ETTh1 not found at {path}")
    table = read_forecasting_csv(path)
    windows, _, _ = forecasting_splits(table, "ett_hourly", context_length=336, horizon=96)
    assert table.values.shape == (17420, 7) and table.channels[-1] == "OT"
    assert len(windows["test"]) == 2880 - 96 + 1
