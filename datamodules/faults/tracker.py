"""Count skipped videos per split and epoch, warn once per file, report, and stop when too many fail.

One :class:`SkipTracker` lives on a video datamodule (main process) and serves all its loaders. Each
pass of a loader over its split is an :class:`EpochSkips`; the loader records every batch in it and
ends it when the pass stops, and the report is rewritten then if the pass skipped anything.

The limit is checked after every batch: once more than ``max_skip_fraction`` × (the items the pass
loads) have failed, the pass is certain to end above the limit, so the run stops right there with
:class:`TooManySkippedVideos` (after writing the report) instead of finishing a doomed epoch. A pass cut
short (``limit_train_batches``, a crash) is checked against its full size, so it stops only when the
whole split is certain to exceed the limit.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from datamodules.faults.report import (
    EXAMPLES,
    format_examples,
    pass_label,
    write_skip_report,
)
from datamodules.faults.skips import SkippedVideo
from vtrep.errors import UserError


class SkippedVideoWarning(UserWarning):
    """A video was skipped (once per file per run) or an epoch skipped some (its summary)."""


class TooManySkippedVideos(UserError, RuntimeError):
    """More than ``max_skip_fraction`` of a split's videos could not be used."""


@dataclass
class SkipContext:
    """Where the run is: epoch number, Lightning stage (e.g. ``"sanity_check"``), report folder, rank."""

    epoch: Optional[int] = None
    stage: Optional[str] = None
    report_dir: Optional[Path] = None
    rank: int = 0
    world_size: int = 1


@dataclass
class EpochSkips:
    """One pass of a loader over ``split``: ``planned`` items, of which ``attempted`` were loaded or skipped."""

    split: str
    epoch: int
    stage: Optional[str]
    planned: int
    attempted: int = 0
    skipped: list[SkippedVideo] = field(default_factory=list)
    substituted_batches: int = 0
    complete: bool = False
    ended: bool = False

    @property
    def label(self) -> str:
        return pass_label(self.split, self.epoch, self.stage)

    @property
    def fraction(self) -> float:
        return len(self.skipped) / self.attempted if self.attempted else 0.0

    def as_dict(self, max_skip_fraction: float) -> dict[str, Any]:
        counts = Counter(s.path for s in self.skipped)
        files = {s.path: s for s in self.skipped}  # the last reason per file
        return {"split": self.split, "epoch": self.epoch, "stage": self.stage, "complete": self.complete,
                "planned": self.planned, "attempted": self.attempted, "skipped": len(self.skipped),
                "fraction": round(self.fraction, 6), "max_skip_fraction": max_skip_fraction,
                "substituted_batches": self.substituted_batches,
                "files": [{**files[p].as_dict(), "times": counts[p]} for p in sorted(files)]}


def check_fraction(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"max_skip_fraction must be a number in [0, 1] (0: stop at the first unusable video, "
                         f"1: never stop), got {value!r}")
    return float(value)


class SkipTracker:
    """Skip bookkeeping of one datamodule; see the module docstring.

    Args:
        max_skip_fraction: largest tolerated fraction of skipped videos per split and epoch, in [0, 1].
        context: where the run is (epoch, stage, report folder); called when a pass begins and ends.
    """

    def __init__(self, max_skip_fraction: float, context: Callable[[], SkipContext] = SkipContext) -> None:
        self.max_skip_fraction = check_fraction(max_skip_fraction)
        self.context = context
        self.history: list[EpochSkips] = []
        self._warned: set[str] = set()
        self._passes: Counter[str] = Counter()

    def begin(self, split: str, planned: int) -> EpochSkips:
        """Start a pass over ``split`` that will load ``planned`` items; an unfinished pass of it ends here."""
        for open_pass in [p for p in self.history if p.split == split and not p.ended]:
            self.end(open_pass, complete=False)
        where = self.context()
        epoch = where.epoch if where.epoch is not None else self._passes[split]
        self._passes[split] += 1
        record = EpochSkips(split, epoch, where.stage, planned)
        self.history.append(record)
        return record

    def record(self, record: EpochSkips, delivered: int, skipped: list[SkippedVideo]) -> None:
        """Count one batch: ``delivered`` items loaded and ``skipped`` failed."""
        record.attempted += delivered + len(skipped)
        record.skipped.extend(skipped)
        for item in skipped:
            if item.path not in self._warned:
                self._warned.add(item.path)
                warnings.warn(f"skipped video {item.path!r} ({item.kind}): {item.reason}", SkippedVideoWarning,
                              stacklevel=2)
        if len(record.skipped) > self.max_skip_fraction * record.planned:
            self._stop(record)

    def end(self, record: EpochSkips, complete: bool) -> None:
        """Finish a pass: write the report and warn a summary if anything was skipped."""
        if record.ended:
            return
        record.ended, record.complete = True, complete
        if not record.skipped:
            return
        path = self._write()
        where = f"; report: {path}" if path is not None else ""
        warnings.warn(f"{record.label}: skipped {len(record.skipped)} of {record.attempted} videos "
                      f"({record.fraction:.1%}){where}", SkippedVideoWarning, stacklevel=2)

    def report(self) -> list[dict[str, Any]]:
        """Every pass with skips so far, as written to the report."""
        return [p.as_dict(self.max_skip_fraction) for p in self.history if p.skipped]

    def _write(self) -> Optional[Path]:
        where = self.context()
        if where.report_dir is None:
            return None
        suffix = f".rank{where.rank}" if where.world_size > 1 else ""
        return write_skip_report(where.report_dir, self.report(), suffix)

    def _stop(self, record: EpochSkips) -> None:
        report = self._write()
        record.ended = True  # the error is this pass's summary; the loader's end() adds nothing
        unique = {s.path: s for s in record.skipped}
        examples = format_examples([unique[p] for p in sorted(unique)[:EXAMPLES]])
        more = f"; full list in {report}" if report is not None else ""
        skipped, planned = len(record.skipped), record.planned
        raise TooManySkippedVideos(
            f"{record.label}: {skipped} of its {planned} videos could not be used ({skipped / planned:.1%}), "
            f"more than max_skip_fraction={self.max_skip_fraction:g} allows. Skipped: {examples}{more}. "
            "Fix or remove these files, or raise max_skip_fraction (a number in [0, 1]; 1 never stops)")
