"""Relative data paths resolve against $VTREP_DATA, else the current directory; a missing one is named."""

from __future__ import annotations

import pytest

from datamodules.common.data_root import DATA_ENV, require_data_path, resolve_data_path
from datamodules.series.datamodule import ForecastingDataModule, SeriesClassificationDataModule
from datamodules.video.datamodule import VideoDataModule


def test_relative_path_uses_the_env_variable_then_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(DATA_ENV, raising=False)
    assert resolve_data_path("data/ucr") == str(tmp_path / "data/ucr")
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "site"))
    assert resolve_data_path("data/ucr") == str(tmp_path / "site/data/ucr")
    assert resolve_data_path("../shared/x") == str(tmp_path / "site/../shared/x")  # joined, not normalised


def test_absolute_home_and_none_ignore_the_env_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "site"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_data_path(str(tmp_path / "abs")) == str(tmp_path / "abs")
    assert resolve_data_path("~/d") == str(tmp_path / "home/d")
    assert resolve_data_path(None) is None


def test_missing_path_names_given_resolved_and_env_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError) as info:
        require_data_path("nope/UCR", "root")
    message = str(info.value)
    assert "root='nope/UCR'" in message and str(tmp_path / "nope/UCR") in message
    assert f"${DATA_ENV}={tmp_path}" in message
    monkeypatch.delenv(DATA_ENV)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=f"current directory \\({DATA_ENV} is unset\\)"):
        require_data_path("nope")
    (tmp_path / "there").mkdir()
    assert require_data_path("there") == str(tmp_path / "there")


def test_datamodules_resolve_their_paths(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert SeriesClassificationDataModule(root="UCR", name="ECG200").root == str(tmp_path / "UCR")
    assert ForecastingDataModule(path="ETTh1.csv").path == str(tmp_path / "ETTh1.csv")
    with pytest.raises(FileNotFoundError, match="root='UCR' resolves to"):
        SeriesClassificationDataModule(root="UCR", name="ECG200").setup()
    with pytest.raises(FileNotFoundError, match="path='ETTh1.csv' resolves to"):
        ForecastingDataModule(path="ETTh1.csv").setup()
    with pytest.raises(FileNotFoundError, match="train_csv='gone.csv' resolves to"):
        VideoDataModule(train_csv="gone.csv")  # list files are checked at construction, as before
    with pytest.raises(FileNotFoundError, match="root='clips' resolves to"):
        VideoDataModule(root="clips").setup()
