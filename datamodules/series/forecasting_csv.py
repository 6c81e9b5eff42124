"""Forecasting series from a CSV with a date column and one column per channel (the ETT layout).

Splits follow the ETT convention used by Informer, PatchTST and TS2Vec: for hourly ETT data the
first 12 months (of 30 days) train, the next 4 validate, the next 4 test; other files split
60/20/20 by rows. Channels are standardised with statistics of the training rows only. A window
is ``context (C, L)`` followed by ``target (C, H)`` (axes ``C T`` as everywhere in vtrep); a split's windows have every target step
inside that split (the context of the first validation / test windows reaches back into the
previous split, as in PatchTST's ``border1s``), so no test target was ever a training target.

Faults in the file are rejected, naming the file, the line and the column: a row with more or fewer
fields than the header (the channels of one table share one length), a date that is not ISO 8601,
and a value that is empty, not a number, NaN or infinite — a gap would reach the training
statistics and every window that covers it, so fill gaps before loading. A constant channel is
standardised with a standard deviation of 1 (it becomes 0), never divided by zero.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from vtrep.errors import UsageError

SplitName = Literal["train", "val", "test"]
HOURS_PER_MONTH = 30 * 24
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass
class ForecastingTable:
    """Timestamps ``(T,)``, values ``(T, C)`` float32 and the channel names of a CSV."""

    timestamps: list[datetime]
    values: np.ndarray
    channels: list[str]


def _parse_value(text: str, path: Path, line: int, column: str) -> float:
    """One finite value within float32 range; anything else is an error naming the line and the column."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not abs(value) <= FLOAT32_MAX:  # also false for NaN
        raise UsageError(f"{path}: line {line}, column {column!r}: value {text.strip()!r} is not a finite number; "
                         "forecasting needs a value at every step (fill gaps before loading)")
    return value


def read_forecasting_csv(path: str | Path, date_column: str = "date", channels: list[str] | None = None
                         ) -> ForecastingTable:
    """Read ``path``; ``channels`` picks and orders columns (default: every column but the date)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"forecasting CSV {path} does not exist")
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        rows = [(reader.line_num, row) for row in reader if row]  # line numbers as an editor shows them
    if not header or not rows:
        raise UsageError(f"{path}: empty CSV")
    if date_column not in header:
        raise UsageError(f"{path}: no date column {date_column!r}; columns are {header}")
    names = channels if channels is not None else [h for h in header if h != date_column]
    missing = [n for n in names if n not in header]
    if missing:
        raise UsageError(f"{path}: no column(s) {missing}; columns are {header}")
    columns = [header.index(n) for n in names]
    date_index = header.index(date_column)
    values = np.empty((len(rows), len(columns)), dtype=np.float32)
    stamps = []
    for i, (line, row) in enumerate(rows):
        if len(row) != len(header):
            raise UsageError(f"{path}: line {line} has {len(row)} fields, the header has {len(header)}")
        try:
            stamps.append(datetime.fromisoformat(row[date_index]))
        except ValueError as error:
            raise UsageError(f"{path}: line {line}, column {date_column!r}: {error}") from None
        values[i] = [_parse_value(row[c], path, line, header[c]) for c in columns]
    return ForecastingTable(stamps, values, names)


def split_borders(num_rows: int, scheme: Literal["ett_hourly", "ett_15min", "ratio"]) -> dict[str, tuple[int, int]]:
    """Row ranges ``[start, end)`` of the train / val / test *targets*."""
    if scheme == "ratio":
        train_end, val_end = int(0.6 * num_rows), int(0.8 * num_rows)
        borders = {"train": (0, train_end), "val": (train_end, val_end), "test": (val_end, num_rows)}
    else:
        month = HOURS_PER_MONTH * (4 if scheme == "ett_15min" else 1)
        borders = {"train": (0, 12 * month), "val": (12 * month, 16 * month), "test": (16 * month, 20 * month)}
        if num_rows < 20 * month:
            raise UsageError(f"the {scheme} split needs {20 * month} rows (20 months), the file has {num_rows}")
    return borders


class ForecastingWindows(Dataset):
    """Sliding windows over standardised values ``(T, C)``: item ``i`` is ``(context (C, L), target (C, H))``.

    Targets cover rows ``[start, end)`` only; contexts may start up to ``L`` rows before ``start``.
    """

    def __init__(self, values: np.ndarray, start: int, end: int, context_length: int, horizon: int) -> None:
        if context_length < 1 or horizon < 1:
            raise UsageError(f"context_length and horizon must be >= 1, got {context_length}, {horizon}")
        self.values = torch.from_numpy(np.ascontiguousarray(values))
        self.first = max(start - context_length, 0)  # the first window's context start
        self.context_length, self.horizon = context_length, horizon
        self.count = end - horizon - context_length - self.first + 1
        if self.count < 1:
            raise UsageError(f"rows [{start}, {end}) hold no window of context {context_length} + horizon {horizon}")

    def __len__(self) -> int:
        return self.count

    def target_rows(self, index: int) -> range:
        begin = self.first + index + self.context_length
        return range(begin, begin + self.horizon)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < self.count:
            raise IndexError(index)
        s = self.first + index
        context = self.values[s: s + self.context_length]
        target = self.values[s + self.context_length: s + self.context_length + self.horizon]
        return context.T, target.T


def standardise(values: np.ndarray, train_rows: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(values − mean) / std`` with per-channel statistics of the training rows only."""
    train = values[train_rows[0]: train_rows[1]]
    mean, std = train.mean(axis=0), train.std(axis=0)
    std = np.where(std > 0, std, 1.0).astype(np.float32)
    return ((values - mean) / std).astype(np.float32), mean.astype(np.float32), std


def forecasting_splits(table: ForecastingTable, scheme: Literal["ett_hourly", "ett_15min", "ratio"],
                       context_length: int, horizon: int) -> tuple[dict[SplitName, ForecastingWindows], np.ndarray, np.ndarray]:
    """Windows of each split and the training mean / std used to standardise them."""
    borders = split_borders(len(table.values), scheme)
    values, mean, std = standardise(table.values, borders["train"])
    windows = {name: ForecastingWindows(values, start, end, context_length, horizon)
               for name, (start, end) in borders.items()}
    return windows, mean, std
