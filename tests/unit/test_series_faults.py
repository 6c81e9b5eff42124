"""Faults in time-series files and inputs: each is handled by a documented rule or rejected by name.

Rules: ``datamodules/series/ucr.py`` and ``datamodules/series/forecasting_csv.py`` module docstrings, ``RevIN``.
"""

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.series.datamodule import SeriesClassificationDataModule
from datamodules.series.forecasting_csv import forecasting_splits, read_forecasting_csv
from datamodules.series.ucr import (
    SeriesFileError,
    load_classification,
    read_ts,
    read_ucr_tsv,
    ts2vec_normalise,
)
from vtrep.layers.revin import RevIN

TS_HEADER = "@problemName Toy\n@classLabel true a b\n@data\n"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def write_ucr(root: Path, name: str, train: str, test: str) -> Path:
    write(root / name / f"{name}_TRAIN.tsv", train)
    write(root / name / f"{name}_TEST.tsv", test)
    return root / name


def csv_text(rows: list[str], header: str = "date,A,OT") -> str:
    return "\n".join([header, *rows]) + "\n"


# --- NaN and inf --------------------------------------------------------------------------------------------------

def test_interior_nan_is_kept_as_missing_and_trailing_nan_as_padding(tmp_path):
    x, _ = read_ucr_tsv(write(tmp_path / "g.tsv", "1\t1.0\tNaN\t3.0\tNaN\n2\tnan\t5.0\t6.0\t7.0\n"))
    np.testing.assert_array_equal(np.isnan(x[:, 0]), [[False, True, False, True], [True, False, False, False]])
    assert x[0, 0, 2] == 3.0 and x[1, 0, 3] == 7.0


@pytest.mark.parametrize("value", ["inf", "-inf", "Infinity", "1e39"])
def test_ucr_inf_is_rejected_naming_file_line_and_value(tmp_path, value):
    path = write(tmp_path / "inf.tsv", f"1\t1.0\t2.0\n2\t3.0\t{value}\n")
    message = (f"{path}: line 2, value 2 is {value!r}; values must be finite float32 numbers "
               "(missing values are NaN)")
    with pytest.raises(SeriesFileError, match=re.escape(message)):
        read_ucr_tsv(path)


def test_ucr_text_and_empty_values_are_rejected_by_position(tmp_path):
    path = write(tmp_path / "t.tsv", "1\t1.0\tabc\t2.0\n")
    with pytest.raises(SeriesFileError, match=re.escape(f"{path}: line 1, value 2 is 'abc'; values must be finite")):
        read_ucr_tsv(path)
    path = write(tmp_path / "e.tsv", "1\t1.0\t2.0\t\n")
    with pytest.raises(SeriesFileError, match=re.escape(f"{path}: line 1, value 3 is ''")):
        read_ucr_tsv(path)


def test_ts_inf_is_rejected_naming_dimension(tmp_path):
    path = write(tmp_path / "i.ts", TS_HEADER + "1,2:3,4:a\n1,2:3,inf:b\n")
    message = f"{path}: line 5, dimension 1, value 2 is 'inf'; values must be finite float32 numbers " \
              "(missing values are '?')"
    with pytest.raises(SeriesFileError, match=re.escape(message)):
        read_ts(path)


def test_forecasting_csv_rejects_nan_inf_empty_and_text_naming_line_and_column(tmp_path):
    for bad in ("nan", "inf", "", "n/a"):
        path = write(tmp_path / "f.csv", csv_text(["2020-01-01 00:00:00,1,2", f"2020-01-01 01:00:00,3,{bad}"]))
        message = (f"{path}: line 3, column 'OT': value {bad!r} is not a finite number; "
                   "forecasting needs a value at every step (fill gaps before loading)")
        with pytest.raises(ValueError, match=re.escape(message)):
            read_forecasting_csv(path)


def test_forecasting_csv_line_numbers_count_blank_lines(tmp_path):
    path = write(tmp_path / "b.csv", "date,A\n2020-01-01 00:00:00,1\n\n2020-01-01 02:00:00,x\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}: line 4, column 'A': value 'x'")):
        read_forecasting_csv(path)


