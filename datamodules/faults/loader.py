"""A DataLoader that drops unusable videos from its batches and accounts for them in the main process.

Batches come out as the inner collate makes them (``(video, label)`` for video datasets), so tasks,
probes and Lightning see nothing new. The dataset must mark failures (``skip_bad_videos=True``); the
loader's :class:`~datamodules.faults.skips.SkipCollate` sends ``(batch, delivered, skipped)`` from the workers and this
class records ``skipped`` in a :class:`~datamodules.faults.tracker.SkipTracker` before yielding ``batch``.

A batch whose every item failed is replaced by one clip found by scanning the split from a moving
position, decoded in the main process: every process still takes its step (under DDP a rank that
skipped a step would leave the others waiting for it forever).
"""

from __future__ import annotations

from typing import Any, Iterator, Optional

from torch.utils.data import DataLoader

from datamodules.faults.skips import SkipCollate, SkippedVideo
from datamodules.faults.tracker import EpochSkips, SkipTracker


class SkippingLoader(DataLoader):
    """``DataLoader(dataset, **kwargs)`` whose passes are recorded in ``tracker`` under ``split``.

    Args:
        dataset: a map-style dataset whose ``__getitems__`` returns ``SkippedVideo`` markers for failures.
        tracker: where skips are counted and reported.
        split: the split's name in warnings and the report (``"train"``, ``"val"``).
        decode_timeout_s: only used to explain a DataLoader ``timeout`` (see the ``timeout`` argument).
        kwargs: as ``DataLoader``; ``collate_fn`` is the collate of the loadable items.
    """

    def __init__(self, dataset: Any, *args: Any, tracker: SkipTracker, split: str,
                 decode_timeout_s: Optional[float] = None, **kwargs: Any) -> None:
        collate = kwargs.pop("collate_fn", None)
        # Lightning re-creates loaders from their arguments (e.g. to add a DistributedSampler): not twice wrapped.
        kwargs["collate_fn"] = collate if isinstance(collate, SkipCollate) else SkipCollate(collate)
        super().__init__(dataset, *args, **kwargs)
        self.tracker, self.split, self.decode_timeout_s = tracker, split, decode_timeout_s
        self._next_substitute = 0

    def _planned(self) -> int:
        """Items this pass loads: the sampler's, less the partial batch that ``drop_last`` leaves out."""
        items = len(self.sampler)
        if self.batch_size and self.drop_last:
            items -= items % self.batch_size
        return items

    def __iter__(self) -> Iterator[Any]:
        return self._batches(self.tracker.begin(self.split, self._planned()))

    def _batches(self, record: EpochSkips) -> Iterator[Any]:
        total = len(self)
        try:
            iterator = super().__iter__()
            for index in range(total):
                try:
                    batch, delivered, skipped = next(iterator)
                except StopIteration:  # fewer batches than len() promised: an incomplete pass
                    return
                except RuntimeError as error:
                    self._explain_timeout(error)
                    raise
                self.tracker.record(record, delivered, skipped)
                if batch is None:
                    batch = self._substitute(record)
                if index == total - 1:
                    # Lightning stops asking once it has len(loader) batches: the pass ends here, not
                    # at a StopIteration that never comes.
                    self.tracker.end(record, complete=True)
                yield batch
        finally:
            self.tracker.end(record, complete=False)  # a pass abandoned early (no-op after a complete one)

    def _explain_timeout(self, error: RuntimeError) -> None:
        if "timed out" in str(error):
            raise RuntimeError(
                f"no batch of the {self.split} split arrived within the DataLoader timeout of {self.timeout:g} s: "
                f"a worker is stuck, probably in a decoder call that decode_timeout_s={self.decode_timeout_s} "
                "cannot interrupt (a single blocking C call). Find the file with num_workers=0 and "
                "remove it") from error

    def _substitute(self, record: EpochSkips) -> Any:
        """A batch of one loadable clip, scanning the split from where the last scan stopped."""
        size = len(self.dataset)
        for step in range(size):
            index = (self._next_substitute + step) % size
            item = self.dataset.__getitems__([index])[0]
            if not isinstance(item, SkippedVideo):
                self._next_substitute = index + 1
                record.substituted_batches += 1
                return self.collate_fn.inner([item])
        self.tracker.end(record, complete=False)
        raise RuntimeError(f"no video of the {self.split} split ({size} files) can be loaded; "
                           f"see the skipped-video warnings above")

