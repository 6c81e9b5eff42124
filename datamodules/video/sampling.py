"""Choose which frames of a video form one clip (or, for multi-view testing, several), and what to do with
videos too short for one."""

from __future__ import annotations

from typing import Literal, Optional

import torch

from datamodules.faults.errors import TooShortError

SAMPLING_MODES = ("random", "center")
SHORT_CLIP_POLICIES = ("skip", "pad")
ShortClips = Literal["skip", "pad"]


def check_short_clips(policy: str) -> None:
    """``policy`` is one of :data:`SHORT_CLIP_POLICIES` (the ``short_clips`` parameter)."""
    if policy not in SHORT_CLIP_POLICIES:
        raise ValueError(f"short_clips must be one of {SHORT_CLIP_POLICIES}, got {policy!r}")


def frames_needed(num_frames: int, sampling_rate: int) -> int:
    """Frames a video needs so that a clip never repeats a frame: ``(num_frames - 1) * sampling_rate + 1``."""
    return (num_frames - 1) * sampling_rate + 1


def clip_indices(
    total_frames: int,
    num_frames: int,
    sampling_rate: int,
    mode: Literal["random", "center"],
    generator: Optional[torch.Generator] = None,
    short: ShortClips = "pad",
) -> list[int]:
    """Indices of ``num_frames`` frames spaced ``sampling_rate`` apart in a video of ``total_frames``.

    The clip covers a window of ``num_frames * sampling_rate`` frames (the VideoMAE convention)
    whose start is uniform over all positions that fit (``mode="random"``, drawn from
    ``generator`` or the global torch RNG, which DataLoader seeds differently per worker) or
    centred (``mode="center"``, deterministic).

    A video with fewer than :func:`frames_needed` frames is too short for a clip of distinct frames:
    ``short="pad"`` starts the window at frame 0 and clamps indices past the end to the last frame
    (the clip repeats its final frame); ``short="skip"`` raises :class:`TooShortError`.
    """
    for name, value in (("total_frames", total_frames), ("num_frames", num_frames),
                        ("sampling_rate", sampling_rate)):
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if mode not in SAMPLING_MODES:
        raise ValueError(f"mode must be one of {SAMPLING_MODES}, got {mode!r}")
    check_short_clips(short)
    needed = frames_needed(num_frames, sampling_rate)
    if short == "skip" and total_frames < needed:
        raise TooShortError(f"the video has {total_frames} frames, a clip of num_frames={num_frames} at "
                            f"sampling_rate={sampling_rate} needs {needed} (short_clips='skip')")
    max_start = _max_start(total_frames, num_frames, sampling_rate)
    if mode == "center":
        start = max_start // 2
    else:
        start = int(torch.randint(0, max_start + 1, (1,), generator=generator))
    return _clip_from(start, total_frames, num_frames, sampling_rate)


def _max_start(total_frames: int, num_frames: int, sampling_rate: int) -> int:
    return max(total_frames - num_frames * sampling_rate, 0)


def _clip_from(start: int, total_frames: int, num_frames: int, sampling_rate: int) -> list[int]:
    return [min(start + i * sampling_rate, total_frames - 1) for i in range(num_frames)]


def check_views(clips: int, crops: int) -> None:
    """``clips`` and ``crops`` (the multi-view test counts) are positive integers."""
    for name, value in (("clips", clips), ("crops", crops)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer (views per test video; 1 = the centre view), "
                             f"got {value!r}")


def view_starts(total_frames: int, num_frames: int, sampling_rate: int, clips: int) -> list[int]:
    """First frame of each of ``clips`` test clips: evenly spaced from the first start that fits to the last.

    VideoMAE's test protocol (``temporal_step = max((len - clip_span) / (clips - 1), 0)``, start ``int(i *
    step)``), in decoded frames rather than on its grid of every ``sampling_rate``-th frame. One clip is the
    centre clip of :func:`clip_indices`, so ``clips=1`` is the single-view protocol exactly. A video with fewer
    than ``clips`` possible starts repeats starts (a video no longer than one clip gives ``clips`` copies of
    its padded clip), as VideoMAE's loader does: no error, since a video's mean over identical views is that
    view's score.
    """
    check_views(clips, 1)
    max_start = _max_start(total_frames, num_frames, sampling_rate)
    if clips == 1:
        return [max_start // 2]
    return [int(i * max_start / (clips - 1)) for i in range(clips)]


def view_indices(total_frames: int, num_frames: int, sampling_rate: int, clips: int) -> list[int]:
    """The frames of :func:`view_starts`' clips, clip after clip: ``clips * num_frames`` indices."""
    return [index for start in view_starts(total_frames, num_frames, sampling_rate, clips)
            for index in _clip_from(start, total_frames, num_frames, sampling_rate)]
