"""Property-based tests: series loaders and the series input stage over random NaN / inf patterns.

Each example either loads to the documented result (NaN exactly where the file has it, finite after
``nan_to_zero``, labels ``0..K−1``) or raises the documented error for the first faulty line.
"""

import re
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from datamodules.series.datamodule import SeriesClassificationDataModule
from datamodules.series.forecasting_csv import read_forecasting_csv
from datamodules.series.ucr import SeriesFileError, read_ts, read_ucr_tsv
from vtrep.layers.revin import RevIN
from vtrep.layers.series_patch import encoder_patches

LABELS = ["1", "2", "10", "-1", "walk", "run"]


def bool_grid(data: st.DataObject, shape: tuple[int, ...], p: float) -> np.ndarray:
    """A random boolean array, ``True`` with probability about ``p``, drawn through hypothesis."""
    seed = data.draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).random(shape) < p


def values_for(data: st.DataObject, shape: tuple[int, ...]) -> np.ndarray:
    scale = data.draw(st.sampled_from([1e-3, 1.0, 1e4]))
    return (np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).normal(size=shape) * scale).astype(np.float32)


def tsv_text(values: np.ndarray, missing: np.ndarray, labels: list[str]) -> str:
    rows = [[("NaN" if gone else repr(float(v))) for v, gone in zip(row, holes)] for row, holes in zip(values, missing)]
    return "".join(f"{label}\t" + "\t".join(row) + "\n" for label, row in zip(labels, rows))


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 6), length=st.integers(1, 8), p=st.sampled_from([0.0, 0.3, 0.7, 0.95]), data=st.data())
def test_ucr_tsv_keeps_nan_exactly_or_names_the_empty_row(rows, length, p, data):
    values, missing = values_for(data, (rows, length)), bool_grid(data, (rows, length), p)
    labels = data.draw(st.lists(st.sampled_from(LABELS), min_size=rows, max_size=rows))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p.tsv"
        path.write_text(tsv_text(values, missing, labels))
        empty = missing.all(axis=1)
        if empty.any():
            line = int(np.argmax(empty)) + 1
            with pytest.raises(SeriesFileError, match=re.escape(f"{path}: series on line {line} has no values")):
                read_ucr_tsv(path)
            return
        x, raw = read_ucr_tsv(path)
    assert x.shape == (rows, 1, length) and raw.tolist() == labels
    np.testing.assert_array_equal(np.isnan(x[:, 0]), missing)
    np.testing.assert_array_equal(x[:, 0][~missing], values[~missing])


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 5), length=st.integers(1, 6), p=st.sampled_from([0.0, 0.4, 0.8]), data=st.data())
def test_ts_reader_names_the_first_empty_series_or_dimension(rows, length, p, data):
    values, missing = values_for(data, (rows, 2, length)), bool_grid(data, (rows, 2, length), p)
    lines = [":".join(",".join("?" if gone else repr(float(v)) for v, gone in zip(dim, holes))
                      for dim, holes in zip(series, gaps)) + ":a" for series, gaps in zip(values, missing)]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p.ts"
        path.write_text("@classLabel true a\n@data\n" + "\n".join(lines) + "\n")
        empty_row, empty_dim = missing.all(axis=(1, 2)), missing.all(axis=2)
        if empty_row.any():
            message = f"{path}: series on line {int(np.argmax(empty_row)) + 3} has no values (all NaN)"
        elif empty_dim.any():
            row, dim = np.argwhere(empty_dim)[0]
            message = f"{path}: series on line {row + 3} has no values in dimension {dim} (all NaN)"
        else:
            x, _ = read_ts(path)
            np.testing.assert_array_equal(np.isnan(x), missing)
            np.testing.assert_array_equal(x[~missing], values[~missing])
            return
        with pytest.raises(SeriesFileError, match=re.escape(message)):
            read_ts(path)


def split_labels(data: st.DataObject, count: int, pool: list[str]) -> list[str]:
    return data.draw(st.lists(st.sampled_from(pool), min_size=count, max_size=count))


@settings(max_examples=30, deadline=None)
@given(n_train=st.integers(2, 8), n_test=st.integers(1, 5), length=st.integers(2, 8),
       p=st.sampled_from([0.0, 0.3, 0.6]), name=st.sampled_from(["Chinatown", "GunPoint"]), data=st.data())
