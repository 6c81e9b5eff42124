"""Lightning datamodules for time series: UCR/UEA classification, CSV forecasting, generated defaults.

Classification batches are ``(x (B, C, T), y (B,))``; NaN marks steps past the end of shorter
series and missing observations, and is left to the model (TS2Vec's encoder masks it;
``nan_to_zero=True`` sets it to 0 after normalisation, for models that cannot read NaN). The
fault rules of the files (inf, empty series, labels, classes) are in :mod:`datamodules.series.ucr` and
:mod:`datamodules.series.forecasting_csv`. Forecasting batches are
``(context (B, C, L), target (B, C, H))`` on the training-standardised scale.
"""

from __future__ import annotations

from typing import Literal

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from datamodules.common.data_root import require_data_path, resolve_data_path
from datamodules.common.epoch_shuffle import shuffled_loader_kwargs
from datamodules.common.loader_args import check_loader_args
from datamodules.series.fit_series import ts2vec_fit_series
from datamodules.series.forecasting_csv import (
    ForecastingWindows,
    forecasting_splits,
    read_forecasting_csv,
)
from datamodules.series.generated import (
    generate_forecasting_table,
    generate_series_classification,
)
from datamodules.series.ucr import load_classification
from vtrep.checks import positive_int


class _LoaderMixin:
    batch_size: int
    num_workers: int

    def _loader(self, dataset: Dataset, shuffle: bool, drop_last: bool = False) -> DataLoader:
        order = shuffled_loader_kwargs(dataset) if shuffle else {}
        # dropping the last short batch needs at least one full one: the batch shrinks to the split (TS2Vec's min)
        batch_size = min(self.batch_size, len(dataset)) if drop_last else self.batch_size
        return DataLoader(dataset, batch_size=batch_size, num_workers=self.num_workers,
                          drop_last=drop_last, persistent_workers=self.num_workers > 0, **order)


class SeriesClassificationDataModule(_LoaderMixin, L.LightningDataModule):
    """A UCR/UEA dataset ``name`` under ``root`` in the archive's layout; ``root=None`` uses generated data.

    As in TS2Vec the encoder trains on the training split and is evaluated on the test split, which
    serves as the validation loader here. ``train_set`` holds the whole labelled training series (what
    a probe classifies); the training loader reads ``fit_set``, the same series prepared as TS2Vec's
    ``fit`` prepares them when ``split_train_length`` or ``centre_variable_length`` is set
    (:mod:`datamodules.series.fit_series`: long series cut into pieces, NaN padding centred).

    Args:
        root: archive folder holding ``<name>/<name>_TRAIN.tsv`` (or ``.ts``); ``None`` for generated series.
        name: dataset name (ignored for generated data).
        batch_size: clips per batch.
        num_workers: DataLoader worker processes.
        normalise: apply TS2Vec's normalisation rule.
        nan_to_zero: replace NaN (end padding and missing observations) by 0, after normalisation.
        generated_per_class: series per class of the generated default (train; test gets half).
        generated_length: length of the generated series.
        drop_last: drop the last short training batch, with the batch capped at the split size (TS2Vec's ``fit``:
            ``min(batch_size, n)`` series a batch, ``drop_last=True``).
        split_train_length: training series at least twice this long are cut into ``T // split_train_length``
            pieces for the training loader (TS2Vec's ``max_train_length``: 3000; None: never cut). Named apart
            from the task's ``max_train_length`` crop: Lightning refuses one hparam name with two values.
        centre_variable_length: the training loader's series have their NaN padding split evenly before and
            after the observed part (TS2Vec's ``fit``); series NaN everywhere are dropped.
    """

    def __init__(self, root: str | None = None, name: str = "generated", batch_size: int = 8, num_workers: int = 0,
                 normalise: bool = True, nan_to_zero: bool = False, generated_per_class: int = 50,
                 generated_length: int = 128, drop_last: bool = False, split_train_length: int | None = None,
                 centre_variable_length: bool = False) -> None:
        super().__init__()
        self.save_hyperparameters()  # recorded with extracted features (vtrep.eval.feature_source)
        check_loader_args(batch_size, num_workers)
        self.root, self.name, self.normalise, self.nan_to_zero = resolve_data_path(root), name, normalise, nan_to_zero
        self.batch_size, self.num_workers = batch_size, num_workers
        self.generated_per_class, self.generated_length = generated_per_class, generated_length
        if split_train_length is not None and split_train_length < 1:
            raise ValueError(f"split_train_length must be >= 1 (or null: never cut), got {split_train_length}")
        self.drop_last, self.split_train_length, self.centre_variable_length = (drop_last, split_train_length,
                                                                                 centre_variable_length)
        self.train_set = self.test_set = self.fit_set = None
        self.classes: list[str] = []

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        if self.root is None:
            train_x, train_y = generate_series_classification(self.generated_per_class, self.generated_length, seed=0)
            test_x, test_y = generate_series_classification(max(1, self.generated_per_class // 2),
                                                            self.generated_length, seed=1)
            self.classes = ["sine", "square", "sawtooth", "triangle"]
        else:
            root = require_data_path(self.hparams.root)  # the config's value, for the error message
            train, test, self.classes = load_classification(root, self.name, self.normalise)
            (train_x, train_y), (test_x, test_y) = (train.x, train.y), (test.x, test.y)
        fit_x, fit_y = train_x, train_y
        prepared = self.split_train_length is not None or self.centre_variable_length
        if prepared:
            fit_x, fit_y = ts2vec_fit_series(train_x, train_y, self.split_train_length, self.centre_variable_length)
        if self.nan_to_zero:
            train_x, test_x, fit_x = (np.nan_to_num(x, nan=0.0) for x in (train_x, test_x, fit_x))
        self.train_set = TensorDataset(torch.from_numpy(train_x), torch.from_numpy(train_y))
        self.test_set = TensorDataset(torch.from_numpy(test_x), torch.from_numpy(test_y))
        self.fit_set = TensorDataset(torch.from_numpy(fit_x), torch.from_numpy(fit_y)) if prepared else self.train_set

    @property
    def num_classes(self) -> int:
        """Distinct training labels ``K``; labels are ``0..K−1`` and a class may be absent from the test split."""
        return len(self.classes)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.fit_set, shuffle=True, drop_last=self.drop_last)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)


