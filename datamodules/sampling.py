"""Choose which frames of a video form one clip."""

from __future__ import annotations

from typing import Literal, Optional

import torch

SAMPLING_MODES = ("random", "center")


def clip_indices(
    total_frames: int,
    num_frames: int,
    sampling_rate: int,
    mode: Literal["random", "center"],
    generator: Optional[torch.Generator] = None,
) -> list[int]:
    """Indices of ``num_frames`` frames spaced ``sampling_rate`` apart in a video of ``total_frames``.

    The clip covers a window of ``num_frames * sampling_rate`` frames (the VideoMAE convention)
    whose start is uniform over all positions that fit (``mode="random"``, drawn from
    ``generator`` or the global torch RNG, which DataLoader seeds differently per worker) or
    centred (``mode="center"``, deterministic).

    If the video is shorter than the window the window starts at frame 0 and indices past the end
    are clamped to the last frame, so the clip repeats its final frame rather than failing.
    """
    for name, value in (("total_frames", total_frames), ("num_frames", num_frames),
                        ("sampling_rate", sampling_rate)):
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if mode not in SAMPLING_MODES:
        raise ValueError(f"mode must be one of {SAMPLING_MODES}, got {mode!r}")
    max_start = max(total_frames - num_frames * sampling_rate, 0)
    if mode == "center":
        start = max_start // 2
    else:
        start = int(torch.randint(0, max_start + 1, (1,), generator=generator))
    return [min(start + i * sampling_rate, total_frames - 1) for i in range(num_frames)]
