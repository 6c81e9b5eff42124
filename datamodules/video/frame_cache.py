"""Decode a video once, sample clips from its frames many times: an in-memory cache of whole decoded videos.

For small datasets visited for many epochs (the generated quickstart clips: 1 000 videos of 8 × 32 × 32,
6 MB decoded) the decode of every clip, every epoch, costs more than the training step itself. With a
cache each video is decoded once in full per process (a DataLoader worker keeps its own cache, which
lives as long as the worker: persistent workers keep it across epochs) and every later visit selects its
frames from memory — the same frames, since a clip's indices are chosen from the same frame count and
indices past the end read the last frame as :func:`~datamodules.video.decoding.read_clip` does.

The cache holds whole videos up to ``max_bytes`` in all; a video that does not fit is decoded per visit
as without a cache (nothing is evicted: for a dataset larger than the budget, keeping a fixed subset
hot is as good as any policy for a uniformly shuffled epoch, and never thrashes).
"""

from __future__ import annotations

from typing import Optional

import torch

from datamodules.video.decoding import Backend, FrameSelector, read_clip


class DecodedFrameCache:
    """Whole decoded videos ``(T, H, W, 3)`` uint8 by path, up to ``max_bytes`` in total.

    Args:
        max_bytes: memory budget for decoded frames in this process (0 caches nothing).
    """

    def __init__(self, max_bytes: int) -> None:
        if not isinstance(max_bytes, int) or max_bytes < 0:
            raise ValueError(f"max_bytes must be a non-negative integer, got {max_bytes!r}")
        self.max_bytes, self.used_bytes = max_bytes, 0
        self._videos: dict[str, torch.Tensor] = {}
        self._too_large: set[str] = set()

    def __len__(self) -> int:
        return len(self._videos)

    def read(self, path: str, select: FrameSelector, backend: Backend = "auto",
             timeout_s: Optional[float] = None) -> torch.Tensor:
        """The frames ``select(frame count)`` names, as :func:`read_clip` returns them, decoding ``path`` at most once."""
        frames = self._videos.get(path)
        if frames is None and path not in self._too_large and self.used_bytes < self.max_bytes:
            frames = self._decode_whole(path, backend, timeout_s)
        if frames is None:
            return read_clip(path, select, backend, timeout_s=timeout_s)
        total = frames.shape[0]
        # read_clip's selection rules: select sees the frame count, indices past the end read the last frame.
        indices = [min(int(i), total - 1) for i in select(total)]
        if not indices or min(indices) < 0:
            raise ValueError(f"the frame selection for {path!r} must be non-empty and non-negative, got {indices}")
        return frames[indices]

    def _decode_whole(self, path: str, backend: Backend, timeout_s: Optional[float]) -> Optional[torch.Tensor]:
        frames = read_clip(path, lambda total: range(total), backend, timeout_s=timeout_s)
        size = frames.numel() * frames.element_size()
        if self.used_bytes + size > self.max_bytes:
            self._too_large.add(path)
            return frames
        self._videos[path] = frames
        self.used_bytes += size
        return frames
