"""UCR / UEA classification archives in their own layout, read as TS2Vec reads them.

* ``<root>/<Name>/<Name>_TRAIN.tsv`` and ``_TEST.tsv`` (UCR 2018): label in the first column, one
  series per row, shorter series NaN-padded at the end;
* ``<root>/<Name>/<Name>_TRAIN.ts`` and ``_TEST.ts`` (sktime / aeon format, multivariate UEA sets):
  ``@`` header lines, then ``dim_0:dim_1:...:label`` rows of comma-separated values, ``?`` for missing.

Series come out as ``x (n, C, T)`` float32 with NaN where a series is shorter, labels as
``y (n,)`` int64 in ``0..K−1`` (sorted unique training labels, as TS2Vec). Normalisation follows
TS2Vec's ``datautils.py``: UCR sets already z-normalised per series are left as they are; the
2018 additions that are not (``NON_NORMALISED_UCR``) get one dataset-level z-score from training
statistics; multivariate sets get a per-channel z-score from training statistics.

Faults in the files follow these rules (messages name the file, the line and, for a value, its
position: ``value k`` counts from 1 after the label, ``dimension d`` is ``dim_d``):

* NaN after a series' last value is variable-length padding. Rows of one ``.tsv`` file must have
  one width (UCR pads them), else the line is rejected; ``.ts`` series and dimensions of different
  lengths, and train / test splits of different lengths, are NaN-padded at the end to the longest.
* NaN before a series' last value (``.ts``: ``?``) is a missing observation. It is kept as NaN, as
  TS2Vec keeps it: its encoder masks such steps. Models that cannot read NaN load with
  ``SeriesClassificationDataModule(nan_to_zero=True)``, which sets padding and gaps to 0.
* ``inf`` / ``-inf``, values beyond float32's range, empty fields and text are rejected.
* A series with no value at all, or (multivariate) with a dimension that has no value, is rejected:
  nothing could be learned from it and it would turn per-channel statistics into NaN.
* Constant series and channels stay finite: a zero standard deviation divides by 1 instead.
* Labels may be numbers or text. Numeric spellings of one value are one class (``1``, ``1.0``);
  classes are sorted, numbers by value first, then text, and numbered ``0..K−1``, so gaps in the
  label set (``1, 3, 7``) leave no empty class index. An empty or NaN label is rejected.
* ``K`` is the number of distinct training labels. A class absent from the test split is allowed; a
  test label absent from the training split, or a training split with a single class, is rejected.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vtrep.errors import UsageError

NON_NORMALISED_UCR = frozenset({
    "AllGestureWiimoteX", "AllGestureWiimoteY", "AllGestureWiimoteZ", "BME", "Chinatown", "Crop",
    "EOGHorizontalSignal", "EOGVerticalSignal", "Fungi", "GestureMidAirD1", "GestureMidAirD2", "GestureMidAirD3",
    "GesturePebbleZ1", "GesturePebbleZ2", "GunPointAgeSpan", "GunPointMaleVersusFemale", "GunPointOldVersusYoung",
    "HouseTwenty", "InsectEPGRegularTrain", "InsectEPGSmallTrain", "MelbournePedestrian", "PickupGestureWiimoteZ",
    "PigAirwayPressure", "PigArtPressure", "PigCVP", "PLAID", "PowerCons", "Rock", "SemgHandGenderCh2",
    "SemgHandMovementCh2", "SemgHandSubjectCh2", "ShakeGestureWiimoteZ", "SmoothSubspace", "UMD",
})


class SeriesFileError(UsageError):
    """A series file that cannot be read as the archive layout says; the message names file and problem."""


@dataclass
class LabelledSeries:
    """``x (n, C, T)`` float32 (NaN past the end of shorter series) and labels ``y (n,)`` int64."""

    x: np.ndarray
    y: np.ndarray


def _parse_label(text: str, path: Path, number: int) -> str:
    """Labels as canonical strings: ``"1"``, ``"1.0"`` and ``"1e0"`` are one class; empty or NaN is an error."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        if not text:
            raise SeriesFileError(f"{path}: line {number} has an empty label") from None
        return text
    if np.isnan(value):
        raise SeriesFileError(f"{path}: line {number} has the label {text!r}; every series needs a class label")
    return str(int(value)) if value.is_integer() else repr(value)


