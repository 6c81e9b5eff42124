"""Clip-level augmentation: uint8 frames ``(T, H, W, 3)`` to a normalised float clip ``(C, T, H, W)``.

All frames of a clip share one crop and one flip decision, so augmentation never creates
motion that is not in the video. Everything is plain torch ops on the ``(T, C, H, W)`` tensor:
fast, and safe inside DataLoader worker processes.
"""

from __future__ import annotations

import math
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from datamodules.video.sampling import check_views

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Aspect-ratio range of the random crop, as torchvision's RandomResizedCrop.
_LOG_RATIO = (math.log(3 / 4), math.log(4 / 3))


def _uniform(low: float, high: float, generator: Optional[torch.Generator]) -> float:
    return low + (high - low) * float(torch.rand(1, generator=generator))


def _randint(high_inclusive: int, generator: Optional[torch.Generator]) -> int:
    return int(torch.randint(0, high_inclusive + 1, (1,), generator=generator))


def random_crop_box(
    height: int, width: int, min_scale: float, generator: Optional[torch.Generator] = None
) -> tuple[int, int, int, int]:
    """Sample ``(top, left, crop_h, crop_w)`` covering ``[min_scale, 1]`` of the area, ratio 3/4..4/3."""
    area = height * width
    for _ in range(10):
        target = area * _uniform(min_scale, 1.0, generator)
        ratio = math.exp(_uniform(*_LOG_RATIO, generator))
        crop_w = round(math.sqrt(target * ratio))
        crop_h = round(math.sqrt(target / ratio))
        if 0 < crop_w <= width and 0 < crop_h <= height:
            return _randint(height - crop_h, generator), _randint(width - crop_w, generator), crop_h, crop_w
    # Rejection failed (extreme aspect ratio): fall back to the largest centred crop in range.
    crop_h, crop_w = height, width
    if width / height < 3 / 4:
        crop_h = round(width * 4 / 3)
    elif width / height > 4 / 3:
        crop_w = round(height * 4 / 3)
    return (height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w


def centre_square_box(height: int, width: int) -> tuple[int, int, int, int]:
    """``(top, left, side, side)`` of the centred square with the frame's shorter side."""
    side = min(height, width)
    return (height - side) // 2, (width - side) // 2, side, side


def view_crop_boxes(height: int, width: int, crops: int) -> list[tuple[int, int, int, int]]:
    """``(top, left, side, side)`` of ``crops`` squares with the shorter side, evenly spaced along the longer.

    VideoMAE's test crops (short side resized to the crop size, ``spatial_step = (long - short) / (crops -
    1)``, offset ``int(j * step)``), computed in the decoded frame's pixels before resizing: the same regions
    up to rounding. The first and last crops touch the frame's ends; one crop is :func:`centre_square_box`,
    so ``crops=1`` is the single-view protocol exactly. On a square frame every crop is the whole frame.
    """
    check_views(1, crops)
    if crops == 1:
        return [centre_square_box(height, width)]
    side = min(height, width)
    offsets = [int(j * (max(height, width) - side) / (crops - 1)) for j in range(crops)]
    if height > width:
        return [(offset, 0, side, side) for offset in offsets]
    return [(0, offset, side, side) for offset in offsets]


def _resize(video: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(video.shape[-2:]) == size:
        return video
    # uint8 (T, C, H, W) in channels-last layout (as decoded) takes torch's vectorised
    # antialiased path, several times faster than float; rounding to uint8 costs < 1 level.
    return F.interpolate(video, size=size, mode="bilinear", align_corners=False, antialias=True)


class ClipTransform:
    """Turn uint8 frames ``(T, H, W, 3)`` into a float32 clip ``(C, T, img_size, img_size)``.

    Train: one random-resized crop (area in ``[min_scale, 1]``, aspect 3/4..4/3) and one
    horizontal-flip decision shared by all frames, resized bilinearly (antialiased) to
    ``img_size``. Eval: resize the shorter side to ``img_size``, then centre crop (computed as
    centre square crop, then resize). Both then scale to ``[0, 1]`` and normalise by
    ``mean`` / ``std`` per channel.

    Args:
        img_size: output height and width.
        train: random augmentation if true, deterministic resize and centre crop otherwise.
        min_scale: smallest crop area as a fraction of the frame (train only).
        hflip: allow random horizontal flips (train only).
        mean: per-channel mean subtracted after scaling to ``[0, 1]``.
        std: per-channel standard deviation divided by after subtracting ``mean``.
    """

    def __init__(
        self,
        img_size: int,
        train: bool,
        min_scale: float = 0.5,
        hflip: bool = True,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        if not isinstance(img_size, int) or img_size <= 0:
            raise ValueError(f"img_size must be a positive integer, got {img_size!r}")
        if not 0.0 < min_scale <= 1.0:
            raise ValueError(f"min_scale must be in (0, 1], got {min_scale!r}")
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"mean and std must have 3 values (RGB), got {mean!r} and {std!r}")
        if min(std) <= 0:
            raise ValueError(f"std values must be positive, got {std!r}")
        self.img_size, self.train, self.min_scale, self.hflip = img_size, bool(train), min_scale, hflip
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(img_size={self.img_size}, train={self.train}, "
                f"min_scale={self.min_scale}, hflip={self.hflip})")

    def __call__(
        self, frames: Union[torch.Tensor, np.ndarray], generator: Optional[torch.Generator] = None
    ) -> torch.Tensor:
        """Transform frames ``(T, H, W, 3)`` uint8 into ``(C, T, img_size, img_size)`` float32."""
        video = _as_tchw(frames)  # crop and resize before going to float
        if self.train:
            box = random_crop_box(*video.shape[-2:], self.min_scale, generator)
        else:
            # Same region as resizing the shorter side to img_size then centre-cropping, but
            # cropping first resizes fewer pixels.
            box = centre_square_box(*video.shape[-2:])
        flip = self.train and self.hflip and float(torch.rand(1, generator=generator)) < 0.5
        return self._crop(video, box, flip)

    def views(self, frames: Union[torch.Tensor, np.ndarray], crops: int) -> torch.Tensor:
        """The eval transform at ``crops`` spatial positions: ``(crops, C, T, img_size, img_size)``.

        Crops are :func:`view_crop_boxes` (VideoMAE's test crops); ``crops=1`` equals ``self(frames)``.
        """
        if self.train:
            raise ValueError("test views are an eval transform: build the ClipTransform with train=False")
        video = _as_tchw(frames)
        return torch.stack([self._crop(video, box, False) for box in view_crop_boxes(*video.shape[-2:], crops)])

    def _crop(self, video: torch.Tensor, box: tuple[int, int, int, int], flip: bool) -> torch.Tensor:
        """uint8 ``(T, C, H, W)`` cropped to ``box``, resized, flipped if asked, normalised to ``(C, T, H, W)``."""
        top, left, crop_h, crop_w = box
        video = _resize(video[..., top:top + crop_h, left:left + crop_w], (self.img_size, self.img_size))
        if flip:
            video = video.flip(-1)
        video = (video.float() / 255.0 - self.mean) / self.std
        return video.permute(1, 0, 2, 3).contiguous()


def _as_tchw(frames: Union[torch.Tensor, np.ndarray]) -> torch.Tensor:
    """uint8 frames ``(T, H, W, 3)`` as a ``(T, C, H, W)`` view, or a clear error."""
    frames = torch.as_tensor(frames)
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}")
    return frames.permute(0, 3, 1, 2)
