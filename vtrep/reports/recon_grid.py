"""Reconstruction grids: for each clip, rows of original frames, masked input, reconstruction."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image

MASK_GRAY = 0.5


def masked_pixels(pixels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Grey out masked tokens: ``pixels (B, N, L, C)``, ``mask (B, N)`` bool."""
    return torch.where(mask[..., None, None], torch.full_like(pixels, MASK_GRAY), pixels)


def reconstruction_grid(original: torch.Tensor, masked: torch.Tensor, recon: torch.Tensor,
                        max_frames: int = 8) -> torch.Tensor:
    """Tile clips ``(B, C, T, H, W)`` in [0, 1] into one image ``(C, H', W')``.

    Each clip takes three rows — original | masked input | reconstruction — with up to
    ``max_frames`` evenly spaced frames as columns.
    """
    num_frames = original.shape[2]
    frame_ids = torch.linspace(0, num_frames - 1, min(max_frames, num_frames)).round().long()
    rows = []
    for clip in range(original.shape[0]):
        for video in (original, masked, recon):
            rows.append(video[clip][:, frame_ids].permute(1, 0, 2, 3))  # (T', C, H, W)
    tiles = torch.cat(rows, dim=0).float().clamp(0, 1)
    return make_grid(tiles, nrow=len(frame_ids), padding=2, pad_value=1.0)


def save_grid(image: torch.Tensor, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(image, str(path))
    return path