def _overflows(values: list[float]) -> np.ndarray:
    """Which values are infinite once stored as float32 (``inf`` itself, or beyond ±3.4e38)."""
    with np.errstate(over="ignore"):
        return np.isinf(np.asarray(values, dtype=np.float32))


def _parse_values(fields: list[str], path: Path, where: str, missing: str = "") -> list[float]:
    """Floats of ``fields`` (``missing`` reads as NaN); text or infinity is an error naming ``where`` and the value."""
    try:
        values = [np.nan if missing and v.strip() == missing else float(v) for v in fields]
    except ValueError:
        values = None
    if values is not None and not _overflows(values).any():
        return values
    for index, text in enumerate(fields, start=1):
        if missing and text.strip() == missing:
            continue
        try:
            bad = bool(_overflows([float(text)])[0])
        except ValueError:
            bad = True
        if bad:
            raise SeriesFileError(f"{path}: {where} value {index} is {text.strip()!r}; values must be finite "
                                  f"float32 numbers (missing values are {repr(missing) if missing else 'NaN'})")
    raise AssertionError("unreachable: a value failed to parse but none is bad")


def _check_series(x: np.ndarray, path: Path, rows: list[int]) -> None:
    """Reject series with no value at all, or a dimension with none (see the module docstring)."""
    empty = np.isnan(x).all(axis=2)  # (n, C)
    if empty.all(axis=1).any():
        row = int(np.argmax(empty.all(axis=1)))
        raise SeriesFileError(f"{path}: series on line {rows[row]} has no values (all NaN)")
    if empty.any():
        row, dim = (int(i) for i in np.argwhere(empty)[0])
        raise SeriesFileError(f"{path}: series on line {rows[row]} has no values in dimension {dim} (all NaN)")


def read_ucr_tsv(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``x (n, 1, T)`` float32 and raw string labels ``(n,)`` from a UCR ``.tsv`` file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"UCR file {path} does not exist")
    labels, rows, lines = [], [], []
    width = None
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.rstrip("\n").split("\t")
        if width is None:
            width = len(fields)
        elif len(fields) != width:
            raise SeriesFileError(f"{path}: line {number} has {len(fields)} fields, earlier lines have {width}; "
                                  "UCR files pad shorter series with NaN to one width")
        labels.append(_parse_label(fields[0], path, number))
        rows.append(_parse_values(fields[1:], path, f"line {number},"))
        lines.append(number)
    if not rows or width is None or width < 2:
        raise SeriesFileError(f"{path}: no series found")
    x = np.asarray(rows, dtype=np.float32)[:, None, :]
    _check_series(x, path, lines)
    return x, np.asarray(labels)


def _ts_header(lines: list[str], path: Path) -> int:
    """Index of the first data line after ``@data``; checks that the file has class labels."""
    for index, line in enumerate(lines):
        lowered = line.strip().lower()
        if lowered.startswith("@classlabel") and lowered.split()[1:2] == ["false"]:
            raise SeriesFileError(f"{path}: @classLabel is false; a classification set needs labels")
        if lowered.startswith("@data"):
            return index + 1
    raise SeriesFileError(f"{path}: no @data line; not a sktime/aeon .ts file")


def read_ts(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``x (n, C, T)`` float32 (NaN-padded) and raw string labels from a sktime/aeon ``.ts`` file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f".ts file {path} does not exist")
    lines = path.read_text().splitlines()
    start = _ts_header(lines, path)
    series, labels, numbers = [], [], []
    for number, line in enumerate(lines[start:], start=start + 1):
        if not line.strip() or line.startswith("#"):
            continue
        *dims, label = line.strip().split(":")
        if series and len(dims) != len(series[0]):
            raise SeriesFileError(f"{path}: line {number} has {len(dims)} dimensions, earlier lines have "
                                  f"{len(series[0])}")
        labels.append(_parse_label(label, path, number))
        series.append([_parse_values(dim.split(","), path, f"line {number}, dimension {d},", missing="?")
                       for d, dim in enumerate(dims)])
        numbers.append(number)
    if not series or not series[0]:
        raise SeriesFileError(f"{path}: no series found after @data")
    length = max(len(dim) for s in series for dim in s)
    x = np.full((len(series), len(series[0]), length), np.nan, dtype=np.float32)
    for i, s in enumerate(series):
        for c, dim in enumerate(s):
            x[i, c, : len(dim)] = dim
    _check_series(x, path, numbers)
    return x, np.asarray(labels)


