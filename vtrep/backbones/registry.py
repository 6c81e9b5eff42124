"""Named backbone presets. ``micro`` is for tests and the CPU quickstart; the others are the ViT sizes."""

from __future__ import annotations

from typing import Any

from vtrep.backbones.video_vit import VideoViT

PRESETS: dict[str, dict[str, Any]] = {
    "micro": dict(embed_dim=96, depth=4, num_heads=3),
    "tiny": dict(embed_dim=192, depth=12, num_heads=3),
    "small": dict(embed_dim=384, depth=12, num_heads=6),
    "base": dict(embed_dim=768, depth=12, num_heads=12),
}

# Decoder sizes used with each preset in VideoMAE (ViT-S: 192 wide, ViT-B: 384 wide, 4 blocks).
DECODER_PRESETS: dict[str, dict[str, Any]] = {
    "micro": dict(dim=64, depth=2, num_heads=2),
    "tiny": dict(dim=96, depth=4, num_heads=3),
    "small": dict(dim=192, depth=4, num_heads=3),
    "base": dict(dim=384, depth=4, num_heads=6),
}


def create_video_vit(name: str, **overrides: Any) -> VideoViT:
    """Build a preset, e.g. ``create_video_vit("small", img_size=112)``."""
    if name not in PRESETS:
        raise ValueError(f"unknown backbone preset {name!r}; available: {sorted(PRESETS)}")
    return VideoViT(**{**PRESETS[name], **overrides})
