"""Token features on disk: safetensors shards with per-token metadata, streamed through a shuffling buffer.

A feature folder holds ``shard_00000.safetensors ...`` — each with ``features (rows, d)`` and
``meta (rows, M)`` int64 (e.g. ``clip, t, h, w, label`` for video tokens, ``series, channel, patch,
label`` for series) — and ``index.json`` (width, dtype, metadata names, rows per shard), written
last, so a folder without it is an unfinished extraction. Shards are memory-mapped when read, so a
dataset larger than memory streams: :class:`FeatureShards` visits shards in a fresh random order
each epoch, keeps up to ``buffer_rows`` rows in a buffer and yields random batches from it.
DataLoader workers, and under DDP the ranks, split the shards between them (a fixed split, so no
communication is needed); with more than one rank each reader yields the same number of full
batches — the fewest any reader's shards allow — because DDP hangs when one rank runs out of
batches before another.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from pathlib import Path

import lightning as L
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from datamodules.common.epoch_shuffle import rank_and_world
from datamodules.features.shuffle_buffer import ShuffleBuffer
from vtrep.io.atomic_write import atomic_write

INDEX = "index.json"


class FeatureShardWriter:
    """Append ``(features (n, d), meta (n, M))`` and write shards of ``shard_rows`` rows; :meth:`close` writes the index.

    Refuses a folder that already holds features, so an extraction never overwrites another.
    """

    def __init__(self, root: str | os.PathLike, meta_names: list[str], shard_rows: int = 1 << 18,
                 dtype: torch.dtype = torch.float32) -> None:
        self.root = Path(root)
        if (self.root / INDEX).exists() or any(self.root.glob("shard_*.safetensors")):
            raise FileExistsError(f"{self.root} already holds features; extract into a new folder")
        if shard_rows <= 0:
            raise ValueError(f"shard_rows must be a positive integer, got {shard_rows}")
        self.root.mkdir(parents=True, exist_ok=True)
        self.meta_names, self.shard_rows, self.dtype = list(meta_names), shard_rows, dtype
        self.pending: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.pending_rows, self.shards, self.width = 0, [], None

    def add(self, features: torch.Tensor, meta: torch.Tensor) -> None:
        if features.dim() != 2 or meta.shape != (features.shape[0], len(self.meta_names)):
            raise ValueError(f"expected features (n, d) and meta (n, {len(self.meta_names)}), got "
                             f"{tuple(features.shape)} and {tuple(meta.shape)}")
        if self.width is None:
            self.width = features.shape[1]
        elif features.shape[1] != self.width:
            raise ValueError(f"feature width changed from {self.width} to {features.shape[1]}")
        self.pending.append((features.detach().to("cpu", self.dtype), meta.detach().to("cpu", torch.long)))
        self.pending_rows += features.shape[0]
        while self.pending_rows >= self.shard_rows:
            self._flush(self.shard_rows)

    def _flush(self, rows: int) -> None:
        features = torch.cat([f for f, _ in self.pending])
        meta = torch.cat([m for _, m in self.pending])
        name = f"shard_{len(self.shards):05d}.safetensors"
        shard = {"features": features[:rows].contiguous(), "meta": meta[:rows].contiguous()}
        atomic_write(self.root / name, lambda tmp: save_file(shard, str(tmp)))
        self.shards.append({"file": name, "rows": rows})
        self.pending = [(features[rows:], meta[rows:])] if rows < len(features) else []
        self.pending_rows = len(features) - rows

    def close(self) -> Path:
        if self.pending_rows:
            self._flush(self.pending_rows)
        if not self.shards:
            raise ValueError("no features were added")
        index = {"width": self.width, "dtype": str(self.dtype).removeprefix("torch."), "meta": self.meta_names,
                 "shards": self.shards}
        (self.root / INDEX).write_text(json.dumps(index, indent=2))
        return self.root


def read_index(root: str | os.PathLike) -> dict:
    path = Path(root) / INDEX
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: not a feature folder, or its extraction did not finish")
    return json.loads(path.read_text())


def read_shard(root: str | os.PathLike, entry: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features, meta)`` of one shard (``entry`` from the index's ``shards``), memory-mapped."""
    with safe_open(str(Path(root) / entry["file"]), framework="pt") as handle:
        return handle.get_tensor("features"), handle.get_tensor("meta")