def test_forecasting_csv_bad_date_names_the_column(tmp_path):
    path = write(tmp_path / "d.csv", csv_text(["yesterday,1,2"]))
    with pytest.raises(ValueError, match=re.escape(f"{path}: line 2, column 'date': Invalid isoformat string")):
        read_forecasting_csv(path)


def test_unused_columns_may_hold_anything(tmp_path):
    path = write(tmp_path / "u.csv", csv_text(["2020-01-01 00:00:00,1,station-7"], header="date,A,site"))
    assert read_forecasting_csv(path, channels=["A"]).values.tolist() == [[1.0]]


# --- all-NaN rows -------------------------------------------------------------------------------------------------

def test_all_nan_series_is_rejected_naming_the_line(tmp_path):
    path = write(tmp_path / "a.tsv", "1\t1.0\t2.0\n\n2\tNaN\tNaN\n")
    with pytest.raises(SeriesFileError, match=re.escape(f"{path}: series on line 3 has no values (all NaN)")):
        read_ucr_tsv(path)


def test_multivariate_series_with_an_empty_dimension_is_rejected(tmp_path):
    path = write(tmp_path / "m.ts", TS_HEADER + "1,2:3,4:a\n5,6:?,?:b\n")
    with pytest.raises(SeriesFileError, match=re.escape(f"{path}: series on line 5 has no values in dimension 1 "
                                                        "(all NaN)")):
        read_ts(path)


# --- constant series ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [0.0, 7.25, -3e4, 1e30, 3e38, 1e-40])
@pytest.mark.parametrize("affine", [False, True])
def test_revin_constant_series_is_finite_and_round_trips_exactly(value, affine):
    x = torch.full((2, 3, 17), value)
    revin = RevIN(3, affine=affine)
    with torch.no_grad():
        if affine:
            revin.weight.copy_(torch.tensor([2.0, 0.5, 1.5]))
            revin.bias.copy_(torch.tensor([0.1, -0.3, 0.0]))
    y = revin.normalise(x)
    expected = revin.bias.detach()[None, :, None].expand_as(x) if affine else torch.zeros_like(x)
    assert torch.equal(y, expected)  # zero deviation: exactly 0, then the affine bias
    assert torch.equal(revin.denormalise(y), x)


def test_revin_rejects_empty_series():
    with pytest.raises(ValueError, match=re.escape("RevIN needs series x (B, C, T) with T >= 1, got shape (2, 3, 0)")):
        RevIN(affine=False).normalise(torch.zeros(2, 3, 0))


def test_constant_channels_standardise_to_zero_not_nan(tmp_path):
    rows = [f"2020-01-{1 + i // 24:02d} {i % 24:02d}:00:00,5.0,{i}" for i in range(40)]
    table = read_forecasting_csv(write(tmp_path / "c.csv", csv_text(rows)))
    windows, mean, std = forecasting_splits(table, "ratio", 4, 2)
    assert std[0] == 1.0 and mean[0] == 5.0
    context, _ = windows["train"][0]
    assert torch.equal(context[0], torch.zeros(4))
    constant = np.full((3, 2, 5), 4.0, dtype=np.float32)
    for name in ("Chinatown", "AnyUEA"):  # dataset-level and per-channel z-score
        train, _ = ts2vec_normalise(name, constant, constant)
        assert np.array_equal(train, np.zeros_like(constant)), name


# --- mixed lengths ------------------------------------------------------------------------------------------------

def test_mixed_lengths_are_padded_at_the_end(tmp_path):
    x, _ = read_ts(write(tmp_path / "v.ts", TS_HEADER + "1,2,3:4:a\n5:6,7:b\n"))
    assert x.shape == (2, 2, 3)
    np.testing.assert_array_equal(np.isnan(x), [[[0, 0, 0], [0, 1, 1]], [[0, 1, 1], [0, 0, 1]]])
    write_ucr(tmp_path, "Mixed", "1\t1\t2\t3\t4\n2\t5\t6\t7\t8\n", "1\t1\t2\n")  # test split is shorter
    train, test, _ = load_classification(tmp_path, "Mixed", normalise=False)
    assert train.x.shape == (2, 1, 4) and test.x.shape == (1, 1, 4)
    np.testing.assert_array_equal(test.x[0, 0], [1.0, 2.0, np.nan, np.nan])


