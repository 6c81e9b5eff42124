"""A map-style dataset of video clips, decoded on demand."""

from __future__ import annotations

from typing import Any, Callable, Literal, Optional, Sequence

import torch
from torch.utils.data import Dataset, default_collate

from datamodules.faults.skips import load_or_skip
from datamodules.faults.time_limit import check_timeout
from datamodules.video.decoding import BACKENDS, Backend, read_clip
from datamodules.video.frame_cache import DecodedFrameCache
from datamodules.video.sampling import (
    SAMPLING_MODES,
    ShortClips,
    check_short_clips,
    check_views,
    clip_indices,
    view_indices,
)


REPEAT_MODES = ("independent", "shared_frames")
RepeatMode = Literal["independent", "shared_frames"]


def check_repeats(repeats: int, repeat_mode: str) -> None:
    """``repeats`` is a positive integer and ``repeat_mode`` one of :data:`REPEAT_MODES`."""
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer (clips drawn per decoded video; 1 = no repeated "
                         f"sampling), got {repeats!r}")
    if repeat_mode not in REPEAT_MODES:
        raise ValueError(f"repeat_mode must be one of {REPEAT_MODES}, got {repeat_mode!r}")


def collate_repeats(items: Sequence[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Items ``(clips (R, C, T, H, W), label)`` of B videos as one batch of ``B·R`` clips ``(B·R, C, T, H, W)``.

    A video's R clips are adjacent (rows ``b·R … b·R + R − 1``) and carry its label. A module-level function,
    so it pickles into spawned DataLoader workers.
    """
    clips, labels = default_collate(items)
    repeats = clips.shape[1]
    return clips.flatten(0, 1), labels.repeat_interleave(repeats)


class VideoClipDataset(Dataset):
    """One clip per video: ``(video (C, T, H, W) float32, label int)``; or, with ``repeats`` R > 1, R clips
    of one decoded video: ``(clips (R, C, T, H, W), label)`` (batch them with :func:`collate_repeats`).

    Repeated sampling decodes a video once per visit and draws R clips from it, the decode cost of one clip
    spread over R (video SSL is decode-bound). ``repeat_mode="independent"`` is MAE-ST's ``repeat_aug``:
    each clip has its own random temporal start and its own crop and flip (the union of their frames is
    decoded in one pass). ``"shared_frames"`` is VideoMAE V2's ``num_sample``: one set of frames, only the
    crop and flip redrawn (and the masks, which the task draws per clip).

    Each item opens its file anew (nothing decoder-related is held on the dataset), which keeps
    the dataset picklable and safe with forked DataLoader workers.

    ``dataset[i]`` raises if video ``i`` cannot be loaded. With ``skip_bad_videos`` the batch fetch
    that DataLoader uses (``__getitems__``) returns a :class:`~datamodules.faults.skips.SkippedVideo` in
    place of such an item instead, to be dropped by :class:`~datamodules.faults.skips.SkipCollate`.

    Args:
        samples: ``(path, label)`` pairs.
        num_frames: frames per clip ``T``.
        sampling_rate: spacing between sampled frames.
        transform: uint8 frames ``(T, H, W, 3)`` to a float clip ``(C, T, H, W)``.
        mode: ``"random"`` clip offset (training) or ``"center"`` (evaluation).
        backend: decoder, see :func:`datamodules.video.decoding.read_frames`.
        short_clips: videos shorter than a clip: ``"pad"`` repeats the last frame, ``"skip"`` fails
            the item (see :func:`datamodules.video.sampling.clip_indices`).
        decode_timeout_s: wall-clock limit per decoder attempt (``None``: none).
        skip_bad_videos: batch fetches mark unloadable items instead of raising.
        frame_cache: decode each video once and sample its clips from memory (small datasets; see
            :mod:`datamodules.video.frame_cache`); ``None`` decodes every visit.
        repeats: clips per decoded video R (1: one clip, returned without the R axis).
        repeat_mode: ``"independent"`` (own start, crop, flip per clip) or ``"shared_frames"`` (own crop
            and flip only).
    """

    def __init__(
        self,
        samples: Sequence[tuple[str, int]],
        num_frames: int,
        sampling_rate: int,
        transform: Callable[[torch.Tensor], torch.Tensor],
        mode: Literal["random", "center"] = "random",
        backend: Backend = "auto",
        short_clips: ShortClips = "pad",
        decode_timeout_s: Optional[float] = None,
        skip_bad_videos: bool = False,
        frame_cache: Optional[DecodedFrameCache] = None,
        repeats: int = 1,
        repeat_mode: RepeatMode = "independent",
    ) -> None:
        for name, value in (("num_frames", num_frames), ("sampling_rate", sampling_rate)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if mode not in SAMPLING_MODES:
            raise ValueError(f"mode must be one of {SAMPLING_MODES}, got {mode!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        check_short_clips(short_clips)
        check_timeout(decode_timeout_s)
        check_repeats(repeats, repeat_mode)
        self.samples = [(str(path), int(label)) for path, label in samples]
        self.num_frames, self.sampling_rate = num_frames, sampling_rate
        self.transform, self.mode, self.backend = transform, mode, backend
        self.short_clips, self.decode_timeout_s = short_clips, decode_timeout_s
        self.skip_bad_videos, self.frame_cache = skip_bad_videos, frame_cache
        self.repeats, self.repeat_mode = repeats, repeat_mode

    def __len__(self) -> int:
        return len(self.samples)

    def _select(self, total_frames: int) -> list[int]:
        """One clip's frame indices, or with independent repeats R clips' indices one after the other."""
        starts = self.repeats if self.repeat_mode == "independent" else 1
        return [index for _ in range(starts) for index in
                clip_indices(total_frames, self.num_frames, self.sampling_rate, self.mode, short=self.short_clips)]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        read = self.frame_cache.read if self.frame_cache is not None else read_clip
        frames = read(path, self._select, self.backend, timeout_s=self.decode_timeout_s)
        if self.repeats == 1:
            return self.transform(frames), label
        if self.repeat_mode == "independent":
            clips = frames.unflatten(0, (self.repeats, self.num_frames))
        else:
            clips = [frames] * self.repeats
        return torch.stack([self.transform(clip) for clip in clips]), label

    def __getitems__(self, indices: Sequence[int]) -> list[Any]:
        """Items ``indices`` for one batch; with ``skip_bad_videos``, markers for those that fail."""
        if not self.skip_bad_videos:
            return [self[i] for i in indices]
        return [load_or_skip(self.__getitem__, lambda i: self.samples[i][0], i) for i in indices]


class VideoViewsDataset(Dataset):
    """Multi-view test items: ``(views (clips * crops, C, T, H, W) float32, label int)``, one per video.

    View ``i * crops + j`` is clip ``i`` (:func:`~datamodules.video.sampling.view_starts`, evenly spaced in
    time) at crop ``j`` (:func:`~datamodules.video.transforms.view_crop_boxes`, evenly spaced along the long
    side): VideoMAE's test views. Deterministic; the file is opened once for all clips; a bad file raises
    naming it, and a video shorter than a clip gives its padded clip (as ``short_clips="pad"``).

    Args:
        samples: ``(path, label)`` pairs.
        num_frames: frames per clip ``T``.
        sampling_rate: spacing between sampled frames.
        transform: an eval :class:`~datamodules.video.transforms.ClipTransform` (its ``views`` method).
        clips: temporal clips per video.
        crops: spatial crops per clip.
        backend: decoder, see :func:`datamodules.video.decoding.read_frames`.
        decode_timeout_s: wall-clock limit per decoder attempt (``None``: none).
    """

    def __init__(self, samples: Sequence[tuple[str, int]], num_frames: int, sampling_rate: int, transform: Any,
                 clips: int, crops: int, backend: Backend = "auto",
                 decode_timeout_s: Optional[float] = None) -> None:
        for name, value in (("num_frames", num_frames), ("sampling_rate", sampling_rate)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        check_views(clips, crops)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        check_timeout(decode_timeout_s)
        self.samples = [(str(path), int(label)) for path, label in samples]
        self.num_frames, self.sampling_rate, self.transform = num_frames, sampling_rate, transform
        self.clips, self.crops, self.backend, self.decode_timeout_s = clips, crops, backend, decode_timeout_s

    def __len__(self) -> int:
        return len(self.samples)

    def _select(self, total_frames: int) -> list[int]:
        return view_indices(total_frames, self.num_frames, self.sampling_rate, self.clips)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        frames = read_clip(path, self._select, self.backend, timeout_s=self.decode_timeout_s)
        clips = frames.unflatten(0, (self.clips, self.num_frames))
        return torch.cat([self.transform.views(clip, self.crops) for clip in clips]), label