class ForecastingDataModule(_LoaderMixin, L.LightningDataModule):
    """Windows ``(context L, horizon H)`` of a CSV in the ETT layout; ``path=None`` uses generated data.

    Args:
        path: CSV with a date column and one column per channel; ``None`` for the generated table.
        context_length: ``L`` steps of input.
        horizon: ``H`` steps to forecast.
        split: ``ett_hourly`` (12/4/4 months), ``ett_15min`` or ``ratio`` (60/20/20 by rows); default
            ``ett_hourly`` for a file and ``ratio`` for the generated table.
        channels: columns to use, in order (default: all but the date).
        date_column: name of the timestamp column.
        batch_size: windows per batch.
        num_workers: DataLoader worker processes.
        drop_last: drop the last short training batch each epoch (PatchTST's training loader).
        test_drop_last_batch: ``None`` (default): the test split is every window. A batch size ``b``: the test
            windows in batches of ``b`` with the last incomplete batch dropped, as the test loader of PatchTST's
            supervised code (and the Informer / Autoformer code it derives from, ``drop_last=True``, batch 128)
            evaluates, so its published figures leave out the last ``n mod b`` windows of the test months. Only
            for comparing with those figures: the windows dropped are the end of the test period.
    """

    def __init__(self, path: str | None = None, context_length: int = 336, horizon: int = 96,
                 split: Literal["ett_hourly", "ett_15min", "ratio"] | None = None, channels: list[str] | None = None,
                 date_column: str = "date", batch_size: int = 32, num_workers: int = 0,
                 test_drop_last_batch: int | None = None, drop_last: bool = False) -> None:
        super().__init__()
        self.save_hyperparameters()  # recorded with extracted features (vtrep.eval.feature_source)
        check_loader_args(batch_size, num_workers)
        if test_drop_last_batch is not None:
            positive_int("test_drop_last_batch", test_drop_last_batch)
        self.test_drop_last_batch = test_drop_last_batch
        if split is None:
            split = "ratio" if path is None else "ett_hourly"
        self.path, self.split, self.channels, self.date_column = resolve_data_path(path), split, channels, date_column
        self.context_length, self.horizon = context_length, horizon
        self.batch_size, self.num_workers, self.drop_last = batch_size, num_workers, drop_last
        self.windows: dict[str, ForecastingWindows] = {}
        self.mean = self.std = None

    def setup(self, stage: str | None = None) -> None:
        if self.windows:
            return
        table = (generate_forecasting_table() if self.path is None else
                 read_forecasting_csv(require_data_path(self.hparams.path, "path"), self.date_column, self.channels))
        self.windows, self.mean, self.std = forecasting_splits(table, self.split, self.context_length, self.horizon)
        self.num_channels = table.values.shape[1]

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.windows["train"], shuffle=True, drop_last=self.drop_last)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.windows["val"], shuffle=False)

    def test_dataloader(self) -> DataLoader:
        if self.test_drop_last_batch is None:
            return self._loader(self.windows["test"], shuffle=False)
        test = self.windows["test"]
        if len(test) < self.test_drop_last_batch:
            raise ValueError(f"test_drop_last_batch={self.test_drop_last_batch} is more than the {len(test)} test "
                             "windows: every window would be dropped")
        return DataLoader(test, batch_size=self.test_drop_last_batch, num_workers=self.num_workers, drop_last=True,
                          persistent_workers=self.num_workers > 0)