def test_rows_of_different_widths_are_rejected(tmp_path):
    path = write(tmp_path / "w.tsv", "1\t1.0\t2.0\n2\t3.0\n")
    message = f"{path}: line 2 has 2 fields, earlier lines have 3; UCR files pad shorter series with NaN to one width"
    with pytest.raises(SeriesFileError, match=re.escape(message)):
        read_ucr_tsv(path)
    csv_path = write(tmp_path / "w.csv", csv_text(["2020-01-01 00:00:00,1,2", "2020-01-01 01:00:00,3"]))
    with pytest.raises(ValueError, match=re.escape(f"{csv_path}: line 3 has 2 fields, the header has 3")):
        read_forecasting_csv(csv_path)


def test_nan_to_zero_makes_padding_and_gaps_zero_after_normalising(tmp_path):
    write_ucr(tmp_path, "Chinatown", "1\t1\tNaN\t3\tNaN\n2\t5\t6\t7\t8\n", "2\t2\t4\tNaN\tNaN\n")
    data = SeriesClassificationDataModule(str(tmp_path), "Chinatown", batch_size=2, nan_to_zero=True)
    data.setup("fit")
    x, _ = data.train_set.tensors
    assert torch.isfinite(x).all() and x[0, 0, 1] == 0 and x[0, 0, 3] == 0
    kept = SeriesClassificationDataModule(str(tmp_path), "Chinatown", batch_size=2)
    kept.setup("fit")
    assert torch.isnan(kept.train_set.tensors[0]).sum() == 2 and torch.isnan(kept.test_set.tensors[0]).sum() == 2


# --- labels and classes -------------------------------------------------------------------------------------------

def test_string_labels_map_to_sorted_contiguous_ids(tmp_path):
    write_ucr(tmp_path, "S", "walk\t1\t2\nrun\t3\t4\n10\t5\t6\n2.0\t7\t8\nrun\t1\t1\n", "walk\t1\t2\n2\t3\t4\n")
    train, test, classes = load_classification(tmp_path, "S", normalise=False)
    assert classes == ["2", "10", "run", "walk"]  # numbers by value, then text
    assert train.y.tolist() == [3, 2, 1, 0, 2] and test.y.tolist() == [3, 0]


def test_label_gaps_leave_no_empty_class_and_test_may_miss_a_class(tmp_path):
    write_ucr(tmp_path, "G", "7\t1\t2\n1\t3\t4\n3\t5\t6\n", "1\t1\t2\n1\t3\t4\n")
    data = SeriesClassificationDataModule(str(tmp_path), "G", batch_size=2, normalise=False)
    data.setup("fit")
    assert data.classes == ["1", "3", "7"] and data.num_classes == 3
    assert data.train_set.tensors[1].tolist() == [2, 0, 1] and data.test_set.tensors[1].tolist() == [0, 0]


def test_test_label_unseen_in_training_is_rejected(tmp_path):
    folder = write_ucr(tmp_path, "U", "1\t1\t2\n2\t1\t2\n", "3\t1\t2\nx\t1\t2\n")
    with pytest.raises(SeriesFileError, match=re.escape(f"{folder}: test labels ['3', 'x'] never occur in the "
                                                        "training split")):
        load_classification(tmp_path, "U")


def test_single_training_class_is_rejected(tmp_path):
    folder = write_ucr(tmp_path, "One", "1\t1\t2\n1.0\t3\t4\n", "1\t1\t2\n")
    message = f"{folder}: the training split has a single class ['1']; classification needs at least two"
    with pytest.raises(SeriesFileError, match=re.escape(message)):
        load_classification(tmp_path, "One")


@pytest.mark.parametrize("label, problem", [("NaN", "has the label 'NaN'; every series needs a class label"),
                                            ("", "has an empty label")])
def test_missing_labels_are_rejected(tmp_path, label, problem):
    path = write(tmp_path / "l.tsv", f"1\t1\t2\n{label}\t3\t4\n")
    with pytest.raises(SeriesFileError, match=re.escape(f"{path}: line 2 {problem}")):
        read_ucr_tsv(path)
