"""Clips with one moving object over a static background, with the object's pixel mask.

Ground truth for checks of where a learned masking strategy looks (AdaMAE): the object is the
only thing that moves, so every token the object does not touch is static background.
"""

from __future__ import annotations

import numpy as np
import torch

from datamodules.video.transforms import IMAGENET_MEAN, IMAGENET_STD


def moving_object_clip(rng: np.random.Generator, num_frames: int, size: int,
                       radius_range: tuple[float, float] = (4.0, 6.0)) -> tuple[np.ndarray, np.ndarray]:
    """One clip ``(T, H, W, 3)`` float in [0, 1] and its object mask ``(T, H, W)`` bool.

    A disc of random colour bounces inside the frame (speed 1.5–3 px per frame at 32 px) over a flat
    background of another random colour that never changes.
    """
    scale = size / 32
    radius = rng.uniform(*radius_range) * scale
    position = rng.uniform(radius, size - radius, 2)
    velocity = rng.uniform(1.5, 3.0) * scale * np.array([np.sin(a := rng.uniform(0, 2 * np.pi)), np.cos(a)])
    background, colour = rng.uniform(0.1, 0.9, 3), rng.uniform(0.0, 1.0, 3)
    while np.abs(colour - background).max() < 0.3:  # keep the object visible against the background
        colour = rng.uniform(0.0, 1.0, 3)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    frames, masks = [], []
    for _ in range(num_frames):
        alpha = np.clip(radius + 0.5 - np.hypot(yy - position[0], xx - position[1]), 0.0, 1.0)[..., None]
        frames.append(background * (1 - alpha) + colour * alpha)
        masks.append(alpha[..., 0] > 0)
        position = position + velocity
        for axis in range(2):  # bounce off the borders
            if not radius <= position[axis] <= size - radius:
                velocity[axis] = -velocity[axis]
                position[axis] = np.clip(position[axis], radius, size - radius)
    return np.stack(frames), np.stack(masks)


def moving_object_batch(num_clips: int, num_frames: int = 8, size: int = 32,
                        seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised clips ``(B, 3, T, H, W)`` (ImageNet mean/std) and object masks ``(B, T, H, W)``."""
    rng = np.random.default_rng(seed)
    clips, masks = zip(*(moving_object_clip(rng, num_frames, size) for _ in range(num_clips)))
    video = torch.from_numpy(np.stack(clips)).float().permute(0, 4, 1, 2, 3)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1, 1)
    return (video - mean) / std, torch.from_numpy(np.stack(masks))
