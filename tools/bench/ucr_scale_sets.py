"""Generated UCR-layout sets at full scale, to time ``vtrep benchmark ucr`` on any set a user points it at.

    python tools/bench/ucr_scale_sets.py /tmp/ucr_scale/archive
    vtrep benchmark ucr --root /tmp/ucr_scale/archive --datasets '[ManyTest]' --seeds '[0]' --output /tmp/ucr_scale/out
    vtrep benchmark ucr --root /tmp/ucr_scale/archive --datasets '[LongSeries]' --seeds '[0]' --output /tmp/ucr_scale/out

* ``ManyTest``: 500 training and 8 500 test series of length 96, 10 classes (48 000 training values: 200
  iterations), for the probe's cost on a large test split;
* ``LongSeries``: 40 training and 40 test series of length 2 000–2 500, NaN-padded to 2 500, 4 classes
  (100 000 training values: still 200 iterations), for the fit's cost on long series.

Class ``k`` (label ``3k − 7``: negative and non-contiguous) is a sine of its own frequency with a random
phase and Gaussian noise, z-normalised per series as the UCR archive is. The sets are easy: their
accuracy says nothing about real data, only the times do. Write them outside the repository.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def write_set(root: Path, name: str, splits: list[tuple[str, int]], classes: int, width: int, min_length: int,
              seed: int) -> None:
    """``root/name/name_{TRAIN,TEST}.tsv`` with ``n`` series per split, lengths uniform in ``[min_length, width]``."""
    rng = np.random.default_rng(seed)
    (root / name).mkdir(parents=True, exist_ok=True)
    for split, n in splits:
        lines = []
        for i in range(n):
            k = i % classes
            length = int(rng.integers(min_length, width + 1))
            t = np.arange(length)
            v = np.sin(2 * np.pi * (1 + k) * t / (width / 4) + rng.uniform(0, 2 * np.pi)) + 0.3 * rng.normal(size=length)
            v = (v - v.mean()) / v.std()
            cells = [f"{x:.4f}" for x in v] + ["NaN"] * (width - length)
            lines.append("\t".join([str(3 * k - 7), *cells]))
        (root / name / f"{name}_{split}.tsv").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="folder to write the sets into (outside the repository)")
    root = parser.parse_args().root
    write_set(root, "ManyTest", [("TRAIN", 500), ("TEST", 8500)], classes=10, width=96, min_length=96, seed=0)
    write_set(root, "LongSeries", [("TRAIN", 40), ("TEST", 40)], classes=4, width=2500, min_length=2000, seed=1)
    print(f"wrote ManyTest and LongSeries under {root}")


if __name__ == "__main__":
    main()
