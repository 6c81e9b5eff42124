"""The shuffling buffer between a stream of token chunks and an SAE's random batches.

Chunks (a shard read from disk, or the tokens of one encoder batch) are appended to the buffer; after
each chunk the whole buffer is permuted once, and full batches are taken from its front while more than
``buffer_rows`` rows would remain, so rows of this chunk and earlier ones mix. :meth:`drain` empties
it at the end of a pass (the last batch may be short). Without shuffling nothing is held back and rows
keep their order. The shard reader (:class:`~datamodules.features.shards.FeatureShards`) and online
training from a live encoder (:mod:`vtrep.eval.online_tokens`) both use it, so the same chunks and the
same generator give the same batches.
"""

from __future__ import annotations

from typing import Iterator

import torch

Columns = dict[str, torch.Tensor]


class ShuffleBuffer:
    """Named columns with a shared first axis (``features (n, ...)``, ``meta (n, M)``) in, batches out.

    Args:
        batch_size: rows per batch.
        buffer_rows: rows kept back for mixing (ignored without ``generator``).
        generator: the permutations' source; ``None`` keeps the stream's order.
    """

    def __init__(self, batch_size: int, buffer_rows: int, generator: torch.Generator | None) -> None:
        if batch_size <= 0 or buffer_rows < 0:
            raise ValueError(f"batch_size must be > 0 and buffer_rows >= 0, got {batch_size} and {buffer_rows}")
        self.batch_size, self.generator = batch_size, generator
        self.keep = buffer_rows if generator is not None else 0
        self.columns: Columns | None = None

    def __len__(self) -> int:
        return 0 if self.columns is None else len(next(iter(self.columns.values())))

    def add(self, columns: Columns) -> Iterator[Columns]:
        """Append one chunk and yield every batch that can leave the buffer now."""
        lengths = {name: len(value) for name, value in columns.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"a chunk's columns must have the same number of rows, got {lengths}")
        if self.columns is None:
            self.columns = dict(columns)
        else:
            if columns.keys() != self.columns.keys():
                raise ValueError(f"a chunk has columns {sorted(columns)}, the buffer {sorted(self.columns)}")
            self.columns = {name: torch.cat([self.columns[name], value]) for name, value in columns.items()}
        if self.generator is not None:
            pick = torch.randperm(len(self), generator=self.generator)
            self.columns = {name: value[pick.to(value.device)] for name, value in self.columns.items()}
        while len(self) >= self.keep + self.batch_size:
            yield self._take()

    def drain(self) -> Iterator[Columns]:
        """Yield what is left, in batches (the last one may be short)."""
        while len(self):
            yield self._take()

    def _take(self) -> Columns:
        batch = {name: value[:self.batch_size] for name, value in self.columns.items()}
        self.columns = {name: value[self.batch_size:] for name, value in self.columns.items()}
        return batch
