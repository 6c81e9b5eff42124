"""Unusable videos as data: the marker a dataset returns in place of a clip, and the collate that drops them.

Decoding happens in DataLoader worker processes, so a skip has to travel back to the main process
with the batch: the dataset's ``__getitems__`` returns a :class:`SkippedVideo` for each item it
could not load, and :class:`SkipCollate` turns a list of items into ``(batch or None, delivered, skipped)``.
:class:`datamodules.faults.loader.SkippingLoader` unpacks that in the main process, where the
:class:`datamodules.faults.tracker.SkipTracker` counts, warns and reports.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any, Callable, Optional, Sequence

from torch.utils.data import default_collate

from datamodules.faults.errors import SelectionError, TooShortError, VideoDecodeError

# What loading a video may fail with and still be skipped; anything else (a bug in a transform, out
# of memory) propagates and stops the run.
SKIPPABLE_ERRORS = (VideoDecodeError, SelectionError, FileNotFoundError)
SKIP_KINDS = ("missing", "empty_file", "no_video_stream", "timeout", "too_short", "undecodable", "rejected")


@dataclass(frozen=True)
class SkippedVideo:
    """One item that could not be loaded: its file, a coarse ``kind`` (one of ``SKIP_KINDS``) and the error."""

    path: str
    kind: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _decode_kind(path: str, error: VideoDecodeError) -> str:
    reasons = list(error.reasons.values())
    if reasons and all(reason.startswith("DecodeTimeout") for reason in reasons):
        return "timeout"
    if any("no video stream" in reason or "cannot find video stream" in reason for reason in reasons):
        return "no_video_stream"
    try:
        if os.path.getsize(path) == 0:
            return "empty_file"
    except OSError:
        return "missing"
    return "undecodable"


def skipped_video(path: str, error: BaseException) -> SkippedVideo:
    """The marker for ``path`` that failed with ``error`` (one of ``SKIPPABLE_ERRORS``)."""
    if isinstance(error, TooShortError):
        kind = "too_short"
    elif isinstance(error, FileNotFoundError):
        kind = "missing"
    elif isinstance(error, VideoDecodeError):
        kind = _decode_kind(path, error)
    else:
        kind = "rejected"
    return SkippedVideo(str(path), kind, f"{type(error).__name__}: {error}")


def load_or_skip(load: Callable[[int], Any], path_of: Callable[[int], str], index: int) -> Any:
    """``load(index)``, or a :class:`SkippedVideo` if it fails with one of ``SKIPPABLE_ERRORS``."""
    try:
        return load(index)
    except SKIPPABLE_ERRORS as error:
        return skipped_video(path_of(index), error)


class SkipCollate:
    """Collate the loadable items with ``inner``; return ``(batch, delivered, skipped)``.

    ``delivered`` counts the loaded items (videos), whatever shape ``inner`` gives the batch (repeated
    sampling collates R clips per video). ``batch`` is ``None`` when every item was skipped (the loader then
    substitutes a batch, so every process still takes a step). A plain class, not a closure, so it pickles
    into spawned workers.
    """

    def __init__(self, inner: Optional[Callable[[list], Any]] = None) -> None:
        self.inner = inner if inner is not None else default_collate

    def __call__(self, items: Sequence[Any]) -> tuple[Optional[Any], int, list[SkippedVideo]]:
        skipped = [item for item in items if isinstance(item, SkippedVideo)]
        good = [item for item in items if not isinstance(item, SkippedVideo)]
        return (self.inner(good) if good else None), len(good), skipped
