"""``vtrep extract`` over video files: an unreadable video is skipped and reported, as ``vtrep fit`` does.

Features are matched to clips by number, so a skipped video is never replaced by another: its clip number
(its index in the split, :func:`~vtrep.eval.feature_source.split_dataset`) stays unused, the other clips keep
theirs, and ``source.json`` lists the skipped items with their files (``SourceItems.skipped``). The rules are
fit's (:mod:`datamodules.faults`): the same skippable errors and kinds, each file warned about once, and the
extraction stops with ``TooManySkippedVideos`` once more than the datamodule's ``max_skip_fraction`` of the
split failed. Short clips are padded, as extraction always does, not skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.faults.report import write_skip_report
from datamodules.faults.skips import SkipCollate, load_or_skip
from datamodules.faults.tracker import SkipContext, SkipTracker, TooManySkippedVideos
from vtrep.eval.extract import ItemBatch


class NumberedItems(Dataset):
    """Item ``i`` of a video-file dataset as ``(i, item)``, or a ``SkippedVideo`` marker when it cannot be loaded."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def _path(self, index: int) -> str:
        return str(self.dataset.samples[index][0])

    def _load(self, index: int) -> tuple[int, Any]:
        return index, self.dataset[index]

    def __getitem__(self, index: int) -> Any:
        return load_or_skip(self._load, self._path, index)


class NumberedCollate:
    """``[(i, item), ...]`` → :class:`ItemBatch`; a class, not a closure, so it pickles into workers."""

    def __init__(self, inner: Callable[[list], Any]) -> None:
        self.inner = inner

    def __call__(self, pairs: list[tuple[int, Any]]) -> ItemBatch:
        return ItemBatch(torch.tensor([i for i, _ in pairs], dtype=torch.long), self.inner([item for _, item in pairs]))


def skips_bad_videos(data: Any, loader: DataLoader) -> bool:
    """Whether ``loader`` reads video files (``dataset.samples``) of a datamodule with fit's skip rules."""
    return hasattr(getattr(loader, "dataset", None), "samples") and hasattr(data, "skip_tracker")


class SkippingExtraction:
    """One pass over ``loader``'s split that leaves bad videos out; iterate it for :class:`ItemBatch` es.

    Args:
        loader: the one-pass loader of the split (its dataset, batch size, workers and timeout are kept).
        max_skip_fraction: the datamodule's limit (``VideoDataModule(max_skip_fraction=...)``).
        split: the split's name in warnings and the report.
    """

    def __init__(self, loader: DataLoader, max_skip_fraction: float, split: str) -> None:
        self.items = NumberedItems(loader.dataset)
        self.loader = DataLoader(self.items, batch_size=loader.batch_size, shuffle=False,
                                 num_workers=loader.num_workers, timeout=loader.timeout,
                                 collate_fn=SkipCollate(NumberedCollate(loader.collate_fn)))
        # no report folder during the pass: the output folder exists only once the extraction succeeded
        self.tracker = SkipTracker(max_skip_fraction, lambda: SkipContext(stage="extract"))
        self.split = split
        self.skipped: list[dict[str, Any]] = []

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[ItemBatch]:
        record = self.tracker.begin(self.split, len(self.items))
        complete = False
        try:
            for batch, delivered, skipped in self.loader:
                self.tracker.record(record, delivered, skipped)
                if batch is not None:
                    yield batch
            complete = True
        finally:
            self.tracker.end(record, complete)
        by_path = {s.path: s for s in record.skipped}
        self.skipped = [{"item": i, **by_path[self.items._path(i)].as_dict()} for i in range(len(self.items))
                        if self.items._path(i) in by_path]  # a file listed twice is skipped as both items
        if len(self.skipped) == len(self.items):
            raise TooManySkippedVideos(f"no video of the {self.split} split ({len(self.items)} files) could be "
                                       "loaded: every one was skipped (see the warnings above); nothing was written")

    def write_report(self, folder: Path) -> Path | None:
        """``skipped_videos.json`` / ``.txt`` (fit's report) into ``folder`` when anything was skipped."""
        return write_skip_report(folder, self.tracker.report()) if self.skipped else None
