"""The series a TS2Vec fit trains on, prepared from the training split as TS2Vec's ``fit`` prepares them.

TS2Vec (``ts2vec.py``, ``fit``) reshapes its training array before the first batch:

1. ``max_train_length`` (3000 in its ``train.py``): a split of length ``T`` with ``T // L ≥ 2`` is cut
   along time into ``T // L`` near-equal pieces (``np.array_split``), the shorter ones NaN-padded at
   the end to the first one's length, and the pieces of all series become the training set. A
   length between ``L`` and ``2L`` is not cut: each batch is then cropped to ``L`` at a random
   offset by the task (:class:`~vtrep.tasks.TS2VecTask`'s ``max_train_length``).
2. Variable-length series are centred: each series is rotated so that its NaN steps (steps with
   every channel NaN) are split evenly before and after the observed part. TS2Vec does this only
   when some series starts or ends with such a step; for every other set the rotation is zero, so
   doing it always is the same rule.
3. Series that are NaN everywhere (pieces cut from padding) are dropped.

The labelled split used to evaluate the encoder keeps the whole, uncentred series, as TS2Vec's
``encode`` sees them.
"""

from __future__ import annotations

import numpy as np


def split_long_series(x: np.ndarray, y: np.ndarray, max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """``x (n, C, T)`` → ``(n·k, C, ⌈T/k⌉)`` pieces with ``k = T // max_length`` when ``k ≥ 2``; labels follow.

    Pieces are stacked piece-major (every series' first piece, then every second piece), as TS2Vec's
    ``np.concatenate(split_with_nan(...), axis=0)``.
    """
    if max_length < 1:
        raise ValueError(f"max_train_length must be >= 1, got {max_length}")
    sections = x.shape[-1] // max_length
    if sections < 2:
        return x, y
    pieces = np.array_split(x, sections, axis=-1)
    width = pieces[0].shape[-1]
    padded = [np.pad(p, ((0, 0), (0, 0), (0, width - p.shape[-1])), constant_values=np.nan) for p in pieces]
    return np.concatenate(padded), np.tile(y, sections)


def centre_series(x: np.ndarray) -> np.ndarray:
    """Rotate each series of ``x (n, C, T)`` so its leading and trailing all-NaN steps are balanced.

    A series with ``a`` leading and ``b`` trailing empty steps moves right by ``(a + b) // 2 − a``
    steps (cyclically, so only NaN steps wrap around), TS2Vec's ``centerize_vary_length_series``.
    """
    empty = np.isnan(x).all(axis=1)  # (n, T)
    leading = np.argmax(~empty, axis=1)
    trailing = np.argmax(~empty[:, ::-1], axis=1)
    shift = (leading + trailing) // 2 - leading
    source = (np.arange(x.shape[-1])[None, :] - shift[:, None]) % x.shape[-1]
    return np.take_along_axis(x, source[:, None, :], axis=2)


def ts2vec_fit_series(x: np.ndarray, y: np.ndarray, max_train_length: int | None = None,
                      centre: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The training series of a TS2Vec fit (module docstring): split, centred, all-NaN series dropped."""
    if max_train_length is not None:
        x, y = split_long_series(x, y, max_train_length)
    if centre:
        x = centre_series(x)
    observed = ~np.isnan(x).all(axis=(1, 2))
    if not observed.any():
        raise ValueError("every training series is NaN everywhere; there is nothing to train on")
    return np.ascontiguousarray(x[observed]), y[observed]
