"""A map-style dataset of video clips, decoded on demand."""

from __future__ import annotations

from typing import Callable, Literal, Sequence

import torch
from torch.utils.data import Dataset

from datamodules.decoding import BACKENDS, read_clip
from datamodules.sampling import SAMPLING_MODES, clip_indices


class VideoClipDataset(Dataset):
    """One clip per video: ``(video (C, T, H, W) float32, label int)``.

    Each item opens its file anew (nothing decoder-related is held on the dataset), which keeps
    the dataset picklable and safe with forked DataLoader workers.

    Args:
        samples: ``(path, label)`` pairs.
        num_frames: frames per clip ``T``.
        sampling_rate: spacing between sampled frames.
        transform: uint8 frames ``(T, H, W, 3)`` to a float clip ``(C, T, H, W)``.
        mode: ``"random"`` clip offset (training) or ``"center"`` (evaluation).
        backend: decoder, see :func:`datamodules.decoding.read_frames`.
    """

    def __init__(
        self,
        samples: Sequence[tuple[str, int]],
        num_frames: int,
        sampling_rate: int,
        transform: Callable[[torch.Tensor], torch.Tensor],
        mode: Literal["random", "center"] = "random",
        backend: Literal["auto", "decord", "pyav"] = "auto",
    ) -> None:
        for name, value in (("num_frames", num_frames), ("sampling_rate", sampling_rate)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if mode not in SAMPLING_MODES:
            raise ValueError(f"mode must be one of {SAMPLING_MODES}, got {mode!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.samples = [(str(path), int(label)) for path, label in samples]
        self.num_frames, self.sampling_rate = num_frames, sampling_rate
        self.transform, self.mode, self.backend = transform, mode, backend

    def __len__(self) -> int:
        return len(self.samples)

    def _select(self, total_frames: int) -> list[int]:
        return clip_indices(total_frames, self.num_frames, self.sampling_rate, self.mode)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        frames = read_clip(path, self._select, self.backend)
        return self.transform(frames), label
