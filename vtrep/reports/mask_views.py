"""Pictures of what a masking strategy shows the encoder: input, visible tokens, sampling heatmap."""

from __future__ import annotations

import torch
from einops import repeat
from torchvision.utils import make_grid

from vtrep.masking.base import Grid


def token_values_to_frames(values: torch.Tensor, grid: Grid, patch_size: int, tubelet_size: int) -> torch.Tensor:
    """Spread one value per token ``(B, N)`` over the pixels it covers: ``(B, T, H, W)``."""
    t, h, w = grid
    return repeat(values.reshape(-1, t, h, w), "b t h w -> b (t kt) (h kh) (w kw)",
                  kt=tubelet_size, kh=patch_size, kw=patch_size)


def heat_colours(values: torch.Tensor) -> torch.Tensor:
    """A black → red → yellow → white ramp for values in [0, 1]: ``(...)`` → ``(..., 3)``."""
    v = values.clamp(0, 1)
    return torch.stack([(3 * v).clamp(0, 1), (3 * v - 1).clamp(0, 1), (3 * v - 2).clamp(0, 1)], dim=-1)


def probability_heatmap(probs: torch.Tensor, original: torch.Tensor, grid: Grid, patch_size: int,
                        tubelet_size: int) -> torch.Tensor:
    """Sampling probabilities ``(B, N)`` as a heat clip ``(B, 3, T, H, W)`` over the greyed input.

    Each clip is scaled by its own largest probability, so colours compare tokens within a clip.
    """
    scaled = probs / probs.amax(dim=1, keepdim=True).clamp_min(1e-12)
    heat = heat_colours(token_values_to_frames(scaled, grid, patch_size, tubelet_size)).permute(0, 4, 1, 2, 3)
    grey = original.mean(dim=1, keepdim=True)
    return 0.75 * heat + 0.25 * grey


def mask_view_grid(original: torch.Tensor, masked: torch.Tensor, heatmap: torch.Tensor | None = None,
                   max_frames: int = 16) -> torch.Tensor:
    """One image ``(3, H', W')``: per clip, rows input | visible tokens [| sampling heatmap], frames as columns."""
    num_frames = original.shape[2]
    frame_ids = torch.linspace(0, num_frames - 1, min(max_frames, num_frames)).round().long()
    rows = []
    for clip in range(original.shape[0]):
        views = (original, masked) if heatmap is None else (original, masked, heatmap)
        rows.extend(view[clip][:, frame_ids].permute(1, 0, 2, 3) for view in views)
    tiles = torch.cat(rows, dim=0).float().clamp(0, 1)
    return make_grid(tiles, nrow=len(frame_ids), padding=2, pad_value=1.0)


def draw_masks(task, video: torch.Tensor, max_frames: int = 16) -> torch.Tensor:
    """The mask-view image ``(3, H', W')`` of ``task``'s masking strategy on ``video (B, C, T, H, W)``."""
    with torch.no_grad():
        pred, mask, _ = task(video)
        original, masked, _ = task.reconstruct(video, pred, mask)
    heat = None
    if mask.probs is not None:
        cfg = task.backbone.config
        heat = probability_heatmap(mask.probs, original, task.backbone.grid, cfg["patch_size"], cfg["tubelet_size"])
    return mask_view_grid(original, masked, heat, max_frames)
