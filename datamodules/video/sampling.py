"""Choose which frames of a video form one clip, and what to do with videos too short for one."""

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
    max_start = max(total_frames - num_frames * sampling_rate, 0)
    if mode == "center":
        start = max_start // 2
    else:
        start = int(torch.randint(0, max_start + 1, (1,), generator=generator))
    return [min(start + i * sampling_rate, total_frames - 1) for i in range(num_frames)]
