"""Positional embeddings over the t-major ``(t, h, w)`` token grid, in the two published forms.

* ``sincos`` — VideoMAE: a fixed 1-D sinusoid table over the flattened token index
  (sin on even channels, cos on odd channels, frequencies ``10000^(2·(j//2)/D)``).
  Being a function of ``N`` only, it is regenerated, not interpolated, for another grid —
  as the VideoMAE and ``transformers`` code do when they build a model for a new size.
* ``separable`` — MAE-ST: learnable spatial ``(h·w, D)`` plus temporal ``(t, D)`` tables,
  summed per token. A checkpoint saved for another grid is resized on load (bicubic over
  ``h × w``, linear over ``t``). MAE-ST also keeps a cls-token embedding; vtrep's backbones have
  no cls token (they pool by mean, as VideoMAE does), so there is none here.

Both return ``(1, N, D)`` from ``forward()``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Grid = tuple[int, int, int]


def sincos_table(num_positions: int, dim: int) -> torch.Tensor:
    """VideoMAE's sinusoid table ``(num_positions, dim)``, computed in float64 then cast to float32."""
    position = torch.arange(num_positions, dtype=torch.float64).unsqueeze(1)
    exponent = 2 * (torch.arange(dim, dtype=torch.float64) // 2) / dim
    angles = position / torch.pow(10000.0, exponent)
    table = torch.empty_like(angles)
    table[:, 0::2] = torch.sin(angles[:, 0::2])
    table[:, 1::2] = torch.cos(angles[:, 1::2])
    return table.float()


class SinCosPosEmbed(nn.Module):
    """Fixed sinusoid table over ``N = t·h·w`` tokens. Not saved in checkpoints (it is a function of ``N``)."""

    def __init__(self, dim: int, grid: Grid) -> None:
        super().__init__()
        self.dim = dim
        self.grid = tuple(grid)
        self.register_buffer("table", sincos_table(math.prod(grid), dim).unsqueeze(0), persistent=False)

    def resize(self, grid: Grid) -> None:
        self.grid = tuple(grid)
        self.table = sincos_table(math.prod(grid), self.dim).unsqueeze(0).to(self.table.device)

    def forward(self) -> torch.Tensor:
        return self.table


class SeparablePosEmbed(nn.Module):
    """MAE-ST's learnable separable embedding: ``spatial[h, w] + temporal[t]`` for each token."""

    def __init__(self, dim: int, grid: Grid, init_std: float = 0.02) -> None:
        super().__init__()
        t, h, w = grid
        self.grid = tuple(grid)
        self.spatial = nn.Parameter(torch.zeros(1, h * w, dim))
        self.temporal = nn.Parameter(torch.zeros(1, t, dim))
        nn.init.trunc_normal_(self.spatial, std=init_std)
        nn.init.trunc_normal_(self.temporal, std=init_std)

    def forward(self) -> torch.Tensor:
        t, h, w = self.grid
        return self.spatial.repeat(1, t, 1) + torch.repeat_interleave(self.temporal, h * w, dim=1)

    @staticmethod
    def resize_spatial(table: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        """``(1, h0·w0, D) -> (1, h·w, D)`` by bicubic interpolation; the source grid must be square."""
        side = math.isqrt(table.shape[1])
        if side * side != table.shape[1]:
            raise ValueError(f"cannot resize a spatial position table of {table.shape[1]} entries: not a square grid")
        grid = table.reshape(1, side, side, -1).permute(0, 3, 1, 2).float()
        grid = F.interpolate(grid, size=hw, mode="bicubic", align_corners=False)
        return grid.permute(0, 2, 3, 1).reshape(1, hw[0] * hw[1], -1).to(table.dtype)

    @staticmethod
    def resize_temporal(table: torch.Tensor, t: int) -> torch.Tensor:
        """``(1, t0, D) -> (1, t, D)`` by linear interpolation."""
        resized = F.interpolate(table.transpose(1, 2).float(), size=t, mode="linear", align_corners=False)
        return resized.transpose(1, 2).to(table.dtype)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001 - torch hook signature
        t, h, w = self.grid
        key_s, key_t = prefix + "spatial", prefix + "temporal"
        if key_s in state_dict and state_dict[key_s].shape != self.spatial.shape:
            state_dict[key_s] = self.resize_spatial(state_dict[key_s], (h, w))
        if key_t in state_dict and state_dict[key_t].shape != self.temporal.shape:
            state_dict[key_t] = self.resize_temporal(state_dict[key_t], t)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


PosEmbedKind = Literal["sincos", "separable"]


def build_pos_embed(kind: PosEmbedKind, dim: int, grid: Grid) -> nn.Module:
    if kind == "sincos":
        return SinCosPosEmbed(dim, grid)
    if kind == "separable":
        return SeparablePosEmbed(dim, grid)
    raise ValueError(f"pos_embed must be 'sincos' or 'separable', got {kind!r}")
