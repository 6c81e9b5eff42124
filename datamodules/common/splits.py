"""Deterministic stratified train/val split of labelled samples."""

from __future__ import annotations

from typing import Sequence, TypeVar

import numpy as np

Sample = TypeVar("Sample", bound=tuple)


def stratified_split(
    samples: Sequence[Sample], val_fraction: float, seed: int = 0
) -> tuple[list[Sample], list[Sample]]:
    """Split ``(path, label, ...)`` samples into ``(train, val)`` class by class.

    Each class sends ``round(n * val_fraction)`` of its samples to val, but at least one to each
    split when it has two or more samples and ``val_fraction > 0``, so every class appears in both
    splits. The choice depends only on ``seed`` and the sample order; both lists keep input order.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    by_label: dict[int, list[int]] = {}
    for position, sample in enumerate(samples):
        by_label.setdefault(int(sample[1]), []).append(position)
    val_positions: set[int] = set()
    for label in sorted(by_label):
        positions = by_label[label]
        num_val = round(len(positions) * val_fraction)
        if val_fraction > 0 and len(positions) >= 2:
            num_val = min(max(num_val, 1), len(positions) - 1)
        # One generator per class keeps a class's split independent of the other classes.
        order = np.random.default_rng([seed, label]).permutation(len(positions))
        val_positions.update(positions[i] for i in order[:num_val])
    train = [s for i, s in enumerate(samples) if i not in val_positions]
    val = [s for i, s in enumerate(samples) if i in val_positions]
    return train, val