def test_classification_datamodule_is_finite_with_contiguous_labels(n_train, n_test, length, p, name, data):
    train_labels = split_labels(data, n_train, LABELS)
    test_labels = split_labels(data, n_test, sorted(set(train_labels)) + (["zz"] if data.draw(st.booleans()) else []))
    with tempfile.TemporaryDirectory() as root:
        folder = Path(root) / name
        folder.mkdir()
        for split, labels, rows in (("TRAIN", train_labels, n_train), ("TEST", test_labels, n_test)):
            missing = bool_grid(data, (rows, length), p)
            missing[:, 0] = False  # the empty-row rule has its own property above
            (folder / f"{name}_{split}.tsv").write_text(tsv_text(values_for(data, (rows, length)), missing, labels))
        module = SeriesClassificationDataModule(root, name, batch_size=4, nan_to_zero=True)
        if "zz" in test_labels:
            with pytest.raises(SeriesFileError, match=re.escape("test labels ['zz'] never occur in the training")):
                module.setup("fit")
            return
        if len(set(train_labels)) == 1:
            with pytest.raises(SeriesFileError, match=re.escape("the training split has a single class")):
                module.setup("fit")
            return
        module.setup("fit")
    (train_x, train_y), (test_x, test_y) = module.train_set.tensors, module.test_set.tensors
    assert torch.isfinite(train_x).all() and torch.isfinite(test_x).all()
    assert train_x.shape == (n_train, 1, length) and test_x.shape == (n_test, 1, length)
    assert sorted(set(train_y.tolist())) == list(range(module.num_classes))
    assert set(test_y.tolist()) <= set(range(module.num_classes))
    assert [module.classes[k] for k in train_y.tolist()] == train_labels


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 8), channels=st.integers(1, 3), p=st.sampled_from([0.0, 0.05, 0.3]),
       spelling=st.sampled_from(["nan", "NaN", "", "inf", "-inf"]), data=st.data())
def test_forecasting_csv_loads_finite_values_or_names_the_first_gap(rows, channels, p, spelling, data):
    values, missing = values_for(data, (rows, channels)), bool_grid(data, (rows, channels), p)
    names = [f"c{k}" for k in range(channels)]
    lines = ["date," + ",".join(names)]
    for i, (row, holes) in enumerate(zip(values, missing)):
        cells = [spelling if gone else repr(float(v)) for v, gone in zip(row, holes)]
        lines.append(f"2020-01-01 {i:02d}:00:00," + ",".join(cells))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "f.csv"
        path.write_text("\n".join(lines) + "\n")
        if missing.any():
            row, column = np.argwhere(missing)[0]
            message = f"{path}: line {row + 2}, column '{names[column]}': value {spelling!r} is not a finite number"
            with pytest.raises(ValueError, match=re.escape(message)):
                read_forecasting_csv(path)
            return
        table = read_forecasting_csv(path)
    assert np.isfinite(table.values).all() and np.array_equal(table.values, values)


@settings(max_examples=50, deadline=None)
@given(batch=st.integers(1, 3), channels=st.integers(1, 3), length=st.integers(4, 24),
       bad=st.sampled_from([float("nan"), float("inf"), float("-inf")]), p=st.sampled_from([0.0, 0.02, 0.2]),
       use_revin=st.booleans(), data=st.data())
def test_series_input_stage_is_finite_or_rejects_non_finite_input(batch, channels, length, bad, p, use_revin, data):
    x = torch.from_numpy(values_for(data, (batch, channels, length)))
    holes = torch.from_numpy(bool_grid(data, (batch, channels, length), p))
    x[holes] = bad
    encoder = SimpleNamespace(context_length=length, patch_length=4, stride=2, pad_end=False)
    revin = RevIN(affine=False) if use_revin else None
    if holes.any():
        kind = "NaN (variable-length padding?); load them with nan_to_zero=True" if bad != bad else "inf"
        with pytest.raises(ValueError, match=re.escape(f"series contain {kind}")):
            encoder_patches(x, encoder, revin)
        return
    patches = encoder_patches(x, encoder, revin)
    assert patches.shape == (batch, channels, (length - 4) // 2 + 1, 4) and torch.isfinite(patches).all()


@settings(max_examples=50, deadline=None)
@given(batch=st.integers(1, 3), channels=st.integers(1, 3), length=st.integers(1, 40), data=st.data())
def test_revin_is_finite_and_invertible_with_constant_channels(batch, channels, length, data):
    x = torch.from_numpy(values_for(data, (batch, channels, length))) + data.draw(st.sampled_from([0.0, 50.0, -1e5]))
    constant = torch.from_numpy(bool_grid(data, (batch, channels), 0.4))
    x[constant] = x[constant][:, :1].expand(-1, length)
    revin = RevIN(affine=False)
    y = revin.normalise(x)
    assert torch.isfinite(y).all()
    assert torch.equal(y[constant], torch.zeros_like(y[constant]))
    back = revin.denormalise(y)
    assert torch.equal(back[constant], x[constant])  # constant series come back bit for bit
    scale = x.abs().amax(dim=-1, keepdim=True) + 1e-3
    torch.testing.assert_close(back / scale, x / scale, atol=1e-5, rtol=0)
