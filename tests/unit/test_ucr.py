"""UCR ``.tsv`` and sktime ``.ts`` classification files, read as TS2Vec does."""

from pathlib import Path

import numpy as np
import pytest

from datamodules.series.ucr import (
    SeriesFileError,
    load_classification,
    read_ts,
    read_ucr_tsv,
    ts2vec_normalise,
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_variable_length_nan_padded_tsv(tmp_path):
    path = write(tmp_path / "a.tsv", "2\t1.0\t2.0\t3.0\n1.0\t4.0\tNaN\tNaN\n")
    x, labels = read_ucr_tsv(path)
    assert x.shape == (2, 1, 3) and x.dtype == np.float32
    assert np.isnan(x[1, 0, 1:]).all() and x[1, 0, 0] == 4.0
    assert labels.tolist() == ["2", "1"]


def test_inconsistent_rows_and_all_nan_series_are_named(tmp_path):
    bad = write(tmp_path / "bad.tsv", "1\t1.0\t2.0\n2\t3.0\n")
    with pytest.raises(SeriesFileError, match=r"bad.tsv: line 2 has 2 fields"):
        read_ucr_tsv(bad)
    empty = write(tmp_path / "empty.tsv", "1\t1.0\t2.0\n2\tNaN\tNaN\n")
    with pytest.raises(SeriesFileError, match=r"empty.tsv: series on line 2 has no values"):
        read_ucr_tsv(empty)


def test_ts_reader_multivariate_variable_length(tmp_path):
    text = ("# comment\n@problemName Toy\n@timeStamps false\n@univariate false\n@equalLength false\n"
            "@classLabel true up down\n@data\n1,2,3:4,5,6:up\n7,8:9,?:down\n")
    x, labels = read_ts(write(tmp_path / "t.ts", text))
    assert x.shape == (2, 2, 3) and labels.tolist() == ["up", "down"]
    assert x[1, 0].tolist()[:2] == [7.0, 8.0] and np.isnan(x[1, 0, 2]) and np.isnan(x[1, 1, 1:]).all()
    with pytest.raises(SeriesFileError, match="dimensions"):
        read_ts(write(tmp_path / "u.ts", "@classLabel true a b\n@data\n1,2:3,4:a\n1,2:b\n"))


def test_load_classification_remaps_labels_and_normalises(tmp_path):
    write(tmp_path / "Chinatown/Chinatown_TRAIN.tsv", "5\t10\t20\n-1\t30\t40\n")
    write(tmp_path / "Chinatown/Chinatown_TEST.tsv", "-1\t10\t10\n")
    train, test, classes = load_classification(tmp_path, "Chinatown")
    assert classes == ["-1", "5"] and train.y.tolist() == [1, 0] and test.y.tolist() == [0]
    # Chinatown is one of TS2Vec's non-normalised sets: dataset-level z-score from train statistics
    assert abs(float(train.x.mean())) < 1e-6 and abs(float(train.x.std()) - 1) < 1e-5
    with pytest.raises(FileNotFoundError, match="no dataset 'Nope'.*available: Chinatown"):
        load_classification(tmp_path, "Nope")


def test_normalisation_rule_leaves_z_normalised_sets_alone():
    train = np.random.default_rng(0).normal(3, 2, (4, 1, 10)).astype(np.float32)
    same_train, _ = ts2vec_normalise("GunPoint", train, train)
    assert same_train is train
    multi = np.random.default_rng(1).normal(3, 2, (4, 2, 10)).astype(np.float32)
    normed, _ = ts2vec_normalise("AnyUEA", multi, multi)
    np.testing.assert_allclose(normed.mean(axis=(0, 2)), 0, atol=1e-5)


def test_unseen_test_label_is_an_error(tmp_path):
    write(tmp_path / "X/X_TRAIN.tsv", "1\t1\t2\n")
    write(tmp_path / "X/X_TEST.tsv", "3\t1\t2\n")
    with pytest.raises(SeriesFileError, match=r"test labels \['3'\]"):
        load_classification(tmp_path, "X")


def test_real_ucr_archive(shared_dir):
    root = shared_dir / "data/UCRArchive_2018"
    if not root.is_dir():
        pytest.skip(f"UCR archive not found at {root}")
    train, test, classes = load_classification(root, "ArrowHead")
    assert train.x.shape == (36, 1, 251) and test.x.shape == (175, 1, 251) and len(classes) == 3


def test_unknown_dataset_name_lists_what_is_there(tmp_path):
    write(tmp_path / "Coffee/Coffee_TRAIN.tsv", "1\t1.0\n")
    with pytest.raises(FileNotFoundError, match=r"no dataset 'Cofee' under .*; available: Coffee"):
        load_classification(tmp_path, "Cofee")