def remap_labels(train: np.ndarray, test: np.ndarray, source: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Labels to ``0..K−1`` by sorted unique training label (TS2Vec); unseen test labels are an error.

    Numbers sort by value before text labels, which sort as strings; ``classes[k]`` is the label of ``k``.
    """
    classes = sorted(set(train.tolist()), key=lambda v: (not _is_number(v), float(v) if _is_number(v) else 0, v))
    index = {label: i for i, label in enumerate(classes)}
    unseen = sorted(set(test.tolist()) - set(index))
    if unseen:
        raise SeriesFileError(f"{source}: test labels {unseen} never occur in the training split")
    if len(classes) < 2:
        raise SeriesFileError(f"{source}: the training split has a single class {classes}; "
                              "classification needs at least two")
    return (np.asarray([index[v] for v in train], dtype=np.int64),
            np.asarray([index[v] for v in test], dtype=np.int64), classes)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def ts2vec_normalise(name: str, train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TS2Vec's rule (see module docstring); statistics come from the training split only."""
    if train.shape[1] > 1:
        mean = np.nanmean(train, axis=(0, 2), keepdims=True)
        std = np.nanstd(train, axis=(0, 2), keepdims=True)
    elif name in NON_NORMALISED_UCR:
        mean, std = np.nanmean(train), np.nanstd(train)
    else:
        return train, test
    std = np.where(std > 0, std, 1.0)
    return ((train - mean) / std).astype(np.float32), ((test - mean) / std).astype(np.float32)


def available_datasets(root: str | Path) -> list[str]:
    root = Path(root)
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def _split_files(root: str | Path, name: str):
    """``(reader, train file, test file)`` of dataset ``name`` under ``root`` (``.tsv`` preferred, else ``.ts``)."""
    folder = Path(root) / name
    if not folder.is_dir():
        raise FileNotFoundError(f"no dataset {name!r} under {root}; available: {', '.join(available_datasets(root))}")
    for suffix, reader in ((".tsv", read_ucr_tsv), (".ts", read_ts)):
        train_path, test_path = folder / f"{name}_TRAIN{suffix}", folder / f"{name}_TEST{suffix}"
        if train_path.is_file() and test_path.is_file():
            return reader, train_path, test_path
    raise FileNotFoundError(f"{folder} has neither {name}_TRAIN.tsv/_TEST.tsv nor {name}_TRAIN.ts/_TEST.ts")


def training_shape(root: str | Path, name: str) -> tuple[int, int, int]:
    """``(series, channels, width)`` of the training file alone, its NaN padding included.

    TS2Vec sizes its budget on this array (``train_data.size``), before any padding to the test split's width.
    """
    reader, train_path, _ = _split_files(root, name)
    n, channels, width = reader(train_path)[0].shape
    return int(n), int(channels), int(width)


def load_classification(root: str | Path, name: str, normalise: bool = True
                        ) -> tuple[LabelledSeries, LabelledSeries, list[str]]:
    """Train and test splits of dataset ``name`` under ``root`` (``.tsv`` preferred, else ``.ts``)."""
    folder = Path(root) / name
    reader, train_path, test_path = _split_files(root, name)
    (train_x, train_raw), (test_x, test_raw) = reader(train_path), reader(test_path)
    if train_x.shape[1:2] != test_x.shape[1:2]:
        raise SeriesFileError(f"{folder}: train has {train_x.shape[1]} channels, test has {test_x.shape[1]}")
    length = max(train_x.shape[2], test_x.shape[2])
    train_x, test_x = (np.pad(x, ((0, 0), (0, 0), (0, length - x.shape[2])), constant_values=np.nan)
                       for x in (train_x, test_x))
    train_y, test_y, classes = remap_labels(train_raw, test_raw, str(folder))
    if normalise:
        train_x, test_x = ts2vec_normalise(name, train_x, test_x)
    return LabelledSeries(train_x, train_y), LabelledSeries(test_x, test_y), classes