def load_features(root: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Every row of a feature folder in order, ``(features (rows, d) float32, meta (rows, M))`` — for
    folders that fit in memory, e.g. pooled features for a linear probe."""
    parts = [read_shard(root, entry) for entry in read_index(root)["shards"]]
    return torch.cat([f for f, _ in parts]).float(), torch.cat([m for _, m in parts])


class FeatureShards(IterableDataset):
    """Random batches ``{"features": (b, d), "meta": (b, M)}`` streamed from some shards of a feature folder.

    Args:
        root: the feature folder.
        shards: which shard numbers to read (``None``: all).
        batch_size: rows per batch (the last batch of an epoch may be smaller).
        buffer_rows: rows held for shuffling (a larger buffer mixes shards better).
        shuffle: random shard order and rows; ``False`` reads everything in order.
        shuffle_shards: with ``shuffle``, also visit the shards in a random order; ``False`` reads them in
            their stored order (rows still mix in the buffer) — replays an extraction in the order its items
            were encoded, e.g. the token stream an online run saw (:mod:`vtrep.eval.online_tokens`).
        seed: base seed; epoch ``e`` uses ``seed + e``.
        num_workers: the DataLoader's worker count (each worker reads its own shards).
        rank, world_size: this process's place in a distributed run (default: from ``torch.distributed``).
    """

    def __init__(self, root: str | os.PathLike, shards: list[int] | None = None, batch_size: int = 4096,
                 buffer_rows: int = 1 << 18, shuffle: bool = True, seed: int = 0, num_workers: int = 0,
                 rank: int | None = None, world_size: int | None = None, shuffle_shards: bool = True) -> None:
        self.root, self.index = Path(root), read_index(root)
        self.shards = list(range(len(self.index["shards"]))) if shards is None else list(shards)
        self.batch_size, self.buffer_rows, self.shuffle, self.seed = batch_size, buffer_rows, shuffle, seed
        self.shuffle_shards = shuffle_shards
        self.num_workers, self.rank, self.world_size = num_workers, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Shuffle as epoch ``epoch`` next (``SAETask`` calls it at each epoch start, so a resumed run
        reshuffles as the uninterrupted one did; without it each pass counts up from 0)."""
        self.epoch = epoch

    def __len__(self) -> int:
        rank, world = self._distributed()
        if world > 1:
            return self._per_reader_batches() * max(self.num_workers, 1)
        # each worker ends on its own short batch, so count per reader: ceil(all rows / batch) would be
        # too few with several workers, and torch warns when a loader yields more than its length
        readers = max(self.num_workers, 1)
        return sum(math.ceil(sum(self.index["shards"][s]["rows"] for s in self.shards[r::readers]) / self.batch_size)
                   for r in range(readers))

    def _distributed(self) -> tuple[int, int]:
        return (self.rank or 0, self.world_size) if self.world_size is not None else rank_and_world()

    def _readers(self) -> int:
        rank, world = self._distributed()
        readers = world * max(self.num_workers, 1)
        if world > 1 and readers > len(self.shards):
            raise ValueError(f"{len(self.shards)} shards cannot feed {world} ranks x {max(self.num_workers, 1)} "
                             "workers; extract with smaller shard_rows or use fewer workers")
        return readers

    def _per_reader_batches(self) -> int:
        """Under DDP every reader yields this many full batches: the fewest its shards allow."""
        readers = self._readers()
        return min(sum(self.index["shards"][s]["rows"] for s in self.shards[r::readers])
                   for r in range(readers)) // self.batch_size

    def __iter__(self):
        rank, world = self._distributed()
        worker = get_worker_info()
        if worker is not None and worker.num_workers != max(self.num_workers, 1):
            raise ValueError(f"FeatureShards(num_workers={self.num_workers}) read by {worker.num_workers} workers")
        reader = rank * max(self.num_workers, 1) + (0 if worker is None else worker.id)
        mine = self.shards[reader::self._readers()]  # a fixed split: every epoch a rank reads the same shards
        generator = torch.Generator().manual_seed(self.seed + self.epoch + 7919 * reader)
        self.epoch += 1
        order = [mine[i] for i in torch.randperm(len(mine), generator=generator)] if self.shuffle and self.shuffle_shards else mine
        batches = self._batches(order, generator)
        yield from batches if world == 1 else itertools.islice(batches, self._per_reader_batches())

    def _batches(self, order: list[int], generator: torch.Generator):
        buffer = ShuffleBuffer(self.batch_size, self.buffer_rows, generator if self.shuffle else None)
        for shard in order:
            features, meta = read_shard(self.root, self.index["shards"][shard])
            for batch in buffer.add({"features": features, "meta": meta}):
                yield self._batch(batch)
        for batch in buffer.drain():
            yield self._batch(batch)

    @staticmethod
    def _batch(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"features": batch["features"].float(), "meta": batch["meta"]}


class FeatureDataModule(L.LightningDataModule):
    """Training and validation batches of token features.

    Args:
        root: the training feature folder.
        batch_size: rows per batch.
        buffer_rows: rows held for shuffling.
        val_shards: the last ``val_shards`` shards of ``root`` validate instead of training (default 1,
            or 0 with ``val_root``).
        val_root: a second feature folder to validate on, e.g. the ``val`` split extracted separately
            (then clips never straddle training and validation).
        num_workers: DataLoader worker processes.
        seed: shuffling seed.
        shuffle_shards: visit the training shards in a random order each epoch (``False``: stored order).
    """

    def __init__(self, root: str, batch_size: int = 4096, buffer_rows: int = 1 << 18, val_shards: int | None = None,
                 val_root: str | None = None, num_workers: int = 0, seed: int = 0, shuffle_shards: bool = True) -> None:
        super().__init__()
        index = read_index(root)
        count = len(index["shards"])
        val_shards = (0 if val_root else 1) if val_shards is None else val_shards
        if not 0 <= val_shards < count:
            raise ValueError(f"val_shards must be in [0, {count - 1}] for a folder of {count} shards, got {val_shards}")
        if val_root is not None:
            val_index = read_index(val_root)
            if (val_index["width"], val_index["meta"]) != (index["width"], index["meta"]):
                raise ValueError(f"val_root={val_root!r} holds width {val_index['width']} / meta {val_index['meta']}, "
                                 f"root={root!r} width {index['width']} / meta {index['meta']}")
        self.root, self.val_root, self.batch_size, self.buffer_rows = root, val_root, batch_size, buffer_rows
        self.val_shards, self.num_workers, self.seed, self.count = val_shards, num_workers, seed, count
        self.width, self.shuffle_shards = int(index["width"]), shuffle_shards

    @property
    def feature_width(self) -> int:
        """The rows' width: ``vtrep fit`` gives it to the SAE as ``d_in`` (``vtrep.cli_links``)."""
        return self.width

    def train_dataloader(self) -> DataLoader:
        shards = list(range(self.count - self.val_shards))
        data = FeatureShards(self.root, shards, self.batch_size, self.buffer_rows, shuffle=True, seed=self.seed,
                             num_workers=self.num_workers, shuffle_shards=self.shuffle_shards)
        # persistent workers keep their dataset copy, so its epoch counter (the shuffle seed) advances
        return DataLoader(data, batch_size=None, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def val_dataloader(self) -> DataLoader:
        if self.val_root is not None:
            root, shards = self.val_root, None  # every shard
        else:
            root, shards = self.root, list(range(self.count - self.val_shards, self.count))
        data = FeatureShards(root, shards, self.batch_size, self.buffer_rows, shuffle=False,
                             num_workers=self.num_workers)
        return DataLoader(data, batch_size=None, num_workers=self.num_workers)
