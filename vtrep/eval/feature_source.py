"""Where a feature folder came from: ``source.json`` beside its shards, and the way back to the raw items.

An extraction records the encoder, the datamodule (class path + constructor arguments, paths made
absolute) and the split. Items are read in a fixed order (no shuffling), so the ``clip`` / ``series``
number in a token's metadata is the item's index in :func:`split_dataset` — which is how a concept
report fetches the frames or the series behind a latent's top tokens.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import lightning as L
from torch.utils.data import DataLoader, Dataset

from vtrep.errors import UsageError
from vtrep.io.atomic_write import atomic_write
from vtrep.io.class_paths import import_class

SOURCE = "source.json"
Split = Literal["train", "val", "test"]


def _datamodule_config(data: L.LightningDataModule) -> dict[str, Any]:
    if not data.hparams:
        raise ValueError(f"{type(data).__name__} does not save its constructor arguments (save_hyperparameters); "
                         "its features could not be traced back to their items")
    args = {}
    for name, value in dict(data.hparams).items():
        # relative paths would break once the report runs from another folder
        args[name] = str(Path(value).resolve()) if isinstance(value, str) and Path(value).exists() else value
    cls = type(data)
    return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": args}


def write_source(root: str | os.PathLike, kind: str, encoder: str, data: L.LightningDataModule, split: Split,
                 **extra: Any) -> Path:
    """Write ``root/source.json``; call it before the shard writer's ``close`` (``index.json`` stays last)."""
    record = {"kind": kind, "encoder": str(Path(encoder).resolve()), "data": _datamodule_config(data),
              "split": split, **extra}
    path = Path(root) / SOURCE
    text = json.dumps(record, indent=2, default=str)
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def read_source(root: str | os.PathLike) -> dict[str, Any]:
    path = Path(root) / SOURCE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: features extracted without `vtrep extract` cannot be traced "
                                "back to their clips or series")
    return json.loads(path.read_text())


def build_datamodule(config: dict[str, Any]) -> L.LightningDataModule:
    cls = import_class(config.get("class_path"), where="a features folder's source.json")
    return cls(**config.get("init_args", {}))


def _prepared(data: L.LightningDataModule, split: Split) -> L.LightningDataModule:
    """``data`` set up, after checking that it has ``split``."""
    if split not in ("train", "val", "test"):
        raise UsageError(f"split must be 'train', 'val' or 'test', got {split!r}")
    if hasattr(data, "feature_dataloader") and split == "test":
        raise UsageError(f"{type(data).__name__} has 'train' and 'val' splits, not 'test'")
    data.prepare_data()
    data.setup("fit")
    return data


def split_dataset(data: L.LightningDataModule, split: Split) -> Dataset:
    """The items of ``split`` in extraction order, with evaluation transforms (no augmentation)."""
    _prepared(data, split)
    if hasattr(data, "feature_dataloader"):  # video datamodules: centre clips, eval transform
        return data.feature_dataloader(split).dataset
    if hasattr(data, "windows"):  # forecasting windows
        return data.windows[split]
    if hasattr(data, "train_set"):  # classification: the test split is also the validation one
        return data.train_set if split == "train" else data.test_set
    raise ValueError(f"{type(data).__name__} has no known split datasets (feature_dataloader, windows or "
                     "train_set/test_set)")


def split_loader(data: L.LightningDataModule, split: Split, batch_size: int | None = None) -> DataLoader:
    """A one-pass, unshuffled loader over :func:`split_dataset`."""
    if hasattr(data, "feature_dataloader"):
        return _prepared(data, split).feature_dataloader(split, batch_size)
    return DataLoader(split_dataset(data, split), batch_size=batch_size or getattr(data, "batch_size", 32),
                      shuffle=False, num_workers=getattr(data, "num_workers", 0))


class SourceItems:
    """Random access to the raw items behind a feature folder: ``items[i]`` is the loader's item ``i``."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.source = read_source(root)
        self.data = build_datamodule(self.source["data"])
        self.dataset = split_dataset(self.data, self.source["split"])
        # items `vtrep extract` skipped as unreadable (no features): item number -> path, kind, reason
        self.skipped = {int(entry["item"]): entry for entry in self.source.get("skipped", [])}

    def __len__(self) -> int:
        return len(self.dataset)

    def name(self, index: int) -> str:
        """What a user recognises item ``index`` by: its file for clips, else its split and row."""
        samples = getattr(self.dataset, "samples", None)
        if samples is not None:
            path = Path(samples[index][0])
            return str(Path(path.parent.name) / path.name)  # <class folder>/<file>, unique in a folder dataset
        name = self.source.get("data", {}).get("init_args", {}).get("name")
        split = self.source["split"]
        return f"{name} {split} row {index + 1}" if name else f"{split} item {index}"

    def __getitem__(self, index: int):
        if not 0 <= index < len(self.dataset):
            raise IndexError(f"item {index} is outside the {len(self.dataset)} items of split "
                             f"{self.source['split']!r}")
        if index in self.skipped:
            entry = self.skipped[index]
            raise ValueError(f"item {index} ({entry['path']}) was skipped at extraction ({entry['kind']}): it has "
                             "no features")
        return self.dataset[index]
