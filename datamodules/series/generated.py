"""Generated default series for the time-series quickstart and tests: small, fast, deterministic.

Classification: four classes told apart by waveform shape (sine, square, sawtooth, triangle) at
random frequency, phase, amplitude and offset, plus Gaussian noise — shape matters, level does not.
Forecasting: a multichannel table of daily and weekly seasonality, a slow trend and noise, with
hourly timestamps, so it runs through the same windowing as the ETT CSVs.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from datamodules.series.forecasting_csv import ForecastingTable

WAVEFORMS = ("sine", "square", "sawtooth", "triangle")


def waveform(kind: str, phase: np.ndarray) -> np.ndarray:
    """Unit-amplitude periodic wave of ``kind`` at ``phase`` (in cycles)."""
    frac = np.mod(phase, 1.0)
    if kind == "sine":
        return np.sin(2 * np.pi * phase)
    if kind == "square":
        return np.where(frac < 0.5, 1.0, -1.0)
    if kind == "sawtooth":
        return 2 * frac - 1
    if kind == "triangle":
        return 1 - 4 * np.abs(frac - 0.5)
    raise ValueError(f"unknown waveform {kind!r}; expected one of {WAVEFORMS}")


def generate_series_classification(num_per_class: int = 50, length: int = 128, channels: int = 1,
                                   noise: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``x (n, C, T)`` float32 and labels ``(n,)`` int64, classes interleaved."""
    if num_per_class < 1 or length < 8 or channels < 1:
        raise ValueError(f"need num_per_class >= 1, length >= 8, channels >= 1; got {num_per_class}, {length}, "
                         f"{channels}")
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    xs, ys = [], []
    for _ in range(num_per_class):
        for label, kind in enumerate(WAVEFORMS):
            cycles = rng.uniform(2.0, 6.0, (channels, 1))
            phase = rng.uniform(0, 1, (channels, 1)) + cycles * t / length
            series = rng.uniform(0.5, 2.0, (channels, 1)) * waveform(kind, phase) + rng.normal(0, 1, (channels, 1))
            xs.append(series + noise * rng.normal(size=(channels, length)))
            ys.append(label)
    return np.asarray(xs, dtype=np.float32), np.asarray(ys, dtype=np.int64)


def generate_forecasting_table(num_rows: int = 4000, channels: int = 3, seed: int = 0) -> ForecastingTable:
    """Hourly multichannel series with daily and weekly cycles, a trend and noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_rows, dtype=np.float64)[:, None]
    daily = rng.uniform(0.5, 2.0, channels) * np.sin(2 * np.pi * (t / 24 + rng.uniform(0, 1, channels)))
    weekly = rng.uniform(0.2, 1.0, channels) * np.sin(2 * np.pi * (t / 168 + rng.uniform(0, 1, channels)))
    trend = rng.uniform(-1, 1, channels) * t / num_rows
    values = daily + weekly + trend + 0.2 * rng.normal(size=(num_rows, channels))
    start = datetime(2020, 1, 1)
    stamps = [start + timedelta(hours=i) for i in range(num_rows)]
    return ForecastingTable(stamps, values.astype(np.float32), [f"ch{i}" for i in range(channels - 1)] + ["OT"])
