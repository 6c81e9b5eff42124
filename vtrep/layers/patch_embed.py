"""Tubelet patch embedding: a video ``(B, C, T, H, W)`` becomes tokens ``(B, N, D)``.

Tokens are ordered t-major over the ``(t, h, w)`` grid, as VideoMAE and MAE-ST flatten the
Conv3d output. The weight is a ``Conv3d`` with stride equal to its kernel (so checkpoints of
the reference implementations load as they are), but the forward pass is a matmul over
patchified pixels: it lets the encoder embed only the visible tokens, and the patchified clip
is laid out as the reconstruction targets are (``(kt kh kw) × C``, colour last), so one
patchify serves both the encoder input and the target.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def check_divisible(name: str, value: int, divisor_name: str, divisor: int) -> None:
    """Raise a ``ValueError`` naming both parameters when ``value`` is not a multiple of ``divisor``."""
    if value % divisor != 0:
        raise ValueError(
            f"{name}={value} is not divisible by {divisor_name}={divisor}; "
            f"choose {name} as a multiple of {divisor} (e.g. {max(divisor, value // divisor * divisor)})"
        )


class TubeletEmbed(nn.Module):
    """Embed non-overlapping ``tubelet × patch × patch`` cubes with one linear map.

    Args:
        img_size: input height and width (square frames).
        num_frames: input clip length ``T``.
        patch_size: spatial patch side.
        tubelet_size: frames per token.
        in_chans: colour channels ``C``.
        embed_dim: token width ``D``.
    """

    def __init__(
        self,
        img_size: int = 224,
        num_frames: int = 16,
        patch_size: int = 16,
        tubelet_size: int = 2,
        in_chans: int = 3,
        embed_dim: int = 768,
    ) -> None:
        super().__init__()
        for name, value in (("img_size", img_size), ("num_frames", num_frames), ("patch_size", patch_size),
                            ("tubelet_size", tubelet_size), ("in_chans", in_chans), ("embed_dim", embed_dim)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        check_divisible("img_size", img_size, "patch_size", patch_size)
        check_divisible("num_frames", num_frames, "tubelet_size", tubelet_size)
        self.img_size, self.num_frames = img_size, num_frames
        self.patch_size, self.tubelet_size, self.in_chans = patch_size, tubelet_size, in_chans
        self.grid = (num_frames // tubelet_size, img_size // patch_size, img_size // patch_size)
        self.num_tokens = self.grid[0] * self.grid[1] * self.grid[2]
        self.patch_dim = in_chans * tubelet_size * patch_size * patch_size
        self.proj = nn.Conv3d(in_chans, embed_dim, (tubelet_size, patch_size, patch_size),
                              stride=(tubelet_size, patch_size, patch_size))

    def check_input(self, video: torch.Tensor) -> None:
        expected = (self.in_chans, self.num_frames, self.img_size, self.img_size)
        if video.ndim != 5 or tuple(video.shape[1:]) != expected:
            raise ValueError(
                f"video must have shape (B, C, T, H, W) = (B, {', '.join(map(str, expected))}), "
                f"got {tuple(video.shape)}"
            )

    def patchify(self, video: torch.Tensor) -> torch.Tensor:
        """``(B, C, T, H, W) -> (B, N, P)`` with ``P = kt·kh·kw·C`` ordered ``(kt kh kw) × C``."""
        self.check_input(video)
        kt, p = self.tubelet_size, self.patch_size
        return rearrange(video, "b c (t kt) (h kh) (w kw) -> b (t h w) (kt kh kw c)", kt=kt, kh=p, kw=p)

    def embed_patches(self, patches: torch.Tensor) -> torch.Tensor:
        """``(B, n, P) -> (B, n, D)``: exactly the Conv3d applied to those cubes."""
        weight = self.proj.weight.permute(0, 2, 3, 4, 1).flatten(1)  # (D, kt kh kw C), matching patchify
        return F.linear(patches, weight, self.proj.bias)

    def forward(self, video: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        """Embed all tokens ``(B, N, D)``, or only ``ids`` ``(B, n)`` giving ``(B, n, D)``."""
        patches = self.patchify(video)
        if ids is not None:
            patches = torch.gather(patches, 1, ids.unsqueeze(-1).expand(-1, -1, patches.shape[-1]))
        return self.embed_patches(patches)
